//! Behaviour of a collection through the engine's public API, on real files.

use agentdb_engine::*;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

fn spec(index: &str, dim: usize, metric: Metric) -> CollectionSpec {
    CollectionSpec {
        keyword: None,
        name: "c".into(),
        spaces: vec![SpaceSpec { name: "v".into(), dim, metric, index: index.into(), encoder: None }],
    }
}

fn opts() -> CollectionOptions {
    CollectionOptions { exact_threshold: 64, ..Default::default() }
}

fn vecs(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| (0..dim).map(|_| rng.random::<f32>() * 2.0 - 1.0).collect()).collect()
}

fn item(id: &str, v: Vec<f32>, payload: serde_json::Value) -> Item {
    Item { id: id.into(), vectors: BTreeMap::from([("v".to_string(), v)]), payload }
}

fn search(c: &Collection, q: &[f32], k: usize, filter: Option<&Filter>, exact: bool) -> Vec<Hit> {
    c.search(SearchRequest {
        space: "v",
        queries: vec![q.to_vec()],
        k,
        filter,
        params: SearchParams { exact, ..Default::default() },
        with_payload: true,
        with_vectors: false,
    })
    .unwrap()
    .remove(0)
}

fn load(c: &Collection, vs: &[Vec<f32>], payload: impl Fn(usize) -> serde_json::Value) {
    for (chunk_no, chunk) in vs.chunks(1000).enumerate() {
        let items = chunk
            .iter()
            .enumerate()
            .map(|(j, v)| item(&format!("i{}", chunk_no * 1000 + j), v.clone(), payload(chunk_no * 1000 + j)))
            .collect();
        c.upsert(items).unwrap();
    }
}

#[test]
fn upsert_get_replace_delete_across_flushes_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let c = Collection::create(&path, spec("HNSW16", 8, Metric::Cosine), opts()).unwrap();
    let vs = vecs(600, 8, 1);
    load(&c, &vs, |i| json!({"n": i, "parity": if i % 2 == 0 { "even" } else { "odd" }}));
    assert_eq!(c.count(None).unwrap(), 600);
    assert!(c.flush().unwrap());

    // Replace an item that now lives in a segment: the old vector must not come back.
    let replacement: Vec<f32> = vs[599].iter().map(|x| -x).collect();
    c.upsert(vec![item("i5", replacement.clone(), json!({"n": 5, "replaced": true}))]).unwrap();
    let hits = search(&c, &vs[5], 600, None, true);
    assert_eq!(hits.iter().filter(|h| h.id == "i5").count(), 1, "exactly one i5 in results (no ghost)");
    let top = search(&c, &replacement, 1, None, false);
    assert_eq!(top[0].id, "i5");
    assert_eq!(top[0].payload.as_ref().unwrap()["replaced"], json!(true));
    assert_eq!(c.count(None).unwrap(), 600);

    // Generated ids, delete by id and by filter.
    let ids = c.upsert(vec![item("", vs[0].clone(), json!({}))]).unwrap();
    assert_eq!(ids[0].len(), 36, "a UUID was generated");
    assert_eq!(c.delete(&["i1".into(), "nope".into()]).unwrap(), 1);
    let f = filter::parse("parity = \"odd\" and n < 100").unwrap();
    // odd n in 3..=99, less i5 (its replacement has no parity); i1 is already gone
    assert_eq!(c.delete_by_filter(&f).unwrap(), 48);
    assert_eq!(c.count(None).unwrap(), 600 + 1 - 1 - 48);
    c.flush().unwrap();
    let before = c.info().unwrap();
    drop(c);

    let c = Collection::open(&path, opts()).unwrap();
    let after = c.info().unwrap();
    assert_eq!(before.count, after.count);
    assert!(c.get(&["i1".into(), "i3".into()], false).unwrap().is_empty());
    let got = c.get(&["i5".into()], true).unwrap();
    assert_eq!(got[0].payload["replaced"], json!(true));
    let norm = replacement.iter().map(|x| x * x).sum::<f32>().sqrt();
    for (a, b) in got[0].vectors["v"].iter().zip(&replacement) {
        assert!((a - b / norm).abs() < 1e-5, "cosine vectors are stored normalised");
    }
    c.optimize().unwrap();
    let info = c.info().unwrap();
    assert_eq!(info.segments, 1);
    assert_eq!(info.deleted_rows, 0);
    assert_eq!(info.count, after.count);
    assert_eq!(search(&c, &replacement, 1, None, false)[0].id, "i5");
}

