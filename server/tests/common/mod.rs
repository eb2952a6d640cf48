//! Starts the real `agentdb` binary on an ephemeral port with a temporary data
//! directory, as a client would find it.
#![allow(dead_code)]

pub mod certs;
pub mod edge;
pub mod nats;

use agentdb_proto::v1;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_agentdb");

pub struct Server {
    pub child: Child,
    pub addr: String,
    pub http_addr: Option<String>,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// Start `agentdb serve` on 127.0.0.1:0 and wait for its "listening" line.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_bin(BIN, data_dir, extra)
    }

    /// [`Server::start`] with another build of the binary (a lean one, for a benchmark).
    pub fn start_bin(bin: &str, data_dir: &Path, extra: &[&str]) -> Server {
        std::fs::create_dir_all(data_dir).unwrap();
        let log = data_dir.with_extension(format!("log{}", rand_suffix()));
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--set", "http_listen="])
            .args(extra)
            .env_remove("AGENTDB_URL")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn agentdb serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let (htx, hrx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("agentdb listening on ") {
                    let _ = tx.send(a.trim().to_string());
                }
                if let Some(a) = line.strip_prefix("agentdb http listening on ") {
                    let _ = htx.send(a.trim().to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
            }
        };
        // The HTTP line, when enabled, is printed before the gRPC one.
        let http_addr = hrx.try_recv().ok();
        Server { child, addr, http_addr, data_dir: data_dir.to_path_buf(), log }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM and wait (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if t.elapsed() > Duration::from_secs(60) {
                self.kill9();
                panic!("server did not exit within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A gRPC channel to this server without credentials; wrap it in any generated client:
    /// `v1::events_client::EventsClient::new(server.channel().await)`.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Channel::from_shared(self.url()).unwrap().connect().await.expect("connect")
    }

    pub async fn clients(
        &self,
    ) -> (
        v1::collections_client::CollectionsClient<tonic::transport::Channel>,
        v1::items_client::ItemsClient<tonic::transport::Channel>,
    ) {
        let ch = self.channel().await;
        (v1::collections_client::CollectionsClient::new(ch.clone()), v1::items_client::ItemsClient::new(ch))
    }

    /// Run the CLI against this server.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN).args(args).env("AGENTDB_URL", self.url()).output().expect("run agentdb cli")
    }

    /// Run the CLI, assert it succeeded, return its stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.cli(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }
}

/// One JSON value per non-empty line (the CLI's `--json` output).
pub fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Steady search traffic in the background: a search of a 4-d vector in `collection`
/// every ~5 ms until [`SearchLoad::stop`] (the alert tests measure latency under it).
pub struct SearchLoad {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

pub fn search_load(
    mut items: v1::items_client::ItemsClient<tonic::transport::Channel>,
    collection: &str,
) -> SearchLoad {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, collection) = (stop.clone(), collection.to_string());
    let task = tokio::spawn(async move {
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = items
                .search(v1::SearchRequest {
                    collection: collection.clone(),
                    vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
                    ..Default::default()
                })
                .await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    SearchLoad { stop, task }
}

impl SearchLoad {
    pub async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// The real photographs `.ci/models.sh --testdata` installs (scikit-image's samples).
pub fn photos() -> PathBuf {
    let d = agentdb_models::registry::testdata_dir().join("photos");
    assert!(d.join("chelsea.png").exists(), "{} is missing: run `bash .ci/models.sh --testdata`", d.display());
    d
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill9();
        }
    }
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn space(name: &str, dim: u32, metric: v1::Metric, index: &str) -> v1::SpaceSpec {
    v1::SpaceSpec { name: name.into(), dim, metric: metric as i32, index: index.into(), ..Default::default() }
}

pub fn item(id: &str, values: Vec<f32>, payload: serde_json::Value) -> v1::Item {
    v1::Item {
        id: id.into(),
        vectors: [(String::new(), v1::Vector { values, ..Default::default() })].into(),
        payload_json: payload.to_string(),
    }
}

/// Small deterministic vector generator (xorshift): no two seeds give the same vector.
pub fn rand_vec(seed: u64, dim: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    (0..dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 20001) as f32 / 10000.0 - 1.0
        })
        .collect()
}

/// An API key as the value of an `authorization: Bearer` header, for authenticated
/// gRPC clients ([`authed`]).
#[derive(Clone)]
pub struct Bearer(pub Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(v) = &self.0 {
            r.metadata_mut().insert("authorization", v.clone());
        }
        Ok(r)
    }
}

/// A channel to `url` that sends `key` (if any) with every call; wrap it in any
/// generated client: `v1::items_client::ItemsClient::new(authed(url, Some(k)).await)`.
pub type Authed = tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>;

pub async fn authed(url: &str, key: Option<&str>) -> Authed {
    let ch = tonic::transport::Channel::from_shared(url.to_string()).unwrap().connect().await.expect("connect");
    let v = key.map(|k| format!("Bearer {k}").parse().expect("an ASCII key"));
    tonic::service::interceptor::InterceptedService::new(ch, Bearer(v))
}

impl Server {
    /// The bootstrap admin key of a server started with `security.auth=api_key`.
    pub fn admin_key(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("security/bootstrap-admin.key"))
            .expect("bootstrap admin key (start the server with --set security.auth=api_key)")
            .trim()
            .to_string()
    }

    /// Run the CLI with an API key.
    pub fn cli_as(&self, key: &str, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .env("AGENTDB_URL", self.url())
            .env("AGENTDB_API_KEY", key)
            .output()
            .expect("run agentdb cli")
    }

    /// [`Server::cli_as`], asserting success; returns stdout.
    pub fn ok_as(&self, key: &str, args: &[&str]) -> Vec<u8> {
        let out = self.cli_as(key, args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// Create an API key through the admin API; returns its secret.
    pub async fn create_key(&self, admin: &str, name: &str, role: &str, scope: &[&str], row_filter: &str) -> String {
        let mut sec = v1::security_client::SecurityClient::new(authed(&self.url(), Some(admin)).await);
        sec.create_key(v1::CreateKeyRequest {
            name: name.into(),
            role: role.into(),
            collections: scope.iter().map(|s| s.to_string()).collect(),
            row_filter: row_filter.into(),
        })
        .await
        .expect("create key")
        .into_inner()
        .secret
    }
}

/// `agentdb serve` on `data` with these arguments and environment, expected to refuse to
/// start: waits (at most 60 s) for it to exit, asserts it failed, returns its stderr.
pub fn serve_refused(data: &Path, extra: &[String], env: &[(&str, &str)]) -> String {
    let err = data.with_extension(format!("refused{}.log", rand_suffix()));
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--set", "http_listen=", "--data-dir"])
        .arg(data)
        .args(extra)
        .env_remove("AGENTDB_URL")
        .env_remove("AGENTDB_ENCRYPTION_KEY")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn agentdb serve");
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("agentdb serve started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    assert!(!status.success(), "exit status {status}: {text}");
    text
}

/// One HTTP/1.1 request to `addr` (POST with `body`, else GET): status, head, body.
pub fn http(addr: &str, path: &str, body: Option<&str>, headers: &[(&str, &str)]) -> (u16, String, String) {
    http_call(addr, if body.is_some() { "POST" } else { "GET" }, path, body, headers)
}

/// One HTTP/1.1 request with any method: status, head, body (SSE chunks reduced to
/// their payload lines).
pub fn http_call(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    http_bytes(addr, method, path, body.map(|b| ("application/json", b.as_bytes())), headers)
}

/// One HTTP/1.1 request with a body of any content type (`(content type, bytes)`):
/// status, head, the body's bytes as sent.
pub fn http_raw(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
) -> (u16, String, Vec<u8>) {
    try_http_raw(addr, method, path, body, headers, None, std::time::Duration::from_secs(120))
        .expect("an HTTP request to the listener")
}

/// [`http_raw`] that returns any I/O failure (refused, reset, timed out) instead of
/// panicking: for probes, where a failure is an answer. `connect`: a connect timeout.
pub fn try_http_raw(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
    connect: Option<std::time::Duration>,
    read: std::time::Duration,
) -> std::io::Result<(u16, String, Vec<u8>)> {
    use std::io::{Read, Write};
    let mut s = match connect {
        Some(t) => std::net::TcpStream::connect_timeout(
            &addr.parse().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            t,
        )?,
        None => std::net::TcpStream::connect(addr)?,
    };
    s.set_read_timeout(Some(read))?;
    let mut req = match body {
        Some((ct, b)) => format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n",
            b.len()
        ),
        None => format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n"),
    };
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body.map_or(&[][..], |(_, b)| b));
    s.write_all(&bytes)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, head, out.get(split + 4..).unwrap_or_default().to_vec()))
}

/// [`http_raw`] with the body as text; chunked bodies (SSE) reduced to their payload lines.
pub fn http_bytes(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<(&str, &[u8])>,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let (status, head, raw) = http_raw(addr, method, path, body, headers);
    let rest = String::from_utf8_lossy(&raw).to_string();
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        rest.lines().filter(|l| l.starts_with("data:") || l.starts_with('{')).collect::<Vec<_>>().join("\n")
    } else {
        rest
    };
    (status, head, body)
}

/// A multipart/form-data body of (name, filename, bytes) parts: (content type, body).
pub fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "agentdb-test-boundary-7f3a";
    let mut body = Vec::new();
    for (name, file, data) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A tool installed by `.ci/setup.sh` in a virtual environment under ~/.cache/agentdb
/// (`venv`/bin/`bin`), asserted present.
pub fn venv_tool(venv: &str, bin: &str) -> PathBuf {
    let home = std::env::var("HOME").expect("HOME");
    let p = Path::new(&home).join(".cache/agentdb").join(venv).join("bin").join(bin);
    assert!(p.exists(), "{} is missing: run `bash .ci/setup.sh`", p.display());
    p
}
