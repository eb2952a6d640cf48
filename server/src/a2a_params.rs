//! Reading A2A JSON-RPC parameters as ProtoJSON does: a field may be spelt in lowerCamelCase
//! (`pageSize`, the canonical JSON name) or as in the proto (`page_size`), and timestamps
//! are RFC 3339 strings.

use serde_json::{Map, Value};

/// `key` (lowerCamelCase) or its proto spelling (snake_case).
pub fn param<'a>(p: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    p.get(key).or_else(|| p.get(&snake_case(key)))
}

pub fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An integer parameter: `Ok(None)` when absent, `Err` naming the field when it is not an
/// integer (a number with a fraction, a string that does not parse, a boolean, ...).
pub fn int_param(p: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match param(p, key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("{key} must be an integer, got {n}")),
        // ProtoJSON writes 64-bit integers as strings.
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| format!("{key} must be an integer, got \"{s}\""))
        }
        Some(other) => Err(format!("{key} must be an integer, got {other}")),
    }
}

/// Milliseconds since the Unix epoch of an RFC 3339 timestamp
/// (`2026-12-06T05:41:44.123456+00:00`, `...Z`); `None` when it is not one.
pub fn rfc3339_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if b[16] != b':' || !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = s.get(start..i)?;
        if frac.is_empty() {
            return None;
        }
        ms = format!("{frac:0<3}")[..3].parse().ok()?;
    }
    let offset_min = match s.get(i..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && matches!(&tz[..1], "+" | "-") && &tz[3..4] == ":" => {
            let (hh, mm): (i64, i64) = (tz[1..3].parse().ok()?, tz[4..6].parse().ok()?);
            if hh > 23 || mm > 59 {
                return None;
            }
            let m = hh * 60 + mm;
            if tz.starts_with('-') {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    // Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
    let (y, mo) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) - offset_min * 60) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_spellings_and_integers() {
        let p = json!({"page_size": 5, "taskId": "t", "historyLength": "3", "x": 1.5});
        let p = p.as_object().unwrap();
        assert_eq!(param(p, "pageSize"), Some(&json!(5)));
        assert_eq!(param(p, "taskId"), Some(&json!("t")));
        assert_eq!(snake_case("statusTimestampAfter"), "status_timestamp_after");
        assert_eq!(int_param(p, "historyLength"), Ok(Some(3)));
        assert_eq!(int_param(p, "pageSize"), Ok(Some(5)));
        assert_eq!(int_param(p, "missing"), Ok(None));
        assert!(int_param(p, "x").unwrap_err().contains("x must be an integer"));
    }

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(rfc3339_ms("2026-12-06T05:41:44.123456+00:00"), rfc3339_ms("2026-12-06T05:41:44.123Z"));
        assert_eq!(rfc3339_ms("2026-12-06T06:41:44+01:00"), rfc3339_ms("2026-12-06T05:41:44Z"));
        assert_eq!(rfc3339_ms("2000-03-01T00:00:00Z"), Some(951_868_800_000));
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-12-06T25:00:00Z",
            "2026-12-06",
            "2026-12-06T05:41:44",
            "2026-12-06T05:41:44.Z",
            "not-a-timestamp-at-all",
        ] {
            assert_eq!(rfc3339_ms(bad), None, "{bad}");
        }
    }
}
