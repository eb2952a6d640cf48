//! Authentication at the gRPC edge (API keys and OIDC/JWT bearer tokens) and
//! authorization in the handlers (roles, collection scopes, the MFA policy), with every
//! authentication failure, every decision on a mutation and every admin action written
//! to the hash-chained audit log. Policy itself lives in `agentdb_orchestrator::security`.

use agentdb_orchestrator::security::{
    queue_resource, Action, ApiKey, AuditLog, KeyStore, MfaPolicy, OidcVerifier, Principal, RoleTable, QUEUE_PREFIX,
};
use agentdb_proto::v1;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct Security {
    /// API keys; `None` when `security.auth = "none"`.
    pub keys: Option<Arc<KeyStore>>,
    /// OIDC bearer tokens; `None` unless `security.oidc.enabled`.
    pub oidc: Option<Arc<OidcVerifier>>,
    /// Actions that need a multi-factor login.
    pub mfa: MfaPolicy,
    pub audit: Option<Arc<AuditLog>>,
    pub rate: Option<crate::quota::RateLimiter>,
    /// `security.tls.client_auth = "required"`: every gRPC connection carries a verified
    /// client certificate, whose identity (see `crate::tls`) is the principal.
    pub mtls_required: bool,
    /// Payload fields hidden from principals below a clearance role.
    pub masking: agentdb_orchestrator::security::masking::Masking,
    /// Built-in and custom (`[security.roles]`) roles, for role names in requests.
    pub roles: Arc<RoleTable>,
    /// Per-principal storage quotas; `None` when no quota is configured.
    pub storage: Option<crate::quota::StorageQuotas>,
    /// Cluster mode: API keys are shared through the cluster's KV (`share_keys`).
    pub cluster: std::sync::OnceLock<Arc<agentdb_cluster::Cluster>>,
}

/// The shared record of key `id` (cluster mode).
fn shared_key_name(id: &str) -> String {
    format!("apikey.{id}")
}

/// What an upsert charged a principal, to give back if the write fails.
pub struct StorageCharge {
    who: String,
    limit: crate::quota::Limit,
    bytes: i64,
    items: i64,
}

/// A key's scope entry: a collection name, or `queue:<name>` for a queue.
pub fn validate_scope(entry: &str) -> Result<(), String> {
    match entry.strip_prefix(QUEUE_PREFIX) {
        Some(q) => agentdb_orchestrator::queue::validate_queue_name(q).map_err(|e| e.to_string()),
        None => agentdb_engine::types::validate_name("collection", entry).map_err(|e| e.to_string()),
    }
}

/// What a principal with a row policy may know of a collection: its items counted under
/// the policy, and none of the figures that sum other tenants' items (bytes, buffered and
/// deleted rows).
pub fn scope_info(
    row: Option<&agentdb_engine::Filter>,
    c: &agentdb_engine::Collection,
    info: &mut agentdb_engine::CollectionInfo,
) {
    if let Some(row) = row {
        info.count = c.count(Some(row)).unwrap_or(0);
        info.unindexed = 0;
        info.deleted_rows = 0;
        info.disk_bytes = 0;
    }
}

/// The principal's row-level policy, if any.
pub fn row_policy(p: Option<&Principal>) -> Result<Option<agentdb_engine::Filter>, crate::status::ApiError> {
    match p.and_then(|p| p.row_filter.as_deref()) {
        Some(f) => Ok(Some(agentdb_engine::filter::parse(f).map_err(agentdb_engine::Error::from)?)),
        None => Ok(None),
    }
}

/// Why an HTTP JSON-RPC request was refused before it was read ([`Security::http_caller`]).
#[derive(Debug)]
pub enum HttpRefusal {
    /// HTTP 401 with `WWW-Authenticate: Bearer`; the reason.
    Unauthenticated(String),
    /// HTTP 429 with `Retry-After` (seconds).
    RateLimited { message: String, retry_after_s: u64 },
}

