//! Server configuration: defaults, then a TOML file, then `AGENTDB_*` environment
//! variables, then flags (`--data-dir`, `--listen`, `--set key=value`).
//!
//! Environment names map to keys by lower-casing and turning `__` into a dot:
//! `AGENTDB_LISTEN` → `listen`, `AGENTDB_STORAGE__FLUSH_ROWS` → `storage.flush_rows`.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

pub use agentdb_orchestrator::workflow::WorkflowsConfig;
pub use agentdb_retrieval::config::{IngestConfig, ModelsConfig};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7720";
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:7721";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where collections live.
    pub data_dir: PathBuf,
    /// gRPC listen address.
    pub listen: String,
    /// HTTP listen address for /metrics, /healthz and /readyz ("" = off).
    pub http_listen: String,
    /// On SIGTERM, report not ready (`/readyz` 503) and keep serving this long before
    /// refusing new requests and finishing the in-flight ones: the time a load balancer
    /// (a Kubernetes Service) needs to stop sending new requests here. 0 = stop at once.
    pub shutdown_delay_ms: u64,
    /// `auto` (text on a terminal, JSON otherwise), `text` or `json`.
    pub log_format: String,
    /// tracing filter, e.g. `info` or `agentdb_engine=debug,info`.
    pub log_level: String,
    /// `sampled` (default: every write, error, slow or traced request gets its log line,
    /// other searches/gets/counts one in 100) or `all` (a line per request).
    pub log_requests: String,
    /// `auto`, `cpu` or `cuda:N` (see `agentdb serve --device`).
    pub device: String,
    pub storage: StorageConfig,
    pub search: SearchConfig,
    pub limits: LimitsConfig,
    pub models: ModelsConfig,
    pub ingest: IngestConfig,
    pub security: SecurityConfig,
    pub alerts: AlertsConfig,
    pub telemetry: TelemetryConfig,
    pub debug: DebugConfig,
    /// What runs on the GPU when `device` selects one.
    pub gpu: GpuConfig,
    /// Agents, the event bus and message queues (docs/AGENTS.md).
    pub orchestration: OrchestrationConfig,
    /// Workflow runs and triggers (docs/WORKFLOWS.md).
    pub workflows: WorkflowsConfig,
    /// The A2A server (docs/A2A.md).
    pub a2a: A2aConfig,
    /// Cluster mode on NATS JetStream (docs/CLUSTER.md); off when `urls` is empty.
    pub cluster: ClusterSection,
    /// The web console at /ui (docs/UI.md).
    pub ui: UiConfig,
    /// Edge sync over NATS leaf nodes (docs/EDGE.md); off when `role` is empty.
    pub edge: EdgeSection,
}

/// The `[edge]` section (`agentdb serve --edge --hub nats-leaf://HUB:7422`, or on the hub
/// `agentdb serve --edge-hub nats://HUB:4222`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeSection {
    /// "" (off), "edge" or "hub".
    pub role: String,
    /// This node's id: its origin in every change, and an edge's JetStream domain
    /// (default: the host name).
    pub node_id: String,
    /// An edge: the hub's leaf-node URL (`nats-leaf://HOST:7422`, `tls://...`); the server
    /// then runs its own leaf nats-server (`nats_server`) with its data under the data
    /// directory. Not needed with `nats_url`.
    pub hub: String,
    /// An edge: an already running local leaf server to use instead (its configuration
    /// names the hub and a JetStream domain equal to `node_id`). The hub: its NATS server(s).
    #[serde(deserialize_with = "string_list")]
    pub nats_url: Vec<String>,
    /// The nats-server binary for an edge's own leaf server ("" = `nats-server` on PATH,
    /// else ~/.cache/agentdb/bin/nats-server).
    pub nats_server: String,
    /// Client port of an edge's own leaf server on 127.0.0.1 (0 = a free port).
    pub nats_port: u16,
    /// The hub's JetStream domain (its nats-server's `jetstream { domain }`).
    pub hub_domain: String,
    /// A NATS credentials file: an edge's leaf connection to the hub (per-edge
    /// credentials, revocable), or the hub's client connection.
    pub credentials: String,
    /// A CA certificate (PEM) for a `tls://` hub leaf-node URL.
    pub tls_ca: String,
    /// An edge's client certificate and key (PEM) for its leaf link, where the hub's
    /// leaf-node listener verifies certificates (one per edge, revocable).
    pub tls_cert: String,
    pub tls_key: String,
    /// Compression of an edge's leaf link: s2_auto (by round-trip time: off below 10 ms),
    /// s2_fast, s2_better, s2_best, or off.
    pub compression: String,
    /// Synced collections, `NAME` or `NAME:both|up|down` (down: a read-only mirror of the
    /// hub's on an edge).
    #[serde(deserialize_with = "string_list")]
    pub collections: Vec<String>,
    /// `NAME:FIELD`: the payload field that partitions a collection's changes (the same
    /// on every node).
    #[serde(deserialize_with = "string_list")]
    pub partition: Vec<String>,
    /// On an edge, `NAME:VALUE`: mirror only that partition of the collection.
    #[serde(deserialize_with = "string_list")]
    pub only: Vec<String>,
    /// Per-field merge policies, `NAME.FIELD=max|union` (the same on every node); other
    /// fields: last writer wins.
    #[serde(deserialize_with = "string_list")]
    pub merge: Vec<String>,
    /// On an edge, `NAME:BYTES` (`catalog:64MiB`): a hub collection this edge does not
    /// mirror, kept as a bounded cache of what local queries touch (docs/EDGE.md).
    #[serde(deserialize_with = "string_list")]
    pub cache: Vec<String>,
    /// How vectors travel and are stored by their origin: f32, f16 or i8.
    pub vector_encoding: String,
    /// How often each node sends its clock (tombstones are collected once every node has
    /// seen them, at the pace of these).
    pub clock_interval_ms: u64,
}

impl Default for EdgeSection {
    fn default() -> Self {
        EdgeSection {
            role: String::new(),
            node_id: String::new(),
            hub: String::new(),
            nats_url: Vec::new(),
            nats_server: String::new(),
            nats_port: 0,
            hub_domain: "hub".into(),
            credentials: String::new(),
            tls_ca: String::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            compression: "s2_auto".into(),
            collections: Vec::new(),
            partition: Vec::new(),
            only: Vec::new(),
            merge: Vec::new(),
            cache: Vec::new(),
            vector_encoding: "f32".into(),
            clock_interval_ms: 2000,
        }
    }
}