#[test]
fn filtered_search_returns_k_whenever_k_match() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collection::create(&dir.path().join("c"), spec("HNSW16", 32, Metric::L2), opts()).unwrap();
    let vs = vecs(20_000, 32, 2);
    load(&c, &vs, |i| json!({"bucket": i % 1000, "tag": if i % 3 == 0 { "a" } else { "b" }}));
    c.flush().unwrap();
    let q = &vecs(1, 32, 99)[0];
    for (expr, matching) in [("bucket = 7", 20), ("bucket < 3", 60), ("tag = \"a\"", 6667), ("not tag = \"a\"", 13333)]
    {
        let f = filter::parse(expr).unwrap();
        assert_eq!(c.count(Some(&f)).unwrap(), matching, "{expr}");
        for k in [1, 10, 50] {
            let hits = search(&c, q, k, Some(&f), false);
            assert_eq!(hits.len(), k.min(matching as usize), "{expr} k={k}");
            assert!(hits.iter().all(|h| f.matches(h.payload.as_ref().unwrap())), "{expr}: a hit violates the filter");
            // Same top-1 as exact search over the matching rows.
            let exact = search(&c, q, k, Some(&f), true);
            assert_eq!(hits[0].id, exact[0].id, "{expr} k={k}");
        }
    }
    // k larger than the matches: all of them.
    let f = filter::parse("bucket = 7").unwrap();
    assert_eq!(search(&c, q, 100, Some(&f), false).len(), 20);
    // Segments cache the rows a filter matches; a delete is never hidden by the cache.
    let gone: Vec<String> = search(&c, q, 5, Some(&f), true).iter().map(|h| h.id.clone()).collect();
    assert_eq!(c.delete(&gone).unwrap(), 5);
    assert_eq!(c.count(Some(&f)).unwrap(), 15);
    let hits = search(&c, q, 100, Some(&f), false);
    assert_eq!(hits.len(), 15);
    assert!(hits.iter().all(|h| !gone.contains(&h.id)));
}

/// A batch large enough to re-rank on the rayon pool gives every query exactly what it
/// gets alone, in order — with and without a filter selective enough that some graph
/// walks run out of allowed rows and fall back to an exact scan.
#[test]
fn a_large_batch_answers_each_query_as_a_single_search_does() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collection::create(&dir.path().join("c"), spec("HNSW16", 32, Metric::L2), opts()).unwrap();
    let vs = vecs(6_000, 32, 5);
    load(&c, &vs, |i| json!({"bucket": i % 100}));
    c.flush().unwrap();
    let qs = vecs(40, 32, 77);
    for expr in [None, Some("bucket < 50"), Some("bucket = 3")] {
        let f = expr.map(|e| filter::parse(e).unwrap());
        let batch = c
            .search(SearchRequest {
                space: "v",
                queries: qs.clone(),
                k: 10,
                filter: f.as_ref(),
                params: SearchParams::default(),
                with_payload: false,
                with_vectors: false,
            })
            .unwrap();
        assert_eq!(batch.len(), qs.len());
        for (q, got) in qs.iter().zip(&batch) {
            let alone = search(&c, q, 10, f.as_ref(), false);
            let key = |h: &[Hit]| h.iter().map(|h| (h.id.clone(), h.score.to_bits())).collect::<Vec<_>>();
            assert_eq!(key(got), key(&alone), "{expr:?}");
            assert_eq!(got.len(), 10, "{expr:?}");
        }
    }
}

