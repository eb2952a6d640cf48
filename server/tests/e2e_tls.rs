//! TLS and mTLS through the real binary: certificates minted here with rcgen, the CLI
//! over `https://` with `--ca-cert`, /healthz over https (curl), certificate reload
//! without restart, and client certificates as identities.

mod common;

use common::certs::{ca, leaf, Ca};
use common::{Server, BIN};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Replace a file in one step (as cert managers do), so the reload never sees half of it.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The CLI against `url` with the given environment.
fn cli(url: &str, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).env("AGENTDB_URL", url);
    for v in ["AGENTDB_API_KEY", "AGENTDB_CA_CERT", "AGENTDB_CLIENT_CERT", "AGENTDB_CLIENT_KEY"] {
        c.env_remove(v);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The leaf certificate (DER) the server presents to a new connection at `addr`.
fn served_cert(addr: &str, ca_pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    use std::io::Write;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let tcp = std::net::TcpStream::connect(addr).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    // Drive the handshake to completion.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    let _ = tls.flush();
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let t = Instant::now();
    while !ok() {
        assert!(t.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn tls_grpc_and_http_with_certificate_reload() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    let ca1 = ca("AgentDB Test CA");
    let ca_pem = write(pki, "ca.pem", &ca1.pem());
    let other_ca = write(pki, "other-ca.pem", &ca("Somebody Else's CA").pem());
    let (cert, key, der1) = leaf(&ca1, "agentdb-server-1", &["localhost", "127.0.0.1"], false);
    let cert_file = write(pki, "server.pem", &cert);
    let key_file = write(pki, "server.key", &key);
    let config = write(
        pki,
        "agentdb.toml",
        &format!(
            "[security.tls]\ncert_file = {:?}\nkey_file = {:?}\nreload_secs = 1\n",
            cert_file.display().to_string(),
            key_file.display().to_string()
        ),
    );
    let server =
        Server::start(&pki.join("data"), &["--config", config.to_str().unwrap(), "--set", "http_listen=127.0.0.1:0"]);
    let url = format!("https://{}", server.addr);

    // The CLI trusting the CA (environment, then the flag) creates and lists collections.
    let out = cli(&url, &[("AGENTDB_CA_CERT", &ca_pem)], &["collection", "create", "docs", "--dim", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = Command::new(BIN)
        .args(["--server", &url, "--ca-cert", ca_pem.to_str().unwrap(), "collection", "list"])
        .env_remove("AGENTDB_URL")
        .output()
        .unwrap();
    assert!(out.status.success() && text(&out).contains("docs"), "{}", text(&out));

    // Plaintext to the TLS port, and TLS without trusting the CA, both fail.
    let out = cli(&format!("http://{}", server.addr), &[], &["collection", "list"]);
    assert!(!out.status.success(), "plaintext must fail: {}", text(&out));
    let out = cli(&url, &[("AGENTDB_CA_CERT", &other_ca)], &["collection", "list"]);
    assert!(!out.status.success() && text(&out).contains("UnknownIssuer"), "untrusted certificate: {}", text(&out));
    let out = cli(&url, &[], &["collection", "list"]);
    assert!(!out.status.success(), "the test CA is not a public root: {}", text(&out));

    // /healthz and /metrics over https.
    let http = server.http_addr.clone().expect("http listener");
    let curl = |scheme: &str, path: &str| {
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", ca_pem.to_str().unwrap()])
            .arg(format!("{scheme}://{http}{path}"))
            .output()
            .unwrap()
    };
    let out = curl("https", "/healthz");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok", "{}", text(&out));
    let out = curl("https", "/metrics");
    assert!(out.status.success() && text(&out).contains("agentdb_"), "{}", text(&out));
    assert!(!curl("http", "/healthz").status.success(), "plain HTTP on the TLS port must fail");

    // Reload: a new certificate (other subject and key) is served to new connections,
    // without a restart.
    assert_eq!(served_cert(&server.addr, &ca1.pem()), der1);
    let (cert2, key2, der2) = leaf(&ca1, "agentdb-server-2", &["localhost", "127.0.0.1"], false);
    replace(&key_file, &key2);
    replace(&cert_file, &cert2);
    wait_for("the new certificate", || served_cert(&server.addr, &ca1.pem()) == der2);
    wait_for("the reload log line", || server.log_text().contains("TLS certificate reloaded"));
    assert!(server.log_text().contains("agentdb-server-2"), "the new subject is logged");
    let out = cli(&url, &[("AGENTDB_CA_CERT", &ca_pem)], &["collection", "list"]);
    assert!(out.status.success() && text(&out).contains("docs"), "{}", text(&out));

    // A broken new file keeps the previous certificate and logs an error.
    replace(&cert_file, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    wait_for("the reload error", || server.log_text().contains("TLS certificate reload failed"));
    assert_eq!(served_cert(&server.addr, &ca1.pem()), der2, "still the last good certificate");
    let out = cli(&url, &[("AGENTDB_CA_CERT", &ca_pem)], &["collection", "list"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn mtls_client_certificates_are_identities() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    let ca1 = ca("AgentDB Test CA");
    let ca_pem = write(pki, "ca.pem", &ca1.pem());
    let (cert, key, _) = leaf(&ca1, "agentdb-server", &["localhost", "127.0.0.1"], false);
    let cert_file = write(pki, "server.pem", &cert);
    let key_file = write(pki, "server.key", &key);
    let client = |ca: &Ca, cn: &str| {
        let (c, k, _) = leaf(ca, cn, &[], true);
        (write(pki, &format!("{cn}.pem"), &c), write(pki, &format!("{cn}.key"), &k))
    };
    let ops = client(&ca1, "ops");
    let alice = client(&ca1, "alice");
    let mallory = client(&ca("Mallory CA"), "mallory");
    let config = write(
        pki,
        "agentdb.toml",
        &format!(
            "[security.tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\nclient_auth = \"required\"\n\
             client_roles = {{ ops = \"admin\" }}\n",
            cert_file.display().to_string(),
            key_file.display().to_string(),
            ca_pem.display().to_string()
        ),
    );
    let data = pki.join("data");
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let url = format!("https://{}", server.addr);
    let as_client = |who: Option<&(PathBuf, PathBuf)>, args: &[&str]| {
        let mut env: Vec<(&str, &Path)> = vec![("AGENTDB_CA_CERT", &ca_pem)];
        if let Some((c, k)) = who {
            env.push(("AGENTDB_CLIENT_CERT", c));
            env.push(("AGENTDB_CLIENT_KEY", k));
        }
        cli(&url, &env, args)
    };

    // No client certificate, or one from another CA: refused (with TLS 1.3 the server's
    // refusal arrives after the client's handshake, so the CLI sees the connection close).
    let out = as_client(None, &["collection", "list"]);
    assert!(!out.status.success(), "no client certificate must fail: {}", text(&out));
    let out = as_client(Some(&mallory), &["collection", "list"]);
    assert!(!out.status.success(), "an untrusted client certificate must fail: {}", text(&out));

    // "ops" is mapped to admin, "alice" gets the default role (reader).
    let out = as_client(Some(&ops), &["collection", "create", "docs", "--dim", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = as_client(Some(&alice), &["collection", "list"]);
    assert!(out.status.success() && text(&out).contains("docs"), "{}", text(&out));
    let out = as_client(Some(&alice), &["collection", "create", "mine", "--dim", "3"]);
    assert!(!out.status.success() && text(&out).contains("PermissionDenied"), "{}", text(&out));
    assert!(text(&out).contains("mtls:alice") && text(&out).contains("role reader"), "{}", text(&out));

    // The certificate identities are in the audit log.
    let audit = std::fs::read_to_string(data.join("security/audit.log")).unwrap();
    assert!(audit.contains("mtls:ops") && audit.contains("mtls:alice"), "{audit}");
}

#[test]
fn tls_start_up_errors_and_exposure() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    let ca1 = ca("AgentDB Test CA");
    let ca_pem = write(pki, "ca.pem", &ca1.pem());
    let (cert, key, _) = leaf(&ca1, "agentdb-server", &["127.0.0.1"], false);
    let cert_file = write(pki, "server.pem", &cert);
    let key_file = write(pki, "server.key", &key);
    let garbage = write(pki, "garbage.pem", "this is not PEM\n");
    let serve = |listen: &str, sets: &[String]| {
        let mut c = Command::new(BIN);
        c.args(["serve", "--listen", listen, "--data-dir"]).arg(pki.join("data")).args(["--set", "http_listen="]);
        for s in sets {
            c.args(["--set", s]);
        }
        c.env_remove("AGENTDB_URL");
        // Only a failing start is awaited here.
        c.output().unwrap()
    };
    let tls = |cert: &Path, key: &Path| {
        vec![format!("security.tls.cert_file={}", cert.display()), format!("security.tls.key_file={}", key.display())]
    };

    // A missing file or bad PEM stops the start with the file named.
    let out = serve("127.0.0.1:0", &tls(&pki.join("nope.pem"), &key_file));
    assert!(!out.status.success() && text(&out).contains("nope.pem"), "{}", text(&out));
    let out = serve("127.0.0.1:0", &tls(&cert_file, &garbage));
    assert!(!out.status.success() && text(&out).contains("garbage.pem"), "{}", text(&out));
    let out = serve("127.0.0.1:0", &tls(&garbage, &key_file));
    assert!(!out.status.success() && text(&out).contains("garbage.pem"), "{}", text(&out));
    let (_, other_key, _) = leaf(&ca1, "x", &[], false);
    let other_key = write(pki, "other.key", &other_key);
    let out = serve("127.0.0.1:0", &tls(&cert_file, &other_key));
    assert!(!out.status.success() && text(&out).contains("does not fit"), "{}", text(&out));

    // TLS alone is not authentication: a non-loopback address is still refused.
    let out = serve("0.0.0.0:0", &tls(&cert_file, &key_file));
    assert!(!out.status.success() && text(&out).contains("refusing to listen"), "{}", text(&out));
    // Required client certificates are: the server starts (then is stopped).
    let mut sets = tls(&cert_file, &key_file);
    sets.push(format!("security.tls.client_ca_file={}", ca_pem.display()));
    sets.push("security.tls.client_auth=required".into());
    let mut c = Command::new(BIN);
    c.args(["serve", "--listen", "0.0.0.0:0", "--data-dir"]).arg(pki.join("data2")).args(["--set", "http_listen="]);
    for s in &sets {
        c.args(["--set", s]);
    }
    let log = std::fs::File::create(pki.join("data2.log")).unwrap();
    let mut child = c.env_remove("AGENTDB_URL").stdout(std::process::Stdio::piped()).stderr(log).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        line.starts_with("agentdb listening on 0.0.0.0:"),
        "{line}{}",
        std::fs::read_to_string(pki.join("data2.log")).unwrap_or_default()
    );
}