/// The `[ui]` section: the web console served at `/ui` on the HTTP listener.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// Serve the console's files from this folder (read on each request) instead of the
    /// copy built into the binary: for working on the console without rebuilding.
    pub dir: String,
}

/// The `[cluster]` section (`agentdb serve --cluster URLS --node-id ID`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// NATS servers, e.g. `nats://10.0.0.1:4222,nats://10.0.0.2:4222` ("" = a single node).
    #[serde(deserialize_with = "string_list")]
    pub urls: Vec<String>,
    /// This node's id in the cluster (default: the host name).
    pub node_id: String,
    /// A NATS credentials file (`.creds`), if the servers ask for one.
    pub credentials: String,
    /// A CA certificate (PEM) to trust for `tls://` NATS servers.
    pub tls_ca: String,
    pub heartbeat_ms: u64,
    /// A node (or the leader's lease) silent this long is taken as gone.
    pub node_ttl_ms: u64,
    /// How long a read with a consistency token waits for a replica to catch up.
    pub read_wait_ms: u64,
    /// Each shard is snapshotted to the object store every this many applied records
    /// (0: never), and its stream trimmed behind the snapshot; new replicas restore the
    /// snapshot and apply only the stream after it.
    pub snapshot_every: u64,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            urls: Vec::new(),
            node_id: String::new(),
            credentials: String::new(),
            tls_ca: String::new(),
            heartbeat_ms: 500,
            node_ttl_ms: 3000,
            read_wait_ms: 5000,
            snapshot_every: 100_000,
        }
    }
}

/// The `[a2a]` section: what the A2A server does with long-running work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2aConfig {
    /// A workflow that a plain-text message starts (inputs `{text}`), as a long-running
    /// task, instead of the `recall` skill ("" = recall).
    pub text_workflow: String,
    /// Most files one folder ingest may take (a folder on the server or file parts).
    pub max_folder_files: usize,
}

impl Default for A2aConfig {
    fn default() -> Self {
        A2aConfig { text_workflow: String::new(), max_folder_files: 100_000 }
    }
}

