use super::protocol::*;
use super::*;
use axum::http::HeaderMap;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    h
}

#[test]
fn origin_must_be_this_server() {
    assert!(origin_allowed(&headers(&[("host", "127.0.0.1:7721")])));
    assert!(origin_allowed(&headers(&[("host", "127.0.0.1:7721"), ("origin", "http://127.0.0.1:7721")])));
    assert!(!origin_allowed(&headers(&[("host", "127.0.0.1:7721"), ("origin", "http://evil.example")])));
    // DNS rebinding: the attacker's name resolves to us, but the Origin names it.
    assert!(!origin_allowed(&headers(&[("host", "evil.example:7721"), ("origin", "http://127.0.0.1:7721")])));
    assert!(!origin_allowed(&headers(&[("origin", "http://127.0.0.1:7721")])));
}

#[test]
fn header_values_round_trip() {
    for v in ["search", "agentdb://collections/docs", "naïve café", " padded "] {
        assert_eq!(decode_header_value(&encode_header_value(v)), v);
    }
    assert_eq!(encode_header_value("search"), "search");
    assert!(encode_header_value("café").starts_with("=?base64?"));
}

#[test]
fn every_tool_has_an_object_schema_and_a_description() {
    let tools = tools::catalogue();
    assert_eq!(tools.len(), 8);
    for t in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(t["description"].as_str().is_some_and(|d| d.len() > 20), "{t}");
        for r in t["inputSchema"]["required"].as_array().unwrap() {
            assert!(t["inputSchema"]["properties"].get(r.as_str().unwrap()).is_some(), "{t}");
        }
    }
}

#[test]
fn supported_lists_the_newest_first() {
    let s = supported();
    assert_eq!(s[0], "2026-07-28");
    assert!(s.contains(&"2025-06-18"));
}
