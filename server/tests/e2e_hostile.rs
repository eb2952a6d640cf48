//! Hostile input through the real binary (issue 16): one server with modest limits and
//! authentication on gets malformed protobuf, oversize credentials and messages, hostile
//! index descriptions, filters, payloads, vectors, ids, names and media. Each request
//! must get the status shown (with a message naming the problem), and after each group
//! the server must still answer and its memory stay bounded.
//!
//! A case that kills the server is recorded, the server restarted, and the suite goes on:
//! the test fails at the end listing every case that misbehaved, so one run shows them all.

mod common;

use agentdb_proto::v1;
use common::*;
use prost::bytes::{Buf, BufMut};
use serde_json::json;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Status};

/// limits.max_message_bytes of the server under attack.
const LIMIT: usize = 8 << 20;
/// Peak resident memory (VmHWM) the server may reach, models loaded, over the whole suite.
const MAX_RSS_KIB: u64 = 2 << 20;
/// Every call: a hang is a failure (DEADLINE_EXCEEDED), not a stuck test.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

// ---- raw gRPC: bytes in, bytes out -----------------------------------------------------

/// A codec that sends the given bytes as the message and returns the reply's bytes: for
/// requests that are not valid protobuf.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n).to_vec()))
    }
}

/// Protobuf field `n`, length-delimited (strings, bytes, messages).
fn field(n: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![n << 3 | 2];
    let mut len = bytes.len();
    while len >= 0x80 {
        v.push((len as u8 & 0x7f) | 0x80);
        len >>= 7;
    }
    v.push(len as u8);
    v.extend_from_slice(bytes);
    v
}

// ---- the suite -----------------------------------------------------------------------

struct Suite {
    root: PathBuf,
    server: Server,
    key: String,
    /// (group, case, what came back)
    seen: Vec<(String, String, String)>,
    failures: Vec<String>,
}

type Res<T> = Result<tonic::Response<T>, Status>;
/// What a case must get: success, or a code and words its message must contain.
type Want = Result<(), (Code, &'static [&'static str])>;

fn args() -> Vec<&'static str> {
    vec![
        "--set",
        "security.auth=api_key",
        "--set",
        "limits.max_message_bytes=8388608",
        "--set",
        "limits.max_audio_seconds=60",
        "--set",
        "http_listen=127.0.0.1:0",
    ]
}

impl Suite {
    fn start() -> Suite {
        let dir = tempfile::tempdir().unwrap().keep();
        let server = Server::start(&dir.join("data"), &args());
        let key = server.admin_key();
        Suite { root: dir, server, key, seen: Vec::new(), failures: Vec::new() }
    }

    async fn channel(url: &str, key: &str) -> Authed {
        let ch = tonic::transport::Channel::from_shared(url.to_string())
            .unwrap()
            .timeout(CALL_TIMEOUT)
            .connect()
            .await
            .expect("connect");
        let v = format!("Bearer {key}").parse().unwrap();
        tonic::service::interceptor::InterceptedService::new(ch, Bearer(Some(v)))
    }

    async fn cols(&self) -> v1::collections_client::CollectionsClient<Authed> {
        let ch = Self::channel(&self.server.url(), &self.key).await;
        v1::collections_client::CollectionsClient::new(ch)
    }

    async fn items(&self) -> v1::items_client::ItemsClient<Authed> {
        let ch = Self::channel(&self.server.url(), &self.key).await;
        v1::items_client::ItemsClient::new(ch).max_encoding_message_size(usize::MAX)
    }

    /// Record `r` and check it against `want` (Ok(()) = success; Err(code) and words the
    /// message must contain).
    fn check<T>(&mut self, group: &str, case: &str, r: Res<T>, want: Want) {
        let got = match &r {
            Ok(_) => "OK".to_string(),
            Err(s) => format!("{:?}: {}", s.code(), s.message()),
        };
        let ok = match (&r, want) {
            (Ok(_), Ok(())) => true,
            (Err(s), Err((code, words))) => s.code() == code && words.iter().all(|w| s.message().contains(w)),
            _ => false,
        };
        if !ok {
            self.failures.push(format!("{group} / {case}: wanted {}, got {got}", describe(want)));
        }
        self.seen.push((group.into(), case.into(), got));
    }

    /// The server still runs, answers Collections/List and stayed under the memory bound;
    /// if it died, record that and start it again.
    async fn alive(&mut self, group: &str) {
        if let Some(st) = self.server.child.try_wait().unwrap() {
            let log = self.server.log_text();
            let tail: String =
                log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
            self.failures.push(format!("{group}: the server DIED ({st}); log tail:\n{tail}"));
            self.seen.push((group.into(), "(server)".into(), format!("DIED: {st}")));
            let data = self.server.data_dir.clone();
            self.server = Server::start(&data, &args());
            return;
        }
        let mut cols = self.cols().await;
        if let Err(e) = cols.list(v1::ListCollectionsRequest {}).await {
            self.failures.push(format!("{group}: Collections/List failed afterwards: {e:?}"));
        }
        let (rss, peak) = rss_kib(self.server.child.id());
        eprintln!("after {group}: VmRSS {} MiB, VmHWM {} MiB", rss / 1024, peak / 1024);
        if peak > MAX_RSS_KIB {
            self.failures.push(format!(
                "{group}: peak RSS {} MiB above the bound of {} MiB",
                peak / 1024,
                MAX_RSS_KIB / 1024
            ));
        }
    }

