//! REST/JSON under `/v1/` on the HTTP listener, and its OpenAPI 3.1 document at
//! `/v1/openapi.json`.
//!
//! A gateway, not a second API: each route names one `agentdb.v1` gRPC method; the JSON
//! body, path and query parameters become its request message (ProtoJSON through the
//! descriptor set compiled into the binary), and the method is called in-process
//! through the same `tonic` routes and the same `EdgeLayer` the gRPC listener serves
//! (`serve.rs`): one place for authentication, the request rate, authorization,
//! validation, limits, metrics and logs. A gRPC status comes back as its HTTP status
//! and a JSON error naming the problem (`gateway.rs`).
//!
//! Two conveniences over plain ProtoJSON: string fields that carry JSON (`payload_json`,
//! `inputs_json`, `output_json`, ...) are JSON values named without the suffix
//! (`payload`), both ways; and search accepts a multipart upload (an image, recording or
//! clip plus the request's fields), ingest a multipart upload of files.
//!
//! The route table ([`ROUTES`]) is the one source of both the router and the OpenAPI
//! document (`openapi.rs`), whose schemas come from the same descriptors. See docs/REST.md.

pub(crate) mod edge;
mod gateway;
pub(crate) mod media;
mod openapi;
#[cfg(test)]
mod tests;

pub use edge::router as edge_router;
pub use gateway::Gateway;
pub use media::router as media_router;

use axum::http::Method;
use std::sync::Arc;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// How a route's request is carried.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Body {
    /// No body: path and query parameters only.
    None,
    /// A JSON object: the request's fields (path parameters filled from the path).
    Json,
    /// JSON, or multipart/form-data with media parts (search).
    JsonOrMedia,
    /// multipart/form-data files, each one message of a client stream (ingest).
    Files,
    /// No body (query parameters); a server-streaming reply sent as Server-Sent Events
    /// (`text/event-stream`, one `data: <JSON>` per message) for as long as the client
    /// stays.
    Stream,
}

/// One REST route: the gRPC method it calls and how its request is built.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    /// axum path syntax: `/v1/collections/{collection}`.
    pub path: &'static str,
    /// `Service/Method` in package `agentdb.v1`.
    pub rpc: &'static str,
    /// (URL parameter, request field) for each path parameter.
    pub params: &'static [(&'static str, &'static str)],
    pub body: Body,
    pub tag: &'static str,
    pub summary: &'static str,
}

const fn route(
    method: Method,
    path: &'static str,
    rpc: &'static str,
    params: &'static [(&'static str, &'static str)],
    body: Body,
    tag: &'static str,
    summary: &'static str,
) -> Route {
    Route { method, path, rpc, params, body, tag, summary }
}

const C: &[(&str, &str)] = &[("collection", "collection")];
const C_NAME: &[(&str, &str)] = &[("collection", "name")];
const NAME: &[(&str, &str)] = &[("name", "name")];
const QUEUE: &[(&str, &str)] = &[("queue", "queue")];
const ID: &[(&str, &str)] = &[("id", "id")];

