//! The gRPC face of cluster mode (docs/CLUSTER.md): `agentdb.v1.Cluster/Status`, and the
//! Items / Collections calls on sharded collections, which go through
//! [`agentdb_cluster::Cluster`] instead of the local engine. Authentication, RBAC, row
//! policies and masking are checked here, on the node that took the request, exactly as
//! for local collections.

use crate::grpc::Services;
use crate::security::row_policy;
use crate::status::{to_status, ApiError};
use agentdb_cluster::{Cluster, CollectionMeta, Token};
use agentdb_orchestrator::security::Principal;
use agentdb_proto::convert::{hit_to_wire, item_from_wire, item_to_wire, space_to_wire};
use agentdb_proto::v1;
use std::sync::Arc;
use tonic::{Request, Response, Status};

fn err(e: agentdb_cluster::Error) -> Status {
    crate::status::to_status(ApiError::from(e))
}

fn token(s: &str, allow_stale: bool) -> Result<Token, Status> {
    let mut t = Token::parse(s).map_err(err)?;
    t.allow_stale = allow_stale;
    Ok(t)
}

/// The wire view of a sharded collection (counts are not gathered for a listing).
pub fn info(m: &CollectionMeta) -> v1::CollectionInfo {
    v1::CollectionInfo {
        name: m.spec.name.clone(),
        spaces: m
            .spec
            .spaces
            .iter()
            .map(|s| v1::SpaceInfo {
                spec: Some(space_to_wire(s)),
                index_kinds: vec![format!("{} (sharded)", s.index)],
            })
            .collect(),
        shards: m.shards,
        replicas: m.replicas,
        ..Default::default()
    }
}

impl Services {
    /// The cluster, when `collection` is one of its sharded collections.
    pub fn sharded(&self, collection: &str) -> Option<Arc<Cluster>> {
        self.cluster.as_ref().filter(|c| c.collection(collection).is_some()).cloned()
    }

    /// The sharded collections `p` may see, for a listing (counts are not gathered).
    pub fn cluster_infos(&self, p: Option<&Principal>) -> Vec<v1::CollectionInfo> {
        let Some(c) = &self.cluster else { return Vec::new() };
        c.collections().iter().filter(|m| self.security.visible(p, &m.spec.name)).map(info).collect()
    }

    pub async fn cluster_describe(
        &self,
        c: Arc<Cluster>,
        principal: Option<Principal>,
        name: String,
    ) -> Result<Response<v1::DescribeCollectionResponse>, Status> {
        let m = c.collection(&name).ok_or_else(|| Status::not_found(format!("collection '{name}' not found")))?;
        let mut info = info(&m);
        let f = row_policy(principal.as_ref()).map_err(to_status)?;
        info.count = c.count(&name, f, &Token::default()).await.map_err(err)?;
        Ok(Response::new(v1::DescribeCollectionResponse { info: Some(info) }))
    }

    pub async fn cluster_flush(
        &self,
        c: Arc<Cluster>,
        r: v1::FlushRequest,
    ) -> Result<Response<v1::FlushResponse>, Status> {
        let count = c.flush(&r.collection, r.optimize).await.map_err(err)?;
        let m = c.collection(&r.collection).ok_or_else(|| Status::not_found("collection gone"))?;
        let mut info = info(&m);
        info.count = count;
        Ok(Response::new(v1::FlushResponse { info: Some(info) }))
    }

    pub async fn cluster_create(
        &self,
        spec: agentdb_engine::CollectionSpec,
        shards: u32,
        replicas: u32,
    ) -> Result<v1::CollectionInfo, Status> {
        let Some(c) = &self.cluster else {
            return Err(Status::failed_precondition(
                "shards: this server is not in a cluster (start it with --cluster nats://HOST:PORT)",
            ));
        };
        let m = c.create_collection(spec, shards, replicas.max(1)).await.map_err(err)?;
        Ok(info(&m))
    }