#[test]
fn ivf_pq_and_fallback_and_exact_rerank() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collection::create(&dir.path().join("c"), spec("IVF16,PQ8", 32, Metric::InnerProduct), opts()).unwrap();
    let vs = vecs(5000, 32, 3);
    load(&c, &vs, |_| json!({}));
    c.flush().unwrap();
    let info = c.info().unwrap();
    assert_eq!(info.spaces[0].index_kinds, vec!["IVF16,PQ8 (1 segment)".to_string()]);
    // Scores are exact after re-ranking, so they match the exact path for shared hits.
    let q = &vs[42];
    let ann = search(&c, q, 5, None, false);
    let exact = search(&c, q, 5, None, true);
    assert_eq!(ann[0].id, exact[0].id);
    assert!((ann[0].score - exact[0].score).abs() < 1e-4);

    // Too few rows to train 1024 clusters: falls back to Flat and says so.
    let c2 = Collection::create(&dir.path().join("c2"), spec("IVF1024,Flat", 8, Metric::L2), opts()).unwrap();
    load(&c2, &vecs(100, 8, 4), |_| json!({}));
    c2.flush().unwrap();
    let kinds = &c2.info().unwrap().spaces[0].index_kinds;
    assert!(kinds[0].starts_with("Flat (fallback from IVF1024,Flat"), "{kinds:?}");
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = Collection::create(&dir.path().join("c"), spec("Flat", 4, Metric::Cosine), opts()).unwrap();
    let err = c.upsert(vec![item("a", vec![1.0, 2.0], json!({}))]).unwrap_err();
    assert!(matches!(err, Error::DimensionMismatch { expected: 4, got: 2, .. }), "{err}");
    let err = c.upsert(vec![item("a", vec![1.0, f32::NAN, 0.0, 0.0], json!({}))]).unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    let err = c.upsert(vec![item("a", vec![0.0; 4], json!({}))]).unwrap_err();
    assert!(err.to_string().contains("zero vector"), "{err}");
    let err = c.upsert(vec![item("a", vec![1.0; 4], json!([1, 2]))]).unwrap_err();
    assert!(err.to_string().contains("payload must be a JSON object"), "{err}");
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!({ "x": deep });
    }
    assert!(c.upsert(vec![item("a", vec![1.0; 4], deep)]).unwrap_err().to_string().contains("nesting"));
    let mut it = item("a", vec![1.0; 4], json!({}));
    it.vectors.insert("other".into(), vec![1.0]);
    assert!(matches!(c.upsert(vec![it]).unwrap_err(), Error::SpaceNotFound { .. }));
    let too_many: Vec<Item> = (0..10_001).map(|i| item(&i.to_string(), vec![1.0; 4], json!({}))).collect();
    assert!(matches!(c.upsert(too_many).unwrap_err(), Error::LimitExceeded(_)));
    assert!(matches!(
        c.search(SearchRequest {
            space: "nope",
            queries: vec![vec![1.0; 4]],
            k: 1,
            filter: None,
            params: Default::default(),
            with_payload: false,
            with_vectors: false
        })
        .unwrap_err(),
        Error::SpaceNotFound { .. }
    ));
    assert_eq!(c.count(None).unwrap(), 0, "nothing half-written");
    assert!(CollectionSpec { name: "bad/name".into(), spaces: spec("Flat", 4, Metric::L2).spaces, keyword: None }
        .validate()
        .is_err());
    assert!(spec("HNSW32,Bogus", 4, Metric::L2).validate().is_err());
}

fn corrupt(path: &Path) {
    let mut data = std::fs::read(path).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    std::fs::write(path, data).unwrap();
}

#[test]
fn damaged_files_are_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let c = Collection::create(&path, spec("HNSW16", 8, Metric::Cosine), opts()).unwrap();
    load(&c, &vecs(300, 8, 5), |i| json!({"i": i}));
    c.flush().unwrap();
    drop(c);
    let seg = std::fs::read_dir(path.join("segments")).unwrap().next().unwrap().unwrap().path();
    for file in ["payloads.bin", "vectors-v.bin", "index-v.faiss", "ids.bin"] {
        let p = seg.join(file);
        let orig = std::fs::read(&p).unwrap();
        corrupt(&p);
        let err = Collection::open(&path, opts()).expect_err("must fail").to_string();
        assert!(err.contains(file) && err.contains("checksum"), "{file}: {err}");
        std::fs::write(&p, orig).unwrap();
    }
    corrupt(&path.join("MANIFEST"));
    let err = Collection::open(&path, opts()).err().unwrap().to_string();
    assert!(err.contains("MANIFEST"), "{err}");
}

#[test]
fn database_lock_create_drop_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), opts()).unwrap();
    let err = Database::open(dir.path(), opts()).err().unwrap();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    assert!(err.to_string().contains(&std::process::id().to_string()));
    let mut s = spec("Flat", 4, Metric::L2);
    db.create_collection(s.clone()).unwrap();
    assert!(matches!(db.create_collection(s.clone()).unwrap_err(), Error::CollectionExists(_)));
    s.name = "d".into();
    db.create_collection(s).unwrap();
    db.collection("d").unwrap().upsert(vec![item("x", vec![1.0; 4], json!({}))]).unwrap();
    db.drop_collection("c").unwrap();
    assert!(matches!(db.drop_collection("c").unwrap_err(), Error::CollectionNotFound(_)));
    db.close();
    drop(db);
    let db = Database::open(dir.path(), opts()).unwrap();
    assert_eq!(db.list().iter().map(|i| i.name.clone()).collect::<Vec<_>>(), vec!["d".to_string()]);
    assert_eq!(db.collection("d").unwrap().count(None).unwrap(), 1);
}

