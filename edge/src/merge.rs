//! How concurrent versions of one item combine. An item's replicated state is a
//! [`Version`]: the stamp and content of the latest write (last writer wins, by hybrid
//! logical clock, then origin) or a tombstone, plus the fields a collection merges by
//! policy (`max`: the largest number any version held; `union`: every element any
//! version's array held). [`join`] is commutative, associative and idempotent, so
//! replicas that have taken in the same versions, in any order and any number of times,
//! hold the same state: that is what makes edge sync converge without coordination.
//! Merged fields survive a delete (the tombstone keeps them), which is what keeps the
//! join associative: a `union` field only grows and a `max` field only rises.

use crate::hlc::Stamp;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The payload field that carries an item's stamp in the collection.
pub const SYNC_FIELD: &str = "_sync";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The largest number any version held (non-numbers: last writer wins).
    Max,
    /// Every element any version's array held, sorted, each once (a scalar counts as a
    /// one-element array).
    Union,
}

impl Policy {
    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "max" | "keep_max" | "keep-max" => Some(Policy::Max),
            "union" => Some(Policy::Union),
            _ => None,
        }
    }
}

/// Per-field policies of one collection (top-level payload fields); every other field
/// follows the winning version.
pub type Policies = BTreeMap<String, Policy>;

#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub stamp: Stamp,
    pub deleted: bool,
    /// Space name -> vector (none for a tombstone).
    pub vectors: BTreeMap<String, Vec<f32>>,
    /// The payload without the stamp field; a tombstone keeps only its merged fields.
    pub payload: Map<String, Value>,
}

impl Version {
    /// A stored item's version: its stamp from the payload (none: older than any stamped
    /// version, an item written before sync was turned on).
    pub fn from_stored(vectors: BTreeMap<String, Vec<f32>>, payload: Value) -> Version {
        let mut payload = match payload {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let stamp = payload.remove(SYNC_FIELD).and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        Version { stamp, deleted: false, vectors, payload }
    }

    /// The payload to store: the version's fields and its stamp.
    pub fn stored_payload(&self) -> Value {
        let mut p = self.payload.clone();
        p.insert(SYNC_FIELD.into(), serde_json::to_value(&self.stamp).expect("a stamp serialises"));
        Value::Object(p)
    }
}

/// Bring a version into the form every replica stores (union fields sorted, each
/// element once; a tombstone's payload reduced to its merged fields).
pub fn normalize(mut v: Version, policies: &Policies) -> Version {
    if v.deleted {
        v.vectors.clear();
        v.payload.retain(|k, _| policies.contains_key(k));
    }
    for (field, p) in policies {
        if *p == Policy::Union {
            if let Some(x) = v.payload.remove(field) {
                v.payload.insert(field.clone(), union(Some(&x), None));
            }
        }
    }
    v
}

/// The state after taking in both versions.
pub fn join(a: &Version, b: &Version, policies: &Policies) -> Version {
    let (win, lose) = if a.stamp >= b.stamp { (a, b) } else { (b, a) };
    let mut out = win.clone();
    for (field, p) in policies {
        let (w, l) = (win.payload.get(field), lose.payload.get(field));
        let merged = match p {
            Policy::Max => match (w, l) {
                (Some(Value::Number(x)), Some(Value::Number(y))) => {
                    let (fx, fy) = (x.as_f64().unwrap_or(f64::MIN), y.as_f64().unwrap_or(f64::MIN));
                    Some(if fy > fx { Value::Number(y.clone()) } else { Value::Number(x.clone()) })
                }
                (Some(x), _) => Some(x.clone()),
                (None, y) => y.cloned(),
            },
            Policy::Union => (w.is_some() || l.is_some()).then(|| union(w, l)),
        };
        match merged {
            Some(v) => {
                out.payload.insert(field.clone(), v);
            }
            None => {
                out.payload.remove(field);
            }
        }
    }
    normalize(out, policies)
}

fn union(a: Option<&Value>, b: Option<&Value>) -> Value {
    let mut all: BTreeMap<String, Value> = BTreeMap::new();
    for v in [a, b].into_iter().flatten() {
        let elems = match v {
            Value::Array(xs) => xs.clone(),
            Value::Null => Vec::new(),
            x => vec![x.clone()],
        };
        for e in elems {
            all.insert(canonical_json(&e), e);
        }
    }
    Value::Array(all.into_values().collect())
}

/// JSON with object keys sorted at every level (one text per value, whatever order the
/// keys were inserted in).
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(xs) => Value::Array(xs.iter().map(sorted).collect()),
            x => x.clone(),
        }
    }
    // serde_json's map may keep insertion order (feature `preserve_order`): write the
    // keys in sorted order by hand.
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(xs) => {
                out.push('[');
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            x => out.push_str(&x.to_string()),
        }
    }
    let mut out = String::new();
    write(&sorted(v), &mut out);
    out
}