/// OpenTelemetry traces (see docs/OPERATIONS.md, "Traces").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetryConfig {
    /// OTLP/gRPC collector, e.g. `http://127.0.0.1:4317` ("" = tracing export off).
    pub otlp_endpoint: String,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Fraction of new traces sampled (0.0-1.0); a sampled incoming `traceparent` is always followed.
    pub sample_ratio: f64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig { otlp_endpoint: String::new(), service_name: "agentdb".into(), sample_ratio: 1.0 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub enabled: bool,
    /// Detector window.
    pub interval_ms: u64,
    /// Robust z-score that counts as anomalous.
    pub z_threshold: f64,
    /// Anomalous windows in a row before an alert fires; calm windows before it clears.
    pub fire_after: u32,
    pub clear_after: u32,
    /// Windows that only learn the baseline.
    pub warmup: u32,
    /// EWMA weight of each new window.
    pub alpha: f64,
    /// POST each alert change as JSON to this http:// URL ("" = off).
    pub webhook: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            interval_ms: 5000,
            z_threshold: 6.0,
            fire_after: 3,
            clear_after: 5,
            warmup: 12,
            alpha: 0.1,
            webhook: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// Vectors on the GPU in `fp16` (half the memory and bandwidth; results are
    /// re-scored in fp32 on the host) or `fp32`.
    pub precision: String,
    /// Share of the GPU memory free at start that resident vectors may use; the least
    /// recently searched segments are evicted beyond it, and a segment larger than all
    /// of it is searched on the CPU (logged).
    pub memory_fraction: f64,
    /// Segments with fewer rows are searched on the CPU.
    pub min_rows: usize,
    /// Run the text encoder on the GPU (the image bridge and speech embed through it).
    pub text_encoder: bool,
    /// Run the image classifier (EfficientNet-Lite0 of the label bridge) on the GPU.
    pub image_encoder: bool,
    /// Its dense layers: `fp32`, `tf32` or `fp16` tensor-core GEMMs (fp32 storage and
    /// accumulation; cosine to the CPU embeddings in docs/PERFORMANCE.md).
    pub encoder_math: String,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            precision: "fp16".into(),
            memory_fraction: 0.8,
            min_rows: 16_384,
            text_encoder: true,
            image_encoder: true,
            encoder_math: "tf32".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DebugConfig {
    /// Allow `Server/InjectFault` (an artificial search delay, for testing alerts).
    pub allow_fault_injection: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// "none" (allowed on loopback only) or "api_key". OIDC (`[security.oidc]`) is
    /// enabled on its own and works with either.
    pub auth: String,
    /// A file holding an admin API key (`adb_<id>_<secret>`) made elsewhere, e.g. by the
    /// Kubernetes operator into a Secret: imported at start if the key store does not
    /// know its id (a revoked one stays revoked). With it no key is generated on first start.
    pub bootstrap_key_file: String,
    /// Allow a non-loopback listen address without authentication (loudly).
    pub insecure: bool,
    /// Hash-chained audit log at <data_dir>/security/audit.log.
    pub audit: bool,
    /// Signed checkpoints of the audit chain's head (record count and last hash, HMAC-SHA256)
    /// appended to this file, which shows truncation and rewrites of the log (`agentdb
    /// audit verify --checkpoints`). Keep it apart from the data directory: another volume,
    /// an append-only/WORM mount, or shipped off the host. "" = off.
    pub audit_checkpoint_file: String,
    /// The checkpoints' HMAC key: a file holding 32 or more random bytes as hex
    /// (`openssl rand -hex 32`), read once at start. Set with `audit_checkpoint_file`.
    pub audit_checkpoint_key_file: String,
    /// Checkpoint every this many audit records (0 = no count limit) ...
    pub audit_checkpoint_every_records: u64,
    /// ... or this many seconds after the first record no checkpoint covers, whichever
    /// comes first (0 = no time limit); and at clean shutdown.
    pub audit_checkpoint_every_secs: u64,
    /// Requests per second per principal (API key, or peer address without auth); 0 = off.
    pub rate_limit_per_sec: f64,
    /// Requests a principal may make at once before the rate applies.
    pub rate_limit_burst: f64,
    /// Actions that need a multi-factor login: `read`, `write`, `admin` and/or operations
    /// such as `delete`, `drop_collection`, `create_key` (a list, or a comma-separated
    /// string with `--set`/environment variables).
    #[serde(deserialize_with = "string_list")]
    pub mfa_required_for: Vec<String>,
    /// Let API keys (one factor) through the MFA policy; off by default, so an MFA
    /// policy on `admin` also stops admin API keys.
    pub mfa_exempt_api_keys: bool,
    /// Payload fields (dotted paths) shown as "***" to principals below
    /// `mask_clearance`, who may not filter on them either.
    #[serde(deserialize_with = "string_list")]
    pub masked_fields: Vec<String>,
    /// The role that sees masked fields: reader, writer or admin.
    pub mask_clearance: String,
    /// Storage quota per principal, in bytes (items' ids, payload JSON and vectors as
    /// written); 0 = none. Custom roles may override it. See docs/SECURITY.md, "Quotas".
    pub storage_quota_bytes: u64,
    /// Storage quota per principal, in items; 0 = none.
    pub storage_quota_items: u64,
    /// Custom roles, `[security.roles.<name>]`, usable wherever a role is named.
    pub roles: std::collections::BTreeMap<String, RoleConfig>,
    pub oidc: OidcConfig,
    pub tls: TlsConfig,
}

/// `[security.roles.<name>]`: a custom role. Its permissions are `grants` (each: actions
/// × collection patterns) plus the shorthands `read`, `write` and `admin` (collection
/// patterns: a name, `prefix*` or `*`). An action includes the lower ones (write ⊇ read).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RoleConfig {
    pub grants: Vec<GrantConfig>,
    #[serde(deserialize_with = "string_list")]
    pub read: Vec<String>,
    #[serde(deserialize_with = "string_list")]
    pub write: Vec<String>,
    #[serde(deserialize_with = "string_list")]
    pub admin: Vec<String>,
    /// Overrides `security.storage_quota_bytes` for this role (0 = no quota).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_quota_bytes: Option<u64>,
    /// Overrides `security.storage_quota_items` for this role (0 = no quota).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_quota_items: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct GrantConfig {
    /// read, write and/or admin.
    #[serde(deserialize_with = "string_list")]
    pub actions: Vec<String>,
    /// Collection patterns: a name, `prefix*` or `*`.
    #[serde(deserialize_with = "string_list")]
    pub collections: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            auth: "none".into(),
            bootstrap_key_file: String::new(),
            insecure: false,
            audit: true,
            audit_checkpoint_file: String::new(),
            audit_checkpoint_key_file: String::new(),
            audit_checkpoint_every_records: agentdb_orchestrator::security::audit::checkpoint::DEFAULT_EVERY_RECORDS,
            audit_checkpoint_every_secs: agentdb_orchestrator::security::audit::checkpoint::DEFAULT_EVERY_SECS,
            rate_limit_per_sec: 0.0,
            rate_limit_burst: 20.0,
            mfa_required_for: Vec::new(),
            mfa_exempt_api_keys: false,
            masked_fields: Vec::new(),
            mask_clearance: "admin".into(),
            storage_quota_bytes: 0,
            storage_quota_items: 0,
            roles: Default::default(),
            oidc: OidcConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

impl SecurityConfig {
    pub fn masking(&self) -> Result<agentdb_orchestrator::security::masking::Masking> {
        let role = agentdb_orchestrator::security::Role::parse(&self.mask_clearance)
            .map_err(|e| anyhow::anyhow!("security.mask_clearance: {e}"))?;
        Ok(agentdb_orchestrator::security::masking::Masking::new(&self.masked_fields, role))
    }

    /// The built-in roles plus `[security.roles]`; invalid definitions are refused.
    pub fn role_table(&self) -> Result<std::sync::Arc<agentdb_orchestrator::security::RoleTable>> {
        use agentdb_orchestrator::security::{Action, CustomRole, Grant, RoleTable};
        let mut custom = Vec::new();
        for (name, rc) in &self.roles {
            let e = |e: agentdb_orchestrator::security::Error| anyhow::anyhow!("security.roles.{name}: {e}");
            let mut grants = Vec::new();
            for g in &rc.grants {
                let actions = g.actions.iter().map(|a| Action::parse(a)).collect::<Result<Vec<_>, _>>().map_err(e)?;
                grants.push(Grant::new(actions, g.collections.clone()).map_err(e)?);
            }
            for (a, pats) in [(Action::Read, &rc.read), (Action::Write, &rc.write), (Action::Admin, &rc.admin)] {
                if !pats.is_empty() {
                    grants.push(Grant::new(vec![a], pats.clone()).map_err(e)?);
                }
            }
            custom.push(CustomRole {
                name: name.clone(),
                grants,
                storage_quota_bytes: rc.storage_quota_bytes,
                storage_quota_items: rc.storage_quota_items,
            });
        }
        Ok(std::sync::Arc::new(RoleTable::new(custom).map_err(|e| anyhow::anyhow!("security.roles: {e}"))?))
    }

    /// Whether requests must carry credentials (API keys or OIDC tokens).
    pub fn auth_enabled(&self) -> bool {
        self.auth != "none" || self.oidc.enabled || self.tls.client_cert_required()
    }

    /// Check what can be checked without touching files or the network (algorithms,
    /// roles, the MFA policy).
    pub fn validate(&self) -> Result<()> {
        if !["none", "api_key"].contains(&self.auth.as_str()) {
            bail!("security.auth must be \"none\" or \"api_key\", got \"{}\"", self.auth);
        }
        agentdb_orchestrator::security::MfaPolicy::new(&self.mfa_required_for, self.mfa_exempt_api_keys)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let roles = self.role_table()?;
        if self.oidc.enabled {
            self.oidc.settings(&roles)?;
        }
        self.tls.validate(&roles)?;
        self.masking()?;
        self.audit_checkpoints_enabled()?;
        Ok(())
    }

    /// Whether audit checkpoints are on; both files set together, with the audit log on
    /// and at least one interval.
    pub fn audit_checkpoints_enabled(&self) -> Result<bool> {
        match (self.audit_checkpoint_file.trim().is_empty(), self.audit_checkpoint_key_file.trim().is_empty()) {
            (true, true) => return Ok(false),
            (false, false) => {}
            (false, true) => bail!(
                "security.audit_checkpoint_file is set but security.audit_checkpoint_key_file is empty: \
                 checkpoints are signed, set both (a key: openssl rand -hex 32 > FILE)"
            ),
            (true, false) => {
                bail!("security.audit_checkpoint_key_file is set but security.audit_checkpoint_file is empty: set both")
            }
        }
        if !self.audit {
            bail!("security.audit_checkpoint_file needs the audit log (security.audit = true)");
        }
        if self.audit_checkpoint_every_records == 0 && self.audit_checkpoint_every_secs == 0 {
            bail!(
                "security.audit_checkpoint_every_records and security.audit_checkpoint_every_secs are both 0: \
                 set at least one"
            );
        }
        Ok(true)
    }
}

/// `[security.tls]`: TLS (rustls) on the gRPC and HTTP listeners, with the certificate
/// and key reloaded from disk when they change, and optional mTLS client certificates
/// as identities. Off while `cert_file` is empty.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Server certificate chain (PEM, leaf first).
    pub cert_file: String,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// CA bundle (PEM) that signs client certificates; set, it enables mTLS.
    pub client_ca_file: String,
    /// With a client CA: "required" (every gRPC connection presents a valid client
    /// certificate; counts as authentication) or "optional" (default).
    pub client_auth: String,
    /// Roles for client-certificate identities, by subject CN (or first SAN) — e.g.
    /// `client_roles = { "ops" = "admin" }`; unlisted identities get `client_default_role`.
    pub client_roles: std::collections::BTreeMap<String, String>,
    /// Role of a client-certificate identity not listed in `client_roles` (default reader).
    pub client_default_role: String,
    /// How often (seconds) to check the certificate and key files for changes and reload
    /// them; 0 = never (default 10).
    pub reload_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: String::new(),
            key_file: String::new(),
            client_ca_file: String::new(),
            client_auth: "optional".into(),
            client_roles: Default::default(),
            client_default_role: "reader".into(),
            reload_secs: 10,
        }
    }
}