    pub async fn cluster_upsert(
        &self,
        c: Arc<Cluster>,
        principal: Option<Principal>,
        r: v1::UpsertRequest,
    ) -> Result<Response<v1::UpsertResponse>, Status> {
        let items = r
            .items
            .into_iter()
            .enumerate()
            .map(|(i, it)| item_from_wire(it, i))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| to_status(e.into()))?;
        if items.is_empty() {
            return Err(Status::invalid_argument("upsert needs at least one item"));
        }
        if let Some(row) = row_policy(principal.as_ref()).map_err(to_status)? {
            if let Some(i) = items.iter().position(|it| !row.holds_for_every_value(&it.payload)) {
                return Err(Status::permission_denied(format!(
                    "item {i} ('{}'): its payload does not satisfy this key's row policy",
                    items[i].id
                )));
            }
            let ids: Vec<String> = items.iter().map(|it| it.id.clone()).filter(|id| !id.is_empty()).collect();
            let latest = c.latest_token(&r.collection, &ids).await.map_err(err)?;
            let old = c.get(&r.collection, ids, false, &latest).await.map_err(err)?;
            if let Some(o) = old.iter().find(|o| !row.matches(&o.payload)) {
                return Err(Status::permission_denied(format!("item '{}' exists outside this key's row policy", o.id)));
            }
        }
        // Storage quota: charged (cluster-wide) for the items over what they replace.
        let charge = match (&self.security.storage, &principal) {
            (Some(_), Some(_)) => {
                let ids: Vec<String> = items.iter().map(|it| it.id.clone()).filter(|id| !id.is_empty()).collect();
                // As of the latest write (a replica lagging behind a write through
                // another node would take a replaced item for a new one).
                let old = if ids.is_empty() {
                    Vec::new()
                } else {
                    let latest = c.latest_token(&r.collection, &ids).await.map_err(err)?;
                    c.get(&r.collection, ids, true, &latest).await.map_err(err)?
                };
                let old: Vec<agentdb_engine::StoredItem> =
                    old.into_iter().map(agentdb_engine::StoredItem::from).collect();
                let (sec, p, it) = (self.security.clone(), principal.clone(), items.clone());
                tokio::task::spawn_blocking(move || sec.charge_items(p.as_ref(), &old, &it))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))??
            }
            _ => None,
        };
        let (ids, t) = match c.upsert(&r.collection, items).await {
            Ok(x) => x,
            Err(e) => {
                let sec = self.security.clone();
                let _ = tokio::task::spawn_blocking(move || sec.refund(charge)).await;
                return Err(err(e));
            }
        };
        Ok(Response::new(v1::UpsertResponse { ids, consistency_token: t.to_string() }))
    }

    pub async fn cluster_get(
        &self,
        c: Arc<Cluster>,
        principal: Option<Principal>,
        r: v1::GetRequest,
    ) -> Result<Response<v1::GetResponse>, Status> {
        let t = token(&r.consistency_token, r.allow_stale)?;
        let found = c.get(&r.collection, r.ids, r.with_vectors, &t).await.map_err(err)?;
        let row = row_policy(principal.as_ref()).map_err(to_status)?;
        let mut items = Vec::new();
        for it in found {
            if row.as_ref().is_some_and(|row| !row.matches(&it.payload)) {
                continue;
            }
            let mut s = agentdb_engine::StoredItem::from(it);
            self.security.mask(principal.as_ref(), &mut s.payload);
            items.push(item_to_wire(s));
        }
        Ok(Response::new(v1::GetResponse { items }))
    }

    pub async fn cluster_delete(
        &self,
        c: Arc<Cluster>,
        principal: Option<Principal>,
        r: v1::DeleteRequest,
    ) -> Result<Response<v1::DeleteResponse>, Status> {
        if !r.filter.trim().is_empty() {
            // The request's filter ANDed with the key's row policy.
            let Some(f) = self.security.scoped_filter(principal.as_ref(), &r.filter)? else {
                return Err(Status::invalid_argument("an empty filter"));
            };
            let (n, t) = c.delete_by_filter(&r.collection, f).await.map_err(err)?;
            return Ok(Response::new(v1::DeleteResponse { deleted: n, consistency_token: t.to_string() }));
        }
        let mut ids = r.ids;
        let quota = self.security.storage.is_some() && principal.is_some();
        let row = row_policy(principal.as_ref()).map_err(to_status)?;
        // The items as they are (vectors too when a quota credits their size back).
        let mut gone = Vec::new();
        if row.is_some() || quota {
            let latest = c.latest_token(&r.collection, &ids).await.map_err(err)?;
            let found = c.get(&r.collection, ids.clone(), quota, &latest).await.map_err(err)?;
            gone = found.into_iter().filter(|it| row.as_ref().is_none_or(|row| row.matches(&it.payload))).collect();
            ids = gone.iter().map(|it| it.id.clone()).collect();
        }
        let (n, t) = c.delete(&r.collection, ids).await.map_err(err)?;
        if quota {
            let gone: Vec<agentdb_engine::StoredItem> =
                gone.into_iter().map(agentdb_engine::StoredItem::from).collect();
            let (sec, p) = (self.security.clone(), principal.clone());
            let _ = tokio::task::spawn_blocking(move || sec.credit_deleted(p.as_ref(), &gone)).await;
        }
        Ok(Response::new(v1::DeleteResponse { deleted: n as u64, consistency_token: t.to_string() }))
    }

    pub async fn cluster_count(
        &self,
        c: Arc<Cluster>,
        filter: Option<agentdb_engine::Filter>,
        r: v1::CountRequest,
    ) -> Result<Response<v1::CountResponse>, Status> {
        let t = token(&r.consistency_token, r.allow_stale)?;
        let count = c.count(&r.collection, filter, &t).await.map_err(err)?;
        Ok(Response::new(v1::CountResponse { count }))
    }

    /// A sharded collection as the target of ingestion and cross-modal queries.
    pub fn sharded_target(&self, collection: &str, t: Token) -> Option<crate::cluster_target::ShardedTarget> {
        let c = self.sharded(collection)?;
        let meta = c.collection(collection)?;
        Some(crate::cluster_target::ShardedTarget::new(c, meta, t, self.db.options().limits))
    }

    /// One scroll page of a sharded collection (the caller masks and shapes it).
    pub async fn cluster_scroll(
        &self,
        c: Arc<Cluster>,
        filter: Option<agentdb_engine::Filter>,
        limit: usize,
        r: &v1::ScrollRequest,
    ) -> Result<(Vec<agentdb_engine::StoredItem>, Option<String>), Status> {
        let t = token(&r.consistency_token, r.allow_stale)?;
        let (items, next) = c.scroll(&r.collection, filter, &r.after, limit, r.with_vectors, &t).await.map_err(err)?;
        let items = items.into_iter().map(agentdb_engine::StoredItem::from).collect();
        Ok((items, next))
    }

    /// [`Services::sharded_target`] for a request's consistency token.
    pub fn sharded_target_for(
        &self,
        collection: &str,
        consistency_token: &str,
        allow_stale: bool,
    ) -> Result<crate::cluster_target::ShardedTarget, Status> {
        let t = token(consistency_token, allow_stale)?;
        self.sharded_target(collection, t)
            .ok_or_else(|| Status::not_found(format!("collection '{collection}' not found")))
    }

    pub async fn cluster_search(
        &self,
        c: Arc<Cluster>,
        principal: Option<Principal>,
        filter: Option<agentdb_engine::Filter>,
        r: v1::SearchRequest,
    ) -> Result<Response<v1::SearchResponse>, Status> {
        let t = token(&r.consistency_token, r.allow_stale)?;
        let params = agentdb_proto::convert::params_from_wire(r.params);
        let Some(v) = r.vector.as_ref() else {
            return Err(Status::invalid_argument("the query has no vector"));
        };
        let k = if r.top_k == 0 { 10 } else { r.top_k as usize };
        let hits = c
            .search(&r.collection, &r.space, v.values.clone(), k, filter, r.with_payload, params, &t)
            .await
            .map_err(err)?;
        let hits = hits
            .into_iter()
            .map(|h| {
                let mut payload = h.payload;
                if let Some(p) = payload.as_mut() {
                    self.security.mask(principal.as_ref(), p);
                }
                hit_to_wire(agentdb_engine::Hit { id: h.id, score: h.score, payload, vector: None })
            })
            .collect();
        Ok(Response::new(v1::SearchResponse { hits }))
    }
}