/// An item's digest as stored: id, payload (stamp included, keys sorted) and every
/// vector's bits, so two replicas hold the same item exactly when the digests match.
pub fn item_digest(id: &str, payload: &Value, vectors: &BTreeMap<String, Vec<f32>>) -> String {
    let mut h = Sha256::new();
    h.update(id.as_bytes());
    h.update([0]);
    h.update(canonical_json(payload).as_bytes());
    for (space, v) in vectors {
        h.update([0]);
        h.update(space.as_bytes());
        h.update([0]);
        for x in v {
            h.update(x.to_le_bytes());
        }
    }
    let d = h.finalize();
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use serde_json::json;

    fn v(wall: u64, origin: &str, deleted: bool, payload: Value) -> Version {
        let Value::Object(payload) = payload else { panic!() };
        let vectors = if deleted { BTreeMap::new() } else { BTreeMap::from([("s".to_string(), vec![wall as f32])]) };
        Version { stamp: Stamp { hlc: Hlc { wall, logical: 0 }, origin: origin.into() }, deleted, vectors, payload }
    }

    fn policies() -> Policies {
        Policies::from([("stock".to_string(), Policy::Max), ("tags".to_string(), Policy::Union)])
    }

    /// Every order of taking in the versions, each possibly twice, ends in one state.
    #[test]
    fn join_is_order_independent_with_deletes_and_policies() {
        let p = policies();
        let versions = [
            v(1, "hub", false, json!({"name": "a", "stock": 5, "tags": ["x", "b"]})),
            v(2, "edge-a", true, json!({})),
            v(3, "edge-b", false, json!({"name": "c", "stock": 2, "tags": "z"})),
            v(3, "edge-a", false, json!({"name": "d", "tags": [{"k": 1, "j": 2}]})),
            v(4, "hub", true, json!({"stock": 1})),
        ];
        let fold = |order: &[usize]| {
            let mut st = normalize(versions[order[0]].clone(), &p);
            for &i in &order[1..] {
                st = join(&st, &versions[i], &p);
            }
            st
        };
        let reference = fold(&[0, 1, 2, 3, 4]);
        assert!(reference.deleted, "the latest version is a delete");
        assert_eq!(reference.payload.get("stock"), Some(&json!(5)), "max survives the delete");
        assert_eq!(reference.payload.get("tags"), Some(&json!(["b", "x", "z", {"j": 2, "k": 1}])));
        assert!(!reference.payload.contains_key("name"), "a tombstone keeps only merged fields");
        let mut order = vec![0, 1, 2, 3, 4];
        // Every permutation (Heap's algorithm), and each with a repeat.
        fn permute(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
            if k == 1 {
                out.push(a.clone());
                return;
            }
            for i in 0..k {
                permute(k - 1, a, out);
                if k.is_multiple_of(2) {
                    a.swap(i, k - 1)
                } else {
                    a.swap(0, k - 1)
                }
            }
        }
        let mut all = Vec::new();
        permute(5, &mut order, &mut all);
        assert_eq!(all.len(), 120);
        for o in &all {
            assert_eq!(fold(o), reference, "order {o:?}");
            let mut twice = o.clone();
            twice.extend(o.iter().rev());
            assert_eq!(fold(&twice), reference, "order {twice:?}");
        }
    }

    #[test]
    fn last_writer_wins_and_ties_go_to_the_larger_origin() {
        let p = Policies::new();
        let a = v(7, "edge-a", false, json!({"n": 1}));
        let b = v(7, "edge-b", false, json!({"n": 2}));
        assert_eq!(join(&a, &b, &p).payload["n"], json!(2));
        assert_eq!(join(&b, &a, &p).payload["n"], json!(2));
        let later_delete = v(8, "edge-a", true, json!({}));
        assert!(join(&b, &later_delete, &p).deleted);
        let later_write = v(9, "hub", false, json!({"n": 3}));
        let back = join(&join(&b, &later_delete, &p), &later_write, &p);
        assert!(!back.deleted && back.payload["n"] == json!(3));
    }

    #[test]
    fn stored_payload_round_trips_and_unstamped_items_are_oldest() {
        let a = v(12, "edge-a", false, json!({"n": 1}));
        let back = Version::from_stored(a.vectors.clone(), a.stored_payload());
        assert_eq!(back, a);
        let old = Version::from_stored(BTreeMap::new(), json!({"n": 0}));
        assert_eq!(old.stamp, Stamp::default());
        assert!(old.stamp < a.stamp);
    }

    #[test]
    fn digests_ignore_key_order_and_see_every_bit() {
        let vecs = BTreeMap::from([("s".to_string(), vec![0.5f32, -1.0])]);
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": 2, "x": 3}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": {"x": 3, "y": 2}, "b": 1}"#).unwrap();
        assert_eq!(item_digest("i", &a, &vecs), item_digest("i", &b, &vecs));
        let mut other = vecs.clone();
        other.get_mut("s").unwrap()[0] = f32::from_bits(0.5f32.to_bits() + 1);
        assert_ne!(item_digest("i", &a, &vecs), item_digest("i", &a, &other));
        assert_ne!(item_digest("i", &a, &vecs), item_digest("j", &a, &vecs));
    }
}
