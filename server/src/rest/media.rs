//! `GET /v1/collections/{collection}/media/{sha256}`: the original bytes of an ingested
//! file, kept by ingestion (`ingest.keep_media`) under its SHA-256, for clients that
//! show what a hit came from (thumbnails, a recording played from the matched time).
//! Not a gRPC method: a plain HTTP download with the same authentication and request
//! rate as the rest of `/v1`, read permission on the collection, and the caller's row
//! policy: a file is served only while an item the caller may read names it (payload
//! `content_sha256`), so a deleted file's bytes, or one outside the policy, are 404.

use super::gateway::{error, http_status};
use crate::security::Security;
use agentdb_engine::{Database, Filter};
use agentdb_orchestrator::security::Action;
use axum::extract::{Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub const PATH: &str = "/v1/collections/{collection}/media/{sha256}";

fn refused(st: tonic::Status) -> Response {
    let (http, name) = http_status(st.code());
    error(http, name, st.message())
}

async fn get_media(
    db: Arc<Database>,
    cluster: Option<Arc<agentdb_cluster::Cluster>>,
    security: Arc<Security>,
    collection: String,
    sha: String,
    req: Request,
) -> Response {
    let principal = match security.http_caller(req.headers(), "GetMedia").await {
        Ok((_, p)) => p,
        Err(refusal) => {
            return refusal.respond(|status, message| {
                let name = if status == StatusCode::UNAUTHORIZED { "UNAUTHENTICATED" } else { "RESOURCE_EXHAUSTED" };
                error(status, name, message)
            })
        }
    };
    if let Err(st) = security.authorize(principal.as_ref(), Action::Read, &collection, "GetMedia") {
        return refused(st);
    }
    if !agentdb_engine::is_sha256(&sha) {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            format!("'{sha}' is not a SHA-256 (64 lowercase hex digits)"),
        );
    }
    let names = Filter::Eq { path: vec!["content_sha256".into()], value: serde_json::Value::from(sha.clone()) };
    let filter = match crate::security::row_policy(principal.as_ref()) {
        Ok(Some(row)) => Filter::And(vec![row, names]),
        Ok(None) => names,
        Err(e) => return refused(crate::status::to_status(e)),
    };
    // A sharded collection: the item through the cluster, the bytes from its object store.
    if let Some(c) = cluster.filter(|c| c.collection(&collection).is_some()) {
        let found = async {
            let (items, _) = c.scroll(&collection, Some(filter), "", 1, false, &Default::default()).await?;
            let Some(item) = items.first() else { return Ok(None) };
            let media_type = item.payload["media_type"].as_str().unwrap_or("application/octet-stream").to_string();
            Ok::<_, agentdb_cluster::Error>(c.media(&collection, &sha).await?.map(|b| (b, media_type)))
        };
        return match found.await {
            Ok(f) => respond(f, &collection, &sha),
            Err(e) => refused(crate::status::to_status(e.into())),
        };
    }
    let (c2, s2) = (collection.clone(), sha.clone());
    let found = tokio::task::spawn_blocking(move || -> Result<Option<(Vec<u8>, String)>, agentdb_engine::Error> {
        let c = db.collection(&c2)?;
        let (items, _) = c.scroll(Some(&filter), "", 1, false)?;
        let Some(item) = items.first() else { return Ok(None) };
        let media_type = item.payload["media_type"].as_str().unwrap_or("application/octet-stream").to_string();
        Ok(c.media(&s2)?.map(|b| (b, media_type)))
    })
    .await;
    match found {
        Ok(Ok(f)) => respond(f, &collection, &sha),
        Ok(Err(e)) => refused(crate::status::to_status(e.into())),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", format!("reading the file failed: {e}")),
    }
}

/// The file with its headers, or 404.
fn respond(found: Option<(Vec<u8>, String)>, collection: &str, sha: &str) -> Response {
    match found {
        Some((bytes, media_type)) => {
            let ct = HeaderValue::from_str(&media_type)
                .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
            let mut r = (StatusCode::OK, bytes).into_response();
            let h = r.headers_mut();
            h.insert(header::CONTENT_TYPE, ct);
            // Content-addressed: the bytes behind a hash never change.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=31536000, immutable"));
            // Never run as a page of this origin, whatever the file holds.
            h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("sandbox; default-src 'none'"));
            h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("inline"));
            r
        }
        None => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "no kept file {sha} in collection '{collection}' (not ingested, deleted, or ingest.keep_media was off)"
            ),
        ),
    }
}

pub fn router(
    db: Arc<Database>,
    cluster: Option<Arc<agentdb_cluster::Cluster>>,
    security: Arc<Security>,
) -> axum::Router {
    axum::Router::new().route(
        PATH,
        axum::routing::get(move |Path((collection, sha)): Path<(String, String)>, req: Request| {
            let (db, cluster, security) = (db.clone(), cluster.clone(), security.clone());
            async move { get_media(db, cluster, security, collection, sha, req).await }
        }),
    )
}
