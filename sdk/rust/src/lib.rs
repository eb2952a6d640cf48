//! Rust client for AgentDB's gRPC API (`agentdb.v1`) — the one the `agentdb` CLI uses.
//!
//! - [`Config`]: the server URL (`http://` or `https://`), an API key or OIDC token,
//!   a CA certificate and a client certificate (mTLS), the per-call timeout and the
//!   retry policy; [`Config::from_env`] reads `AGENTDB_URL`, `AGENTDB_API_KEY`,
//!   `AGENTDB_CA_CERT`, `AGENTDB_CLIENT_CERT` and `AGENTDB_CLIENT_KEY`.
//! - [`Client`]: typed calls for collections, items, search and ingest (with retries that
//!   honour the server's `retry-after-ms` hint), and every generated service stub
//!   (`client.agents()`, `client.workflows()`, ...) over the same authenticated channel.
//! - [`Error`]: a gRPC status with its code, message and retry hint, or a connection /
//!   configuration / file problem.
//!
//! ```no_run
//! # async fn demo() -> Result<(), agentdb_client::Error> {
//! let db = agentdb_client::Client::connect(agentdb_client::Config::from_env()?).await?;
//! for c in db.list_collections().await? {
//!     println!("{} {}", c.name, c.count);
//! }
//! # Ok(()) }
//! ```

mod error;
mod ingest;
mod retry;

pub use agentdb_proto::v1;
pub use error::Error;
pub use ingest::{in_slice, run as ingest_with, walk_files, IngestProgress, IngestSummary, MAX_FILE};
pub use retry::RetryPolicy;

use std::path::PathBuf;
use std::time::Duration;
use tonic::transport::Channel as TonicChannel;

/// Largest message sent or received (the server's own limit is lower by default).
pub const MAX_MESSAGE: usize = 256 << 20;
/// The server a client talks to when nothing says otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7720";

/// The channel every stub uses: attaches the credential to each call.
pub type Channel = tonic::service::interceptor::InterceptedService<TonicChannel, Bearer>;

/// Adds `authorization: Bearer <credential>` (an API key or an OIDC token) to each call.
#[derive(Clone)]
pub struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// How to reach the server.
#[derive(Clone, Debug)]
pub struct Config {
    /// `http://HOST:PORT`, `https://HOST:PORT` or `HOST:PORT`.
    pub url: String,
    /// An API key (`adb_...`) or an OIDC token, sent as a bearer credential.
    pub credential: Option<String>,
    /// PEM CA certificate to trust for `https://` (default: the public web roots).
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate and key, for servers that require mTLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Deadline of each attempt (None: no deadline).
    pub timeout: Option<Duration>,
    pub retry: RetryPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            url: DEFAULT_URL.into(),
            credential: None,
            ca_cert: None,
            client_cert: None,
            timeout: None,
            retry: RetryPolicy::default(),
        }
    }
}

impl Config {
    /// `url` with no credential.
    pub fn new(url: impl Into<String>) -> Self {
        Config { url: url.into(), ..Default::default() }
    }

    /// From the environment: `AGENTDB_URL` (default [`DEFAULT_URL`]), `AGENTDB_API_KEY`,
    /// `AGENTDB_CA_CERT`, `AGENTDB_CLIENT_CERT` + `AGENTDB_CLIENT_KEY`.
    pub fn from_env() -> Result<Self, Error> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let client_cert = match (var("AGENTDB_CLIENT_CERT"), var("AGENTDB_CLIENT_KEY")) {
            (Some(c), Some(k)) => Some((PathBuf::from(c), PathBuf::from(k))),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "AGENTDB_CLIENT_CERT and AGENTDB_CLIENT_KEY (--client-cert, --client-key) go together".into(),
                ))
            }
        };
        Ok(Config {
            url: var("AGENTDB_URL").unwrap_or_else(|| DEFAULT_URL.into()),
            credential: var("AGENTDB_API_KEY"),
            ca_cert: var("AGENTDB_CA_CERT").map(PathBuf::from),
            client_cert,
            ..Default::default()
        })
    }

    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = url.into();
        self
    }

    pub fn with_credential(mut self, c: impl Into<String>) -> Self {
        self.credential = Some(c.into());
        self
    }
}

/// `HOST:PORT` becomes `http://HOST:PORT`.
pub fn normalize_url(server: &str) -> String {
    if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    }
}

/// A connected client. Cheap to clone (one HTTP/2 connection, shared).
#[derive(Clone)]
pub struct Client {
    ch: Channel,
    cfg: Config,
}

