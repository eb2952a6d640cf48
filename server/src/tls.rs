//! TLS (rustls, ring provider) for the gRPC and HTTP listeners.
//!
//! The accepted TCP streams are wrapped here with tokio-rustls rather than by tonic, so
//! that:
//! - the certificate and key can be **reloaded without a restart**: the server config's
//!   [`ResolvesServerCert`] hands out whatever [`CertifiedKey`] the reload task last
//!   installed, so each new handshake sees the current certificate while established
//!   connections keep theirs;
//! - a verified **mTLS client certificate** becomes a [`Principal`] once per connection
//!   (subject CN, else the first SAN; role from `security.tls.client_roles`), exposed to
//!   the gRPC edge through [`TlsConnectInfo`] in the request extensions.
//!
//! Handshakes run on their own tasks (bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or
//! silent client never holds up the accept loop.

use crate::config::TlsConfig;
use agentdb_orchestrator::security::{AuthMethod, Principal, Role};
use anyhow::{anyhow, Context, Result};
use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A client that has not finished its TLS handshake by then is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server's TLS state: the current certificate (swapped by the reload task) and the
/// two rustls configs built on it, one per listener.
pub struct Tls {
    certs: Arc<CertStore>,
    /// gRPC: ALPN `h2`, client certificates verified against `client_ca_file` if set.
    grpc: Arc<rustls::ServerConfig>,
    /// HTTP (/metrics, /healthz): ALPN `http/1.1`, no client certificates asked for.
    http: Arc<rustls::ServerConfig>,
    /// Client-certificate identities -> roles.
    roles: Arc<ClientRoles>,
    reload_every: Duration,
}

impl Tls {
    /// Load the certificate, key and client CA named in `cfg` (an error names the file at
    /// fault). `None` when TLS is not configured.
    pub fn from_config(
        cfg: &TlsConfig,
        role_table: &agentdb_orchestrator::security::RoleTable,
    ) -> Result<Option<Arc<Tls>>> {
        if !cfg.enabled() {
            return Ok(None);
        }
        cfg.validate(role_table)?;
        let provider = provider();
        let cert_path = PathBuf::from(cfg.cert_file.trim());
        let key_path = PathBuf::from(cfg.key_file.trim());
        let (key, stamp) = load_certified_key(&cert_path, &key_path, &provider)?;
        log_certificate("TLS certificate loaded", &key);
        let certs = Arc::new(CertStore {
            current: RwLock::new(Arc::new(key)),
            cert_path,
            key_path,
            stamp: parking_lot::Mutex::new(stamp),
            provider: provider.clone(),
        });

        let versions = rustls::DEFAULT_VERSIONS;
        let grpc_builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .context("TLS protocol versions")?;
        let grpc_builder = if cfg.client_ca_file.trim().is_empty() {
            grpc_builder.with_no_client_auth()
        } else {
            let ca = Path::new(cfg.client_ca_file.trim());
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| anyhow!("security.tls.client_ca_file {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = if cfg.client_cert_required() { verifier } else { verifier.allow_unauthenticated() };
            let verifier =
                verifier.build().map_err(|e| anyhow!("security.tls.client_ca_file {}: {e}", ca.display()))?;
            grpc_builder.with_client_cert_verifier(verifier)
        };
        let mut grpc = grpc_builder.with_cert_resolver(certs.clone());
        grpc.alpn_protocols = vec![b"h2".to_vec()];
        let mut http = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        http.alpn_protocols = vec![b"http/1.1".to_vec()];

        let mut roles = BTreeMap::new();
        for (who, role) in &cfg.client_roles {
            roles.insert(
                who.clone(),
                role_table.resolve(role).map_err(|e| anyhow!("security.tls.client_roles.{who}: {e}"))?,
            );
        }
        let default_role =
            role_table.resolve(cfg.default_role()).map_err(|e| anyhow!("security.tls.client_default_role: {e}"))?;
        tracing::info!(
            client_ca = %cfg.client_ca_file,
            client_auth = if cfg.client_ca_file.trim().is_empty() { "off" } else if cfg.client_cert_required() { "required" } else { "optional" },
            reload_secs = cfg.reload_secs,
            "TLS enabled on the gRPC and HTTP listeners"
        );
        Ok(Some(Arc::new(Tls {
            certs,
            grpc: Arc::new(grpc),
            http: Arc::new(http),
            roles: Arc::new(ClientRoles { roles, default_role }),
            reload_every: Duration::from_secs(cfg.reload_secs),
        })))
    }

    /// Poll the certificate and key files every `reload_secs` and install a changed pair;
    /// a pair that does not load (half-written, bad PEM, key not matching) keeps the old
    /// certificate and is logged as an error. Runs until the runtime stops.
    pub fn spawn_reload(self: &Arc<Self>) {
        if self.reload_every.is_zero() {
            return;
        }
        let (certs, every) = (self.certs.clone(), self.reload_every);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let c = certs.clone();
                let _ = tokio::task::spawn_blocking(move || c.reload_if_changed()).await;
            }
        });
    }

    /// Accept TCP connections on `listener` and hand out gRPC TLS streams (ALPN h2, client
    /// certificates checked) as tonic's `serve_with_incoming*` wants them. The accept loop
    /// stops once the stream is dropped.
    pub fn grpc_incoming(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsIo>> {
        let rx = accept_loop(listener, self.grpc.clone(), Some(self.roles.clone()));
        tokio_stream::wrappers::ReceiverStream::new(rx)
    }

    /// An `axum::serve` listener that serves TLS (ALPN http/1.1) on `listener`.
    pub fn http_listener(self: &Arc<Self>, listener: TcpListener) -> Result<TlsListener> {
        let local = listener.local_addr()?;
        Ok(TlsListener { rx: accept_loop(listener, self.http.clone(), None), local })
    }
}