impl HttpRefusal {
    /// The refusal as an HTTP response: `body` makes it from the status and the message
    /// in the edge's own format (JSON-RPC, REST); this adds `WWW-Authenticate: Bearer`
    /// or `Retry-After`.
    pub fn respond(
        self,
        body: impl FnOnce(axum::http::StatusCode, String) -> axum::response::Response,
    ) -> axum::response::Response {
        use axum::http::{header, HeaderValue, StatusCode};
        match self {
            HttpRefusal::Unauthenticated(why) => {
                let mut r = body(StatusCode::UNAUTHORIZED, why);
                r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                r
            }
            HttpRefusal::RateLimited { message, retry_after_s } => {
                let mut r = body(StatusCode::TOO_MANY_REQUESTS, message);
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
                r
            }
        }
    }
}

impl Security {
    /// The request's filter ANDed with the principal's row policy, so a principal never
    /// reaches rows outside its policy whatever filter it sends; a filter on a payload
    /// field masked for the principal is refused (PERMISSION_DENIED).
    pub fn scoped_filter(&self, p: Option<&Principal>, expr: &str) -> Result<Option<agentdb_engine::Filter>, Status> {
        let user = agentdb_proto::convert::filter_from_wire(expr).map_err(|e| crate::status::to_status(e.into()))?;
        if let Some(u) = &user {
            self.masking.check_filter(p, u).map_err(Status::permission_denied)?;
        }
        Ok(match (user, row_policy(p).map_err(crate::status::to_status)?) {
            (Some(user), Some(row)) => Some(agentdb_engine::Filter::And(vec![row, user])),
            (user, row) => user.or(row),
        })
    }

    /// Mask the payload fields `p` may not see (see `security.masked_fields`).
    pub fn mask(&self, p: Option<&Principal>, payload: &mut serde_json::Value) {
        self.masking.mask(p, payload);
    }

    /// Top-level payload keys hidden from `p` (keyword search leaves their fields out).
    pub fn hidden_keys(&self, p: Option<&Principal>) -> Vec<String> {
        self.masking.hidden_keys(p)
    }

    /// Whether requests must carry credentials (off: the loopback default).
    pub fn auth_enabled(&self) -> bool {
        self.keys.is_some() || self.oidc.is_some() || self.mtls_required
    }

    /// Turn the request's credentials into a principal: `adb_...` bearer values are API
    /// keys, anything else is an OIDC token when OIDC is on. The error is the reason, for
    /// the UNAUTHENTICATED status and the audit log (never the credential itself).
    pub async fn authenticate(&self, headers: &tonic::codegen::http::HeaderMap) -> Result<Principal, String> {
        // Refused before any verification: nothing is parsed, hashed or looked up for it.
        for name in ["authorization", "x-api-key"] {
            for v in headers.get_all(name) {
                if v.len() > MAX_CREDENTIAL_BYTES {
                    return Err(format!(
                        "credentials too large: the {name} header is {} bytes, the limit is {MAX_CREDENTIAL_BYTES}",
                        v.len()
                    ));
                }
            }
        }
        let Some(presented) = presented_key(headers) else {
            let what = match (&self.keys, &self.oidc) {
                (Some(_), Some(_)) => "<api key or OIDC token>",
                (None, Some(_)) => "<OIDC token>",
                _ => "<api key>",
            };
            return Err(format!("missing credentials: send `authorization: Bearer {what}`"));
        };
        // Both verifications are CPU work (Argon2, RSA/ECDSA) and a JWKS refresh may
        // read a file or the network: keep them off the async workers.
        let verdict = match (&self.keys, &self.oidc) {
            (Some(keys), oidc) if presented.starts_with("adb_") || oidc.is_none() => {
                return self.verify_key(keys.clone(), presented).await;
            }
            (_, Some(oidc)) => {
                let oidc = oidc.clone();
                tokio::task::spawn_blocking(move || oidc.verify(&presented).map_err(|e| format!("OIDC: {e}"))).await
            }
            _ => return Err("authentication is off".into()),
        };
        verdict.map_err(|e| e.to_string())?
    }

