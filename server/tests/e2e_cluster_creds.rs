//! A cluster node that authenticates to NATS with a `.creds` file (issue 21, point 1):
//! NATS's decentralised JWT auth. The test mints an operator, a system account, an
//! application account with JetStream enabled and a user, signs their JWTs with their
//! nkeys (as `nsc` would), writes the user's `.creds` file, and runs a nats-server in
//! operator mode with those accounts preloaded. A node with `cluster.credentials` joins,
//! creates, writes and reads a sharded collection; a node without it is refused, and so
//! is one whose user JWT was signed by another account.

mod common;

use agentdb_proto::v1;
use base64::Engine as _;
use common::nats::free_port;
use common::{authed, item, Server};
use nkeys::KeyPair;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A NATS JWT (v2) for `subject`, signed by `issuer`.
fn jwt(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({
        "jti": format!("{:032x}", rand_id()),
        "iat": now,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    let head = b64(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = b64(claims.to_string().as_bytes());
    let signed = format!("{head}.{body}");
    let sig = issuer.sign(signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64(&sig))
}

fn rand_id() -> u128 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    t ^ (std::process::id() as u128) << 64
}

fn account_jwt(operator: &KeyPair, account: &KeyPair, name: &str, jetstream: bool) -> String {
    let mut limits = json!({"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1,
        "wildcards": true, "conn": -1, "leaf": -1});
    if jetstream {
        for k in ["mem_storage", "disk_storage", "streams", "consumer"] {
            limits[k] = json!(-1);
        }
    }
    jwt(operator, &account.public_key(), name, json!({"type": "account", "version": 2, "limits": limits}))
}

fn creds(account: &KeyPair, user: &KeyPair) -> String {
    let user_jwt = jwt(
        account,
        &user.public_key(),
        "agentdb",
        json!({"type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}),
    );
    format!(
        "-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\n\
         -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
        user.seed().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_authenticates_to_nats_with_a_creds_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n);
    let (operator, system, app, user) =
        (KeyPair::new_operator(), KeyPair::new_account(), KeyPair::new_account(), KeyPair::new_user());
    let op_jwt = jwt(
        &operator,
        &operator.public_key(),
        "agentdb-test",
        json!({"type": "operator", "version": 2, "system_account": system.public_key()}),
    );
    let port = free_port();
    let conf = format!(
        "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: {:?} }}\noperator: {op_jwt}\n\
         system_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: {}\n  {}: {}\n}}\n",
        path("js"),
        system.public_key(),
        system.public_key(),
        account_jwt(&operator, &system, "SYS", false),
        app.public_key(),
        account_jwt(&operator, &app, "APP", true),
    );
    std::fs::write(path("agentdb.creds"), creds(&app, &user)).unwrap();
    // A user signed by an account the operator does not know.
    std::fs::write(path("stranger.creds"), creds(&KeyPair::new_account(), &KeyPair::new_user())).unwrap();
    let mut nats = common::nats::standalone(dir.path(), &conf, port);
    let url = format!("nats://127.0.0.1:{port}");
    let creds_set = format!("cluster.credentials={}", path("agentdb.creds").display());
    let n1 = Server::start(&path("n1"), &["--cluster", &url, "--node-id", "c1", "--set", &creds_set]);
    n1.ok(&["collection", "create", "docs", "--dim", "4", "--metric", "l2", "--index", "Flat", "--shards", "2"]);
    let mut c = v1::items_client::ItemsClient::new(authed(&n1.url(), None).await);
    let items = (0..20).map(|i| item(&format!("d{i}"), vec![i as f32, 0.0, 0.0, 1.0], json!({"i": i}))).collect();
    let token = c.upsert(v1::UpsertRequest { collection: "docs".into(), items }).await.unwrap().into_inner();
    let n = c
        .count(v1::CountRequest {
            collection: "docs".into(),
            consistency_token: token.consistency_token,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(n, 20);

    // No credentials, or a user of an unknown account: refused at the start, clearly.
    let t = Instant::now();
    let err =
        common::serve_refused(&path("n2"), &["--cluster".into(), url.clone(), "--node-id".into(), "c2".into()], &[]);
    eprintln!("refused after {:?}: {}", t.elapsed(), err.lines().last().unwrap_or(""));
    assert!(err.contains("cannot join the cluster") && err.contains("refused this node's credentials"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(20), "a refused credential ends the start at once");
    let stranger = format!("cluster.credentials={}", path("stranger.creds").display());
    let err = common::serve_refused(
        &path("n3"),
        &["--cluster".into(), url, "--node-id".into(), "c3".into(), "--set".into(), stranger],
        &[],
    );
    assert!(err.contains("refused this node's credentials"), "{err}");
    assert!(!err.contains(&user.seed().unwrap()), "no seed in messages");
    let _ = nats.kill();
    let _ = nats.wait();
}