/// Stamp of the certificate and key files (modification times and sizes), to notice a change.
type Stamp = Option<(SystemTime, u64, SystemTime, u64)>;

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let c = std::fs::metadata(cert).ok()?;
    let k = std::fs::metadata(key).ok()?;
    Some((c.modified().ok()?, c.len(), k.modified().ok()?, k.len()))
}

/// The current certificate: what every new handshake is served.
#[derive(Debug)]
struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
    cert_path: PathBuf,
    key_path: PathBuf,
    stamp: parking_lot::Mutex<Stamp>,
    provider: Arc<CryptoProvider>,
}

impl CertStore {
    fn reload_if_changed(&self) {
        let now = stamp(&self.cert_path, &self.key_path);
        {
            let mut last = self.stamp.lock();
            if now.is_none() || *last == now {
                return;
            }
            // Remember the files as seen: a broken pair is reported once, and the next
            // change (the fixed file) is tried again.
            *last = now;
        }
        match load_certified_key(&self.cert_path, &self.key_path, &self.provider) {
            Ok((key, _)) => {
                log_certificate("TLS certificate reloaded", &key);
                *self.current.write() = Arc::new(key);
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "TLS certificate reload failed; still serving the previous certificate")
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| anyhow!("cannot read certificate file {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("bad PEM in certificate file {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("certificate file {} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// Load and check a certificate chain and its key (the key must match the leaf).
fn load_certified_key(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<(CertifiedKey, Stamp)> {
    let before = stamp(cert, key);
    let chain = read_certs(cert).context("security.tls.cert_file")?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow!("security.tls.key_file: cannot read a PEM private key from {}: {e}", key.display()))?;
    let ck = CertifiedKey::from_der(chain, der, provider).map_err(|e| {
        anyhow!("security.tls: the key in {} does not fit the certificate in {}: {e}", key.display(), cert.display())
    })?;
    Ok((ck, before))
}

fn log_certificate(what: &str, key: &CertifiedKey) {
    let Some(leaf) = key.cert.first() else { return };
    match x509_parser::parse_x509_certificate(leaf) {
        Ok((_, c)) => {
            let v = c.validity();
            if !v.is_valid() {
                tracing::warn!(subject = %c.subject(), not_after = %v.not_after, "the TLS certificate is not valid now");
            }
            tracing::info!(subject = %c.subject(), serial = %c.raw_serial_as_string(), not_after = %v.not_after, "{what}");
        }
        Err(e) => tracing::warn!(error = %e, "{what} (cannot parse it to log its subject)"),
    }
}

/// Roles of client-certificate identities.
#[derive(Debug)]
struct ClientRoles {
    roles: BTreeMap<String, Role>,
    default_role: Role,
}

impl ClientRoles {
    /// The principal of a verified client certificate: its subject CN, else its first SAN.
    fn principal(&self, leaf: &CertificateDer<'_>) -> Option<Principal> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        let cn = cert.subject().iter_common_name().next().and_then(|a| a.as_str().ok()).map(str::to_string);
        let name = cn.or_else(|| {
            use x509_parser::extensions::GeneralName;
            let san = cert.subject_alternative_name().ok()??;
            san.value.general_names.iter().find_map(|g| match g {
                GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => Some(s.to_string()),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).ok()?).to_string()),
                    16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).ok()?).to_string()),
                    _ => None,
                },
                _ => None,
            })
        })?;
        Some(Principal {
            id: format!("mtls:{name}"),
            role: self.roles.get(&name).cloned().unwrap_or_else(|| self.default_role.clone()),
            name,
            collections: Vec::new(),
            row_filter: None,
            auth: AuthMethod::Mtls { subject: cert.subject().to_string(), issuer: cert.issuer().to_string() },
            mfa: false,
        })
    }
}

