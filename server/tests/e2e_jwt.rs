//! OIDC/JWT bearer tokens through the real binary: the attack suite (no credentials,
//! expired, not yet valid, wrong audience and issuer, `alg: none`, RS/HS confusion, a
//! forged signature, an unknown or mismatched key), claim mapping to roles, collection
//! scopes and row filters, JWKS rotation from a file and from a URL, and the MFA policy.
//!
//! The test is its own identity provider: it mints an RSA and a P-256 key pair, writes
//! their public halves as a JWKS, and signs tokens with `jsonwebtoken`.

mod common;

use agentdb_proto::v1;
use base64::Engine as _;
use common::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};
use tonic::Code;

const ISS: &str = "https://idp.test/realms/agentdb";
const AUD: &str = "agentdb";
const MFA_ACR: &str = "urn:agentdb:mfa";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and the JWK of its public half.
struct SigningKey {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Value,
    /// SPKI encodings of the public key (RSA only): the secrets of the RS/HS attack.
    public_pem: String,
    public_der: Vec<u8>,
}

fn jwk_of(key: &EncodingKey, alg: Algorithm, kid: &str) -> Value {
    let mut v = serde_json::to_value(Jwk::from_encoding_key(key, alg).unwrap()).unwrap();
    v["kid"] = json!(kid);
    v["use"] = json!("sig");
    v
}

fn rsa_key(kid: &str) -> SigningKey {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePublicKey, LineEnding};
    let private = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let key = EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
    let public = private.to_public_key();
    SigningKey {
        kid: kid.into(),
        alg: Algorithm::RS256,
        jwk: jwk_of(&key, Algorithm::RS256, kid),
        key,
        public_pem: public.to_public_key_pem(LineEnding::LF).unwrap(),
        public_der: public.to_public_key_der().unwrap().as_bytes().to_vec(),
    }
}

fn ec_key(kid: &str) -> SigningKey {
    use p256::pkcs8::EncodePrivateKey;
    let private = p256::SecretKey::random(&mut rand_core::OsRng);
    let key = EncodingKey::from_ec_der(private.to_pkcs8_der().unwrap().as_bytes());
    SigningKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        jwk: jwk_of(&key, Algorithm::ES256, kid),
        key,
        public_pem: String::new(),
        public_der: Vec::new(),
    }
}