/// Every REST route. GET and DELETE routes read the request's scalar fields from the
/// query string.
pub static ROUTES: &[Route] = &[
    // Collections
    route(
        Method::GET,
        "/v1/collections",
        "Collections/List",
        &[],
        Body::None,
        "collections",
        "List the collections you may read",
    ),
    route(Method::POST, "/v1/collections", "Collections/Create", &[], Body::Json, "collections", "Create a collection"),
    route(
        Method::GET,
        "/v1/collections/{collection}",
        "Collections/Describe",
        C_NAME,
        Body::None,
        "collections",
        "Describe a collection",
    ),
    route(
        Method::DELETE,
        "/v1/collections/{collection}",
        "Collections/Drop",
        C_NAME,
        Body::None,
        "collections",
        "Drop a collection and its data",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/flush",
        "Collections/Flush",
        C,
        Body::Json,
        "collections",
        "Flush the write buffer into an indexed segment",
    ),
    // Items and search
    route(
        Method::POST,
        "/v1/collections/{collection}/items",
        "Items/Upsert",
        C,
        Body::Json,
        "items",
        "Insert or replace items",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/items/get",
        "Items/Get",
        C,
        Body::Json,
        "items",
        "Fetch items by id",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/items/delete",
        "Items/Delete",
        C,
        Body::Json,
        "items",
        "Delete items by id or by filter",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/count",
        "Items/Count",
        C,
        Body::Json,
        "items",
        "Count items, optionally matching a filter",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/search",
        "Items/Search",
        C,
        Body::JsonOrMedia,
        "search",
        "Search by vector, text, image, audio or video (JSON, or multipart with the media as a file)",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/search/batch",
        "Items/SearchBatch",
        C,
        Body::Json,
        "search",
        "Search by many vectors at once",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/items/scroll",
        "Items/Scroll",
        C,
        Body::Json,
        "items",
        "Page through items in id order (a filter, after, limit; with_payload, with_vectors)",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/embed",
        "Items/Embed",
        C,
        Body::Json,
        "search",
        "Embed texts with the encoder bound to one of the collection's spaces",
    ),
    route(
        Method::POST,
        "/v1/collections/{collection}/ingest",
        "Items/Ingest",
        C,
        Body::Files,
        "ingest",
        "Ingest uploaded files (type detected from content); one result per file",
    ),
    // Server
    route(Method::GET, "/v1/models", "Models/List", &[], Body::None, "server", "Installed models"),
    route(
        Method::GET,
        "/v1/status",
        "Server/Status",
        &[],
        Body::None,
        "server",
        "Server health, memory, disk, collections, rates",
    ),
    route(Method::GET, "/v1/alerts", "Server/Alerts", &[], Body::None, "server", "Alerts from the anomaly detector"),
    // API keys
    route(
        Method::GET,
        "/v1/whoami",
        "Security/WhoAmI",
        &[],
        Body::None,
        "keys",
        "Who the caller is and what it may do (collections as query parameters)",
    ),
    route(Method::GET, "/v1/keys", "Security/ListKeys", &[], Body::None, "keys", "List API keys (admin)"),
    route(
        Method::POST,
        "/v1/keys",
        "Security/CreateKey",
        &[],
        Body::Json,
        "keys",
        "Create an API key (admin); the secret is returned once",
    ),
    route(Method::DELETE, "/v1/keys/{id}", "Security/RevokeKey", ID, Body::None, "keys", "Revoke an API key (admin)"),
    // Agents
    route(Method::GET, "/v1/agents", "Agents/List", &[], Body::None, "agents", "List agents"),
    route(Method::POST, "/v1/agents", "Agents/Register", &[], Body::Json, "agents", "Register (or update) an agent"),
    route(
        Method::GET,
        "/v1/agents/{name}",
        "Agents/Get",
        NAME,
        Body::None,
        "agents",
        "An agent's card, state and health",
    ),
    route(
        Method::POST,
        "/v1/agents/{name}/state",
        "Agents/SetState",
        NAME,
        Body::Json,
        "agents",
        "Suspend, resume or retire an agent",
    ),
    route(
        Method::POST,
        "/v1/agents/{name}/heartbeat",
        "Agents/Heartbeat",
        NAME,
        Body::None,
        "agents",
        "An agent's heartbeat",
    ),
    // Events
    route(Method::POST, "/v1/events", "Events/Publish", &[], Body::Json, "events", "Publish events"),
    route(
        Method::GET,
        "/v1/events/stream",
        "Events/Subscribe",
        &[],
        Body::Stream,
        "events",
        "Follow events as Server-Sent Events (topics and from_offset as query parameters)",
    ),
    route(
        Method::GET,
        "/v1/events/topics",
        "Events/Topics",
        &[],
        Body::None,
        "events",
        "Topics, their retained events and offsets",
    ),
    // Queues
    route(Method::POST, "/v1/queues", "Queues/Create", &[], Body::Json, "queues", "Create a durable queue"),
    route(
        Method::GET,
        "/v1/queues",
        "Queues/Stats",
        &[],
        Body::None,
        "queues",
        "Every queue's depth, in flight and dead letters",
    ),
    route(
        Method::GET,
        "/v1/queues/{queue}",
        "Queues/Stats",
        &[("queue", "name")],
        Body::None,
        "queues",
        "A queue's depth, in flight and dead letters",
    ),
    route(Method::POST, "/v1/queues/{queue}/messages", "Queues/Send", QUEUE, Body::Json, "queues", "Send a message"),
    route(
        Method::POST,
        "/v1/queues/{queue}/receive",
        "Queues/Receive",
        QUEUE,
        Body::Json,
        "queues",
        "Receive messages (visibility timeout, long poll)",
    ),
    route(
        Method::POST,
        "/v1/queues/{queue}/ack",
        "Queues/Ack",
        QUEUE,
        Body::Json,
        "queues",
        "Acknowledge a received message",
    ),
    // Workflows
    route(Method::GET, "/v1/workflows", "Workflows/List", &[], Body::None, "workflows", "List workflow definitions"),
    route(
        Method::POST,
        "/v1/workflows",
        "Workflows/Apply",
        &[],
        Body::Json,
        "workflows",
        "Apply a workflow definition (YAML)",
    ),
    route(Method::GET, "/v1/workflows/{name}", "Workflows/Get", NAME, Body::None, "workflows", "A workflow definition"),
    route(
        Method::DELETE,
        "/v1/workflows/{name}",
        "Workflows/Delete",
        NAME,
        Body::None,
        "workflows",
        "Delete a workflow definition",
    ),
    route(Method::POST, "/v1/workflows/{name}/runs", "Workflows/Run", NAME, Body::Json, "workflows", "Start a run"),
    route(Method::GET, "/v1/workflow-runs", "Workflows/ListRuns", &[], Body::None, "workflows", "List runs"),
    route(
        Method::GET,
        "/v1/workflow-runs/{id}",
        "Workflows/GetRun",
        ID,
        Body::None,
        "workflows",
        "A run and each step's state",
    ),
    route(
        Method::POST,
        "/v1/workflow-runs/{id}/cancel",
        "Workflows/Cancel",
        ID,
        Body::None,
        "workflows",
        "Cancel a run",
    ),
];

/// The REST routes and the OpenAPI document.
pub fn router(gw: Gateway) -> axum::Router {
    let gw = Arc::new(gw);
    let mut by_path: std::collections::BTreeMap<&str, axum::routing::MethodRouter> = Default::default();
    for r in ROUTES {
        let g = gw.clone();
        let handler = move |req: axum::extract::Request| async move { g.handle(r, req).await };
        let filter = axum::routing::MethodFilter::try_from(r.method.clone()).expect("a routable method");
        let mr = by_path.remove(r.path).unwrap_or_default();
        by_path.insert(r.path, mr.on(filter, handler));
    }
    let doc = Arc::new(openapi::document());
    let mut router = axum::Router::new().route(
        OPENAPI_PATH,
        axum::routing::get(move || {
            let doc = doc.clone();
            async move { axum::Json((*doc).clone()) }
        }),
    );
    for (path, mr) in by_path {
        router = router.route(path, mr);
    }
    router
}