    async fn create(&self, name: &str, dim: u32, index: &str) -> Res<v1::CreateCollectionResponse> {
        let mut cols = self.cols().await;
        cols.create(v1::CreateCollectionRequest {
            name: name.into(),
            spaces: vec![space("", dim, v1::Metric::L2, index)],
            ..Default::default()
        })
        .await
    }

    async fn upsert(&self, collection: &str, items: Vec<v1::Item>) -> Res<v1::UpsertResponse> {
        let mut c = self.items().await;
        c.upsert(v1::UpsertRequest { collection: collection.into(), items }).await
    }

    async fn count(&self, collection: &str, filter: &str) -> Res<v1::CountResponse> {
        let mut c = self.items().await;
        c.count(v1::CountRequest { collection: collection.into(), filter: filter.into(), ..Default::default() }).await
    }

    async fn raw_unary(&self, path: &'static str, body: Vec<u8>) -> Res<Vec<u8>> {
        let url = self.server.url();
        let ch = tonic::transport::Channel::from_shared(url).unwrap().timeout(CALL_TIMEOUT).connect().await.unwrap();
        let mut g = tonic::client::Grpc::new(ch);
        g.ready().await.unwrap();
        let mut req = tonic::Request::new(body);
        req.metadata_mut().insert("authorization", format!("Bearer {}", self.key).parse().unwrap());
        g.unary(req, PathAndQuery::from_static(path), Raw).await
    }

    /// Stream `messages` to `path`; the first message back, or the error.
    async fn raw_stream(&self, path: &'static str, messages: Vec<Vec<u8>>) -> Res<Vec<u8>> {
        let url = self.server.url();
        let ch = tonic::transport::Channel::from_shared(url).unwrap().timeout(CALL_TIMEOUT).connect().await.unwrap();
        let mut g = tonic::client::Grpc::new(ch);
        g.ready().await.unwrap();
        let mut req = tonic::Request::new(tokio_stream::iter(messages));
        req.metadata_mut().insert("authorization", format!("Bearer {}", self.key).parse().unwrap());
        let mut s = g.streaming(req, PathAndQuery::from_static(path), Raw).await?.into_inner();
        match s.message().await? {
            Some(m) => Ok(tonic::Response::new(m)),
            None => Err(Status::ok("the stream ended without a message")),
        }
    }

    /// Ingest `files` in one stream; one result per file, by source.
    async fn ingest(&self, files: Vec<(String, String, Vec<u8>)>) -> Result<Vec<v1::IngestResult>, Status> {
        let mut c = self.items().await;
        let reqs: Vec<v1::IngestRequest> = files
            .into_iter()
            .map(|(collection, source, content)| v1::IngestRequest { collection, source, content })
            .collect();
        let mut s = c.ingest(tokio_stream::iter(reqs)).await?.into_inner();
        let mut out = Vec::new();
        while let Some(r) = s.message().await? {
            out.push(r);
        }
        Ok(out)
    }
}

fn describe(want: Want) -> String {
    match want {
        Ok(()) => "OK".into(),
        Err((c, w)) => format!("{c:?} {w:?}"),
    }
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let get = |k: &str| {
        s.lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

fn inv(words: &'static [&'static str]) -> Want {
    Err((Code::InvalidArgument, words))
}

fn exhausted(words: &'static [&'static str]) -> Want {
    Err((Code::ResourceExhausted, words))
}

fn one(id: &str, values: Vec<f32>, payload_json: &str) -> Vec<v1::Item> {
    vec![v1::Item {
        id: id.into(),
        vectors: [(String::new(), v1::Vector { values, ..Default::default() })].into(),
        payload_json: payload_json.into(),
    }]
}

/// One HTTP/1.1 POST over a plain TCP connection: (status, body), or what went wrong.
fn http_post(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(CALL_TIMEOUT)).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    // The server may answer (431) and close before it has read everything.
    let _ = s.write_all(req.as_bytes());
    let mut out = Vec::new();
    if let Err(e) = s.read_to_end(&mut out) {
        if out.is_empty() {
            return Err(format!("no response: {e}"));
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    Ok((status, rest.to_string()))
}

// ---- media -------------------------------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut v = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    v.extend_from_slice(&body);
    v.extend(crc32(&body).to_be_bytes());
    v
}

/// A PNG whose header says `w`×`h` RGB, followed by `idat` as its only data.
fn png(w: u32, h: u32, idat: &[u8], end: bool) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]); // 8-bit RGB, deflate, adaptive filter, no interlace
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend(png_chunk(b"IHDR", &ihdr));
    v.extend(png_chunk(b"IDAT", idat));
    if end {
        v.extend(png_chunk(b"IEND", &[]));
    }
    v
}

