//! gRPC services `agentdb.v1.Collections` and `agentdb.v1.Items`.
//!
//! Handlers only convert: engine calls run on the blocking pool behind a bounded
//! admission gate, so CPU work never sits on tokio workers and overload turns into
//! RESOURCE_EXHAUSTED instead of unbounded queues.

use crate::status::to_status;
use agentdb_engine::{Database, SearchRequest};
use agentdb_proto::convert::*;
use agentdb_proto::v1;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};

/// Admission control for CPU-bound work.
pub struct Gate {
    running: Semaphore,
    waiting: AtomicUsize,
    max_waiting: usize,
}

impl Gate {
    pub fn new(max_concurrent: usize, max_waiting: usize) -> Self {
        Gate { running: Semaphore::new(max_concurrent.max(1)), waiting: AtomicUsize::new(0), max_waiting }
    }

    /// Run `f` on the blocking pool once a slot is free.
    pub async fn run<T, F>(&self, f: F) -> Result<T, Status>
    where
        F: FnOnce() -> Result<T, agentdb_engine::Error> + Send + 'static,
        T: Send + 'static,
    {
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Status::resource_exhausted(format!(
                "server overloaded: more than {} requests waiting; retry with backoff",
                self.max_waiting
            )));
        }
        let permit = self.running.acquire().await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let _permit = permit.map_err(|_| Status::unavailable("server is shutting down"))?;
        match tokio::task::spawn_blocking(f).await {
            Ok(r) => r.map_err(to_status),
            Err(e) => {
                tracing::error!(error = %e, "request task panicked");
                Err(Status::internal("internal error while processing the request"))
            }
        }
    }
}

#[derive(Clone)]
pub struct Services {
    pub db: Arc<Database>,
    pub gate: Arc<Gate>,
}

fn need(name: &str, what: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument(format!("{what} is required")));
    }
    Ok(())
}

#[tonic::async_trait]
impl v1::collections_server::Collections for Services {
    async fn create(
        &self,
        req: Request<v1::CreateCollectionRequest>,
    ) -> Result<Response<v1::CreateCollectionResponse>, Status> {
        let r = req.into_inner();
        need(&r.name, "collection name")?;
        if r.spaces.is_empty() {
            return Err(Status::invalid_argument("at least one vector space is required"));
        }
        let db = self.db.clone();
        let info = self
            .gate
            .run(move || {
                let spaces = r.spaces.into_iter().map(space_from_wire).collect::<Result<Vec<_>, _>>()?;
                let c = db.create_collection(agentdb_engine::CollectionSpec { name: r.name, spaces })?;
                tracing::info!(collection = %c.name(), "collection created");
                c.info()
            })
            .await?;
        Ok(Response::new(v1::CreateCollectionResponse { info: Some(info_to_wire(info)) }))
    }

    async fn list(
        &self,
        _req: Request<v1::ListCollectionsRequest>,
    ) -> Result<Response<v1::ListCollectionsResponse>, Status> {
        let db = self.db.clone();
        let list = self.gate.run(move || Ok(db.list())).await?;
        Ok(Response::new(v1::ListCollectionsResponse { collections: list.into_iter().map(info_to_wire).collect() }))
    }

    async fn describe(
        &self,
        req: Request<v1::DescribeCollectionRequest>,
    ) -> Result<Response<v1::DescribeCollectionResponse>, Status> {
        let r = req.into_inner();
        need(&r.name, "collection name")?;
        let db = self.db.clone();
        let info = self.gate.run(move || db.collection(&r.name)?.info()).await?;
        Ok(Response::new(v1::DescribeCollectionResponse { info: Some(info_to_wire(info)) }))
    }

    async fn drop(
        &self,
        req: Request<v1::DropCollectionRequest>,
    ) -> Result<Response<v1::DropCollectionResponse>, Status> {
        let r = req.into_inner();
        need(&r.name, "collection name")?;
        let db = self.db.clone();
        self.gate.run(move || db.drop_collection(&r.name)).await?;
        Ok(Response::new(v1::DropCollectionResponse {}))
    }

    async fn flush(&self, req: Request<v1::FlushRequest>) -> Result<Response<v1::FlushResponse>, Status> {
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        let db = self.db.clone();
        let info = self
            .gate
            .run(move || {
                let c = db.collection(&r.collection)?;
                if r.optimize {
                    c.optimize()?;
                } else {
                    c.flush()?;
                }
                c.info()
            })
            .await?;
        Ok(Response::new(v1::FlushResponse { info: Some(info_to_wire(info)) }))
    }
}

