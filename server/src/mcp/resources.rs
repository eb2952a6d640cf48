//! MCP resources: each collection the caller may read, as `agentdb://collections/NAME`,
//! whose contents are its description (spaces, encoders, keyword index, counts) as JSON.

use super::{code, Mcp, RpcError};
use agentdb_orchestrator::security::{Action, Principal};
use serde_json::{json, Map, Value};

pub const COLLECTION_PREFIX: &str = "agentdb://collections/";
/// Resources per `resources/list` page.
pub const PAGE: usize = 100;

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::new(code::INTERNAL_ERROR, e.to_string())
}

fn denied(e: crate::status::ApiError) -> RpcError {
    RpcError::new(code::INVALID_PARAMS, super::tools::status_message(crate::status::to_status(e)))
}

/// resources/list, paged by an opaque cursor (the offset).
pub async fn list(st: &Mcp, p: Option<&Principal>, params: &Map<String, Value>) -> Result<Value, RpcError> {
    let start = match params.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(Value::String(c)) => {
            c.parse::<usize>().map_err(|_| RpcError::new(code::INVALID_PARAMS, format!("invalid cursor {c:?}")))?
        }
        Some(_) => return Err(RpcError::new(code::INVALID_PARAMS, "cursor must be a string")),
    };
    let (db, security, p2) = (st.svc.db.clone(), st.svc.security.clone(), p.cloned());
    let all = tokio::task::spawn_blocking(move || security.visible_collections(&db, p2.as_ref()))
        .await
        .map_err(internal)?
        .map_err(denied)?;
    let page: Vec<Value> = all
        .iter()
        .skip(start)
        .take(PAGE)
        .map(|c| {
            let spaces: Vec<&str> = c.spaces.iter().map(|s| s.spec.name.as_str()).collect();
            json!({
                "uri": format!("{COLLECTION_PREFIX}{}", c.name),
                "name": c.name,
                "title": format!("Collection {}", c.name),
                "description": format!("{} item(s); spaces: {}; keyword index: {}",
                                       c.count, spaces.join(", "), if c.keyword.is_some() { "yes" } else { "no" }),
                "mimeType": "application/json",
            })
        })
        .collect();
    let mut out = json!({ "resources": page });
    if start + PAGE < all.len() {
        out["nextCursor"] = json!((start + PAGE).to_string());
    }
    Ok(out)
}

/// resources/templates/list.
pub fn templates() -> Value {
    json!({ "resourceTemplates": [{
        "uriTemplate": format!("{COLLECTION_PREFIX}{{name}}"),
        "name": "collection",
        "title": "A collection",
        "description": "A collection's description: vector spaces and their encoders, keyword index, item counts, disk use.",
        "mimeType": "application/json",
    }]})
}

/// resources/read.
pub async fn read(st: &Mcp, p: Option<&Principal>, params: &Map<String, Value>) -> Result<Value, RpcError> {
    let Some(uri) = params.get("uri").and_then(Value::as_str) else {
        return Err(RpcError::new(code::INVALID_PARAMS, "resources/read needs params.uri"));
    };
    let not_found = || {
        let mut e = RpcError::new(code::RESOURCE_NOT_FOUND, format!("resource not found: {uri}"));
        e.data = Some(json!({ "uri": uri }));
        e
    };
    let Some(name) = uri.strip_prefix(COLLECTION_PREFIX).filter(|n| !n.is_empty() && !n.contains('/')) else {
        return Err(not_found());
    };
    // A collection the caller may not read is not found (its existence is not confirmed).
    if agentdb_orchestrator::is_internal(name)
        || st.svc.security.authorize(p, Action::Read, name, "MCP/resources/read").is_err()
    {
        return Err(not_found());
    }
    let (db, name2, p2) = (st.svc.db.clone(), name.to_string(), p.cloned());
    let info = tokio::task::spawn_blocking(move || -> Result<Option<agentdb_engine::CollectionInfo>, String> {
        let Ok(c) = db.collection(&name2) else { return Ok(None) };
        let mut info = c.info().map_err(|e| e.to_string())?;
        let policy =
            crate::security::row_policy(p2.as_ref()).map_err(|e| crate::status::to_status(e).message().to_string())?;
        crate::security::scope_info(policy.as_ref(), &c, &mut info);
        Ok(Some(info))
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    let Some(info) = info else { return Err(not_found()) };
    let text = serde_json::to_string_pretty(&info).map_err(internal)?;
    Ok(json!({ "contents": [{ "uri": uri, "mimeType": "application/json", "text": text }] }))
}