impl TlsConfig {
    /// Whether TLS is configured.
    pub fn enabled(&self) -> bool {
        !self.cert_file.trim().is_empty()
    }

    /// Whether every gRPC connection must present a verified client certificate.
    pub fn client_cert_required(&self) -> bool {
        self.enabled() && !self.client_ca_file.trim().is_empty() && self.client_auth == "required"
    }

    /// The `client_auth` mode, `client_default_role` and `client_roles` as checked values.
    pub fn validate(&self, roles: &agentdb_orchestrator::security::RoleTable) -> Result<()> {
        if !["", "optional", "required"].contains(&self.client_auth.as_str()) {
            bail!("security.tls.client_auth must be \"optional\" or \"required\", got \"{}\"", self.client_auth);
        }
        // Role names are checked even while TLS is off: an unknown role is a mistake.
        roles.resolve(self.default_role()).map_err(|e| anyhow::anyhow!("security.tls.client_default_role: {e}"))?;
        for (who, role) in &self.client_roles {
            roles.resolve(role).map_err(|e| anyhow::anyhow!("security.tls.client_roles.{who}: {e}"))?;
        }
        if !self.enabled() {
            if !self.key_file.trim().is_empty() || !self.client_ca_file.trim().is_empty() {
                bail!("security.tls: key_file/client_ca_file are set but cert_file is empty");
            }
            return Ok(());
        }
        if self.key_file.trim().is_empty() {
            bail!("security.tls.cert_file is set but security.tls.key_file is empty");
        }
        if self.client_auth == "required" && self.client_ca_file.trim().is_empty() {
            bail!("security.tls.client_auth = \"required\" needs security.tls.client_ca_file");
        }
        Ok(())
    }

    /// `client_default_role`, "reader" when unset.
    pub fn default_role(&self) -> &str {
        if self.client_default_role.trim().is_empty() {
            "reader"
        } else {
            self.client_default_role.trim()
        }
    }
}

/// `[security.oidc]`: OIDC/JWT bearer tokens verified against the identity provider's
/// JWKS (see docs/SECURITY.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// Accept OIDC tokens; turns authentication on.
    pub enabled: bool,
    /// Expected `iss`, exactly.
    pub issuer: String,
    /// Accepted `aud` values (the token's must include one).
    #[serde(deserialize_with = "string_list")]
    pub audience: Vec<String>,
    /// JWKS JSON file ("" = none).
    pub jwks_file: String,
    /// JWKS URL, http(s) ("" = none); fetched with `jwks_timeout_ms` and cached.
    pub jwks_url: String,
    /// An unknown `kid` re-reads the JWKS at most once per this many seconds.
    pub jwks_refresh_secs: u64,
    /// The JWKS is re-read once it is this old.
    pub jwks_max_age_secs: u64,
    pub jwks_timeout_ms: u64,
    /// Accepted `alg` values; `none` and HS* are refused at start.
    #[serde(deserialize_with = "string_list")]
    pub algorithms: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Claim naming the principal (id `oidc:<value>`).
    pub principal_claim: String,
    /// Claim holding reader|writer|admin (or a list of which the highest counts).
    pub role_claim: String,
    /// Role for tokens without `role_claim` ("" = refuse such tokens).
    pub default_role: String,
    /// Claim listing the collections the token may touch (absent = all).
    pub collections_claim: String,
    /// Claim holding a row filter ANDed into everything the token touches ("" = none).
    pub row_filter_claim: String,
    /// `amr` values that prove a multi-factor login.
    #[serde(deserialize_with = "string_list")]
    pub mfa_amr_values: Vec<String>,
    /// `acr` values that prove a multi-factor login.
    #[serde(deserialize_with = "string_list")]
    pub mfa_acr_values: Vec<String>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        let d = agentdb_orchestrator::security::OidcSettings::new("", vec![]);
        OidcConfig {
            enabled: false,
            issuer: String::new(),
            audience: Vec::new(),
            jwks_file: String::new(),
            jwks_url: String::new(),
            jwks_refresh_secs: d.jwks_refresh.as_secs(),
            jwks_max_age_secs: d.jwks_max_age.as_secs(),
            jwks_timeout_ms: d.http_timeout.as_millis() as u64,
            algorithms: d.algorithms.iter().map(|a| format!("{a:?}")).collect(),
            leeway_secs: d.leeway_secs,
            principal_claim: d.principal_claim,
            role_claim: d.role_claim,
            default_role: String::new(),
            collections_claim: d.collections_claim,
            row_filter_claim: String::new(),
            mfa_amr_values: d.mfa_amr_values,
            mfa_acr_values: d.mfa_acr_values,
        }
    }
}

