//! The OpenAPI 3.1 document, generated from the route table and the protobuf
//! descriptors compiled into the binary: one operation per route, one schema per
//! message (as the gateway reads and writes it).

use super::gateway::{json_alias, method};
use super::{Body, OPENAPI_PATH, ROUTES};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

fn schema_name(m: &MessageDescriptor) -> String {
    m.full_name().trim_start_matches("agentdb.v1.").to_string()
}

fn reference(m: &MessageDescriptor) -> Value {
    json!({ "$ref": format!("#/components/schemas/{}", schema_name(m)) })
}

/// One value of field kind `k` (a list's element, a map's value).
fn kind_schema(k: &Kind, out: &mut BTreeMap<String, Value>) -> Value {
    match k {
        Kind::Double | Kind::Float => json!({ "type": "number" }),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => json!({ "type": "integer", "format": "int32" }),
        Kind::Uint32 | Kind::Fixed32 => {
            json!({ "type": "integer", "format": "int32", "minimum": 0, "maximum": u32::MAX })
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => json!({ "type": "integer", "format": "int64" }),
        Kind::Uint64 | Kind::Fixed64 => json!({ "type": "integer", "format": "int64", "minimum": 0 }),
        Kind::Bool => json!({ "type": "boolean" }),
        Kind::String => json!({ "type": "string" }),
        Kind::Bytes => json!({ "type": "string", "contentEncoding": "base64" }),
        Kind::Enum(e) => {
            json!({ "type": "string", "enum": e.values().map(|v| v.name().to_string()).collect::<Vec<_>>() })
        }
        Kind::Message(m) => {
            add_message(m, out);
            reference(m)
        }
    }
}

fn field_schema(f: &FieldDescriptor, out: &mut BTreeMap<String, Value>) -> Value {
    if f.is_map() {
        let Kind::Message(entry) = f.kind() else { unreachable!("a map field's kind is its entry") };
        let value = kind_schema(&entry.map_entry_value_field().kind(), out);
        return json!({ "type": "object", "additionalProperties": value });
    }
    let one = kind_schema(&f.kind(), out);
    if f.is_list() {
        json!({ "type": "array", "items": one })
    } else if matches!(f.kind(), Kind::Message(_)) {
        // An unset message field is written as null.
        json!({ "anyOf": [one, { "type": "null" }] })
    } else {
        one
    }
}

/// Add message `m` (and every message it refers to) to `out`, as the gateway's JSON.
fn add_message(m: &MessageDescriptor, out: &mut BTreeMap<String, Value>) {
    let name = schema_name(m);
    if out.contains_key(&name) {
        return;
    }
    out.insert(name.clone(), Value::Null); // a placeholder against recursion
    let mut props = Map::new();
    for f in m.fields() {
        match json_alias(&f) {
            Some(alias) => {
                props.insert(alias, json!({ "description": format!("A JSON value (the `{}` field).", f.name()) }));
            }
            None => {
                props.insert(f.json_name().to_string(), field_schema(&f, out));
            }
        }
    }
    out.insert(name, json!({ "type": "object", "properties": props, "additionalProperties": false }));
}

fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": { "error": {
            "type": "object",
            "required": ["code", "status", "message"],
            "properties": {
                "code": { "type": "integer", "description": "The HTTP status." },
                "status": { "type": "string", "description": "The gRPC status name, e.g. NOT_FOUND." },
                "message": { "type": "string", "description": "What was wrong, by name." },
            },
        }},
    })
}

