//! Data masking: payload fields marked sensitive (`security.masked_fields`, dotted paths)
//! are replaced by `"***"` in everything returned to a principal below the clearance
//! role (`security.mask_clearance`, default admin), and such a principal may not filter
//! on them (a filter on a hidden field would reveal its value one guess at a time).
//! Without authentication there are no principals and nothing is masked.

use super::{Principal, Role};
use agentdb_engine::Filter;
use serde_json::Value;

pub const MASK: &str = "***";

#[derive(Debug, Clone)]
pub struct Masking {
    fields: Vec<Vec<String>>,
    clearance: Role,
}

impl Masking {
    pub fn new(fields: &[String], clearance: Role) -> Masking {
        let fields = fields
            .iter()
            .map(|f| f.split('.').map(str::to_string).collect::<Vec<_>>())
            .filter(|p: &Vec<String>| p.iter().all(|s| !s.is_empty()))
            .collect();
        Masking { fields, clearance }
    }

    /// Whether `p` sees masked values.
    pub fn applies(&self, p: Option<&Principal>) -> bool {
        !self.fields.is_empty() && p.is_some_and(|p| p.role.rank() < self.clearance.rank())
    }

    /// The top-level payload keys `p` may not read (empty when nothing is masked for it).
    pub fn hidden_keys(&self, p: Option<&Principal>) -> Vec<String> {
        if !self.applies(p) {
            return Vec::new();
        }
        self.fields.iter().filter_map(|f| f.first().cloned()).collect()
    }

    /// Replace every masked field present in `payload` (objects only; arrays are left
    /// as they are, a masked path names object keys).
    pub fn mask(&self, p: Option<&Principal>, payload: &mut Value) {
        if !self.applies(p) {
            return;
        }
        for path in &self.fields {
            let mut cur = Some(&mut *payload);
            for k in path {
                cur = cur.and_then(|v| v.as_object_mut()).and_then(|o| o.get_mut(k.as_str()));
            }
            if let Some(v) = cur {
                *v = Value::from(MASK);
            }
        }
    }

    /// Refuse a filter that reads a masked field (or a parent or child of one).
    pub fn check_filter(&self, p: Option<&Principal>, f: &Filter) -> Result<(), String> {
        if !self.applies(p) {
            return Ok(());
        }
        let mut paths = Vec::new();
        filter_paths(f, &mut paths);
        for used in paths {
            for masked in &self.fields {
                let n = used.len().min(masked.len());
                if used[..n] == masked[..n] {
                    return Err(format!(
                        "payload field '{}' is masked for role {}; it cannot be used in a filter",
                        masked.join("."),
                        p.map_or("reader", |p| p.role.as_str())
                    ));
                }
            }
        }
        Ok(())
    }
}

fn filter_paths<'a>(f: &'a Filter, out: &mut Vec<&'a [String]>) {
    match f {
        Filter::Eq { path, .. }
        | Filter::Ne { path, .. }
        | Filter::In { path, .. }
        | Filter::Range { path, .. }
        | Filter::Exists { path } => out.push(path),
        Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| filter_paths(f, out)),
        Filter::Not(f) => filter_paths(f, out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn who(role: Role) -> Principal {
        Principal {
            id: "key:k1".into(),
            name: "k1".into(),
            role,
            collections: Vec::new(),
            row_filter: None,
            auth: crate::security::AuthMethod::ApiKey,
            mfa: false,
        }
    }

    #[test]
    fn masks_below_clearance_only() {
        let m = Masking::new(&["ssn".into(), "contact.email".into()], Role::Admin);
        let mut v = json!({"ssn": "123-45", "contact": {"email": "a@b", "city": "Oslo"}, "name": "x"});
        m.mask(Some(&who(Role::Admin)), &mut v);
        assert_eq!(v["ssn"], json!("123-45"));
        m.mask(Some(&who(Role::Writer)), &mut v);
        assert_eq!(v, json!({"ssn": "***", "contact": {"email": "***", "city": "Oslo"}, "name": "x"}));
        let mut none = json!({"ssn": "1"});
        m.mask(None, &mut none);
        assert_eq!(none["ssn"], json!("1"), "no principal (auth off): nothing to mask against");
    }

    #[test]
    fn filters_on_masked_fields_are_refused() {
        let m = Masking::new(&["contact.email".into()], Role::Admin);
        let r = who(Role::Reader);
        for bad in ["contact.email = \"a@b\"", "exists(contact)", "not (x = 1 or contact.email.domain = \"b\")"] {
            let f = agentdb_engine::filter::parse(bad).unwrap();
            assert!(m.check_filter(Some(&r), &f).unwrap_err().contains("contact.email"), "{bad}");
        }
        let ok = agentdb_engine::filter::parse("contact.city = \"Oslo\" and name = \"x\"").unwrap();
        assert!(m.check_filter(Some(&r), &ok).is_ok());
        let f = agentdb_engine::filter::parse("contact.email = \"a@b\"").unwrap();
        assert!(m.check_filter(Some(&who(Role::Admin)), &f).is_ok());
    }
}