impl OidcConfig {
    /// The verifier's settings; refuses `none`/HS* algorithms and unknown roles.
    pub fn settings(
        &self,
        roles: &std::sync::Arc<agentdb_orchestrator::security::RoleTable>,
    ) -> Result<agentdb_orchestrator::security::OidcSettings> {
        use agentdb_orchestrator::security::oidc;
        let e = |e: agentdb_orchestrator::security::Error| anyhow::anyhow!("security.oidc: {e}");
        let nonempty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let mut s = oidc::OidcSettings::new(self.issuer.trim(), self.audience.clone());
        s.jwks_file = nonempty(&self.jwks_file).map(PathBuf::from);
        s.jwks_url = nonempty(&self.jwks_url);
        s.jwks_refresh = Duration::from_secs(self.jwks_refresh_secs);
        s.jwks_max_age = Duration::from_secs(self.jwks_max_age_secs.max(1));
        s.http_timeout = Duration::from_millis(self.jwks_timeout_ms.max(1));
        s.algorithms = oidc::parse_algorithms(&self.algorithms).map_err(e)?;
        s.leeway_secs = self.leeway_secs;
        s.principal_claim = self.principal_claim.trim().to_string();
        s.role_claim = self.role_claim.trim().to_string();
        s.default_role = nonempty(&self.default_role).map(|r| roles.resolve(&r)).transpose().map_err(e)?;
        s.roles = roles.clone();
        s.collections_claim = self.collections_claim.trim().to_string();
        s.row_filter_claim = nonempty(&self.row_filter_claim);
        s.mfa_amr_values = self.mfa_amr_values.clone();
        s.mfa_acr_values = self.mfa_acr_values.clone();
        Ok(s)
    }
}

/// A list of strings, given as a TOML array or as one comma-separated string (what
/// `--set key=a,b` and environment variables produce).
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
        OneOrMany::Many(v) => v,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Seal the write buffer into an indexed segment at this many rows.
    pub flush_rows: usize,
    /// ...or once it has held rows for this long.
    pub flush_interval_secs: f64,
    /// During a bulk load, full buffers are sealed without an index until this many
    /// rows (at most 10 × flush_rows) wait, searched exactly meanwhile; they are indexed
    /// together, once, when the load pauses, on flush/optimize, or at the cap. 0 = index
    /// every flush.
    pub index_defer_rows: usize,
    /// How often the background worker looks for flush and compaction work.
    pub maintenance_interval_ms: u64,
    /// Merge segments when a collection has more than this many.
    pub max_segments: usize,
    /// Rewrite a segment once this share of its rows is deleted.
    pub compact_deleted_ratio: f64,
    /// Encryption at rest (AES-256-GCM): a file holding the 32-byte master key as 64 hex
    /// characters (or 32 raw bytes). Empty = not encrypted, unless AGENTDB_ENCRYPTION_KEY
    /// (64 hex characters) is set. A data directory created with a key needs it to open.
    pub encryption_key_file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// HNSW efSearch for every HNSW index.
    pub hnsw_ef_search: usize,
    /// HNSW efConstruction used when segments are indexed.
    pub hnsw_ef_construction: usize,
    /// Default IVF nprobe (requests may override).
    pub ivf_nprobe: usize,
    /// Search exactly when at most this many rows of a segment are candidates.
    pub exact_threshold: usize,
    /// What HNSW graph walks read: `fp32` (the stored rows) or `fp16` (a half-float copy
    /// of each HNSW segment's rows in memory, half the vectors' size again: faster walks
    /// over large segments; hits are re-scored from the float rows, so scores are the
    /// same).
    pub hnsw_walk: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest gRPC message accepted (bytes).
    pub max_message_bytes: usize,
    /// Items per upsert, ids per get/delete, queries per batch search.
    pub max_batch: usize,
    pub max_payload_bytes: usize,
    pub max_payload_depth: usize,
    pub max_top_k: usize,
    pub max_id_len: usize,
    /// CPU-bound requests running at once (0 = 2 × cores).
    pub max_concurrent: usize,
    /// Requests allowed to wait for a slot; more get RESOURCE_EXHAUSTED.
    pub max_queued: usize,
    /// Waiting requests are served round-robin across tenants (principal id such as
    /// `key:ab12…`, or `conn:IP:PORT` without authentication); a tenant named here gets this
    /// many turns per round instead of 1. The encoders' batchers use the same weights: a
    /// tenant's share of encoder (and GPU) time when several are waiting.
    pub tenant_weights: std::collections::HashMap<String, u32>,
    /// Images (ingested or queries) above this many pixels are refused from their header,
    /// before decoding (decompression bombs).
    pub max_image_pixels: u64,
    /// Audio (ingested or queries) longer than this many seconds is refused.
    pub max_audio_seconds: f64,
    /// Video longer than this many seconds is refused (checked from the header).
    pub max_video_seconds: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./agentdb-data"),
            listen: DEFAULT_LISTEN.into(),
            http_listen: DEFAULT_HTTP_LISTEN.into(),
            shutdown_delay_ms: 0,
            log_format: "auto".into(),
            log_level: "info".into(),
            log_requests: "sampled".into(),
            device: "auto".into(),
            storage: StorageConfig::default(),
            search: SearchConfig::default(),
            limits: LimitsConfig::default(),
            models: ModelsConfig::default(),
            ingest: IngestConfig::default(),
            security: SecurityConfig::default(),
            alerts: AlertsConfig::default(),
            telemetry: TelemetryConfig::default(),
            debug: DebugConfig::default(),
            gpu: GpuConfig::default(),
            orchestration: Default::default(),
            workflows: Default::default(),
            a2a: A2aConfig::default(),
            cluster: ClusterSection::default(),
            ui: UiConfig::default(),
            edge: EdgeSection::default(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        let d = agentdb_engine::CollectionOptions::default();
        StorageConfig {
            flush_rows: d.flush_rows,
            flush_interval_secs: d.flush_interval.as_secs_f64(),
            index_defer_rows: d.index_defer_rows,
            maintenance_interval_ms: 500,
            max_segments: d.max_segments,
            compact_deleted_ratio: d.compact_deleted_ratio,
            encryption_key_file: String::new(),
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        let d = agentdb_engine::CollectionOptions::default();
        SearchConfig {
            hnsw_ef_search: d.tuning.hnsw_ef_search,
            hnsw_ef_construction: d.tuning.hnsw_ef_construction,
            ivf_nprobe: d.tuning.ivf_nprobe,
            exact_threshold: d.exact_threshold,
            hnsw_walk: if d.tuning.hnsw_walk_f16 { "fp16" } else { "fp32" }.into(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let d = agentdb_engine::Limits::default();
        LimitsConfig {
            max_message_bytes: 64 << 20,
            max_batch: d.max_batch,
            max_payload_bytes: d.max_payload_bytes,
            max_payload_depth: d.max_payload_depth,
            max_top_k: d.max_top_k,
            max_id_len: d.max_id_len,
            max_concurrent: 0,
            max_queued: 1024,
            tenant_weights: Default::default(),
            max_image_pixels: 50_000_000,
            max_audio_seconds: 3600.0,
            max_video_seconds: 3600.0,
        }
    }
}

fn parse_scalar(raw: &str) -> toml::Value {
    if let Ok(i) = raw.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    if let Ok(f) = raw.parse::<f64>() {
        return toml::Value::Float(f);
    }
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(raw.to_string()),
    }
}

fn set_path(table: &mut toml::Table, key: &str, value: toml::Value, known: &toml::Table, origin: &str) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut t = table;
    let mut k = known;
    let free = toml::Value::Table(Default::default());
    for (i, p) in parts.iter().enumerate() {
        // Below a map section (an empty table in the defaults, e.g. `security.roles`) any
        // key is accepted; the section's own type checks it.
        let in_map = k.is_empty() && i > 0;
        let Some(kv) = k.get(*p).or(in_map.then_some(&free)) else {
            bail!("{origin}: unknown configuration key '{key}'")
        };
        if i + 1 == parts.len() {
            // Keep the type of the default where the text is ambiguous ("10" for a string).
            let v = match (kv, value) {
                (toml::Value::String(_), v @ toml::Value::String(_)) => v,
                (toml::Value::String(_), v) => toml::Value::String(match v {
                    toml::Value::Integer(i) => i.to_string(),
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    other => other.to_string(),
                }),
                (toml::Value::Float(_), toml::Value::Integer(i)) => toml::Value::Float(i as f64),
                (_, v) => v,
            };
            t.insert(p.to_string(), v);
            return Ok(());
        }
        let toml::Value::Table(kt) = kv else { bail!("{origin}: '{key}' is not a section") };
        k = kt;
        t = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .context("config section is not a table")?;
    }
    Ok(())
}