/// A stored (uncompressed) zlib stream of `data` (up to 65535 bytes).
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut v = vec![0x78, 0x01, 0x01];
    v.extend((data.len() as u16).to_le_bytes());
    v.extend((!(data.len() as u16)).to_le_bytes());
    v.extend_from_slice(data);
    let (mut a, mut b) = (1u32, 0u32);
    for &x in data {
        a = (a + x as u32) % 65521;
        b = (b + a) % 65521;
    }
    v.extend(((b << 16) | a).to_be_bytes());
    v
}

/// A baseline JPEG header (SOI, APP0, DQT, SOF0 `w`×`h`, DHT) with no scan: cut before any pixel.
fn jpeg_header(w: u16, h: u16) -> Vec<u8> {
    let mut v = vec![0xFF, 0xD8];
    v.extend([0xFF, 0xE0, 0, 16]);
    v.extend(b"JFIF\0");
    v.extend([1, 1, 0, 0, 1, 0, 1, 0, 0]);
    v.extend([0xFF, 0xDB, 0, 67, 0]);
    v.extend([1u8; 64]);
    v.extend([0xFF, 0xC0, 0, 11, 8]);
    v.extend(h.to_be_bytes());
    v.extend(w.to_be_bytes());
    v.extend([1, 1, 0x11, 0]);
    v
}

/// [`jpeg_header`] with Huffman tables and a scan header, then `scan` bytes and EOI: a
/// complete-looking file whose header decoders read in full.
fn jpeg(w: u16, h: u16, scan: &[u8]) -> Vec<u8> {
    let mut v = jpeg_header(w, h);
    for class in [0x00u8, 0x10] {
        // One code of length 1, for symbol 0.
        v.extend([0xFF, 0xC4, 0, 20, class, 1]);
        v.extend([0u8; 15]);
        v.push(0);
    }
    v.extend([0xFF, 0xDA, 0, 8, 1, 1, 0x00, 0, 63, 0]);
    v.extend_from_slice(scan);
    v.extend([0xFF, 0xD9]);
    v
}