/// An error and its causes, `a: b: c` (a transport error says what failed only there:
/// the TLS verdict, the refused connection).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

fn read(path: &PathBuf, what: &str) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Config(format!("cannot read {} ({what}): {e}", path.display())))
}

impl Client {
    /// Connect (and fail now, naming the address, if the server cannot be reached).
    pub async fn connect(cfg: Config) -> Result<Client, Error> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let url = normalize_url(&cfg.url);
        let mut endpoint = TonicChannel::from_shared(url.clone())
            .map_err(|e| Error::Config(format!("invalid server address '{}': {e}", cfg.url)))?;
        if let Some(t) = cfg.timeout {
            endpoint = endpoint.timeout(t);
        }
        if url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new();
            tls = match &cfg.ca_cert {
                Some(p) => tls.ca_certificate(Certificate::from_pem(read(p, "CA certificate")?)),
                None => tls.with_webpki_roots(),
            };
            if let Some((c, k)) = &cfg.client_cert {
                tls = tls.identity(Identity::from_pem(read(c, "client certificate")?, read(k, "client key")?));
            }
            endpoint = endpoint.tls_config(tls).map_err(|e| Error::Config(format!("TLS configuration: {e}")))?;
        }
        let ch = endpoint.connect().await.map_err(|e| {
            Error::Connect(format!("cannot connect to agentdb at {url} (is `agentdb serve` running?): {}", chain(&e)))
        })?;
        let bearer = match &cfg.credential {
            Some(k) => Some(
                format!("Bearer {}", k.trim())
                    .parse()
                    .map_err(|_| Error::Config("the API key or token contains invalid characters".into()))?,
            ),
            None => None,
        };
        Ok(Client { ch: tonic::service::interceptor::InterceptedService::new(ch, Bearer(bearer)), cfg })
    }

    /// The authenticated channel, for any generated stub.
    pub fn channel(&self) -> Channel {
        self.ch.clone()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
}

/// The generated stubs over this client's channel (message limits raised to
/// [`MAX_MESSAGE`] where large messages travel).
macro_rules! stubs {
    ($($name:ident => $module:ident :: $stub:ident),* $(,)?) => {
        impl Client {
            $(
                pub fn $name(&self) -> v1::$module::$stub<Channel> {
                    v1::$module::$stub::new(self.ch.clone())
                        .max_decoding_message_size(MAX_MESSAGE)
                        .max_encoding_message_size(MAX_MESSAGE)
                }
            )*
        }
    };
}

stubs! {
    collections => collections_client::CollectionsClient,
    items => items_client::ItemsClient,
    models => models_client::ModelsClient,
    server => server_client::ServerClient,
    security => security_client::SecurityClient,
    agents => agents_client::AgentsClient,
    events => events_client::EventsClient,
    queues => queues_client::QueuesClient,
    standing_queries => standing_queries_client::StandingQueriesClient,
    workflows => workflows_client::WorkflowsClient,
    cluster => cluster_client::ClusterClient,
}

/// Typed calls. Reads retry on UNAVAILABLE and on refusals with a retry hint; writes
/// only on refusals the server made before doing anything (those carry the hint).
impl Client {
    pub async fn create_collection(&self, req: v1::CreateCollectionRequest) -> Result<v1::CollectionInfo, Error> {
        let r = retry::write(&self.cfg.retry, || {
            let (mut c, req) = (self.collections(), req.clone());
            async move { c.create(req).await }
        })
        .await?;
        r.info.ok_or_else(|| Error::Protocol("Create answered no collection".into()))
    }

    pub async fn list_collections(&self) -> Result<Vec<v1::CollectionInfo>, Error> {
        let r = retry::read(&self.cfg.retry, || {
            let mut c = self.collections();
            async move { c.list(v1::ListCollectionsRequest {}).await }
        })
        .await?;
        Ok(r.collections)
    }

    pub async fn describe_collection(&self, name: &str) -> Result<v1::CollectionInfo, Error> {
        let r = retry::read(&self.cfg.retry, || {
            let mut c = self.collections();
            let req = v1::DescribeCollectionRequest { name: name.to_string() };
            async move { c.describe(req).await }
        })
        .await?;
        r.info.ok_or_else(|| Error::Protocol("Describe answered no collection".into()))
    }

    pub async fn drop_collection(&self, name: &str) -> Result<(), Error> {
        retry::write(&self.cfg.retry, || {
            let mut c = self.collections();
            let req = v1::DropCollectionRequest { name: name.to_string() };
            async move { c.drop(req).await }
        })
        .await?;
        Ok(())
    }