/// `AGENTDB_*` environment variables that are not server configuration keys: the CLI's
/// server address and credentials, the config file path, and the set-up's and tools'
/// folders (models, test data, wheel cache, the binary the bench scripts run, the Python
/// the A2A tests run), and the log filter (`AGENTDB_LOG`, read by `telemetry::init_logging`).
const NOT_CONFIG_KEYS: [&str; 13] = [
    "LOG",
    "A2A_PYTHON",
    "URL",
    "CONFIG",
    "API_KEY",
    "CA_CERT",
    "CLIENT_CERT",
    "CLIENT_KEY",
    "MODELS_DIR",
    "TESTDATA",
    "WHEEL_CACHE",
    "BIN",
    // The encryption master key itself (hex), read by `Config::encryption_key`.
    "ENCRYPTION_KEY",
];

impl Config {
    /// Build the effective configuration.
    pub fn load(
        file: Option<&std::path::Path>,
        env: impl Iterator<Item = (String, String)>,
        sets: &[String],
    ) -> Result<Config> {
        let known = toml::Table::try_from(Config::default()).context("defaults serialise")?;
        let mut table = match file {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => toml::Table::new(),
        };
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("AGENTDB_") else { continue };
            if NOT_CONFIG_KEYS.contains(&rest) {
                continue;
            }
            let key = rest.to_ascii_lowercase().replace("__", ".");
            set_path(&mut table, &key, parse_scalar(&v), &known, &format!("environment variable {k}"))?;
        }
        for s in sets {
            let (k, v) = s.split_once('=').with_context(|| format!("--set expects key=value, got '{s}'"))?;
            set_path(&mut table, k.trim(), parse_scalar(v.trim()), &known, "--set")?;
        }
        let cfg: Config = toml::Value::Table(table).try_into().context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<()> {
        if self.storage.flush_rows == 0 {
            bail!("storage.flush_rows must be at least 1");
        }
        // Written so that NaN is refused too.
        if self.storage.flush_interval_secs.is_nan() || self.storage.flush_interval_secs <= 0.0 {
            bail!("storage.flush_interval_secs must be positive");
        }
        if self.limits.max_batch == 0 || self.limits.max_top_k == 0 || self.limits.max_message_bytes < 1024 {
            bail!("limits.max_batch and limits.max_top_k must be positive and limits.max_message_bytes at least 1024");
        }
        if !["all", "sampled"].contains(&self.log_requests.as_str()) {
            bail!("log_requests must be all or sampled, got '{}'", self.log_requests);
        }
        if !["auto", "text", "json"].contains(&self.log_format.as_str()) {
            bail!("log_format must be auto, text or json, got '{}'", self.log_format);
        }
        self.security.validate()?;
        if !["fp32", "fp16"].contains(&self.search.hnsw_walk.as_str()) {
            bail!("search.hnsw_walk must be fp32 or fp16, got '{}'", self.search.hnsw_walk);
        }
        if !["fp16", "fp32"].contains(&self.gpu.precision.as_str()) {
            bail!("gpu.precision must be fp16 or fp32, got '{}'", self.gpu.precision);
        }
        if !["fp32", "tf32", "fp16"].contains(&self.gpu.encoder_math.as_str()) {
            bail!("gpu.encoder_math must be fp32, tf32 or fp16, got '{}'", self.gpu.encoder_math);
        }
        if !(self.gpu.memory_fraction > 0.0 && self.gpu.memory_fraction <= 1.0) {
            bail!("gpu.memory_fraction must be in (0, 1], got {}", self.gpu.memory_fraction);
        }
        if !["auto", "onnx", "candle"].contains(&self.models.text_backend.as_str()) {
            bail!("models.text_backend must be auto, onnx or candle, got '{}'", self.models.text_backend);
        }
        for (agent, src) in &self.workflows.agent_credentials {
            if !(src.starts_with("env:") || src.starts_with("file:")) {
                bail!("workflows.agent_credentials.{agent} must be env:VAR or file:/path (not the token itself)");
            }
        }
        if self.a2a.max_folder_files == 0 {
            bail!("a2a.max_folder_files must be at least 1");
        }
        if self.workflows.max_concurrent_runs == 0 {
            bail!("workflows.max_concurrent_runs must be at least 1");
        }
        Ok(())
    }

