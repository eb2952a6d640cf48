//! Reading A2A JSON-RPC parameters as ProtoJSON does: a field may be spelt in lowerCamelCase
//! (`pageSize`, the canonical JSON name) or as in the proto (`page_size`). (Timestamps, RFC
//! 3339 strings, are read by `agentdb_orchestrator::time`.)

use serde_json::{Map, Value};

/// `key` (lowerCamelCase) or its proto spelling (snake_case): one reading for A2A
/// requests and AgentDB's skills.
pub use agentdb_orchestrator::skills::param;

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

#[cfg(test)]
mod tests {
    use super::*;
    use agentdb_orchestrator::skills::snake_case;
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
}