    /// Insert or replace items; their ids, in order (generated where empty).
    pub async fn upsert(&self, collection: &str, items: Vec<v1::Item>) -> Result<Vec<String>, Error> {
        let req = v1::UpsertRequest { collection: collection.to_string(), items };
        let r = retry::write(&self.cfg.retry, || {
            let (mut c, req) = (self.items(), req.clone());
            async move { c.upsert(req).await }
        })
        .await?;
        Ok(r.ids)
    }

    pub async fn get(&self, collection: &str, ids: &[String], with_vectors: bool) -> Result<Vec<v1::Item>, Error> {
        let req =
            v1::GetRequest { collection: collection.into(), ids: ids.to_vec(), with_vectors, ..Default::default() };
        let r = retry::read(&self.cfg.retry, || {
            let (mut c, req) = (self.items(), req.clone());
            async move { c.get(req).await }
        })
        .await?;
        Ok(r.items)
    }

    /// Delete by ids, or (ids empty) by a filter expression; how many were deleted.
    pub async fn delete(&self, collection: &str, ids: &[String], filter: &str) -> Result<u64, Error> {
        let req = v1::DeleteRequest { collection: collection.into(), ids: ids.to_vec(), filter: filter.into() };
        let r = retry::write(&self.cfg.retry, || {
            let (mut c, req) = (self.items(), req.clone());
            async move { c.delete(req).await }
        })
        .await?;
        Ok(r.deleted)
    }

    pub async fn count(&self, collection: &str, filter: &str) -> Result<u64, Error> {
        let req = v1::CountRequest { collection: collection.into(), filter: filter.into(), ..Default::default() };
        let r = retry::read(&self.cfg.retry, || {
            let (mut c, req) = (self.items(), req.clone());
            async move { c.count(req).await }
        })
        .await?;
        Ok(r.count)
    }

    /// One page of items in id order: those after `after` ("" = from the first) that
    /// match `filter`, at most `limit` (0 = the server's default, 100), with payloads.
    /// Returns the items and the id to pass as `after` for the next page (`None` at the
    /// end).
    pub async fn scroll(
        &self,
        collection: &str,
        filter: &str,
        after: &str,
        limit: u32,
        with_vectors: bool,
    ) -> Result<(Vec<v1::Item>, Option<String>), Error> {
        let req = v1::ScrollRequest {
            collection: collection.into(),
            filter: filter.into(),
            after: after.into(),
            limit,
            with_payload: true,
            with_vectors,
            ..Default::default()
        };
        let r = retry::read(&self.cfg.retry, || {
            let (mut c, req) = (self.items(), req.clone());
            async move { c.scroll(req).await }
        })
        .await?;
        Ok((r.items, Some(r.next_after).filter(|n| !n.is_empty())))
    }

    /// Who this client's credential is and what it may do on `collections`.
    pub async fn who_am_i(&self, collections: &[String]) -> Result<v1::WhoAmIResponse, Error> {
        let req = v1::WhoAmIRequest { collections: collections.to_vec() };
        retry::read(&self.cfg.retry, || {
            let (mut c, req) = (self.security(), req.clone());
            async move { c.who_am_i(req).await }
        })
        .await
    }

    /// Any search: by vector, text, image, audio or video bytes, with filters, modes and
    /// explanations (fill the request).
    pub async fn search(&self, req: v1::SearchRequest) -> Result<Vec<v1::Hit>, Error> {
        let r = retry::read(&self.cfg.retry, || {
            let (mut c, req) = (self.items(), req.clone());
            async move { c.search(req).await }
        })
        .await?;
        Ok(r.hits)
    }

    /// Search by text (cross-modal: finds images, speech and video too), `k` hits with
    /// their payloads.
    pub async fn search_text(&self, collection: &str, text: &str, k: u32) -> Result<Vec<v1::Hit>, Error> {
        self.search(v1::SearchRequest {
            collection: collection.into(),
            text: text.into(),
            top_k: k,
            with_payload: true,
            ..Default::default()
        })
        .await
    }

    /// Ingest files and folders (walked in order, hidden entries skipped) over one
    /// stream with at most `concurrency` files in flight; `progress` is told about each
    /// file as it completes. Failures are collected, never fatal.
    pub async fn ingest_paths(
        &self,
        collection: &str,
        paths: &[PathBuf],
        concurrency: usize,
        progress: impl FnMut(&IngestProgress),
    ) -> Result<IngestSummary, Error> {
        ingest::run(self.items(), collection, paths, concurrency, progress).await
    }
}
