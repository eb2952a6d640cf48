//! Edge sync start-up (`[edge]`, docs/EDGE.md): the synced collections from the
//! configuration, an edge's own leaf nats-server (its JetStream domain named after the
//! node, a leaf-node connection to the hub), and `agentdb_edge::Edge` on top.

use crate::config::EdgeSection;
use agentdb_edge::{change::VectorEncoding, merge::Policy, Direction, EdgeConfig, Role, SyncCollection};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An edge's own leaf nats-server, stopped with the server (and by the kernel should the
/// server die first).
pub struct LeafServer {
    child: Child,
}

impl Drop for LeafServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The synced collections the section names.
pub fn collections(e: &EdgeSection) -> Result<Vec<SyncCollection>> {
    let mut out: BTreeMap<String, SyncCollection> = BTreeMap::new();
    for c in &e.collections {
        let (name, dir) = c.split_once(':').unwrap_or((c.as_str(), "both"));
        let direction = match dir.trim() {
            "both" | "" => Direction::Both,
            "up" => Direction::Up,
            "down" => Direction::Down,
            other => bail!("edge.collections: '{c}': direction '{other}' (both, up or down)"),
        };
        let name = name.trim().to_string();
        agentdb_engine::validate_name("edge.collections", &name).map_err(|e| anyhow::anyhow!("{e}"))?;
        out.insert(
            name.clone(),
            SyncCollection { name, direction, partition_field: None, only: None, policies: Default::default() },
        );
    }
    let find = |out: &mut BTreeMap<String, SyncCollection>, key: &str, name: &str| -> Result<()> {
        if !out.contains_key(name.trim()) {
            bail!("{key}: '{name}' is not in edge.collections");
        }
        Ok(())
    };
    for p in &e.partition {
        let Some((name, field)) = p.split_once(':') else { bail!("edge.partition: '{p}' is not NAME:FIELD") };
        find(&mut out, "edge.partition", name)?;
        out.get_mut(name.trim()).expect("checked").partition_field = Some(field.trim().to_string());
    }
    for o in &e.only {
        let Some((name, value)) = o.split_once(':') else { bail!("edge.only: '{o}' is not NAME:VALUE") };
        find(&mut out, "edge.only", name)?;
        let sc = out.get_mut(name.trim()).expect("checked");
        if sc.partition_field.is_none() {
            bail!("edge.only: '{o}': collection '{}' has no edge.partition field", sc.name);
        }
        if sc.direction == Direction::Up {
            bail!("edge.only: '{o}': collection '{}' only goes up; there is nothing to mirror", sc.name);
        }
        sc.only = Some(agentdb_edge::partition_token(Some(&serde_json::Value::String(value.trim().to_string()))));
    }
    for m in &e.merge {
        let parsed = m.split_once('=').and_then(|(l, p)| Some((l.split_once('.')?, Policy::parse(p.trim())?)));
        let Some(((name, field), policy)) = parsed else { bail!("edge.merge: '{m}' is not NAME.FIELD=max|union") };
        find(&mut out, "edge.merge", name)?;
        out.get_mut(name.trim()).expect("checked").policies.insert(field.trim().to_string(), policy);
    }
    Ok(out.into_values().collect())
}

/// The cached collections the section names (`NAME:BYTES`).
pub fn caches(e: &EdgeSection) -> Result<Vec<agentdb_edge::cache::CacheSpec>> {
    e.cache
        .iter()
        .map(|c| {
            let Some((name, size)) = c.split_once(':') else {
                bail!("edge.cache: '{c}' is not NAME:BYTES (catalog:64MiB)")
            };
            let budget = agentdb_edge::cache::parse_bytes(size)
                .with_context(|| format!("edge.cache: '{c}': '{size}' is not a size (65536, 64KiB, 64MiB, 2GiB)"))?;
            agentdb_engine::validate_name("edge.cache", name.trim()).map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(agentdb_edge::cache::CacheSpec { name: name.trim().to_string(), budget })
        })
        .collect()
}