fn jwks(keys: &[&SigningKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

/// Replace the JWKS file atomically, as a provisioning tool would.
fn write_jwks(path: &Path, keys: &[&SigningKey]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, jwks(keys)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Valid claims for `sub` with `role`, then `extra` merged over them (a `null` removes
/// a claim).
fn claims(sub: &str, role: &str, extra: Value) -> Value {
    let mut c = json!({
        "iss": ISS, "aud": AUD, "sub": sub, "agentdb_role": role,
        "iat": now(), "nbf": now() - 5, "exp": now() + 600,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(key: &SigningKey, claims: &Value) -> String {
    let mut h = Header::new(key.alg);
    h.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&h, claims, &key.key).unwrap()
}

/// A token whose header claims `alg` and `kid` and whose signature is HMAC-SHA256 with
/// `secret` (or empty, for `alg: none`), assembled by hand as an attacker would.
fn hand_made(alg: &str, kid: &str, claims: &Value, secret: Option<&[u8]>) -> String {
    let head = b64(json!({"alg": alg, "typ": "JWT", "kid": kid}).to_string().as_bytes());
    let body = b64(claims.to_string().as_bytes());
    let signing_input = format!("{head}.{body}");
    let sig = match secret {
        None => String::new(),
        Some(s) => jsonwebtoken::crypto::sign(signing_input.as_bytes(), &EncodingKey::from_secret(s), Algorithm::HS256)
            .unwrap(),
    };
    format!("{signing_input}.{sig}")
}

/// Collections and Items clients that send `token` (if any) as a bearer credential.
async fn clients(
    url: &str,
    token: Option<&str>,
) -> (v1::collections_client::CollectionsClient<Authed>, v1::items_client::ItemsClient<Authed>) {
    let ch = authed(url, token).await;
    (v1::collections_client::CollectionsClient::new(ch.clone()), v1::items_client::ItemsClient::new(ch))
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, fragment: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} '{fragment}', got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.code(), code, "{}", e.message());
            assert!(e.message().contains(fragment), "expected '{fragment}' in '{}'", e.message());
        }
    }
}

fn oidc_args(jwks: &str, extra: &[&str]) -> Vec<String> {
    let v: Vec<String> = [
        "security.oidc.enabled=true".to_string(),
        format!("security.oidc.issuer={ISS}"),
        format!("security.oidc.audience={AUD}"),
        jwks.to_string(),
    ]
    .into_iter()
    .chain(extra.iter().map(|s| s.to_string()))
    .flat_map(|s| ["--set".to_string(), s])
    .collect();
    v
}

fn start(data: &Path, args: &[String]) -> Server {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(data, &a)
}

fn create(name: &str) -> v1::CreateCollectionRequest {
    v1::CreateCollectionRequest {
        name: name.into(),
        spaces: vec![space("", 4, v1::Metric::L2, "Flat")],
        multimodal: false,
        ..Default::default()
    }
}

fn search(collection: &str, filter: &str) -> v1::SearchRequest {
    v1::SearchRequest {
        collection: collection.into(),
        vector: Some(v1::Vector { values: vec![1.0, 0.0, 0.0, 0.0], ..Default::default() }),
        top_k: 50,
        filter: filter.into(),
        with_payload: true,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_tokens_attacks_claims_and_mfa() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let jwks_path = dir.path().join("jwks.json");
    let (rsa, ec) = (rsa_key("rsa-1"), ec_key("ec-1"));
    write_jwks(&jwks_path, &[&rsa, &ec]);
    let mut server = start(
        &data,
        &oidc_args(
            &format!("security.oidc.jwks_file={}", jwks_path.display()),
            &[
                "security.oidc.row_filter_claim=agentdb_row_filter",
                &format!("security.oidc.mfa_acr_values={MFA_ACR}"),
                "security.mfa_required_for=admin,delete",
                "security.oidc.jwks_refresh_secs=600",
            ],
        ),
    );
    let url = server.url();
    let admin = sign(&rsa, &claims("alice", "admin", json!({"amr": ["pwd", "mfa"], "name": "Alice"})));
    let reader = sign(&ec, &claims("bob", "reader", json!({})));
    {
        // A valid RS256 admin token (with MFA) creates collections and writes items.
        let (mut cols, mut items) = clients(&url, Some(&admin)).await;
        for name in ["a", "b"] {
            cols.create(create(name)).await.unwrap();
            let batch = (0..10)
                .map(|i| {
                    let tenant = if i % 2 == 0 { "x" } else { "y" };
                    item(&format!("{name}{i}"), vec![i as f32, 0.0, 0.0, 0.0], json!({"tenant": tenant, "n": i}))
                })
                .collect();
            items.upsert(v1::UpsertRequest { collection: name.into(), items: batch }).await.unwrap();
        }

        // A valid ES256 reader token searches.
        let (mut cols, mut items) = clients(&url, Some(&reader)).await;
        assert_eq!(items.search(search("a", "")).await.unwrap().into_inner().hits.len(), 10);
        assert_eq!(cols.list(v1::ListCollectionsRequest {}).await.unwrap().into_inner().collections.len(), 2);
        // ... and may not create a collection.
        refused(cols.create(create("c")).await, Code::PermissionDenied, "may not admin");

        // Attacks, each UNAUTHENTICATED with its reason.
        let list = |token: Option<String>| {
            let url = url.clone();
            async move {
                let (mut cols, _) = clients(&url, token.as_deref()).await;
                cols.list(v1::ListCollectionsRequest {}).await
            }
        };
        refused(list(None).await, Code::Unauthenticated, "missing credentials");
        let bob = |extra: Value| claims("bob", "reader", extra);
        let cases: Vec<(&str, String, &str)> = vec![
            ("expired", sign(&rsa, &bob(json!({"exp": now() - 3600, "nbf": now() - 7200}))), "token expired"),
            ("nbf in the future", sign(&rsa, &bob(json!({"nbf": now() + 3600}))), "not yet valid"),
            ("wrong audience", sign(&rsa, &bob(json!({"aud": "another-service"}))), "wrong audience"),
            ("no audience", sign(&rsa, &bob(json!({"aud": null}))), "no 'aud' claim"),
            ("wrong issuer", sign(&rsa, &bob(json!({"iss": "https://evil.test"}))), "wrong issuer"),
            ("no expiry", sign(&rsa, &bob(json!({"exp": null}))), "no 'exp' claim"),
            ("alg none", hand_made("none", "rsa-1", &bob(json!({})), None), "algorithm none not allowed"),
            (
                "RS/HS confusion, PEM public key as the HMAC secret",
                hand_made("HS256", "rsa-1", &bob(json!({"agentdb_role": "admin"})), Some(rsa.public_pem.as_bytes())),
                "algorithm HS256 not allowed",
            ),
            (
                "RS/HS confusion, DER public key as the HMAC secret",
                hand_made("HS256", "rsa-1", &bob(json!({"agentdb_role": "admin"})), Some(&rsa.public_der)),
                "algorithm HS256 not allowed",
            ),
            ("unknown kid", sign(&rsa_key("ghost"), &bob(json!({}))), "unknown key id 'ghost'"),
            (
                "EC key id with an RSA algorithm",
                {
                    let mut h = Header::new(Algorithm::RS256);
                    h.kid = Some("ec-1".into());
                    jsonwebtoken::encode(&h, &bob(json!({})), &rsa.key).unwrap()
                },
                "does not match",
            ),
            ("no role claim", sign(&rsa, &bob(json!({"agentdb_role": null}))), "no 'agentdb_role' claim"),
            ("unknown role", sign(&rsa, &bob(json!({"agentdb_role": "root"}))), "unknown role 'root'"),
            ("not a JWT", "adb-looks-like-nothing".to_string(), "malformed token"),
        ];
        for (what, token, why) in cases {
            let r = list(Some(token)).await;
            assert!(r.is_err(), "{what}: accepted");
            refused(r, Code::Unauthenticated, why);
        }
        // A forged signature: a reader token whose payload was changed to admin after signing.
        let mut parts: Vec<String> = reader.split('.').map(str::to_string).collect();
        parts[1] = b64(claims("bob", "admin", json!({})).to_string().as_bytes());
        let forged = parts.join(".");
        refused(list(Some(forged.clone())).await, Code::Unauthenticated, "signature invalid");
        let (mut cols, _) = clients(&url, Some(&forged)).await;
        refused(cols.create(create("pwned")).await, Code::Unauthenticated, "signature invalid");
        // ... and a token signed by another key that claims a trusted key's id.
        let impostor = sign(&rsa_key("rsa-1"), &claims("mallory", "admin", json!({})));
        refused(list(Some(impostor)).await, Code::Unauthenticated, "signature invalid");

        // Collection scopes: a token for "a" reads "a", not "b", and lists only "a".
        let scoped = sign(&ec, &claims("carol", "reader", json!({"agentdb_collections": ["a"]})));
        let (mut cols, mut items) = clients(&url, Some(&scoped)).await;
        assert!(items.search(search("a", "")).await.is_ok());
        refused(items.search(search("b", "")).await, Code::PermissionDenied, "no access to collection 'b'");
        let names: Vec<String> = cols
            .list(v1::ListCollectionsRequest {})
            .await
            .unwrap()
            .into_inner()
            .collections
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, vec!["a"]);
        let empty = sign(&ec, &claims("carol", "reader", json!({"agentdb_collections": []})));
        refused(list(Some(empty)).await, Code::Unauthenticated, "grants no collection");

        // Row filter: tenant x never sees tenant y, whatever filter or ids it sends.
        let tenant_x =
            sign(&rsa, &claims("dave", "writer", json!({"agentdb_row_filter": "tenant = \"x\"", "amr": ["mfa"]})));
        let (_, mut items) = clients(&url, Some(&tenant_x)).await;
        for filter in ["", "tenant = \"y\"", "tenant = \"y\" or n >= 0", "not (tenant = \"x\")"] {
            let hits = items.search(search("a", filter)).await.unwrap().into_inner().hits;
            assert!(hits.iter().all(|h| h.payload_json.contains("\"tenant\":\"x\"")), "{filter}: {hits:?}");
        }
        assert_eq!(items.search(search("a", "")).await.unwrap().into_inner().hits.len(), 5);
        let got = items
            .get(v1::GetRequest {
                collection: "a".into(),
                ids: vec!["a1".into(), "a2".into()],
                with_vectors: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), vec!["a2"]);
        let c = items
            .count(v1::CountRequest { collection: "a".into(), filter: String::new(), ..Default::default() })
            .await
            .unwrap();
        assert_eq!(c.into_inner().count, 5);
        let d = items
            .delete(v1::DeleteRequest {
                collection: "a".into(),
                ids: vec!["a1".into(), "a3".into()],
                filter: String::new(),
            })
            .await
            .unwrap();
        assert_eq!(d.into_inner().deleted, 0, "another tenant's ids are untouchable");
        refused(
            items
                .upsert(v1::UpsertRequest {
                    collection: "a".into(),
                    items: vec![item("new", vec![1.0; 4], json!({"tenant": "y"}))],
                })
                .await,
            Code::PermissionDenied,
            "",
        );
        let bad_filter = sign(&rsa, &claims("eve", "reader", json!({"agentdb_row_filter": "tenant ="})));
        refused(list(Some(bad_filter)).await, Code::Unauthenticated, "not a valid filter");

        // MFA: delete and admin actions need amr "mfa" (or the configured acr).
        let writer = sign(&ec, &claims("frank", "writer", json!({"amr": ["pwd"]})));
        let (_, mut items) = clients(&url, Some(&writer)).await;
        let del = |id: &str| v1::DeleteRequest { collection: "b".into(), ids: vec![id.into()], filter: String::new() };
        refused(
            items.delete(del("b0")).await,
            Code::PermissionDenied,
            "this action requires multi-factor authentication",
        );
        items
            .upsert(v1::UpsertRequest { collection: "b".into(), items: vec![item("w", vec![1.0; 4], json!({}))] })
            .await
            .expect("writes outside the policy need no MFA");
        let writer_mfa = sign(&ec, &claims("frank", "writer", json!({"amr": ["pwd", "mfa"]})));
        let (_, mut items) = clients(&url, Some(&writer_mfa)).await;
        assert_eq!(items.delete(del("b0")).await.unwrap().into_inner().deleted, 1);
        let writer_acr = sign(&ec, &claims("frank", "writer", json!({"acr": MFA_ACR})));
        let (_, mut items) = clients(&url, Some(&writer_acr)).await;
        assert_eq!(items.delete(del("b2")).await.unwrap().into_inner().deleted, 1);
        let admin_no_mfa = sign(&rsa, &claims("alice", "admin", json!({})));
        let (mut cols, _) = clients(&url, Some(&admin_no_mfa)).await;
        refused(cols.create(create("c")).await, Code::PermissionDenied, "requires multi-factor authentication");
        refused(
            cols.drop(v1::DropCollectionRequest { name: "b".into() }).await,
            Code::PermissionDenied,
            "requires multi-factor authentication",
        );
    }

    // Every refusal is in the hash-chained audit log, which verifies.
    assert_eq!(server.terminate().code(), Some(0));
    let log = std::fs::read_to_string(data.join("security/audit.log")).unwrap();
    for want in [
        "token expired",
        "wrong audience",
        "wrong issuer",
        "algorithm none not allowed",
        "algorithm HS256 not allowed",
        "signature invalid",
        "unknown key id",
        "\"principal\":\"oidc:alice\"",
        "requires multi-factor authentication",
    ] {
        assert!(log.contains(want), "audit log lacks '{want}'");
    }
    assert!(!log.contains(&reader), "tokens are never logged");
    let out = std::process::Command::new(BIN).args(["audit", "verify"]).arg(&data).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Run `agentdb serve` with `args`, expecting it to refuse to start; returns stderr.
fn refuses_to_start(data: &Path, args: &[String]) -> String {
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--set", "http_listen=", "--data-dir"])
        .arg(data)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the server started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{args:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn hmac_none_and_incomplete_oidc_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    write_jwks(&jwks_path, &[&ec_key("ec-1")]);
    let file = format!("security.oidc.jwks_file={}", jwks_path.display());
    for (extra, why) in [
        (vec![file.as_str(), "security.oidc.algorithms=RS256,HS256"], "RS/HS confusion"),
        (vec![file.as_str(), "security.oidc.algorithms=HS512"], "never accepted"),
        (vec![file.as_str(), "security.oidc.algorithms=none"], "never accepted"),
        (vec!["security.oidc.jwks_url=ftp://idp.test/keys"], "http(s) URL"),
        (vec!["security.oidc.jwks_file=/nonexistent/jwks.json"], "/nonexistent/jwks.json"),
        (vec![file.as_str(), "security.mfa_required_for=admn"], "unknown action 'admn'"),
    ] {
        let (first, rest) = extra.split_first().unwrap();
        let err = refuses_to_start(&dir.path().join("data"), &oidc_args(first, rest));
        assert!(err.contains(why), "{extra:?}: {err}");
    }
    let no_issuer: Vec<String> = ["security.oidc.enabled=true", &file, "security.oidc.audience=agentdb"]
        .iter()
        .flat_map(|s| ["--set".to_string(), s.to_string()])
        .collect();
    assert!(refuses_to_start(&dir.path().join("data"), &no_issuer).contains("needs an issuer"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_file_rotation_is_picked_up_on_an_unknown_kid_at_most_once_per_interval() {
    const REFRESH_SECS: u64 = 4;
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    let (old, new) = (rsa_key("2024-old"), rsa_key("2025-new"));
    write_jwks(&jwks_path, &[&old]);
    let server = start(
        &dir.path().join("data"),
        &oidc_args(
            &format!("security.oidc.jwks_file={}", jwks_path.display()),
            &[&format!("security.oidc.jwks_refresh_secs={REFRESH_SECS}")],
        ),
    );
    let url = server.url();
    let list = |key: &SigningKey| {
        let (url, token) = (url.clone(), sign(key, &claims("ops", "reader", json!({}))));
        async move {
            let (mut cols, _) = clients(&url, Some(&token)).await;
            cols.list(v1::ListCollectionsRequest {}).await
        }
    };
    assert!(list(&old).await.is_ok());
    // The provider rotates: the new key replaces the old one in the JWKS.
    write_jwks(&jwks_path, &[&new]);
    // The JWKS was read at start, less than the interval ago: not re-read yet.
    let t = Instant::now();
    refused(list(&new).await, Code::Unauthenticated, "unknown key id '2025-new'");
    tokio::time::sleep(Duration::from_secs(REFRESH_SECS) + Duration::from_millis(300) - t.elapsed()).await;
    // Past the interval, the unknown kid re-reads the file: the new key works and
    // the removed one no longer does.
    assert!(list(&new).await.is_ok(), "rotated key accepted");
    refused(list(&old).await, Code::Unauthenticated, "unknown key id '2024-old'");
}

/// Serve `body` (shared, replaceable) at any path over plain HTTP on loopback, counting
/// requests. Returns the URL; the thread lives as long as the test process.
fn jwks_endpoint(
    body: std::sync::Arc<parking_lot::Mutex<String>>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> String {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/protocol/openid-connect/certs", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut s in l.incoming().map_while(Result::ok) {
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let b = body.lock().clone();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                b.len()
            );
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_url_is_fetched_cached_and_refetched_for_rotation() {
    use std::sync::atomic::Ordering::SeqCst;
    const REFRESH_SECS: u64 = 3;
    let dir = tempfile::tempdir().unwrap();
    let (k1, k2) = (ec_key("ec-2024"), rsa_key("rsa-2025"));
    let body = std::sync::Arc::new(parking_lot::Mutex::new(jwks(&[&k1])));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = jwks_endpoint(body.clone(), hits.clone());
    let server = start(
        &dir.path().join("data"),
        &oidc_args(
            &format!("security.oidc.jwks_url={url}"),
            &[&format!("security.oidc.jwks_refresh_secs={REFRESH_SECS}")],
        ),
    );
    assert_eq!(hits.load(SeqCst), 1, "fetched once at start");
    let surl = server.url();
    let list = |key: &SigningKey| {
        let (url, token) = (surl.clone(), sign(key, &claims("svc", "reader", json!({}))));
        async move {
            let (mut cols, _) = clients(&url, Some(&token)).await;
            cols.list(v1::ListCollectionsRequest {}).await
        }
    };
    for _ in 0..5 {
        assert!(list(&k1).await.is_ok());
    }
    assert_eq!(hits.load(SeqCst), 1, "known keys come from the cache");
    // Random kids do not hammer the provider: one fetch per interval at most.
    let t = Instant::now();
    for i in 0..5 {
        refused(list(&rsa_key(&format!("ghost{i}"))).await, Code::Unauthenticated, "unknown key id");
    }
    assert!(hits.load(SeqCst) <= 2, "{} fetches", hits.load(SeqCst));
    // Rotation: the provider adds a key; after the interval it is fetched and accepted.
    *body.lock() = jwks(&[&k1, &k2]);
    tokio::time::sleep((Duration::from_secs(REFRESH_SECS) + Duration::from_millis(300)).saturating_sub(t.elapsed()))
        .await;
    // The last unknown-kid fetch may have come late in the loop above (a loaded
    // machine): allow one more interval before calling the rotation missed.
    let deadline = Instant::now() + Duration::from_secs(REFRESH_SECS) + Duration::from_secs(2);
    while list(&k2).await.is_err() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(list(&k2).await.is_ok(), "rotated-in key accepted");
    assert!(list(&k1).await.is_ok(), "the old key is still published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_and_oidc_together_and_the_api_key_mfa_exemption() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let jwks_path = dir.path().join("jwks.json");
    let rsa = rsa_key("rsa-1");
    write_jwks(&jwks_path, &[&rsa]);
    let file = format!("security.oidc.jwks_file={}", jwks_path.display());
    let args = |exempt: bool| {
        let mut a =
            oidc_args(&file, &["security.mfa_required_for=admin", &format!("security.mfa_exempt_api_keys={exempt}")]);
        a.extend(["--set".to_string(), "security.auth=api_key".to_string()]);
        a
    };
    let mut server = start(&data, &args(false));
    let key = server.admin_key();
    let admin_mfa = sign(&rsa, &claims("alice", "admin", json!({"amr": ["hwk"]})));
    let url = server.url();
    {
        // An API key is one factor: the admin key cannot pass an MFA policy on admin.
        let (mut cols, _) = clients(&url, Some(&key)).await;
        assert!(cols.list(v1::ListCollectionsRequest {}).await.is_ok(), "API keys still work");
        refused(cols.create(create("k")).await, Code::PermissionDenied, "requires multi-factor authentication");
        // An OIDC admin with a hardware-key login can.
        let (mut cols, _) = clients(&url, Some(&admin_mfa)).await;
        cols.create(create("o")).await.unwrap();
        // Bearer values that are not API keys go to the OIDC verifier.
        let (mut cols, _) = clients(&url, Some("not-a-token")).await;
        refused(cols.list(v1::ListCollectionsRequest {}).await, Code::Unauthenticated, "OIDC: malformed token");
        let (mut cols, _) = clients(&url, Some("adb_aaaaaaaaaaaa_forgedforgedforgedforgedforgedforged")).await;
        refused(cols.list(v1::ListCollectionsRequest {}).await, Code::Unauthenticated, "invalid or revoked API key");
    }
    assert_eq!(server.terminate().code(), Some(0));
    // With the exemption, service-account keys may do admin work again.
    let server = start(&data, &args(true));
    let url = server.url();
    let (mut cols, _) = clients(&url, Some(&key)).await;
    cols.create(create("k")).await.unwrap();
}
