//! NATS for the cluster tests: a JetStream cluster of nats-server processes on loopback,
//! started and stopped by the test, and AgentDB nodes joined to it.

use super::Server;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// nats-server from the set-up (.ci/setup.sh), or NATS_SERVER.
pub fn nats_bin() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/agentdb/bin/nats-server")
    })
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A JetStream cluster of `n` nats-server processes on loopback.
pub struct Nats {
    pub procs: Vec<Child>,
    pub urls: Vec<String>,
    pub dir: std::path::PathBuf,
    /// (client, cluster route, HTTP monitoring) ports of each server.
    pub ports: Vec<(u16, u16, u16)>,
}

impl Nats {
    pub fn start(dir: &std::path::Path, n: usize) -> Nats {
        let bin = nats_bin();
        assert!(
            std::path::Path::new(&bin).exists(),
            "the cluster tests need nats-server at {bin} (installed by .ci/setup.sh, or set NATS_SERVER)"
        );
        let ports: Vec<(u16, u16, u16)> = (0..n).map(|_| (free_port(), free_port(), free_port())).collect();
        let urls: Vec<String> = ports.iter().map(|(p, _, _)| format!("nats://127.0.0.1:{p}")).collect();
        let mut nats = Nats { procs: Vec::new(), urls, dir: dir.to_path_buf(), ports };
        for i in 0..n {
            let child = nats.spawn(i);
            nats.procs.push(child);
        }
        for i in 0..n {
            nats.wait_up(i);
        }
        nats
    }

    /// Start server `i` (again: same ports, same JetStream store).
    pub fn spawn(&self, i: usize) -> Child {
        let routes: Vec<String> = self.ports.iter().map(|(_, c, _)| format!("nats://127.0.0.1:{c}")).collect();
        let (p, c, m) = self.ports[i];
        let store = self.dir.join(format!("nats{i}"));
        std::fs::create_dir_all(&store).unwrap();
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(format!("nats{i}.log"))).unwrap();
        Command::new(nats_bin())
            .args(["-a", "127.0.0.1", "-p", &p.to_string(), "-m", &m.to_string(), "-js", "-sd"])
            .arg(&store)
            .args(["-n", &format!("nats{i}"), "--cluster_name", "agentdb-test"])
            .args(["--cluster", &format!("nats://127.0.0.1:{c}"), "--routes", &routes.join(",")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server")
    }

    /// Wait until server `i` reports itself healthy (`/healthz`: JetStream enabled and
    /// its streams and consumers current with their leaders) — as a rolling restart
    /// does before it stops the next server; one fault at a time is what R3 tolerates.
    pub fn wait_healthy(&self, i: usize) {
        let m = self.ports[i].2;
        let t = Instant::now();
        loop {
            let (status, body) = if std::net::TcpStream::connect(("127.0.0.1", m)).is_ok() {
                let (status, _, body) = super::http_call(&format!("127.0.0.1:{m}"), "GET", "/healthz", None, &[]);
                (status, body)
            } else {
                (0, "monitoring port not open".to_string())
            };
            if status == 200 {
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "nats-server {i} not healthy after 60 s: {status} {body}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn wait_up(&self, i: usize) {
        let p = self.ports[i].0;
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
            assert!(t.elapsed() < Duration::from_secs(20), "nats-server on {p} did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn kill9(&mut self, i: usize) {
        let _ = self.procs[i].kill();
        let _ = self.procs[i].wait();
    }

    pub fn restart(&mut self, i: usize) {
        self.procs[i] = self.spawn(i);
        self.wait_up(i);
        self.wait_healthy(i);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// A standalone nats-server started with the configuration `conf` (written to
/// `dir/nats.conf`, log in `dir/nats.log`), once it listens on `port`.
pub fn standalone(dir: &std::path::Path, conf: &str, port: u16) -> Child {
    std::fs::write(dir.join("nats.conf"), conf).unwrap();
    let log = std::fs::File::create(dir.join("nats.log")).unwrap();
    let child = Command::new(nats_bin())
        .args(["-c", dir.join("nats.conf").to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start nats-server");
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "nats-server did not start: {}",
            std::fs::read_to_string(dir.join("nats.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// An AgentDB node joined to `nats` (every server), heartbeats every 200 ms.
pub fn node(data: &std::path::Path, nats: &Nats, id: &str) -> Server {
    node_with(data, &nats.urls, id, &[])
}

/// A node that knows only the NATS servers `urls`.
pub fn node_on(data: &std::path::Path, urls: &[String], id: &str) -> Server {
    node_with(data, urls, id, &[])
}

/// A node on the NATS servers `urls` with more `agentdb serve` arguments.
pub fn node_with(data: &std::path::Path, urls: &[String], id: &str, extra: &[&str]) -> Server {
    let urls = urls.join(",");
    let mut args = vec![
        "--cluster",
        &urls,
        "--node-id",
        id,
        "--set",
        "cluster.heartbeat_ms=200",
        "--set",
        "cluster.node_ttl_ms=1500",
    ];
    args.extend_from_slice(extra);
    Server::start(data, &args)
}
