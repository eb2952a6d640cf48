//! Edge sync over HTTP (docs/EDGE.md), for operators: `GET /v1/edge/status` (this node's
//! role, whether the hub is reachable, its clock and what it has seen of every origin,
//! counters, the sync streams (stored, still to apply, each source's lag), and per
//! synced collection the items and tombstones; `?digest=true` adds a
//! digest of the collection and `?items=true` every item's, so replicas can be compared), and on the hub
//! `DELETE /v1/edge/nodes/{node}` to forget a lost or retired edge. Admin permission; the
//! same authentication and request rate as the rest of `/v1`.

use super::gateway::{error, http_status};
use crate::security::Security;
use agentdb_orchestrator::security::Action;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

async fn admin(security: &Security, headers: &HeaderMap, method: &str) -> Result<(), Response> {
    let principal = match security.http_caller(headers, method).await {
        Ok((_, p)) => p,
        Err(refusal) => {
            return Err(refusal.respond(|status, message| {
                let name = if status == StatusCode::UNAUTHORIZED { "UNAUTHENTICATED" } else { "RESOURCE_EXHAUSTED" };
                error(status, name, message)
            }))
        }
    };
    security.authorize(principal.as_ref(), Action::Admin, "", method).map_err(|st| {
        let (http, name) = http_status(st.code());
        error(http, name, st.message())
    })
}

pub const STATUS_PATH: &str = "/v1/edge/status";
pub const NODES_PATH: &str = "/v1/edge/nodes/{node}";

fn off() -> Response {
    error(StatusCode::NOT_FOUND, "NOT_FOUND", "edge sync is off on this node (docs/EDGE.md: [edge] role)")
}

pub fn router(edge: Option<Arc<agentdb_edge::Edge>>, security: Arc<Security>) -> axum::Router {
    let (e2, s2) = (edge.clone(), security.clone());
    axum::Router::new()
        .route(
            STATUS_PATH,
            axum::routing::get(
                move |Query(q): Query<std::collections::HashMap<String, String>>, headers: HeaderMap| {
                    let (edge, security) = (edge.clone(), security.clone());
                    async move {
                        if let Err(r) = admin(&security, &headers, "EdgeStatus").await {
                            return r;
                        }
                        let Some(edge) = edge else { return off() };
                        let on = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
                        let (digest, items) = (on("digest"), on("items"));
                        let streams = edge.streams_status().await;
                        match tokio::task::spawn_blocking(move || edge.status(digest, items)).await {
                            Ok(mut v) => {
                                v["streams"] = streams;
                                axum::Json(v).into_response()
                            }
                            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", e.to_string()),
                        }
                    }
                },
            ),
        )
        .route(
            NODES_PATH,
            axum::routing::delete(move |Path(node): Path<String>, headers: HeaderMap| {
                let (edge, security) = (e2.clone(), s2.clone());
                async move {
                    if let Err(r) = admin(&security, &headers, "EdgeForget").await {
                        return r;
                    }
                    let Some(edge) = edge else { return off() };
                    if edge.config().role != agentdb_edge::Role::Hub {
                        return error(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", "forget edges on the hub");
                    }
                    match edge.forget_node(&node).await {
                        Ok(known) => {
                            axum::Json(serde_json::json!({"node": node, "was_registered": known})).into_response()
                        }
                        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", e.to_string()),
                    }
                }
            }),
        )
}