/// The document served at /v1/openapi.json.
pub fn document() -> Value {
    let mut schemas = BTreeMap::new();
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for r in ROUTES {
        let m = method(r.rpc);
        let input = m.input();
        add_message(&input, &mut schemas);
        add_message(&m.output(), &mut schemas);
        let mut params: Vec<Value> = r
            .params
            .iter()
            .map(|(p, field)| {
                json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 },
                        "description": format!("The request's `{field}`.") })
            })
            .collect();
        if matches!(r.body, Body::None | Body::Stream) {
            for f in input.fields() {
                if r.params.iter().any(|(_, field)| *field == f.name()) || f.is_map() {
                    continue;
                }
                if matches!(f.kind(), Kind::Message(_)) || json_alias(&f).is_some() {
                    continue;
                }
                let mut s = kind_schema(&f.kind(), &mut schemas);
                if f.is_list() {
                    s = json!({ "type": "array", "items": s });
                }
                params.push(json!({ "name": f.name(), "in": "query", "required": false, "schema": s }));
            }
        }
        let mut op = json!({
            "operationId": r.rpc.replace('/', "_"),
            "summary": r.summary,
            "tags": [r.tag],
            "parameters": params,
            "responses": {
                "200": if r.body == Body::Stream {
                    json!({ "description": format!("Server-Sent Events: one `data:` line per {} as JSON, `event: error` with an Error body if the stream fails, a `: keep-alive` comment every 15 s.", m.output().name()),
                            "content": { "text/event-stream": { "schema": { "type": "string" } } } })
                } else { json!({ "description": "OK", "content": { "application/json": { "schema":
                    if m.is_server_streaming() {
                        json!({ "type": "object", "properties": { "results": { "type": "array", "items": reference(&m.output()) } },
                                "required": ["results"], "additionalProperties": false })
                    } else {
                        reference(&m.output())
                    } } } }) },
                "default": { "description": "An error: the HTTP status follows the gRPC code (400 invalid argument, 401 unauthenticated, 403 permission denied, 404 not found, 409 already exists, 429 resource exhausted with Retry-After, 503 unavailable).",
                             "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
            },
        });
        let json_body = json!({ "schema": reference(&input) });
        match r.body {
            Body::None | Body::Stream => {}
            Body::Json => {
                op["requestBody"] = json!({ "required": false, "content": { "application/json": json_body } })
            }
            Body::JsonOrMedia => {
                op["requestBody"] = json!({ "required": false, "content": {
                    "application/json": json_body,
                    "multipart/form-data": { "schema": { "type": "object", "properties": {
                        "request": { "type": "string", "description": "The request's fields as a JSON object." },
                        "image": { "type": "string", "contentMediaType": "application/octet-stream", "description": "An image to search by." },
                        "audio": { "type": "string", "contentMediaType": "application/octet-stream", "description": "A recording to search by." },
                        "video": { "type": "string", "contentMediaType": "application/octet-stream", "description": "A clip to search by." },
                        "text": { "type": "string" }, "top_k": { "type": "integer", "minimum": 0 }, "filter": { "type": "string" },
                    } } },
                } })
            }
            Body::Files => {
                op["requestBody"] = json!({ "required": true, "content": { "multipart/form-data": { "schema": {
                    "type": "object",
                    "properties": { "files": { "type": "array", "items": { "type": "string", "contentMediaType": "application/octet-stream" } } },
                    "description": "One part with a filename per file; the filename is the item's source.",
                } } } })
            }
        }
        paths.entry(r.path.to_string()).or_default().insert(r.method.as_str().to_ascii_lowercase(), op);
    }
    paths.entry(super::media::PATH.to_string()).or_default().insert("get".into(), json!({
        "operationId": "Media_Get",
        "summary": "The original bytes of an ingested file (by its content_sha256), while an item the caller may read names it",
        "tags": ["items"],
        "parameters": [
            { "name": "collection", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 } },
            { "name": "sha256", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 },
              "description": "The file's SHA-256 (payload content_sha256)." },
        ],
        "responses": {
            "200": { "description": "The file, with its detected media type.",
                     "content": { "*/*": { "schema": { "type": "string", "contentMediaType": "application/octet-stream" } } } },
            "default": { "description": "An error (400 not a SHA-256, 401, 403, 404 not kept or not visible).",
                         "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
        },
    }));
    let error_default = |what: &str| json!({ "description": what, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } });
    paths.entry(super::edge::STATUS_PATH.to_string()).or_default().insert("get".into(), json!({
        "operationId": "Edge_Status",
        "summary": "Edge sync on this node: role, hub reachability, clock, what it has seen of every origin, counters, and per synced collection the items and tombstones (docs/EDGE.md). Admin.",
        "tags": ["edge"],
        "parameters": [
            { "name": "digest", "in": "query", "schema": { "type": "boolean" }, "description": "Add each synced collection's digest (scans every item)." },
            { "name": "items", "in": "query", "schema": { "type": "boolean" }, "description": "Add every item's digest and the tombstones' ids." },
        ],
        "responses": {
            "200": { "description": "The status.", "content": { "application/json": { "schema": { "type": "object" } } } },
            "default": error_default("An error (401, 403 not admin, 404 edge sync off)."),
        },
    }));
    paths.entry(super::edge::NODES_PATH.to_string()).or_default().insert("delete".into(), json!({
        "operationId": "Edge_ForgetNode",
        "summary": "On the hub: forget an edge (a lost or retired device) — no longer sourced, no longer holding back tombstone collection. Revoke its NATS credentials first. Admin.",
        "tags": ["edge"],
        "parameters": [{ "name": "node", "in": "path", "required": true, "schema": { "type": "string", "minLength": 1 } }],
        "responses": {
            "200": { "description": "`{node, was_registered}`.", "content": { "application/json": { "schema": { "type": "object" } } } },
            "default": error_default("An error (400 not the hub, 401, 403, 404 edge sync off, 503 NATS unreachable)."),
        },
    }));
    let mut components: Map<String, Value> = schemas.into_iter().collect();
    components.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "AgentDB REST API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("REST/JSON over AgentDB's gRPC API (agentdb.v1): each operation calls one gRPC method \
                with the same authentication, authorization, limits and errors. Generated from the server's route table \
                and protobuf descriptors; served at {OPENAPI_PATH}. JSON-carrying string fields (payload_json, ...) are \
                JSON values named without the suffix (payload)."),
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }, {}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (adb_...) or an OIDC token." } },
        },
    })
}
