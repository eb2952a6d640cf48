//! Security through the real binary: safe defaults, API keys with roles and collection
//! scopes, revocation, and the hash-chained audit log.

mod common;

use agentdb_proto::v1;
use common::*;
use serde_json::json;
use tonic::Code;

#[test]
fn non_loopback_without_auth_is_refused_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--set", "http_listen=", "--data-dir"])
        .arg(dir.path().join("a"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to listen on 0.0.0.0") && err.contains("security.auth"), "{err}");

    // --insecure overrides, loudly. (Bound to all interfaces but only probed on loopback.)
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--set", "http_listen=", "--insecure", "--data-dir"])
        .arg(dir.path().join("b"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert!(line.starts_with("agentdb listening on 0.0.0.0:"), "{line}");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INSECURE") && err.contains("WARNING: --insecure"), "a loud warning: {err}");
}

/// Collections, Items and Security clients that send `key` (if any) as a bearer credential.
async fn channel(
    url: &str,
    key: Option<&str>,
) -> (
    v1::collections_client::CollectionsClient<Authed>,
    v1::items_client::ItemsClient<Authed>,
    v1::security_client::SecurityClient<Authed>,
) {
    let ch = authed(url, key).await;
    (
        v1::collections_client::CollectionsClient::new(ch.clone()),
        v1::items_client::ItemsClient::new(ch.clone()),
        v1::security_client::SecurityClient::new(ch),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_roles_scopes_revocation_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &["--set", "security.auth=api_key"]);
    let admin = server.admin_key();
    let url = server.url();
    let (reader_secret, reader_id) = {
        // No credentials, a forged key: UNAUTHENTICATED. Health stays open for probes.
        let (mut cols, _, _) = channel(&url, None).await;
        let e = cols.list(v1::ListCollectionsRequest {}).await.unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "{}", e.message());
        let (mut cols, _, _) = channel(&url, Some("adb_aaaaaaaaaaaa_forgedforgedforgedforgedforgedforged")).await;
        assert_eq!(cols.list(v1::ListCollectionsRequest {}).await.unwrap_err().code(), Code::Unauthenticated);
        let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
        assert!(health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_ok());

        // The admin creates collections and a reader key scoped to one of them.
        let (mut cols, mut items, mut sec) = channel(&url, Some(&admin)).await;
        for name in ["a", "b"] {
            cols.create(v1::CreateCollectionRequest {
                name: name.into(),
                spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
                multimodal: false,
                ..Default::default()
            })
            .await
            .unwrap();
            items
                .upsert(v1::UpsertRequest {
                    collection: name.into(),
                    items: vec![item("x", vec![1.0; 4], json!({"owner": name}))],
                })
                .await
                .unwrap();
        }
        let r = sec
            .create_key(v1::CreateKeyRequest {
                name: "reader-a".into(),
                role: "reader".into(),
                collections: vec!["a".into()],
                row_filter: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        (r.secret, r.key.unwrap().id)
    };

    // The CLI with the reader key: can read "a", cannot read "b" or write anything.
    let cli = |args: &[&str], key: &str| server.cli_as(key, args);
    let out = cli(&["search", "a", "--vector", "[1,1,1,1]", "--json"], &reader_secret);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"owner\":\"a\""));
    let out = cli(&["search", "b", "--vector", "[1,1,1,1]"], &reader_secret);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no access to collection 'b'") && !out.status.success());
    let out = cli(&["delete", "a", "x"], &reader_secret);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("PermissionDenied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["collection", "list"], &reader_secret);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(listed.contains("\na ") && !listed.contains("\nb "), "listing shows only permitted collections: {listed}");
    let out = cli(&["keys", "create", "sneaky", "--role", "admin"], &reader_secret);
    assert!(!out.status.success(), "a reader cannot mint keys");

    // Keys through the CLI; the stored file holds only a hash.
    let out = cli(&["keys", "list", "--json"], &admin);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("reader-a"));
    let stored = std::fs::read_to_string(data.join("security/api-keys.json")).unwrap();
    assert!(!stored.contains(reader_secret.rsplit('_').next().unwrap()));
    let out = cli(&["keys", "revoke", &reader_id], &admin);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["search", "a", "--vector", "[1,1,1,1]"], &reader_secret);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unauthenticated"), "revoked key refused");

    // The audit log recorded failures, denials and admin actions, and verifies.
    assert_eq!(server.terminate().code(), Some(0));
    let log = std::fs::read_to_string(data.join("security/audit.log")).unwrap();
    for want in
        ["\"decision\":\"fail\"", "\"decision\":\"deny\"", "CreateKey", "RevokeKey", "CreateCollection", "Upsert"]
    {
        assert!(log.contains(want), "audit log lacks {want}");
    }
    let verify =
        |p: &std::path::Path| std::process::Command::new(BIN).args(["audit", "verify"]).arg(p).output().unwrap();
    let out = verify(&data);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("audit log intact"));
    // Edit one record: detected, with the line named.
    let edited = log.replacen("\"decision\":\"deny\"", "\"decision\":\"allow\"", 1);
    std::fs::write(data.join("security/audit.log"), &edited).unwrap();
    let out = verify(&data);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("NOT intact"));
    // Remove one record: detected.
    let lines: Vec<&str> = log.lines().collect();
    let removed = [&lines[..2], &lines[3..]].concat().join("\n") + "\n";
    std::fs::write(data.join("security/audit.log"), removed).unwrap();
    assert!(!verify(&data).status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_key_never_reaches_another_tenants_items() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--set", "security.auth=api_key"]);
    let admin = server.admin_key();
    let url = server.url();
    let (mut cols, mut items, mut sec) = channel(&url, Some(&admin)).await;
    cols.create(v1::CreateCollectionRequest {
        name: "shared".into(),
        spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
        multimodal: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let batch = (0..20)
        .map(|i| {
            item(
                &format!("i{i}"),
                vec![i as f32, 0.0, 0.0, 0.0],
                json!({"tenant": if i % 2 == 0 { "acme" } else { "globex" }, "n": i}),
            )
        })
        .collect();
    items.upsert(v1::UpsertRequest { collection: "shared".into(), items: batch }).await.unwrap();
    let acme = sec
        .create_key(v1::CreateKeyRequest {
            name: "acme".into(),
            role: "writer".into(),
            collections: vec![],
            row_filter: "tenant = \"acme\"".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let bad = sec
        .create_key(v1::CreateKeyRequest {
            name: "x".into(),
            role: "reader".into(),
            collections: vec![],
            row_filter: "tenant =".into(),
        })
        .await;
    assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);

    let (_, mut items, _) = channel(&url, Some(&acme)).await;
    let search = |filter: &str| v1::SearchRequest {
        collection: "shared".into(),
        vector: Some(v1::Vector { values: vec![1.0, 0.0, 0.0, 0.0], ..Default::default() }),
        top_k: 20,
        filter: filter.into(),
        with_payload: true,
        ..Default::default()
    };
    let hits = items.search(search("")).await.unwrap().into_inner().hits;
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.payload_json.contains("acme")));
    assert!(items.search(search("tenant = \"globex\"")).await.unwrap().into_inner().hits.is_empty());
    assert!(items
        .search(search("tenant = \"globex\" or n >= 0"))
        .await
        .unwrap()
        .into_inner()
        .hits
        .iter()
        .all(|h| h.payload_json.contains("acme")));
    let got = items
        .get(v1::GetRequest {
            collection: "shared".into(),
            ids: vec!["i1".into(), "i2".into()],
            with_vectors: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["i2"]);
    let c = items
        .count(v1::CountRequest { collection: "shared".into(), filter: String::new(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.count, 10);
    let d = items
        .delete(v1::DeleteRequest {
            collection: "shared".into(),
            ids: vec!["i1".into(), "i3".into()],
            filter: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.deleted, 0, "another tenant's ids are untouchable");
    let d = items
        .delete(v1::DeleteRequest { collection: "shared".into(), ids: vec![], filter: "tenant = \"globex\"".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.deleted, 0);
    let e = items
        .upsert(v1::UpsertRequest {
            collection: "shared".into(),
            items: vec![item("new", vec![1.0; 4], json!({"tenant": "globex"}))],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = items
        .upsert(v1::UpsertRequest {
            collection: "shared".into(),
            items: vec![item("i1", vec![1.0; 4], json!({"tenant": "acme"}))],
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "cannot take over another tenant's id");
    items
        .upsert(v1::UpsertRequest {
            collection: "shared".into(),
            items: vec![item("a-new", vec![1.0; 4], json!({"tenant": "acme"}))],
        })
        .await
        .unwrap();

    // The admin still sees all of it: nothing of globex was lost.
    let (_, mut admin_items, _) = channel(&url, Some(&admin)).await;
    let c = admin_items
        .count(v1::CountRequest {
            collection: "shared".into(),
            filter: "tenant = \"globex\"".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(c.count, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rate_quota_gives_resource_exhausted_with_a_retry_hint() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--set", "security.rate_limit_per_sec=5", "--set", "security.rate_limit_burst=5"],
    );
    let (mut cols, _) = server.clients().await;
    let mut refused = Vec::new();
    for _ in 0..30 {
        if let Err(e) = cols.list(v1::ListCollectionsRequest {}).await {
            refused.push(e);
        }
    }
    assert!(refused.len() >= 20, "a burst of 30 against 5/s with burst 5: {} refused", refused.len());
    let e = &refused[0];
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert!(
        e.message().contains("rate limit of 5 requests/s") && e.message().contains("retry after"),
        "{}",
        e.message()
    );
    let wait: u64 = e.metadata().get("retry-after-ms").unwrap().to_str().unwrap().parse().unwrap();
    assert!(wait > 0 && wait <= 1000);
    // Probes are not rate limited; after the hinted wait, requests pass again.
    tokio::time::sleep(std::time::Duration::from_millis(wait + 50)).await;
    assert!(cols.list(v1::ListCollectionsRequest {}).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masked_fields_are_hidden_below_clearance_and_cannot_be_filtered_on() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server =
        Server::start(&data, &["--set", "security.auth=api_key", "--set", "security.masked_fields=ssn,contact.email"]);
    let admin = server.admin_key();
    let url = server.url();
    let (mut cols, mut items, mut sec) = channel(&url, Some(&admin)).await;
    cols.create(v1::CreateCollectionRequest {
        name: "people".into(),
        spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
        multimodal: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let payload = json!({"name": "Ada", "ssn": "123-45-6789", "contact": {"email": "ada@example.com", "city": "Oslo"}});
    items
        .upsert(v1::UpsertRequest {
            collection: "people".into(),
            items: vec![item("p1", vec![1.0; 4], payload.clone())],
        })
        .await
        .unwrap();
    let reader = sec
        .create_key(v1::CreateKeyRequest { name: "r".into(), role: "reader".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let get = |items: &mut v1::items_client::ItemsClient<Authed>| {
        let mut items = items.clone();
        async move {
            let r = items
                .get(v1::GetRequest {
                    collection: "people".into(),
                    ids: vec!["p1".into()],
                    with_vectors: false,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            serde_json::from_str::<serde_json::Value>(&r.items[0].payload_json).unwrap()
        }
    };
    // The admin (clearance) sees the values.
    assert_eq!(get(&mut items).await, payload);
    // A reader sees them masked, in get and in search results.
    let (_, mut ritems, _) = channel(&url, Some(&reader)).await;
    let masked = get(&mut ritems).await;
    assert_eq!(masked["ssn"], json!("***"));
    assert_eq!(masked["contact"], json!({"email": "***", "city": "Oslo"}));
    assert_eq!(masked["name"], json!("Ada"));
    let hits = ritems
        .search(v1::SearchRequest {
            collection: "people".into(),
            vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
            with_payload: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(hits[0].payload_json.contains("\"ssn\":\"***\"") && !hits[0].payload_json.contains("123-45"));
    // Filtering on a masked field would leak it one guess at a time: refused.
    for filter in ["ssn = \"123-45-6789\"", "exists(contact.email)", "contact = \"x\""] {
        let e = ritems
            .search(v1::SearchRequest {
                collection: "people".into(),
                vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
                filter: filter.into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "{filter}: {}", e.message());
        assert!(e.message().contains("is masked for role reader"), "{}", e.message());
        let e = ritems
            .count(v1::CountRequest { collection: "people".into(), filter: filter.into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::PermissionDenied, "count {filter}");
    }
    // Other fields filter as usual.
    let n = ritems
        .count(v1::CountRequest {
            collection: "people".into(),
            filter: "contact.city = \"Oslo\"".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(n, 1);
}

const TENANT_ROLES: &str = r#"
[security]
auth = "api_key"
[security.roles.tenant_a_writer]
write = ["a*"]
read = ["shared"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_role_grants_write_on_a_prefix_and_read_on_shared_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("agentdb.toml");
    std::fs::write(&config, TENANT_ROLES).unwrap();
    let server = Server::start(&data, &["--config", config.to_str().unwrap()]);
    let admin = server.admin_key();
    let url = server.url();
    let tenant = {
        let (mut cols, mut items, mut sec) = channel(&url, Some(&admin)).await;
        for name in ["a1", "shared", "b1"] {
            cols.create(v1::CreateCollectionRequest {
                name: name.into(),
                spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
                multimodal: false,
                ..Default::default()
            })
            .await
            .unwrap();
            items
                .upsert(v1::UpsertRequest { collection: name.into(), items: vec![item("x", vec![1.0; 4], json!({}))] })
                .await
                .unwrap();
        }
        // Unknown roles are refused at key creation, naming the known ones.
        let e = sec
            .create_key(v1::CreateKeyRequest { name: "t".into(), role: "tenant_b".into(), ..Default::default() })
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains("unknown role 'tenant_b'") && e.message().contains("tenant_a_writer"));
        let tenant = sec
            .create_key(v1::CreateKeyRequest { name: "t".into(), role: "tenant_a_writer".into(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(tenant.key.unwrap().role, "tenant_a_writer");
        let (mut cols, mut items, mut sec) = channel(&url, Some(&tenant.secret)).await;
        let up = |c: &str| v1::UpsertRequest { collection: c.into(), items: vec![item("y", vec![2.0; 4], json!({}))] };
        items.upsert(up("a1")).await.unwrap();
        let get = |c: &str| v1::GetRequest {
            collection: c.into(),
            ids: vec!["x".into()],
            with_vectors: false,
            ..Default::default()
        };
        assert_eq!(items.get(get("a1")).await.unwrap().into_inner().items.len(), 1, "write includes read");
        assert_eq!(items.get(get("shared")).await.unwrap().into_inner().items.len(), 1);
        for (c, action) in [("shared", "write"), ("b1", "write")] {
            let e = items.upsert(up(c)).await.unwrap_err();
            assert_eq!(e.code(), Code::PermissionDenied);
            let want = format!("(role tenant_a_writer) may not {action} on collection '{c}'");
            assert!(e.message().contains(&want), "{}", e.message());
        }
        let e = items.get(get("b1")).await.unwrap_err();
        assert!(e.message().contains("may not read on collection 'b1'"), "{}", e.message());
        let e = cols
            .create(v1::CreateCollectionRequest {
                name: "a2".into(),
                spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
                multimodal: false,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(e.message().contains("may not admin on collection 'a2'"), "{}", e.message());
        assert_eq!(sec.list_keys(v1::ListKeysRequest {}).await.unwrap_err().code(), Code::PermissionDenied);
        let listed: Vec<String> = cols
            .list(v1::ListCollectionsRequest {})
            .await
            .unwrap()
            .into_inner()
            .collections
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(listed.len(), 2, "only a1 and shared are listed: {listed:?}");
        tenant.secret
    };
    // The CLI shows the custom role.
    let out = server.cli_as(&admin, &["keys", "list", "--json"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("tenant_a_writer"));
    drop(server);
    drop(tenant);

    // Removing the role from the configuration: serve refuses a config that names an
    // unknown role (exit non-zero, the role named), and the key no longer works.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[security]\nauth = \"api_key\"\noidc.default_role = \"tenant_c\"\noidc.enabled = true\noidc.issuer = \"https://idp\"\noidc.audience = [\"x\"]\noidc.jwks_file = \"/nonexistent\"\n").unwrap();
    for (cfg, want) in [
        (bad.clone(), "unknown role 'tenant_c'"),
        (
            {
                let p = dir.path().join("bad2.toml");
                std::fs::write(&p, "[security.tls]\nclient_roles = { ops = \"superuser\" }\n").unwrap();
                p
            },
            "unknown role 'superuser'",
        ),
        (
            {
                let p = dir.path().join("bad3.toml");
                std::fs::write(&p, "[security.roles.t]\nwrite = [\"a*b\"]\n").unwrap();
                p
            },
            "collection pattern 'a*b'",
        ),
    ] {
        let out = std::process::Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--set", "http_listen=", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("other"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "serve must refuse {}", cfg.display());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{want}: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_quota_refuses_the_crossing_upsert_per_principal_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("agentdb.toml");
    // Items of 4 floats and {"n":i}: 1 + 7 + 16 = 24 bytes each (id, payload, vector).
    std::fs::write(
        &config,
        "[security]\nauth = \"api_key\"\n[security.roles.small]\nwrite = [\"*\"]\nstorage_quota_bytes = 100\n",
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let mut server = Server::start(&data, &args);
    let admin = server.admin_key();
    let url = server.url();
    let up = |ids: std::ops::Range<u32>| v1::UpsertRequest {
        collection: "c".into(),
        items: ids.map(|i| item(&format!("{i}"), vec![1.0; 4], json!({"n": i}))).collect(),
    };
    let (small, other) = {
        let (mut cols, _, mut sec) = channel(&url, Some(&admin)).await;
        cols.create(v1::CreateCollectionRequest {
            name: "c".into(),
            spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
            multimodal: false,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut secrets = Vec::new();
        for role in ["small", "small"] {
            let k = sec
                .create_key(v1::CreateKeyRequest { name: "q".into(), role: role.into(), ..Default::default() })
                .await
                .unwrap()
                .into_inner();
            secrets.push((k.secret, k.key.unwrap().id));
        }
        let (small, other) = (secrets[0].clone(), secrets[1].clone());
        let (_, mut items, _) = channel(&url, Some(&small.0)).await;
        items.upsert(up(0..3)).await.unwrap(); // 72 bytes
        let e = items.upsert(up(3..5)).await.unwrap_err(); // +48 > 100
        assert_eq!(e.code(), Code::ResourceExhausted);
        let m = e.message();
        assert!(
            m.contains(&format!("key:{}", small.1))
                && m.contains("from 72 to 120 bytes")
                && m.contains("limit of 100 bytes")
                && m.contains("storage_quota_bytes")
                && m.contains("delete data"),
            "{m}"
        );
        // Replacing an item costs only the difference; another principal is unaffected.
        items.upsert(up(0..1)).await.unwrap();
        let (_, mut oitems, _) = channel(&url, Some(&other.0)).await;
        oitems.upsert(up(10..13)).await.unwrap();
        (small, other)
    };
    // The usage survives a restart.
    assert_eq!(server.terminate().code(), Some(0));
    let out = std::process::Command::new(BIN).args(["quota", "show", "--json"]).arg(&data).output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(shown.contains(&format!("\"principal\":\"key:{}\"", small.1)) && shown.contains("\"bytes\":72"), "{shown}");
    let server = Server::start(&data, &args);
    let url = server.url();
    let (_, mut items, _) = channel(&url, Some(&small.0)).await;
    let e = items.upsert(up(3..5)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{}", e.message());
    // Deleting gives the quota back.
    items
        .delete(v1::DeleteRequest { collection: "c".into(), ids: vec!["0".into(), "1".into()], filter: String::new() })
        .await
        .unwrap();
    items.upsert(up(3..5)).await.unwrap();
    let (_, mut oitems, _) = channel(&url, Some(&other.0)).await;
    let e = oitems.upsert(up(13..15)).await.unwrap_err();
    assert!(e.message().contains(&format!("key:{}", other.1)), "{}", e.message());
}