    pub fn collection_options(&self) -> agentdb_engine::CollectionOptions {
        agentdb_engine::CollectionOptions {
            flush_rows: self.storage.flush_rows,
            flush_interval: Duration::from_secs_f64(self.storage.flush_interval_secs),
            index_defer_rows: self.storage.index_defer_rows,
            max_segments: self.storage.max_segments.max(1),
            compact_deleted_ratio: self.storage.compact_deleted_ratio,
            exact_threshold: self.search.exact_threshold,
            tuning: agentdb_engine::IndexTuning {
                hnsw_ef_search: self.search.hnsw_ef_search.max(1),
                hnsw_ef_construction: self.search.hnsw_ef_construction.max(1),
                ivf_nprobe: self.search.ivf_nprobe.max(1),
                hnsw_walk_f16: self.search.hnsw_walk == "fp16",
            },
            limits: agentdb_engine::Limits {
                max_batch: self.limits.max_batch,
                max_payload_bytes: self.limits.max_payload_bytes,
                max_payload_depth: self.limits.max_payload_depth,
                max_top_k: self.limits.max_top_k,
                max_id_len: self.limits.max_id_len,
            },
            // Set by Database::open_with_key from the data directory's KEYRING.
            cipher: None,
            // Set by `serve` from the selected device.
            accelerator: None,
        }
    }

    /// The encryption master key: `storage.encryption_key_file` or AGENTDB_ENCRYPTION_KEY
    /// (giving both is refused as ambiguous); `None` when neither is set.
    pub fn encryption_key(&self) -> Result<Option<agentdb_engine::crypto::MasterKey>> {
        use agentdb_engine::crypto::{MasterKey, KEY_ENV};
        let file = self.storage.encryption_key_file.trim();
        let env = MasterKey::from_env().map_err(|e| anyhow::anyhow!("{e}"))?;
        match (file.is_empty(), env) {
            (true, env) => Ok(env),
            (false, None) => {
                Ok(Some(MasterKey::from_file(std::path::Path::new(file)).map_err(|e| anyhow::anyhow!("{e}"))?))
            }
            (false, Some(_)) => {
                bail!("both storage.encryption_key_file and {KEY_ENV} are set; give the encryption key one way")
            }
        }
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render config: {e}"))
    }
}

/// `[orchestration]` in the server configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OrchestrationConfig {
    /// An active agent without a heartbeat for this long becomes unhealthy (agents may
    /// set their own at registration).
    pub heartbeat_timeout_ms: u64,
    /// How often agents' heartbeats are checked.
    pub health_check_interval_ms: u64,
    /// Recent events kept per topic; a subscriber further behind gets `lagged`.
    pub event_ring_capacity: usize,
    /// Events buffered per subscriber stream before the server stops reading for it.
    pub subscriber_buffer: usize,
    /// Event subscriptions held at once; more are refused (RESOURCE_EXHAUSTED).
    pub max_subscriptions: usize,
    /// Queue defaults: deliveries before a message goes to `<queue>.dlq` (0 = never)...
    pub queue_max_attempts: u32,
    /// ...how long a received message stays invisible unless acked...
    pub queue_visibility_timeout_ms: u64,
    /// ...and the most messages one queue holds.
    pub queue_max_messages: u64,
}