/// What a gRPC handler sees of a TLS connection (request extension, like tonic's
/// `TcpConnectInfo` for plain connections). The edge reads `remote_addr` and `client`;
/// the rest is there for handlers that want it.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct TlsConnectInfo {
    pub local_addr: Option<SocketAddr>,
    pub remote_addr: Option<SocketAddr>,
    /// The verified client certificate chain (leaf first), when the client sent one.
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
    /// The identity of that certificate, for authentication at the edge.
    pub client: Option<Arc<Principal>>,
}

/// A server-side TLS stream with its connection info.
pub struct TlsIo {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: TlsConnectInfo,
}

impl tonic::transport::server::Connected for TlsIo {
    type ConnectInfo = TlsConnectInfo;
    fn connect_info(&self) -> TlsConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Accept TCP connections and finish TLS handshakes on their own tasks; completed
/// streams come out of the returned channel. Ends when the receiver is dropped.
fn accept_loop(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    roles: Option<Arc<ClientRoles>>,
) -> tokio::sync::mpsc::Receiver<std::io::Result<TlsIo>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, roles) = (acceptor.clone(), tx.clone(), roles.clone());
            tokio::spawn(async move {
                let local_addr = tcp.local_addr().ok();
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %remote, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(peer = %remote, "TLS handshake timed out");
                        return;
                    }
                };
                let peer_certificates = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| Arc::new(c.iter().map(|c| c.clone().into_owned()).collect::<Vec<_>>()));
                let client = match (&roles, &peer_certificates) {
                    (Some(r), Some(chain)) => chain.first().and_then(|leaf| r.principal(leaf)).map(Arc::new),
                    _ => None,
                };
                let info = TlsConnectInfo { local_addr, remote_addr: Some(remote), peer_certificates, client };
                let _ = tx.send(Ok(TlsIo { inner: tls, info })).await;
            });
        }
    });
    rx
}

/// `axum::serve` listener over TLS streams.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<TlsIo>>,
    local: SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TlsIo, SocketAddr) {
        loop {
            match self.rx.recv().await {
                Some(Ok(io)) => {
                    let addr = io.info.remote_addr.unwrap_or(self.local);
                    return (io, addr);
                }
                Some(Err(_)) => continue,
                // The accept loop only ends once this receiver is gone.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, sans: &[&str]) -> CertificateDer<'static> {
        let mut p = rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        }
        p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().clone()
    }

    #[test]
    fn client_identity_is_the_cn_else_the_first_san_with_its_role() {
        let roles = ClientRoles { roles: [("ops".to_string(), Role::Admin)].into(), default_role: Role::Reader };
        let p = roles.principal(&cert(Some("ops"), &["ops.example"])).unwrap();
        assert_eq!((p.id.as_str(), p.role), ("mtls:ops", Role::Admin));
        assert!(matches!(p.auth, AuthMethod::Mtls { ref subject, .. } if subject.contains("CN=ops")));
        let p = roles.principal(&cert(None, &["job.example", "10.0.0.1"])).unwrap();
        assert_eq!((p.id.as_str(), p.role), ("mtls:job.example", Role::Reader));
        let p = roles.principal(&cert(None, &["10.0.0.1"])).unwrap();
        assert_eq!(p.name, "10.0.0.1");
        assert!(roles.principal(&cert(None, &[])).is_none(), "no name, no identity");
    }
}