#[test]
fn concurrent_writes_searches_info_and_flushes_do_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let c = std::sync::Arc::new(
        Collection::create(
            &dir.path().join("c"),
            spec("Flat", 8, Metric::L2),
            CollectionOptions { flush_rows: 50, ..opts() },
        )
        .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut handles = Vec::new();
    for w in 0..2 {
        let c = c.clone();
        handles.push(std::thread::spawn(move || {
            let mut i = 0;
            while std::time::Instant::now() < deadline {
                c.upsert(vec![item(&format!("w{w}-{i}"), vecs(1, 8, i)[0].clone(), json!({"w": w}))]).unwrap();
                if i % 7 == 0 {
                    c.delete(&[format!("w{w}-{}", i / 2)]).unwrap();
                }
                i += 1;
            }
        }));
    }
    for job in 0..3 {
        let c = c.clone();
        handles.push(std::thread::spawn(move || {
            while std::time::Instant::now() < deadline {
                match job {
                    0 => {
                        c.info().unwrap();
                    }
                    1 => {
                        c.maintain().unwrap();
                    }
                    _ => {
                        let _ = search(&c, &[0.5; 8], 5, None, false);
                    }
                }
            }
        }));
    }
    std::thread::spawn(move || {
        for h in handles {
            h.join().unwrap();
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(60)).expect("writers, readers, info and flushes deadlocked");
    c.optimize().unwrap();
    assert_eq!(c.info().unwrap().count, c.count(None).unwrap());
}

/// A bulk load (the write buffer filling again and again) seals segments without
/// building their indexes; they answer searches exactly meanwhile, survive a crash
/// through the WAL, and `optimize` indexes every row once, in one segment.
#[test]
fn bulk_load_builds_each_index_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c");
    let o = CollectionOptions { flush_rows: 300, index_defer_rows: 10_000, ..opts() };
    let vs = vecs(2000, 8, 31);
    {
        let c = Collection::create(&path, spec("HNSW16", 8, Metric::L2), o.clone()).unwrap();
        for (i, chunk) in vs.chunks(100).enumerate() {
            let items = chunk
                .iter()
                .enumerate()
                .map(|(j, v)| item(&format!("i{}", i * 100 + j), v.clone(), json!({})))
                .collect();
            c.upsert(items).unwrap();
            c.maintain().unwrap();
        }
        let info = c.info().unwrap();
        assert!(info.segments >= 6, "{info:?}");
        assert!(info.unindexed >= 1800, "sealed during the load, not indexed: {info:?}");
        assert_eq!(c.stats.snapshot().indexed_rows, 0);
        // Exact answers meanwhile (a stored vector finds itself).
        assert_eq!(search(&c, &vs[1234], 1, None, false)[0].id, "i1234");
        c.delete(&["i5".to_string()]).unwrap();
        // Dropped without a flush: the WAL still holds every deferred row.
    }
    let c = Collection::open(&path, o).unwrap();
    assert_eq!(c.count(None).unwrap(), 1999);
    c.upsert(vec![item("late", vs[7].clone(), json!({}))]).unwrap();
    c.optimize().unwrap();
    let info = c.info().unwrap();
    assert_eq!((info.segments, info.unindexed, info.count), (1, 0, 2000), "{info:?}");
    assert_eq!(c.stats.snapshot().indexed_rows, 2000, "each row indexed once");
    assert_eq!(search(&c, &vs[1234], 1, None, false)[0].id, "i1234");
    assert!(c.get(&["i5".to_string()], false).unwrap().is_empty());
    drop(c);
    let c = Collection::open(&path, CollectionOptions { flush_rows: 300, ..opts() }).unwrap();
    assert_eq!(c.count(None).unwrap(), 2000);
    assert_eq!(c.info().unwrap().unindexed, 0);
}

/// When the load pauses (the buffer ages past flush_interval) the deferred segments
/// are merged and indexed by the background work alone, also once.
#[test]
fn deferred_segments_are_indexed_when_the_load_pauses() {
    let dir = tempfile::tempdir().unwrap();
    let o = CollectionOptions {
        flush_rows: 200,
        flush_interval: std::time::Duration::from_millis(200),
        index_defer_rows: 10_000,
        ..opts()
    };
    let c = Collection::create(&dir.path().join("c"), spec("HNSW16", 8, Metric::L2), o).unwrap();
    let vs = vecs(1050, 8, 32);
    load(&c, &vs, |_| json!({}));
    c.maintain().unwrap();
    assert!(c.info().unwrap().unindexed > 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.maintain().unwrap();
    let info = c.info().unwrap();
    assert_eq!((info.unindexed, info.count), (0, 1050), "{info:?}");
    assert_eq!(c.stats.snapshot().indexed_rows, 1050);
    assert_eq!(search(&c, &vs[1049], 1, None, false)[0].id, "i1049");
}