impl Default for OrchestrationConfig {
    fn default() -> Self {
        OrchestrationConfig {
            heartbeat_timeout_ms: 30_000,
            health_check_interval_ms: 1_000,
            event_ring_capacity: 1024,
            subscriber_buffer: 64,
            max_subscriptions: 50_000,
            queue_max_attempts: 5,
            queue_visibility_timeout_ms: 30_000,
            queue_max_messages: 100_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_file_env_set() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:1\"\n[storage]\nflush_rows = 5\n").unwrap();
        let env = vec![
            ("AGENTDB_STORAGE__FLUSH_ROWS".to_string(), "7".to_string()),
            ("AGENTDB_URL".to_string(), "http://x".to_string()),
            ("AGENTDB_API_KEY".to_string(), "adb_x_y".to_string()),
            ("AGENTDB_MODELS_DIR".to_string(), "/models".to_string()),
            // The log filter (docs/OPERATIONS.md) is not a configuration key.
            ("AGENTDB_LOG".to_string(), "agentdb_engine=debug,info".to_string()),
            ("OTHER".to_string(), "1".to_string()),
        ];
        let c = Config::load(
            Some(&f),
            env.into_iter(),
            &["search.hnsw_ef_search=99".into(), "storage.flush_interval_secs=2".into()],
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:1");
        assert_eq!(c.storage.flush_rows, 7);
        assert_eq!(c.search.hnsw_ef_search, 99);
        assert_eq!(c.storage.flush_interval_secs, 2.0);
        let err = Config::load(None, std::iter::once(("AGENTDB_NOPE".into(), "1".into())), &[]).unwrap_err();
        assert!(format!("{err:#}").contains("unknown configuration key 'nope'"));
        assert!(Config::load(None, std::iter::empty(), &["storage.flush_rows=0".into()]).is_err());
        let bad = |kv: &str| format!("{:#}", Config::load(None, std::iter::empty(), &[kv.into()]).unwrap_err());
        assert!(bad("models.text_backend=tpu").contains("auto, onnx or candle"));
        assert!(bad("workflows.agent_credentials.peer=adb_secret").contains("env:VAR or file:/path"));
        let c = Config::load(None, std::iter::empty(), &["workflows.agent_credentials.peer=env:X".into()]).unwrap();
        assert_eq!(c.workflows.agent_credentials["peer"], "env:X");
    }

    #[test]
    fn custom_roles_and_quotas() {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            r#"
[security]
storage_quota_bytes = 1000
[security.roles.tenant_a_writer]
write = ["a*"]
read = "shared"
storage_quota_items = 5
[security.roles.ops]
grants = [{ actions = ["admin"], collections = ["*"] }]
[security.tls]
client_roles = { "bot" = "tenant_a_writer" }
"#,
        )
        .unwrap();
        let env = [("AGENTDB_SECURITY__ROLES__AUDITOR__READ".to_string(), "logs*,audit".to_string())];
        let c = Config::load(Some(file.path()), env.into_iter(), &[]).unwrap();
        let t = c.security.role_table().unwrap();
        assert_eq!(t.custom_names(), vec!["auditor", "ops", "tenant_a_writer"]);
        let r = t.resolve("tenant_a_writer").unwrap();
        assert_eq!(r.custom().unwrap().storage_quota_items, Some(5));
        use agentdb_orchestrator::security::Action;
        assert!(r.allows(Action::Write, "alpha") && r.allows(Action::Read, "shared") && !r.allows(Action::Write, "b"));
        assert!(t.resolve("auditor").unwrap().allows(Action::Read, "logs_1"));
        let again: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again.security.roles.len(), 3);
        let sets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (bad, why) in [
            (&["security.oidc.enabled=true", "security.oidc.default_role=nope"][..], "unknown role 'nope'"),
            (&["security.roles.admin.read=*"][..], "built in"),
            (&["security.roles.x.write=a*b"][..], "collection pattern 'a*b'"),
            (&["security.roles.x.storage_quota_items=3"][..], "no grants"),
        ] {
            let err = Config::load(None, std::iter::empty(), &sets(bad)).unwrap_err();
            assert!(format!("{err:#}").contains(why), "{bad:?}: {err:#}");
        }
    }

    #[test]
    fn oidc_and_mfa_settings() {
        let sets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = Config::load(
            None,
            std::iter::empty(),
            &sets(&[
                "security.oidc.enabled=true",
                "security.oidc.issuer=https://idp.example",
                "security.oidc.audience=agentdb,agentdb-test",
                "security.oidc.jwks_file=/etc/agentdb/jwks.json",
                "security.oidc.algorithms=RS256,PS256",
                "security.mfa_required_for=admin,delete",
            ]),
        )
        .unwrap();
        assert!(c.security.auth_enabled() && c.security.auth == "none");
        assert_eq!(c.security.oidc.audience, vec!["agentdb", "agentdb-test"]);
        assert_eq!(c.security.mfa_required_for, vec!["admin", "delete"]);
        let roles = c.security.role_table().unwrap();
        assert_eq!(c.security.oidc.settings(&roles).unwrap().algorithms.len(), 2);
        assert!(Config::default().security.oidc.settings(&roles).unwrap().algorithms.len() == 2, "RS256, ES256");
        // Defaults round-trip through TOML (`agentdb config`), lists included.
        let again: Config = toml::from_str(&c.to_toml()).unwrap();
        assert_eq!(again.security.oidc.algorithms, vec!["RS256", "PS256"]);
        for (bad, why) in [
            ("security.oidc.algorithms=RS256,HS256", "RS/HS confusion"),
            ("security.oidc.algorithms=none", "never accepted"),
            ("security.oidc.default_role=root", "unknown role"),
            ("security.mfa_required_for=admin,delet", "unknown action 'delet'"),
        ] {
            let err = Config::load(None, std::iter::empty(), &sets(&["security.oidc.enabled=true", bad])).unwrap_err();
            assert!(format!("{err:#}").contains(why), "{bad}: {err:#}");
        }
    }

    #[test]
    fn audit_checkpoint_keys() {
        let sets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = Config::load(None, std::iter::empty(), &[]).unwrap();
        assert!(!c.security.audit_checkpoints_enabled().unwrap(), "off by default");
        assert_eq!((c.security.audit_checkpoint_every_records, c.security.audit_checkpoint_every_secs), (1000, 60));
        let both = ["security.audit_checkpoint_file=/worm/ck.jsonl", "security.audit_checkpoint_key_file=/etc/k.hex"];
        let c = Config::load(
            None,
            std::iter::empty(),
            &sets(&[both[0], both[1], "security.audit_checkpoint_every_records=5"]),
        )
        .unwrap();
        assert!(c.security.audit_checkpoints_enabled().unwrap());
        assert_eq!(c.security.audit_checkpoint_every_records, 5);
        let env = [("AGENTDB_SECURITY__AUDIT_CHECKPOINT_EVERY_SECS".to_string(), "7".to_string())];
        let c = Config::load(None, env.into_iter(), &sets(&both)).unwrap();
        assert_eq!(c.security.audit_checkpoint_every_secs, 7);
        for (set, why) in [
            (&both[..1], "audit_checkpoint_key_file is empty"),
            (&both[1..], "audit_checkpoint_file is empty"),
            (&[both[0], both[1], "security.audit=false"][..], "needs the audit log"),
            (
                &[
                    both[0],
                    both[1],
                    "security.audit_checkpoint_every_records=0",
                    "security.audit_checkpoint_every_secs=0",
                ][..],
                "both 0",
            ),
        ] {
            let err = Config::load(None, std::iter::empty(), &sets(set)).unwrap_err();
            assert!(format!("{err:#}").contains(why), "{set:?}: {err:#}");
        }
    }
}