/// A 16-bit mono PCM WAV header at `rate` Hz whose data chunk claims `data_len` bytes,
/// followed by `actual` bytes of silence.
fn wav(rate: u32, data_len: u32, actual: usize) -> Vec<u8> {
    let mut v = b"RIFF".to_vec();
    v.extend(data_len.saturating_add(36).to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(rate.to_le_bytes());
    v.extend((rate * 2).to_le_bytes());
    v.extend(2u16.to_le_bytes());
    v.extend(16u16.to_le_bytes());
    v.extend(b"data");
    v.extend(data_len.to_le_bytes());
    v.extend(vec![0u8; actual]);
    v
}

fn junk(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ---- the groups ----------------------------------------------------------------------

async fn wire(s: &mut Suite) {
    let g = "wire";
    // Invalid UTF-8 in a string field: UpsertRequest.collection, and Item.id inside an item.
    let bad_name = field(1, &[0xC3, 0x28]);
    let r = s.raw_unary("/agentdb.v1.Items/Upsert", bad_name.clone()).await;
    s.check(g, "Upsert: collection name is not UTF-8", r, inv(&["request is not valid protobuf", "UTF-8"]));
    let mut body = field(1, b"v");
    body.extend(field(2, &field(1, &[0xFF, 0xFE, b'x'])));
    let r = s.raw_unary("/agentdb.v1.Items/Upsert", body).await;
    s.check(g, "Upsert: item id is not UTF-8", r, inv(&["request is not valid protobuf", "UTF-8"]));
    // Garbled bytes: a length past the end, a wire type that does not fit, a varint that
    // never ends, random junk.
    for (case, bytes) in [
        ("length-delimited field longer than the message", vec![0x0A, 0x7F, b'a']),
        ("string field sent as a varint", vec![0x08, 0x01]),
        ("varint that never ends", vec![0x0A; 1].into_iter().chain([0xFF; 11]).collect()),
        ("1 KiB of random bytes", junk(7, 1024)),
    ] {
        let r = s.raw_unary("/agentdb.v1.Collections/Create", bytes).await;
        s.check(g, &format!("Create: {case}"), r, inv(&["request is not valid protobuf"]));
    }
    // A unary call that sends no message at all.
    let r = s.raw_stream("/agentdb.v1.Collections/List", vec![]).await;
    s.check(g, "List: no request message", r, inv(&["request is not valid protobuf", "no request message"]));
    // The same inside the Ingest stream.
    let r = s.raw_stream("/agentdb.v1.Items/Ingest", vec![bad_name]).await;
    s.check(g, "Ingest stream: collection name is not UTF-8", r, inv(&["request is not valid protobuf", "UTF-8"]));
    let r = s.raw_stream("/agentdb.v1.Items/Ingest", vec![junk(8, 512)]).await;
    s.check(g, "Ingest stream: random bytes", r, inv(&["request is not valid protobuf"]));

    // Oversize messages: unary and streamed, both RESOURCE_EXHAUSTED naming the limit.
    s.create("v", 4, "Flat").await.expect("create v");
    let r = s.upsert("v", one("big", vec![0.5; LIMIT / 4 + 1024], "{}")).await;
    s.check(g, "Upsert: 8 MiB + 4 KiB message", r, exhausted(&["limit of 8388608 bytes", "limits.max_message_bytes"]));
    let r =
        s.ingest(vec![("v".into(), "big.txt".into(), vec![b'a'; LIMIT + (1 << 20)])]).await.map(tonic::Response::new);
    s.check(g, "Ingest stream: 9 MiB file", r, exhausted(&["limit of 8388608 bytes", "limits.max_message_bytes"]));
    s.alive(g).await;
}

async fn credentials(s: &mut Suite) {
    let g = "credentials";
    let url = s.server.url();
    /// Collections/List with `token` as the bearer credential.
    async fn list(url: &str, token: String) -> Res<v1::ListCollectionsResponse> {
        let ch = tonic::transport::Channel::from_shared(url.to_string())
            .unwrap()
            .timeout(CALL_TIMEOUT)
            .connect()
            .await
            .unwrap();
        let v = format!("Bearer {token}").parse().unwrap();
        let ch = tonic::service::interceptor::InterceptedService::new(ch, Bearer(Some(v)));
        v1::collections_client::CollectionsClient::new(ch).list(v1::ListCollectionsRequest {}).await
    }
    let r = list(&url, format!("adb_{}", "a".repeat(20 * 1024))).await;
    s.check(
        g,
        "gRPC: 20 KiB bearer token",
        r,
        Err((Code::Unauthenticated, &["credentials too large", "the limit is 16384"])),
    );
    let r = list(&url, "x".repeat(200 * 1024)).await;
    s.check(g, "gRPC: 200 KiB bearer token", r, Err((Code::Unauthenticated, &["credentials too large"])));
    // Over the 256 KiB header list the HTTP/2 layer refuses the headers itself.
    let r = list(&url, "x".repeat(300 * 1024)).await;
    let got = match &r {
        Ok(_) => "OK".to_string(),
        Err(e) => format!("{:?}: {}", e.code(), e.message()),
    };
    if r.is_ok() {
        s.failures.push(format!("{g} / gRPC: 300 KiB bearer token: accepted"));
    }
    s.seen.push((g.into(), "gRPC: 300 KiB bearer token (over the 256 KiB header list)".into(), got));

    // A2A over HTTP: a JSON-RPC error, or the HTTP layer's 431; never a hang.
    let http = s.server.http_addr.clone().expect("http listener");
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tasks/get", "params": {"id": "x"}}).to_string();
    let auth = format!("Bearer adb_{}", "a".repeat(20 * 1024));
    let r = http_post(&http, "/a2a", &body, &[("Authorization", &auth)]);
    let got = format!("{r:?}");
    let ok = matches!(&r, Ok((401, b)) if b.contains("\"jsonrpc\"") && b.contains("credentials too large"));
    if !ok {
        s.failures.push(format!("{g} / A2A: 20 KiB Authorization header: wanted 401 with a JSON-RPC error, got {got}"));
    }
    s.seen.push((g.into(), "A2A: 20 KiB Authorization header".into(), got.chars().take(200).collect()));
    let auth = format!("Bearer {}", "a".repeat(1 << 20));
    let r = http_post(&http, "/a2a", &body, &[("Authorization", &auth)]);
    let got = format!("{r:?}");
    if !matches!(&r, Ok((401 | 431, _))) {
        s.failures.push(format!("{g} / A2A: 1 MiB Authorization header: wanted 401 or 431, got {got}"));
    }
    s.seen.push((g.into(), "A2A: 1 MiB Authorization header".into(), got.chars().take(200).collect()));
    s.alive(g).await;
}

async fn indexes(s: &mut Suite) {
    let g = "index descriptions";
    let junk_desc: String = junk(3, 10_000).into_iter().map(|b| (b'!' + b % 90) as char).collect();
    let cases: Vec<(&str, String)> = vec![
        ("PQ0", "PQ0".into()),
        ("IVF4,PQ0", "IVF4,PQ0".into()),
        ("HNSW0", "HNSW0".into()),
        ("IVF0,Flat", "IVF0,Flat".into()),
        ("PQ1x0", "PQ1x0".into()),
        ("PQ4x0", "PQ4x0".into()),
        ("OPQ0,PQ2", "OPQ0,PQ2".into()),
        ("HNSW1000000", "HNSW1000000".into()),
        ("IVF99999999999999999999,Flat", "IVF99999999999999999999,Flat".into()),
        ("(empty: the default)", String::new()),
        ("Flat\\0", "Flat\0".into()),
        ("10 KB of junk", junk_desc),
    ];
    for (i, (case, desc)) in cases.into_iter().enumerate() {
        let name = format!("idx{i}");
        let r = s.create(&name, 8, &desc).await;
        let want = if desc.is_empty() { Ok(()) } else { inv(&["index"]) };
        let created = r.is_ok();
        s.check(g, case, r, want);
        if created && !desc.is_empty() {
            // Accepted by mistake: does building the index hurt the server?
            let items = (0..300).map(|j| item(&format!("i{j}"), rand_vec(j, 8), json!({}))).collect();
            let r = s.upsert(&name, items).await;
            s.seen.push((g.into(), format!("{case}: upsert after create"), format!("{:?}", r.map(|_| ()))));
            let mut cols = s.cols().await;
            let r = cols.flush(v1::FlushRequest { collection: name.clone(), optimize: false }).await;
            s.seen.push((g.into(), format!("{case}: flush"), format!("{:?}", r.map(|_| ()))));
        }
        s.alive(&format!("{g} / {case}")).await;
    }
}

async fn filters(s: &mut Suite) {
    let g = "filters";
    s.create("f", 4, "Flat").await.expect("create f");
    let items = (0..20).map(|j| item(&format!("f{j}"), rand_vec(j, 4), json!({"a": j, "tag": "x"}))).collect();
    s.upsert("f", items).await.expect("upsert f");
    let deep = |n: usize| format!("{}a = 1{}", "(".repeat(n), ")".repeat(n));
    let or_chain = |bytes: usize| {
        let mut f = "a = 1".to_string();
        while f.len() < bytes {
            f.push_str(" or a = 1");
        }
        f
    };
    let cases: Vec<(&str, String, Want)> = vec![
        ("unterminated string", "tag = \"x".into(), inv(&["invalid filter"])),
        ("100k-deep parentheses", deep(100_000), inv(&["invalid filter", "maximum is 16384"])),
        ("5k-deep parentheses (under the length limit)", deep(5_000), inv(&["nested too deeply"])),
        ("5k-deep `not`", format!("{}a = 1", "not ".repeat(3_000)), inv(&["nested too deeply"])),
        ("20 KB expression", or_chain(20_000), inv(&["maximum is 16384"])),
        ("unknown operator ~=", "a ~= 1".into(), inv(&["invalid filter"])),
        ("unknown operator <>", "a <> 1".into(), inv(&["invalid filter"])),
        ("`x in [`", "x in [".into(), inv(&["invalid filter"])),
        ("`x in [1, 2` (unterminated list)", "x in [1, 2".into(), inv(&["invalid filter"])),
        ("NUL in the expression", "a = 1\0".into(), inv(&["invalid filter"])),
        ("number out of range", "a = 1e999999".into(), inv(&["invalid filter"])),
        ("16 KB flat `or` chain (valid, under the limit)", or_chain(16_000), Ok(())),
    ];
    for (case, f, want) in cases {
        let started = std::time::Instant::now();
        let r = s.count("f", &f).await;
        if started.elapsed() > Duration::from_secs(10) {
            s.failures.push(format!("{g} / {case}: took {:?}", started.elapsed()));
        }
        s.check(g, &format!("Count: {case}"), r, want);
    }
    let mut items = s.items().await;
    let r = items
        .search(v1::SearchRequest {
            collection: "f".into(),
            vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
            filter: deep(5_000),
            ..Default::default()
        })
        .await;
    s.check(g, "Search: 5k-deep parentheses", r, inv(&["nested too deeply"]));
    let r = items.delete(v1::DeleteRequest { collection: "f".into(), ids: vec![], filter: "x in [".into() }).await;
    s.check(g, "Delete: `x in [`", r, inv(&["invalid filter"]));
    s.alive(g).await;
}

async fn payloads(s: &mut Suite) {
    let g = "payloads";
    let v = || vec![0.25f32; 4];
    let nested = |n: usize| format!("{{\"a\":{}1{}}}", "[".repeat(n), "]".repeat(n));
    let near = 1_048_576 - 64; // limits.max_payload_bytes (default 1 MiB), less the JSON around it
    let cases: Vec<(&str, String, Want)> = vec![
        ("not JSON", "{not json".into(), inv(&["payload_json is not valid JSON"])),
        ("truncated JSON", "{\"a\": [1, 2".into(), inv(&["payload_json is not valid JSON"])),
        ("50-deep nesting", nested(50), inv(&["nesting deeper than 32"])),
        ("10k-deep nesting", nested(10_000), inv(&["payload_json is not valid JSON", "recursion limit"])),
        ("100k-deep nesting", nested(100_000), inv(&["payload_json is not valid JSON", "recursion limit"])),
        ("array, not an object", "[1, 2]".into(), inv(&["payload must be a JSON object"])),
        ("string, not an object", "\"s\"".into(), inv(&["payload must be a JSON object"])),
        ("number, not an object", "42".into(), inv(&["payload must be a JSON object"])),
        ("null (documented: empty = {})", "null".into(), Ok(())),
        ("number out of range", "{\"a\": 1e999999}".into(), inv(&["payload_json is not valid JSON"])),
        ("string just under max_payload_bytes", json!({ "s": "x".repeat(near) }).to_string(), Ok(())),
        (
            "string just over max_payload_bytes",
            json!({ "s": "x".repeat(1_048_576) }).to_string(),
            exhausted(&["the limit is 1048576"]),
        ),
        ("7 MiB string", json!({ "s": "y".repeat(7 << 20) }).to_string(), exhausted(&["the limit is 1048576"])),
        (
            "1 MiB of \\u0000 escapes (6x on re-encoding)",
            json!({ "s": "\0".repeat(200_000) }).to_string(),
            exhausted(&["the limit is 1048576"]),
        ),
        ("9 MiB payload", json!({ "s": "z".repeat(9 << 20) }).to_string(), exhausted(&["limit of 8388608 bytes"])),
    ];
    for (i, (case, p, want)) in cases.into_iter().enumerate() {
        let r = s.upsert("v", one(&format!("p{i}"), v(), &p)).await;
        s.check(g, case, r, want);
    }
    s.alive(g).await;
}

async fn vectors(s: &mut Suite) {
    let g = "vectors";
    let cases: Vec<(&str, Vec<f32>, Want)> = vec![
        ("wrong dimension (2 for 4)", vec![1.0, 2.0], inv(&["dimension", "expected 4, got 2"])),
        ("NaN", vec![1.0, f32::NAN, 0.0, 0.0], inv(&["non-finite"])),
        ("+Inf", vec![f32::INFINITY, 0.0, 0.0, 0.0], inv(&["non-finite"])),
        ("-Inf", vec![0.0, 0.0, 0.0, f32::NEG_INFINITY], inv(&["non-finite"])),
        ("empty", vec![], inv(&["dimension", "got 0"])),
        ("1.5M dimensions (6 MB, under the message limit)", vec![0.5; 1_500_000], inv(&["dimension"])),
        ("10M dimensions (40 MB)", vec![0.5; 10_000_000], exhausted(&["limit of 8388608 bytes"])),
    ];
    for (case, values, want) in cases {
        let r = s.upsert("v", one("vec", values.clone(), "{}")).await;
        s.check(g, &format!("Upsert: {case}"), r, want);
        let mut items = s.items().await;
        let r = items
            .search(v1::SearchRequest {
                collection: "v".into(),
                vector: Some(v1::Vector { values, ..Default::default() }),
                ..Default::default()
            })
            .await;
        s.check(g, &format!("Search: {case}"), r, want);
    }
    let mut items = s.items().await;
    let r = items
        .upsert(v1::UpsertRequest {
            collection: "v".into(),
            items: vec![v1::Item { id: "novec".into(), ..Default::default() }],
        })
        .await;
    s.check(g, "Upsert: no vector at all", r, inv(&["missing vector"]));
    let vector = || v1::Vector { values: vec![1.0; 4], ..Default::default() };
    let r = items
        .upsert(v1::UpsertRequest {
            collection: "v".into(),
            items: vec![v1::Item {
                id: "other".into(),
                vectors: [(String::new(), vector()), ("nope".to_string(), vector())].into(),
                payload_json: String::new(),
            }],
        })
        .await;
    s.check(g, "Upsert: vector for a space that does not exist", r, Err((Code::NotFound, &["nope"])));
    let batch = (0..10_001).map(|j| item(&format!("b{j}"), vec![1.0; 4], json!({}))).collect();
    let r = s.upsert("v", batch).await;
    s.check(g, "Upsert: 10,001 items in one request", r, exhausted(&["batch of 10001 items"]));
    let r = items
        .search(v1::SearchRequest {
            collection: "v".into(),
            vector: Some(v1::Vector { values: vec![1.0; 4], ..Default::default() }),
            top_k: u32::MAX,
            ..Default::default()
        })
        .await;
    s.check(g, "Search: top_k 4294967295", r, exhausted(&["top_k"]));
    let r = s.create("huge", 10_000_000, "Flat").await;
    s.check(g, "Create: a 10M-dimension space", r, inv(&["dimension must be between 1 and 65536"]));
    s.alive(g).await;
}

async fn ids_and_names(s: &mut Suite) {
    let g = "ids and names";
    let v = || vec![0.5f32; 4];
    // Ids are data, never file names: a generated one for empty (documented), ../ kept as is.
    let r = s.upsert("v", one("", v(), "{}")).await;
    let generated = r.as_ref().ok().map(|r| r.get_ref().ids.clone());
    s.check(g, "id: empty (a UUID v4 is generated)", r, Ok(()));
    if !generated.is_some_and(|ids| ids.len() == 1 && ids[0].len() == 36) {
        s.failures.push(format!("{g} / empty id: no generated UUID"));
    }
    let cases: Vec<(&str, String, Want)> = vec![
        ("10 KB id", "i".repeat(10_240), inv(&["id is 10240 bytes, the limit is 256"])),
        ("id with NUL", "a\0b".into(), inv(&["control characters"])),
        ("id with a newline", "a\nb".into(), inv(&["control characters"])),
        ("id with ESC", "a\x1b[2Jb".into(), inv(&["control characters"])),
        ("id `../../x` (stored as data)", "../../x".into(), Ok(())),
        ("id `/etc/passwd` (stored as data)", "/etc/passwd".into(), Ok(())),
        ("unicode id", "ключ-鍵-🔑".into(), Ok(())),
    ];
    for (case, id, want) in cases {
        let r = s.upsert("v", one(&id, v(), "{}")).await;
        s.check(g, case, r, want);
    }
    let mut items = s.items().await;
    let r = items
        .get(v1::GetRequest {
            collection: "v".into(),
            ids: vec!["../../x".into(), "/etc/passwd".into()],
            with_vectors: false,
            ..Default::default()
        })
        .await;
    let found = r.as_ref().map(|r| r.get_ref().items.len()).unwrap_or(0);
    s.check(g, "Get `../../x` and `/etc/passwd` back", r, Ok(()));
    if found != 2 {
        s.failures.push(format!("{g} / Get: {found} of 2 path-like ids found"));
    }

    let long = "n".repeat(1024);
    let names: Vec<(&str, &str, Want)> = vec![
        ("collection `../x`", "../x", inv(&["invalid collection name"])),
        ("collection `../../../../tmp/x`", "../../../../tmp/x", inv(&["invalid collection name"])),
        ("collection `a/b`", "a/b", inv(&["invalid collection name"])),
        ("collection `/abs`", "/abs", inv(&["invalid collection name"])),
        ("collection `.hidden`", ".hidden", inv(&["invalid collection name"])),
        ("collection `-x`", "-x", inv(&["invalid collection name"])),
        ("collection of 1 KB", &long, inv(&["collection name must be 1 to 128 characters, got 1024"])),
        ("collection `名前`", "名前", inv(&["invalid collection name"])),
        ("collection `café`", "café", inv(&["invalid collection name"])),
        ("collection with NUL", "a\0b", inv(&["invalid collection name"])),
        ("collection with a space", "a b", inv(&["invalid collection name"])),
        ("collection `_agents` (reserved)", "_agents", inv(&["reserved"])),
        ("collection empty", "", inv(&["collection name is required"])),
    ];
    for (case, name, want) in names {
        let r = s.create(name, 4, "Flat").await;
        s.check(g, &format!("Create: {case}"), r, want);
    }
    let mut cols = s.cols().await;
    let r = cols
        .create(v1::CreateCollectionRequest {
            name: "sp".into(),
            spaces: vec![space("../s", 4, v1::Metric::L2, "Flat")],
            ..Default::default()
        })
        .await;
    s.check(g, "Create: space `../s`", r, inv(&["invalid space name"]));
    // Other calls only look names up.
    let r = cols.describe(v1::DescribeCollectionRequest { name: "../v".into() }).await;
    s.check(g, "Describe `../v`", r, Err((Code::NotFound, &["not found"])));
    let r = cols.drop(v1::DropCollectionRequest { name: "../data".into() }).await;
    s.check(g, "Drop `../data`", r, Err((Code::NotFound, &["not found"])));
    let r = s.upsert("../v", one("a", v(), "{}")).await;
    s.check(g, "Upsert into `../v`", r, Err((Code::NotFound, &["not found"])));
    let r = s.count("../../v", "").await;
    s.check(g, "Count `../../v`", r, Err((Code::NotFound, &["not found"])));
    s.alive(g).await;
}

async fn media(s: &mut Suite) {
    let g = "media";
    let mut cols = s.cols().await;
    let r =
        cols.create(v1::CreateCollectionRequest { name: "media".into(), multimodal: true, ..Default::default() }).await;
    r.expect("create a multimodal collection (models: bash .ci/models.sh)");

    // 64×64 RGB: each row a filter byte and 192 bytes.
    let mut raw = Vec::new();
    for y in 0..64u8 {
        raw.push(0);
        raw.extend((0..192u8).map(|x| x.wrapping_mul(y)));
    }
    let good_png = png(64, 64, &zlib_stored(&raw), true);
    let mut hour_wav = wav(16_000, u32::MAX - 64, 32_000); // claims ~37 hours
    hour_wav.truncate(44 + 32_000);
    let mut mp4 = b"\0\0\0\x18ftypisom\0\0\x02\0isomiso2".to_vec();
    mp4.extend(junk(11, 64 << 10));
    let files: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("truncated.png", good_png[..good_png.len() / 2].to_vec(), &["truncated.png"]),
        ("no-iend.png", png(64, 64, &zlib_stored(&raw)[..2000], false), &["no-iend.png"]),
        ("huge-header.png", png(100_000, 100_000, &zlib_stored(&raw), true), &["limits.max_image_pixels"]),
        ("50M-pixel-bomb.png", png(7_000, 7_000, &zlib_stored(&raw), true), &["50M-pixel-bomb.png"]),
        ("header-only.jpg", jpeg_header(640, 480), &["header-only.jpg"]),
        ("huge-header.jpg", jpeg(20_000, 20_000, &[0; 64]), &["20000x20000 = 400000000 pixels", "max_image_pixels"]),
        ("oversize-side.jpg", jpeg(65_000, 8, &[0; 64]), &["limits.max_image_pixels"]),
        ("hours.wav", hour_wav, &["max_audio_seconds"]),
        ("rate-1hz.wav", wav(1, 200_000, 200_000), &["max_audio_seconds"]),
        ("rate-zero.wav", wav(0, 2_000, 2_000), &["rate-zero.wav", "corrupt or truncated audio"]),
        ("random.mp4", junk(5, 256 << 10), &["random.mp4"]),
        ("ftyp-then-junk.mp4", mp4, &["ftyp-then-junk.mp4"]),
        ("empty.png", vec![], &["file is empty"]),
    ];
    let mut wanted = std::collections::HashMap::new();
    let mut stream: Vec<(String, String, Vec<u8>)> = Vec::new();
    for (name, bytes, words) in files {
        wanted.insert(name.to_string(), words);
        stream.push(("media".into(), name.into(), bytes));
    }
    // A control: a file that does ingest; and files for collections that cannot be reached.
    stream.push(("media".into(), "ok.png".into(), good_png));
    stream.push(("../data".into(), "escape.txt".into(), b"a note".to_vec()));
    stream.push(("nope".into(), "nope.txt".into(), b"a note".to_vec()));
    wanted.insert("escape.txt".into(), &["not found"]);
    wanted.insert("nope.txt".into(), &["not found"]);
    let started = std::time::Instant::now();
    match s.ingest(stream).await {
        Err(e) => s.failures.push(format!("{g}: the ingest stream failed: {e:?}")),
        Ok(results) => {
            for r in &results {
                let got = format!("{} {}: {}", r.status, r.media_type, r.error);
                let ok = if r.source == "ok.png" {
                    r.status == "ingested"
                } else {
                    let words = wanted.get(&r.source).copied().unwrap_or(&[]);
                    r.status == "failed" && !r.error.is_empty() && words.iter().all(|w| r.error.contains(w))
                };
                if !ok {
                    s.failures.push(format!("{g} / {}: got {got}", r.source));
                }
                s.seen.push((g.into(), format!("Ingest {}", r.source), got));
            }
            if results.len() != wanted.len() + 1 {
                s.failures.push(format!("{g}: {} results for {} files", results.len(), wanted.len() + 1));
            }
        }
    }
    eprintln!("media ingest took {:?}", started.elapsed());
    s.alive(g).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_clear_statuses_and_the_server_stays_up() {
    let mut s = Suite::start();
    wire(&mut s).await;
    credentials(&mut s).await;
    indexes(&mut s).await;
    filters(&mut s).await;
    payloads(&mut s).await;
    vectors(&mut s).await;
    ids_and_names(&mut s).await;
    media(&mut s).await;

    // Nothing was created outside the data directory (the temporary root holds only it
    // and the server's logs) and no collection with a refused name exists.
    let outside: Vec<String> = std::fs::read_dir(&s.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n != "data" && !n.starts_with("data.log"))
        .collect();
    if !outside.is_empty() {
        s.failures.push(format!("created outside the data directory: {outside:?}"));
    }
    let collections: Vec<String> = std::fs::read_dir(s.server.data_dir.join("collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('_'))
        .collect();
    let unexpected: Vec<&String> =
        collections.iter().filter(|n| !["v", "f", "media"].contains(&n.as_str()) && !n.starts_with("idx")).collect();
    if !unexpected.is_empty() {
        s.failures.push(format!("unexpected collection directories: {unexpected:?}"));
    }

    eprintln!("\n| group | case | observed |\n|---|---|---|");
    for (g, c, got) in &s.seen {
        let got: String = got.chars().take(160).collect();
        eprintln!("| {g} | {} | {} |", c.replace('|', "\\|"), got.replace('|', "\\|").replace('\n', " "));
    }
    assert_eq!(s.server.terminate().code(), Some(0), "clean shutdown after the suite");
    let _ = std::fs::remove_dir_all(&s.root);
    assert!(s.failures.is_empty(), "{} case(s) misbehaved:\n{}", s.failures.len(), s.failures.join("\n"));
}

/// `AGENTDB_LOG` (docs/OPERATIONS.md) is the log filter, not a configuration key: the
/// server starts with it set (it used to stop with "unknown configuration key 'log'").
#[test]
fn the_server_starts_with_agentdb_log_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--set", "http_listen=", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("AGENTDB_URL")
        .env("AGENTDB_LOG", "agentdb_engine=debug,info")
        .env("AGENTDB_A2A_PYTHON", "python3")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(line.starts_with("agentdb listening on "), "did not start: {line}\n{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    // A real configuration key in the environment still works, and a typo still stops it.
    let out = std::process::Command::new(BIN)
        .args(["serve", "--print-config"])
        .env("AGENTDB_LOG", "debug")
        .env("AGENTDB_STORAGE__FLUSH_ROWS", "777")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("flush_rows = 777"));
    let out = std::process::Command::new(BIN)
        .args(["serve", "--print-config"])
        .env("AGENTDB_LOGG", "debug")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown configuration key 'logg'"));
}