    /// Verify an API key. In a cluster, a key created on another node an instant ago may
    /// not have reached this node's copy yet: an id unknown here is asked of JetStream
    /// once before the key is refused.
    async fn verify_key(&self, keys: Arc<KeyStore>, presented: String) -> Result<Principal, String> {
        let (k, p) = (keys.clone(), presented.clone());
        let first = tokio::task::spawn_blocking(move || k.verify(&p)).await.map_err(|e| e.to_string())?;
        let (Err(e), Some(cluster)) = (&first, self.cluster.get()) else {
            return first.map_err(|e| e.to_string());
        };
        let Some(id) = KeyStore::presented_id(&presented).filter(|id| !keys.contains(id)) else {
            return Err(e.to_string());
        };
        match cluster.shared_get(&shared_key_name(id)).await {
            Ok(Some(body)) => {
                let Ok(record) = serde_json::from_slice::<ApiKey>(&body) else { return Err(e.to_string()) };
                let k = keys.clone();
                tokio::task::spawn_blocking(move || {
                    k.merge(record).map_err(|e| e.to_string())?;
                    k.verify(&presented).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| e.to_string())?
            }
            Ok(None) => Err(e.to_string()),
            Err(why) => {
                tracing::warn!(error = %why, "cluster: cannot look up an API key unknown to this node");
                Err(e.to_string())
            }
        }
    }

    /// Cluster mode: every node's API keys are shared through the cluster's KV bucket.
    /// This node's keys are published (a revocation wins over a live record), every
    /// record of the others is merged in now and as it changes, and key creation and
    /// revocation are acknowledged only once the cluster has them.
    pub async fn share_keys(&self, cluster: Arc<agentdb_cluster::Cluster>) -> anyhow::Result<()> {
        let _ = self.cluster.set(cluster.clone());
        let Some(keys) = self.keys.clone() else { return Ok(()) };
        for local in keys.list() {
            let name = shared_key_name(&local.id);
            let remote = cluster.shared_get(&name).await?;
            let remote: Option<ApiKey> = remote.and_then(|b| serde_json::from_slice(&b).ok());
            match remote {
                Some(r) if r.revoked || !local.revoked => {
                    let k = keys.clone();
                    tokio::task::spawn_blocking(move || k.merge(r)).await?.map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                _ => cluster.shared_put(&name, serde_json::to_vec(&local)?).await?,
            }
        }
        let k = keys.clone();
        cluster.watch_shared(
            "apikey",
            Arc::new(move |id: String, body: Option<Vec<u8>>| {
                let Some(body) = body else { return };
                let k = k.clone();
                tokio::task::spawn_blocking(move || match serde_json::from_slice::<ApiKey>(&body) {
                    Ok(r) if r.id == id => match k.merge(r) {
                        Ok(true) => tracing::info!(key_id = %id, "cluster: API key record taken over from the cluster"),
                        Ok(false) => {}
                        Err(e) => tracing::error!(key_id = %id, error = %e, "cluster: cannot store a shared API key"),
                    },
                    _ => tracing::warn!(key_id = %id, "cluster: an unreadable shared API key record was ignored"),
                });
            }),
        );
        tracing::info!(keys = keys.list().len(), "cluster: API keys shared with the cluster");
        Ok(())
    }

    /// Cluster mode: publish key `key` (created or revoked here) to every node.
    async fn publish_key(&self, key: &ApiKey) -> Result<(), Status> {
        let Some(cluster) = self.cluster.get() else { return Ok(()) };
        let body = serde_json::to_vec(key).map_err(|e| Status::internal(e.to_string()))?;
        cluster.shared_put(&shared_key_name(&key.id), body).await.map_err(|e| Status::unavailable(e.to_string()))
    }

    /// Who sends an HTTP JSON-RPC request (A2A, MCP), checked as gRPC checks a call:
    /// the credentials (when authentication is on; failures audited under `surface`)
    /// and the per-principal request rate. Ok: the principal's id ("local" with
    /// authentication off) and the principal.
    pub async fn http_caller(
        &self,
        headers: &tonic::codegen::http::HeaderMap,
        surface: &str,
    ) -> Result<(String, Option<Principal>), HttpRefusal> {
        let mut who = "local".to_string();
        let mut principal = None;
        if self.auth_enabled() {
            match self.authenticate(headers).await {
                Ok(p) => {
                    who = p.id.clone();
                    principal = Some(p);
                }
                Err(why) => {
                    crate::telemetry::record_principal("anonymous");
                    self.audit("anonymous", surface, "", "fail", &why);
                    return Err(HttpRefusal::Unauthenticated(why));
                }
            }
        }
        if let Some(rate) = &self.rate {
            if let Err(wait_ms) = rate.check(&who) {
                return Err(HttpRefusal::RateLimited {
                    message: format!(
                        "rate limit of {} requests/s exceeded for {who}; retry after {wait_ms} ms",
                        rate.per_sec()
                    ),
                    retry_after_s: wait_ms.div_ceil(1000),
                });
            }
        }
        crate::telemetry::record_principal(&who);
        Ok((who, principal))
    }

    pub fn audit(&self, principal: &str, action: &str, target: &str, decision: &str, detail: &str) {
        if let Some(a) = &self.audit {
            if let Err(e) = a.append(principal, action, target, decision, detail) {
                tracing::error!(error = %e, "cannot write the audit log");
            }
        }
    }

    /// Check `action` on `collection` for the request's principal. Decisions on writes
    /// and admin actions are audited, refusals always.
    pub fn authorize(
        &self,
        p: Option<&Principal>,
        action: Action,
        collection: &str,
        method: &str,
    ) -> Result<(), Status> {
        let who = p.map_or("local".to_string(), |p| p.id.clone());
        let decision = match (self.auth_enabled(), p) {
            (false, _) => Ok(()),
            (true, None) => Err("no credentials".to_string()),
            (true, Some(p)) => p.authorize(action, collection).and_then(|()| self.mfa.check(p, action, method)),
        };
        match decision {
            Ok(()) => {
                // With authentication off there is no decision to record for ordinary
                // writes (and an extra fsync per write would halve their speed); admin
                // actions are recorded either way.
                if action == Action::Admin || (action == Action::Write && self.auth_enabled()) {
                    self.audit(&who, method, collection, "allow", action.as_str());
                }
                Ok(())
            }
            Err(why) => {
                self.audit(&who, method, collection, "deny", &why);
                Err(Status::permission_denied(why))
            }
        }
    }

    /// Whether writes by `p` are counted against a storage quota.
    pub fn storage_tracked(&self, p: Option<&Principal>) -> bool {
        self.storage.is_some() && p.is_some()
    }

    /// Charge `p` for upserting `items` into `c`: their size, less that of the items they
    /// replace. RESOURCE_EXHAUSTED when that crosses the principal's storage quota.
    pub fn charge_upsert(
        &self,
        p: Option<&Principal>,
        c: &agentdb_engine::Collection,
        items: &[agentdb_engine::Item],
    ) -> Result<Option<StorageCharge>, crate::status::ApiError> {
        if self.storage.is_none() || p.is_none() {
            return Ok(None);
        }
        let ids: Vec<String> = items.iter().map(|it| it.id.clone()).filter(|id| !id.is_empty()).collect();
        let old = if ids.is_empty() { Vec::new() } else { c.get(&ids, true)? };
        self.charge_items(p, &old, items).map_err(Into::into)
    }

    /// Charge `p` for writing `items` over `old` (the stored items with the same ids,
    /// vectors included); refused over the principal's quota.
    pub fn charge_items(
        &self,
        p: Option<&Principal>,
        old: &[agentdb_engine::StoredItem],
        items: &[agentdb_engine::Item],
    ) -> Result<Option<StorageCharge>, Status> {
        let (Some(q), Some(p)) = (&self.storage, p) else { return Ok(None) };
        let ids: Vec<String> = items.iter().map(|it| it.id.clone()).filter(|id| !id.is_empty()).collect();
        let new_bytes: u64 = items.iter().map(|it| crate::quota::item_bytes(&it.id, &it.vectors, &it.payload)).sum();
        let old_bytes: u64 = old.iter().map(|it| crate::quota::item_bytes(&it.id, &it.vectors, &it.payload)).sum();
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        let new_items = (items.len() - (ids.len() - distinct.len())) as i64;
        let ch = StorageCharge {
            who: p.id.clone(),
            limit: q.limit_for(&p.role),
            bytes: new_bytes as i64 - old_bytes as i64,
            items: new_items - old.len() as i64,
        };
        q.charge(&ch.who, ch.limit, ch.bytes, ch.items, true, true).map_err(|m| {
            if !m.starts_with("storage quota exceeded") {
                // Cluster mode: the usage record could not be read or written.
                return Status::unavailable(m);
            }
            self.audit(&ch.who, "Upsert", "", "deny", &m);
            Status::resource_exhausted(m)
        })?;
        Ok(Some(ch))
    }

    /// Give back a charge whose write failed.
    pub fn refund(&self, ch: Option<StorageCharge>) {
        if let (Some(q), Some(ch)) = (&self.storage, ch) {
            let _ = q.charge(&ch.who, ch.limit, -ch.bytes, -ch.items, false, true);
        }
    }

    /// Credit `p` with the size of items it deleted.
    pub fn credit_deleted(&self, p: Option<&Principal>, gone: &[agentdb_engine::StoredItem]) {
        if let (Some(q), Some(p)) = (&self.storage, p) {
            let bytes: u64 = gone.iter().map(|it| crate::quota::item_bytes(&it.id, &it.vectors, &it.payload)).sum();
            let _ = q.charge(&p.id, q.limit_for(&p.role), -(bytes as i64), -(gone.len() as i64), false, true);
        }
    }

    /// Before an ingest of `bytes` of content: refused (RESOURCE_EXHAUSTED) when the
    /// principal is at its item quota or the content would cross its byte quota.
    pub fn check_ingest(&self, p: Option<&Principal>, bytes: usize) -> Result<(), Status> {
        let (Some(q), Some(p)) = (&self.storage, p) else { return Ok(()) };
        q.charge(&p.id, q.limit_for(&p.role), bytes as i64, 1, true, false).map_err(Status::resource_exhausted)
    }

    /// After an ingest: charge the content's size and the items it wrote.
    pub fn charge_ingest(&self, p: Option<&Principal>, bytes: usize, items: u32) {
        if let (Some(q), Some(p)) = (&self.storage, p) {
            if items > 0 {
                let _ = q.charge(&p.id, q.limit_for(&p.role), bytes as i64, items as i64, false, true);
            }
        }
    }

    /// Queues are resources of their own, named `queue:<name>` in key scopes and role
    /// grants: built-in roles without a collection scope keep access to every queue; a key
    /// scoped to collections reaches only the queues its scope names (`--collection
    /// queue:jobs`); a custom role needs a grant matching `queue:<name>` (`queue:*`, `*`); a
    /// key with a row policy only queues its scope names explicitly (a queue's messages
    /// carry no payload a row policy could filter).
    /// (The rules live in `Principal::authorize`, which every check of a `queue:` resource
    /// goes through.)
    pub fn authorize_queue(
        &self,
        p: Option<&Principal>,
        action: Action,
        queue: &str,
        method: &str,
    ) -> Result<(), Status> {
        self.authorize(p, action, &queue_resource(queue), method)
    }

    /// Whether `p` may see queue `queue` in listings.
    pub fn queue_visible(&self, p: Option<&Principal>, queue: &str) -> bool {
        self.visible(p, &queue_resource(queue))
    }

    /// The collections `p` may see (never the internal ones), each described as `p` may
    /// know it ([`scope_info`]): Collections/List and Server/Status for a principal that
    /// does not see everything.
    pub fn visible_collections(
        &self,
        db: &agentdb_engine::Database,
        p: Option<&Principal>,
    ) -> Result<Vec<agentdb_engine::CollectionInfo>, crate::status::ApiError> {
        let row = row_policy(p)?;
        let mut out = Vec::new();
        for c in db.collections() {
            if agentdb_orchestrator::is_internal(c.name()) || !self.visible(p, c.name()) {
                continue;
            }
            if let Ok(mut info) = c.info() {
                scope_info(row.as_ref(), &c, &mut info);
                out.push(info);
            }
        }
        Ok(out)
    }

    /// Whether the principal may see `collection` in listings.
    pub fn visible(&self, p: Option<&Principal>, collection: &str) -> bool {
        !self.auth_enabled() || p.is_some_and(|p| p.authorize(Action::Read, collection).is_ok())
    }
}

fn key_info(k: ApiKey) -> v1::ApiKeyInfo {
    v1::ApiKeyInfo {
        id: k.id,
        name: k.name,
        role: k.role,
        collections: k.collections,
        created_unix: k.created_unix,
        revoked: k.revoked,
        row_filter: k.row_filter.unwrap_or_default(),
    }
}

#[derive(Clone)]
pub struct SecurityService(pub Arc<Security>);

impl SecurityService {
    fn admin<T>(&self, req: &Request<T>, method: &str) -> Result<Arc<KeyStore>, Status> {
        let keys = self.0.keys.clone().ok_or_else(|| {
            Status::failed_precondition("API keys are off (security.auth = \"none\"): there are no API keys to manage")
        })?;
        self.0.authorize(req.extensions().get::<Principal>(), Action::Admin, "", method)?;
        Ok(keys)
    }
}

fn sec_status(e: agentdb_orchestrator::security::Error) -> Status {
    use agentdb_orchestrator::security::Error as E;
    match e {
        E::Invalid(m) => Status::invalid_argument(m),
        E::Unauthenticated(m) => Status::unauthenticated(m),
        E::NotFound(m) => Status::not_found(m),
        E::Storage { .. } => Status::internal(e.to_string()),
    }
}

#[tonic::async_trait]
impl v1::security_server::Security for SecurityService {
    async fn create_key(&self, req: Request<v1::CreateKeyRequest>) -> Result<Response<v1::CreateKeyResponse>, Status> {
        let keys = self.admin(&req, "CreateKey")?;
        let r = req.into_inner();
        let role = self.0.roles.resolve(&r.role).map_err(sec_status)?;
        for c in &r.collections {
            validate_scope(c).map_err(Status::invalid_argument)?;
        }
        let row_filter = Some(r.row_filter).filter(|f| !f.trim().is_empty());
        let (key, secret) = tokio::task::spawn_blocking(move || keys.create(&r.name, &role, r.collections, row_filter))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(sec_status)?;
        // In a cluster the key exists once every node can have it; if the cluster cannot
        // take it, it is revoked here and the caller retries.
        if let Err(e) = self.0.publish_key(&key).await {
            if let Some(keys) = self.0.keys.clone() {
                let id = key.id.clone();
                let _ = tokio::task::spawn_blocking(move || keys.revoke(&id)).await;
            }
            return Err(Status::unavailable(format!("the key was not created: {}", e.message())));
        }
        self.0.audit("admin", "CreateKey", &format!("key:{}", key.id), "allow", &format!("role {}", key.role));
        Ok(Response::new(v1::CreateKeyResponse { key: Some(key_info(key)), secret }))
    }

    async fn list_keys(&self, req: Request<v1::ListKeysRequest>) -> Result<Response<v1::ListKeysResponse>, Status> {
        let keys = self.admin(&req, "ListKeys")?;
        Ok(Response::new(v1::ListKeysResponse { keys: keys.list().into_iter().map(key_info).collect() }))
    }

    async fn revoke_key(&self, req: Request<v1::RevokeKeyRequest>) -> Result<Response<v1::RevokeKeyResponse>, Status> {
        let keys = self.admin(&req, "RevokeKey")?;
        let id = req.into_inner().id;
        // In a cluster, a key created elsewhere an instant ago is fetched first.
        if let (Some(cluster), false) = (self.0.cluster.get(), keys.contains(&id)) {
            if let Ok(Some(body)) = cluster.shared_get(&shared_key_name(&id)).await {
                if let Ok(record) = serde_json::from_slice::<ApiKey>(&body) {
                    keys.merge(record).map_err(sec_status)?;
                }
            }
        }
        let key = keys.revoke(&id).map_err(sec_status)?;
        // Revoked here at once; acknowledged once every node can have it (a retry of a
        // failed call publishes it again).
        self.0.publish_key(&key).await.map_err(|e| {
            Status::unavailable(format!(
                "key {id} is revoked on this node but the cluster did not take the revocation ({}); retry",
                e.message()
            ))
        })?;
        self.0.audit("admin", "RevokeKey", &format!("key:{id}"), "allow", "revoked");
        Ok(Response::new(v1::RevokeKeyResponse { key: Some(key_info(key)) }))
    }

    async fn who_am_i(&self, req: Request<v1::WhoAmIRequest>) -> Result<Response<v1::WhoAmIResponse>, Status> {
        let p = req.extensions().get::<Principal>().cloned();
        let r = req.into_inner();
        if r.collections.len() > 10_000 {
            return Err(Status::invalid_argument(format!(
                "{} collections exceed the limit of 10000 per request",
                r.collections.len()
            )));
        }
        let auth = self.0.auth_enabled();
        // Without authentication every caller is the local operator and may do anything.
        let may = |action: Action, c: &str| match (&p, auth) {
            (_, false) => true,
            (Some(p), true) => p.authorize(action, c).is_ok(),
            (None, true) => false,
        };
        let permissions = r
            .collections
            .iter()
            .map(|c| v1::CollectionPermissions {
                collection: c.clone(),
                read: may(Action::Read, c),
                write: may(Action::Write, c),
                admin: may(Action::Admin, c),
            })
            .collect();
        let can_admin = match (&p, auth) {
            (_, false) => true,
            (Some(p), true) => p.sees_everything(),
            (None, true) => false,
        };
        Ok(Response::new(match p.filter(|_| auth) {
            Some(p) => v1::WhoAmIResponse {
                auth_enabled: true,
                id: p.id.clone(),
                name: p.name.clone(),
                role: p.role.as_str().to_string(),
                collections: p.collections.clone(),
                row_filter: p.row_filter.clone().unwrap_or_default(),
                can_admin,
                permissions,
            },
            // Authentication on and no credential (the edge lets only this call through
            // without one): not signed in, may do nothing.
            None if auth => v1::WhoAmIResponse { auth_enabled: true, permissions, ..Default::default() },
            None => v1::WhoAmIResponse {
                auth_enabled: false,
                id: "local".into(),
                name: "local".into(),
                role: "admin".into(),
                can_admin,
                permissions,
                ..Default::default()
            },
        }))
    }
}

/// The credentials on a request: `authorization: Bearer <key>` or `x-api-key: <key>`.
/// The longest credential header accepted (an API key is ~60 bytes, an OIDC access token a
/// few KB). The gRPC listener takes header lists up to 256 KiB (`serve`), so a longer one
/// gets this refusal, UNAUTHENTICATED naming the size, rather than HTTP 431.
pub const MAX_CREDENTIAL_BYTES: usize = 16 * 1024;

pub fn presented_key(h: &tonic::codegen::http::HeaderMap) -> Option<String> {
    if let Some(v) = h.get("authorization").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(k) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(k.trim().to_string());
        }
    }
    h.get("x-api-key").and_then(|v| v.to_str().ok()).map(|s| s.trim().to_string())
}