fn nats_server_bin(e: &EdgeSection) -> PathBuf {
    if !e.nats_server.trim().is_empty() {
        return PathBuf::from(e.nats_server.trim());
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/agentdb/bin/nats-server")
    })
}

fn quoted(p: &Path) -> String {
    serde_json::Value::String(p.display().to_string()).to_string()
}

/// Start the edge's leaf nats-server: JetStream domain = node id, its store under
/// `dir`, a compressed leaf-node connection to the hub. Returns it and its client URL.
fn start_leaf(e: &EdgeSection, node: &str, dir: &Path) -> Result<(LeafServer, String)> {
    if e.hub.trim().is_empty() {
        bail!("edge: give the hub's leaf-node URL (--hub nats-leaf://HOST:7422) or a running local leaf server (edge.nats_url)");
    }
    let port =
        if e.nats_port == 0 { std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port() } else { e.nats_port };
    std::fs::create_dir_all(dir.join("jetstream")).with_context(|| format!("{}", dir.display()))?;
    let compression = match e.compression.trim() {
        c @ ("s2_auto" | "s2_fast" | "s2_better" | "s2_best" | "off") => c,
        other => bail!("edge.compression: '{other}' (s2_auto, s2_fast, s2_better, s2_best or off)"),
    };
    let mut remote =
        format!("url: {}\n      compression: {compression}", serde_json::Value::String(e.hub.trim().into()));
    if !e.credentials.trim().is_empty() {
        remote.push_str(&format!("\n      credentials: {}", quoted(Path::new(e.credentials.trim()))));
    }
    let mut tls = Vec::new();
    if !e.tls_ca.trim().is_empty() {
        tls.push(format!("ca_file: {}", quoted(Path::new(e.tls_ca.trim()))));
    }
    match (e.tls_cert.trim(), e.tls_key.trim()) {
        ("", "") => {}
        (c, k) if !c.is_empty() && !k.is_empty() => {
            tls.push(format!("cert_file: {}", quoted(Path::new(c))));
            tls.push(format!("key_file: {}", quoted(Path::new(k))));
        }
        _ => bail!("edge.tls_cert and edge.tls_key go together (the leaf link's client certificate and its key)"),
    }
    if !tls.is_empty() {
        remote.push_str(&format!("\n      tls: {{ {} }}", tls.join(", ")));
    }
    let conf = format!(
        "# Written by agentdb serve --edge at every start (docs/EDGE.md).\n\
         server_name: {node}\nlisten: 127.0.0.1:{port}\n\
         jetstream {{\n  store_dir: {}\n  domain: {node}\n}}\n\
         leafnodes {{\n  reconnect: 1\n  remotes: [\n    {{\n      {remote}\n    }}\n  ]\n}}\n",
        quoted(&dir.join("jetstream"))
    );
    let conf_path = dir.join("leaf.conf");
    std::fs::write(&conf_path, conf).with_context(|| format!("{}", conf_path.display()))?;
    let bin = nats_server_bin(e);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("leaf.log"))?;
    let mut cmd = Command::new(&bin);
    cmd.arg("-c").arg(&conf_path).stdout(Stdio::null()).stderr(log);
    // Stopped by the kernel if this process dies without dropping it.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn().with_context(|| {
        format!(
            "edge: cannot start the leaf nats-server {} (edge.nats_server; .ci/setup.sh installs one)",
            bin.display()
        )
    })?;
    let mut leaf = LeafServer { child };
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(st) = leaf.child.try_wait()? {
            bail!(
                "edge: the leaf nats-server exited ({st}): {}",
                std::fs::read_to_string(dir.join("leaf.log")).unwrap_or_default().lines().last().unwrap_or_default()
            );
        }
        if t.elapsed() > Duration::from_secs(20) {
            bail!("edge: the leaf nats-server did not listen on 127.0.0.1:{port} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!(port, hub = %e.hub, domain = %node, "edge: leaf nats-server started");
    Ok((leaf, format!("nats://127.0.0.1:{port}")))
}

/// Start edge sync as the section says (None when it is off).
pub async fn start(
    e: &EdgeSection,
    data_dir: &Path,
    db: std::sync::Arc<agentdb_engine::Database>,
) -> Result<Option<(std::sync::Arc<agentdb_edge::Edge>, Option<LeafServer>)>> {
    let role = match e.role.trim() {
        "" => return Ok(None),
        "edge" => Role::Edge,
        "hub" => Role::Hub,
        other => bail!("edge.role: '{other}' (edge or hub)"),
    };
    let node = if e.node_id.trim().is_empty() {
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "edge".into())
    } else {
        e.node_id.trim().to_string()
    };
    let encoding = VectorEncoding::parse(e.vector_encoding.trim())
        .with_context(|| format!("edge.vector_encoding: '{}' (f32, f16 or i8)", e.vector_encoding))?;
    let collections = collections(e)?;
    let caches = caches(e)?;
    let dir = data_dir.join("edge");
    let (leaf, urls) = match (role, e.nats_url.is_empty()) {
        (Role::Edge, true) => {
            let (leaf, url) = start_leaf(e, &node, &dir.join("nats"))?;
            (Some(leaf), vec![url])
        }
        (Role::Hub, true) => bail!("edge.role = hub needs the hub's NATS server (--edge-hub nats://HOST:4222)"),
        (_, false) => (None, e.nats_url.clone()),
    };
    let cfg = EdgeConfig {
        role,
        node_id: node,
        nats_urls: urls,
        credentials: match (role, leaf.is_some()) {
            // An edge's own leaf server is local and open; the credentials are its link's.
            (Role::Edge, true) => None,
            _ => Some(e.credentials.trim()).filter(|s| !s.is_empty()).map(Into::into),
        },
        hub_domain: e.hub_domain.trim().to_string(),
        collections,
        caches,
        encoding,
        dir,
        clock_interval: Duration::from_millis(e.clock_interval_ms.max(100)),
    };
    let edge = agentdb_edge::Edge::start(cfg, db).await.map_err(|e| anyhow::anyhow!("edge sync: {e}"))?;
    Ok(Some((edge, leaf)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_names_collections_directions_partitions_and_policies() {
        let e = EdgeSection {
            collections: vec!["products".into(), "orders:down".into(), "logs:up".into()],
            partition: vec!["orders:store_id".into()],
            only: vec!["orders:17".into()],
            merge: vec!["products.stock=max".into(), "products.tags=union".into()],
            ..Default::default()
        };
        let c = collections(&e).unwrap();
        let by: BTreeMap<&str, &SyncCollection> = c.iter().map(|c| (c.name.as_str(), c)).collect();
        assert_eq!(by["orders"].direction, Direction::Down);
        assert_eq!(by["orders"].only.as_deref(), Some("17"));
        assert_eq!(by["logs"].direction, Direction::Up);
        assert_eq!(by["products"].policies.len(), 2);
        let c = caches(&EdgeSection { cache: vec!["catalog:64KiB".into()], ..Default::default() }).unwrap();
        assert_eq!((c[0].name.as_str(), c[0].budget), ("catalog", 65536));
        for bad in ["catalog", "catalog:lots"] {
            assert!(caches(&EdgeSection { cache: vec![bad.into()], ..Default::default() }).is_err(), "{bad}");
        }
        for (bad, says) in [
            (EdgeSection { collections: vec!["a:sideways".into()], ..Default::default() }, "direction"),
            (
                EdgeSection { collections: vec!["a".into()], partition: vec!["b:f".into()], ..Default::default() },
                "not in",
            ),
            (
                EdgeSection { collections: vec!["a".into()], only: vec!["a:1".into()], ..Default::default() },
                "no edge.partition",
            ),
            (
                EdgeSection { collections: vec!["a".into()], merge: vec!["a.f=min".into()], ..Default::default() },
                "max|union",
            ),
        ] {
            let err = collections(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