#[tonic::async_trait]
impl v1::items_server::Items for Services {
    async fn upsert(&self, req: Request<v1::UpsertRequest>) -> Result<Response<v1::UpsertResponse>, Status> {
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        let db = self.db.clone();
        let ids =
            self.gate
                .run(move || {
                    let c = db.collection(&r.collection)?;
                    let items = r.items.into_iter().enumerate().map(|(i, it)| item_from_wire(it, i)).collect::<Result<
                        Vec<_>,
                        _,
                    >>(
                    )?;
                    c.upsert(items)
                })
                .await?;
        Ok(Response::new(v1::UpsertResponse { ids }))
    }

    async fn get(&self, req: Request<v1::GetRequest>) -> Result<Response<v1::GetResponse>, Status> {
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        let db = self.db.clone();
        let items = self.gate.run(move || db.collection(&r.collection)?.get(&r.ids, r.with_vectors)).await?;
        Ok(Response::new(v1::GetResponse { items: items.into_iter().map(item_to_wire).collect() }))
    }

    async fn delete(&self, req: Request<v1::DeleteRequest>) -> Result<Response<v1::DeleteResponse>, Status> {
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        if r.ids.is_empty() == r.filter.trim().is_empty() {
            return Err(Status::invalid_argument("delete needs either ids or a filter (exactly one of them)"));
        }
        let db = self.db.clone();
        let n = self
            .gate
            .run(move || {
                let c = db.collection(&r.collection)?;
                match filter_from_wire(&r.filter)? {
                    Some(f) => c.delete_by_filter(&f),
                    None => c.delete(&r.ids),
                }
            })
            .await?;
        Ok(Response::new(v1::DeleteResponse { deleted: n as u64 }))
    }

    async fn count(&self, req: Request<v1::CountRequest>) -> Result<Response<v1::CountResponse>, Status> {
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        let db = self.db.clone();
        let n = self
            .gate
            .run(move || {
                let f = filter_from_wire(&r.filter)?;
                db.collection(&r.collection)?.count(f.as_ref())
            })
            .await?;
        Ok(Response::new(v1::CountResponse { count: n }))
    }

    async fn search(&self, req: Request<v1::SearchRequest>) -> Result<Response<v1::SearchResponse>, Status> {
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        let vector = r.vector.ok_or_else(|| Status::invalid_argument("search needs a query vector"))?;
        let db = self.db.clone();
        let mut res = self
            .gate
            .run(move || {
                let f = filter_from_wire(&r.filter)?;
                db.collection(&r.collection)?.search(SearchRequest {
                    space: &r.space,
                    queries: vec![vector.values],
                    k: if r.top_k == 0 { 10 } else { r.top_k as usize },
                    filter: f.as_ref(),
                    params: params_from_wire(r.params),
                    with_payload: r.with_payload,
                    with_vectors: r.with_vectors,
                })
            })
            .await?;
        let hits = res.pop().unwrap_or_default();
        Ok(Response::new(v1::SearchResponse { hits: hits.into_iter().map(hit_to_wire).collect() }))
    }

    async fn search_batch(
        &self,
        req: Request<v1::SearchBatchRequest>,
    ) -> Result<Response<v1::SearchBatchResponse>, Status> {
        let r = req.into_inner();
        need(&r.collection, "collection name")?;
        let db = self.db.clone();
        let res = self
            .gate
            .run(move || {
                let f = filter_from_wire(&r.filter)?;
                db.collection(&r.collection)?.search(SearchRequest {
                    space: &r.space,
                    queries: r.vectors.into_iter().map(|v| v.values).collect(),
                    k: if r.top_k == 0 { 10 } else { r.top_k as usize },
                    filter: f.as_ref(),
                    params: params_from_wire(r.params),
                    with_payload: r.with_payload,
                    with_vectors: r.with_vectors,
                })
            })
            .await?;
        Ok(Response::new(v1::SearchBatchResponse {
            results: res
                .into_iter()
                .map(|hits| v1::SearchResults { hits: hits.into_iter().map(hit_to_wire).collect() })
                .collect(),
        }))
    }
}
