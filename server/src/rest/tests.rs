use super::gateway::*;
use super::*;
use serde_json::json;

#[test]
fn every_route_names_a_method_and_its_path_parameters_name_fields() {
    for r in ROUTES {
        let m = method(r.rpc);
        for (p, field) in r.params {
            assert!(r.path.contains(&format!("{{{p}}}")), "{}: no {{{p}}}", r.path);
            assert!(
                m.input().get_field_by_name(field).is_some(),
                "{}: {} has no field {field}",
                r.path,
                m.input().name()
            );
        }
        assert_eq!(m.is_client_streaming(), r.body == Body::Files, "{}", r.path);
    }
}

#[test]
fn json_strings_are_json_values_both_ways() {
    let desc = method("Items/Upsert").input();
    let mut v =
        json!({"collection": "c", "items": [{"id": "a", "payload": {"tag": 3}, "vectors": {"": {"values": [1.0]}}}]});
    to_proto_json(&desc, &mut v);
    assert_eq!(v["items"][0]["payloadJson"], json!("{\"tag\":3}"));
    let out = method("Items/Get").output();
    let mut r = json!({"items": [{"id": "a", "payloadJson": "{\"tag\":3}"}, {"id": "b", "payloadJson": ""}]});
    from_proto_json(&out, &mut r);
    assert_eq!(r["items"][0]["payload"], json!({"tag": 3}));
    assert!(r["items"][1].get("payload").is_none());
    assert!(r["items"][0].get("payloadJson").is_none());
}

#[test]
fn the_document_is_openapi_3_1_with_every_route() {
    let doc = openapi::document();
    assert_eq!(doc["openapi"], "3.1.0");
    for r in ROUTES {
        let op = &doc["paths"][r.path][r.method.as_str().to_ascii_lowercase()];
        assert!(op["operationId"].is_string(), "{} {}", r.method, r.path);
    }
    let item = &doc["components"]["schemas"]["Item"]["properties"];
    assert!(item.get("payload").is_some() && item.get("payloadJson").is_none(), "{item}");
    // Every $ref resolves.
    let text = doc.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
    }
}

#[test]
fn grpc_codes_map_to_http() {
    assert_eq!(http_status(tonic::Code::NotFound).0.as_u16(), 404);
    assert_eq!(http_status(tonic::Code::PermissionDenied).0.as_u16(), 403);
    assert_eq!(http_status(tonic::Code::Unauthenticated).0.as_u16(), 401);
    assert_eq!(http_status(tonic::Code::ResourceExhausted).0.as_u16(), 429);
    assert_eq!(http_status(tonic::Code::InvalidArgument).0.as_u16(), 400);
}