/// `agentdb.v1.Cluster`.
#[derive(Clone)]
pub struct ClusterService {
    pub cluster: Option<Arc<Cluster>>,
    pub security: Arc<crate::security::Security>,
}

#[tonic::async_trait]
impl v1::cluster_server::Cluster for ClusterService {
    async fn drain(&self, req: Request<v1::ClusterDrainRequest>) -> Result<Response<v1::ClusterDrainResponse>, Status> {
        let p = req.extensions().get::<Principal>().cloned();
        self.security.authorize(p.as_ref(), agentdb_orchestrator::security::Action::Admin, "", "Cluster/Drain")?;
        let r = req.into_inner();
        let Some(c) = &self.cluster else {
            return Err(Status::failed_precondition("this server is not in a cluster"));
        };
        c.drain(&r.node, !r.undo).await.map_err(err)?;
        Ok(Response::new(v1::ClusterDrainResponse {}))
    }

    async fn status(
        &self,
        req: Request<v1::ClusterStatusRequest>,
    ) -> Result<Response<v1::ClusterStatusResponse>, Status> {
        let p = req.extensions().get::<Principal>().cloned();
        self.security.authorize(p.as_ref(), agentdb_orchestrator::security::Action::Read, "", "Cluster/Status")?;
        let Some(c) = &self.cluster else {
            return Ok(Response::new(v1::ClusterStatusResponse { enabled: false, ..Default::default() }));
        };
        let s = c.status().await.map_err(err)?;
        Ok(Response::new(v1::ClusterStatusResponse {
            enabled: true,
            node_id: s.node_id,
            leader: s.leader.unwrap_or_default(),
            connected: s.connected,
            nodes: s
                .nodes
                .into_iter()
                .map(|n| v1::ClusterNode {
                    id: n.id,
                    addr: n.addr,
                    alive: n.alive,
                    replicas: n.replicas,
                    draining: n.draining,
                })
                .collect(),
            collections: s
                .collections
                .into_iter()
                .map(|c| v1::ClusterCollection {
                    name: c.name,
                    shards: c.shards,
                    replicas: c.replicas,
                    stream_replicas: c.stream_replicas,
                    shard_status: c
                        .shard_status
                        .into_iter()
                        .map(|s| v1::ClusterShard {
                            shard: s.shard,
                            last_seq: s.last_seq,
                            first_seq: s.first_seq,
                            snapshot_seq: s.snapshot_seq,
                            replicas: s
                                .replicas
                                .into_iter()
                                .map(|(node, applied, alive)| v1::ClusterReplica { node, applied, alive })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }))
    }
}
