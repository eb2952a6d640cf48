//! Fuzzing of the index-description grammar (`agentdb_engine::index_desc`) on the
//! stable toolchain: property tests instead of cargo-fuzz.
//!
//! - `random_strings_never_panic`: strings built from the grammar's tokens, digits
//!   (zero, bounds, huge numbers), junk and unicode never make the parser panic, and
//!   a refusal always has a message naming the description.
//! - `accepted_descriptions_build_and_search`: descriptions generated around every
//!   bound; each one the grammar accepts is built with FAISS on 300 random vectors and
//!   searched. FAISS dies by signal (SIGFPE, SIGSEGV, SIGBUS) on the descriptions the
//!   grammar exists to refuse, which would kill this test: accepted means safe.
//! - `corpus_replays`: `tests/data/index_descriptions.txt`, the crashers found so far
//!   and every valid form, replayed the same way.
//!
//! Add any failing case proptest finds to the corpus.

use agentdb_engine::index::{AnnIndex, IndexTuning, RowFilter};
use agentdb_engine::index_desc::{self, IndexDesc};
use agentdb_engine::{Error, Metric};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicUsize, Ordering};

const ROWS: usize = 300;

/// Cases per property test: `base`, times `AGENTDB_FUZZ_SCALE` (default 1) for a longer
/// fuzzing run, e.g. `AGENTDB_FUZZ_SCALE=50 cargo test --release --test index_desc_fuzz`.
fn cases(base: u32) -> u32 {
    let scale = std::env::var("AGENTDB_FUZZ_SCALE").ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(1);
    base.saturating_mul(scale.max(1))
}

fn vectors(rows: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..rows * dim).map(|_| rng.random::<f32>() - 0.5).collect()
}

fn metric_for(i: usize) -> Metric {
    [Metric::L2, Metric::InnerProduct, Metric::Cosine][i % 3]
}

/// Build `desc` (already accepted) over ROWS random vectors, search it with and
/// without a row filter, and round-trip it through its serialised form.
fn build_and_search(desc: &str, parsed: &IndexDesc, dim: usize, metric: Metric) {
    let started = std::time::Instant::now();
    let v = vectors(ROWS, dim, dim as u64 * 7919 + desc.len() as u64);
    let ix = AnnIndex::build(desc, dim, metric, &v, IndexTuning::default())
        .unwrap_or_else(|e| panic!("'{desc}' (parsed as {parsed}) at dim {dim} was accepted but did not build: {e}"));
    assert_eq!(ix.len(), ROWS, "{desc}");
    let r = ix.search(&v[3 * dim..5 * dim], 5, None, 0).unwrap_or_else(|e| panic!("'{desc}' search: {e}"));
    assert_eq!(r.len(), 2, "{desc}");
    assert!(r.iter().all(|hits| hits.len() <= 5 && hits.iter().all(|(row, _)| (*row as usize) < ROWS)), "{desc}");
    let bitmap = vec![0b0101_0101u8; ROWS.div_ceil(8)];
    let r = ix
        .search(&v[..dim], 3, Some(RowFilter { bitmap: &bitmap }), 2)
        .unwrap_or_else(|e| panic!("'{desc}' filtered search: {e}"));
    assert!(r[0].iter().all(|(row, _)| row % 2 == 0), "'{desc}': filter ignored: {:?}", r[0]);
    let bytes = ix.to_bytes().unwrap();
    let back = AnnIndex::from_bytes(&bytes, &ix.kind, dim, IndexTuning::default())
        .unwrap_or_else(|e| panic!("'{desc}' reload: {e}"));
    assert_eq!(back.len(), ROWS);
    back.search(&v[..dim], 1, None, 0).unwrap();
    if started.elapsed().as_secs_f64() > 1.0 {
        eprintln!("slow: '{desc}' at dim {dim} ({}): {:.1?}", ix.kind, started.elapsed());
    }
}

fn assert_refusal(desc: &str, e: &Error) {
    assert!(matches!(e, Error::InvalidArgument(_)), "'{desc}': {e:?}");
    let msg = e.to_string();
    assert!(
        msg == "empty index description" || msg.starts_with("invalid index description '"),
        "'{desc}': message does not name the description: {msg}"
    );
}

// ---------- (a) random token strings ----------

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "HNSW", "IVF", "PQ", "OPQ", "PCA", "PCAR", "PCAW", "SQ", "SQ8", "SQ4", "SQ6", "SQfp16", "SQbf16",
            "Flat", "fp16", "x", "_", ",", ",", "_HNSW", "np", "fs", "k", "M", "IDMap", "RFlat", "Refine", "(",
            ")", "NSG", "LSH", "RQ", "IMI2x", "Residual",
        ])
        .prop_map(str::to_string),
        4 => prop::sample::select(vec![
            "0", "1", "2", "3", "4", "5", "7", "8", "12", "13", "16", "32", "64", "255", "256", "257", "65536",
            "65537", "262144", "262145", "2147483647", "2147483648", "4294967295", "4294967296",
            "18446744073709551615", "18446744073709551616", "99999999999999999999999999", "00", "007",
        ])
        .prop_map(str::to_string),
        1 => prop::sample::select(vec![
            " ", "\t", "\n", "\0", "-", "+", ".", "é", "３２", "Ｈ", "\u{1b}", "\u{202e}", "😀", "\u{fffd}", "%s", "'",
            "\"", "\\",
        ])
        .prop_map(str::to_string),
        1 => any::<char>().prop_map(|c| c.to_string()),
        1 => "[0-9]{1,30}",
    ]
}

fn token_string() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..10).prop_map(|t| t.concat())
}

#[test]
fn random_strings_never_panic() {
    let builds = AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config { cases: cases(2000), failure_persistence: None, ..Config::default() });
    runner
        .run(&(token_string(), prop::sample::select(vec![1usize, 3, 4, 8, 12, 16, 65536])), |(desc, dim)| {
            match index_desc::validate(&desc, dim, Metric::L2) {
                Err(e) => assert_refusal(&desc, &e),
                Ok(parsed) => {
                    // The canonical spelling means the same.
                    assert_eq!(index_desc::parse(&parsed.to_string()).unwrap(), parsed, "{desc}");
                    // Rare; build a bounded number of them (small dims only).
                    if dim <= 16 && builds.fetch_add(1, Ordering::Relaxed) < 32 * cases(1) as usize {
                        build_and_search(&desc, &parsed, dim, Metric::L2);
                    }
                }
            }
            let _ = index_desc::parse(&desc);
            Ok(())
        })
        .unwrap();
}

// ---------- (b) near-valid descriptions, built when accepted ----------

fn pick(v: &[u32]) -> impl Strategy<Value = u32> + Clone {
    prop::sample::select(v.to_vec())
}

fn sq() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["SQ4", "SQ6", "SQ8", "SQfp16"]).prop_map(str::to_string)
}

fn pq() -> impl Strategy<Value = String> {
    (pick(&[0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 32]), prop::option::of(pick(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13])))
        .prop_map(|(m, b)| match b {
            Some(b) => format!("PQ{m}x{b}"),
            None => format!("PQ{m}"),
        })
}

fn hnsw_m() -> impl Strategy<Value = u32> {
    pick(&[0, 1, 2, 3, 4, 8, 16, 32, 64, 255, 256, 257])
}

fn main_index() -> impl Strategy<Value = String> {
    let nlist = pick(&[0, 1, 2, 3, 4, 8, 16, 64, 299, 300, 301, 1024, 65536, 65537]);
    prop_oneof![
        1 => Just("Flat".to_string()),
        3 => (hnsw_m(), prop::option::of(prop_oneof![Just("Flat".to_string()), sq()]))
            .prop_map(|(m, s)| match s {
                Some(s) => format!("HNSW{m},{s}"),
                None => format!("HNSW{m}"),
            }),
        4 => (nlist, prop::option::of(hnsw_m()), prop_oneof![Just("Flat".to_string()), sq(), pq()])
            .prop_map(|(n, h, c)| match h {
                Some(h) => format!("IVF{n}_HNSW{h},{c}"),
                None => format!("IVF{n},{c}"),
            }),
        3 => pq(),
        1 => sq(),
    ]
}

fn pre() -> impl Strategy<Value = String> {
    let d = pick(&[0, 1, 2, 3, 4, 6, 7, 8, 12, 16, 24, 32, 48, 64, 65]);
    prop_oneof![
        (pick(&[0, 1, 2, 3, 4, 8, 16, 32]), prop::option::of(d.clone())).prop_map(|(m, d)| match d {
            Some(d) => format!("OPQ{m}_{d},"),
            None => format!("OPQ{m},"),
        }),
        (prop::bool::ANY, d).prop_map(|(r, d)| format!("PCA{}{d},", if r { "R" } else { "" })),
    ]
}

fn near_valid() -> impl Strategy<Value = String> {
    (prop::option::weighted(0.3, pre()), main_index()).prop_map(|(p, m)| format!("{}{m}", p.unwrap_or_default()))
}

#[test]
fn accepted_descriptions_build_and_search() {
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config { cases: cases(160), failure_persistence: None, ..Config::default() });
    runner
        .run(&(near_valid(), prop::sample::select(vec![3usize, 4, 7, 8, 12, 16]), 0usize..3), |(desc, dim, metric)| {
            match index_desc::validate(&desc, dim, metric_for(metric)) {
                Ok(parsed) => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    assert_eq!(index_desc::parse(&parsed.to_string()).unwrap(), parsed, "{desc}: canonical form");
                    build_and_search(&desc, &parsed, dim, metric_for(metric));
                }
                Err(e) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    assert_refusal(&desc, &e);
                }
            }
            Ok(())
        })
        .unwrap();
    let (a, r) = (accepted.into_inner(), refused.into_inner());
    eprintln!("near-valid descriptions: {a} accepted (built and searched), {r} refused");
    assert!(a >= 20 && r >= 20, "the generator should exercise both sides: {a} accepted, {r} refused");
}

/// PQ codebooks wider than 8 bits need 2^nbits training rows, which the fuzzing
/// above (300 rows) never has: train them for real.
#[test]
fn wide_pq_codebooks_train() {
    let dim = 4;
    let v = vectors(4200, dim, 11);
    for desc in ["PQ2x9", "PQ1x12", "IVF2,PQ2x10", "IVF4_HNSW2,PQ4x12", "OPQ2,PQ2x11"] {
        let ix = AnnIndex::build(desc, dim, Metric::L2, &v, IndexTuning::default()).unwrap();
        assert_eq!(ix.kind, desc, "trained, no fallback");
        assert_eq!(ix.search(&v[..dim], 1, None, 64).unwrap()[0].len(), 1, "{desc}");
    }
}

// ---------- the checked-in corpus ----------

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('0') => out.push('\0'),
            Some('e') => out.push('\u{1b}'),
            Some('\\') => out.push('\\'),
            Some(o) => panic!("unknown escape \\{o} in the corpus"),
            None => panic!("trailing backslash in the corpus"),
        }
    }
    out
}

#[test]
fn corpus_replays() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/index_descriptions.txt");
    let text = std::fs::read_to_string(path).unwrap();
    let (mut ok, mut bad) = (0, 0);
    for (no, line) in text.lines().enumerate() {
        let at = format!("{path}:{}", no + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let (tag, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{at}: no tag"));
        let (dim, rest) = rest.split_once(' ').unwrap_or_else(|| panic!("{at}: no dimension"));
        let dim: usize = dim.parse().unwrap_or_else(|_| panic!("{at}: bad dimension '{dim}'"));
        let (desc, fragment) = match rest.split_once(" => ") {
            Some((d, f)) => (d, Some(f)),
            None => (rest, None),
        };
        let desc = unescape(desc);
        match tag {
            "ok" => {
                assert!(fragment.is_none(), "{at}: an ok line has no message");
                let metric = metric_for(ok);
                let parsed = index_desc::validate(&desc, dim, metric)
                    .unwrap_or_else(|e| panic!("{at}: '{desc}' at dim {dim} should be accepted: {e}"));
                build_and_search(&desc, &parsed, dim, metric);
                ok += 1;
            }
            "bad" => {
                for metric in [Metric::L2, Metric::Cosine] {
                    let e = match index_desc::validate(&desc, dim, metric) {
                        Ok(p) => panic!("{at}: '{desc}' at dim {dim} should be refused, was accepted as {p}"),
                        Err(e) => e,
                    };
                    assert_refusal(&desc, &e);
                    if let Some(f) = fragment {
                        assert!(e.to_string().contains(f), "{at}: message '{e}' lacks '{f}'");
                    }
                    // The engine's own entry points refuse it too, before FAISS.
                    let e2 = agentdb_engine::index::validate_factory(&desc, dim, metric).unwrap_err();
                    assert_eq!(e2.to_string(), e.to_string(), "{at}");
                    if (1..=16).contains(&dim) {
                        let v = vectors(ROWS, dim, 1);
                        let e3 = AnnIndex::build(&desc, dim, metric, &v, IndexTuning::default()).unwrap_err();
                        assert_eq!(e3.to_string(), e.to_string(), "{at}: build must refuse, not fall back");
                    }
                }
                bad += 1;
            }
            t => panic!("{at}: unknown tag '{t}'"),
        }
    }
    assert!(ok >= 40 && bad >= 60, "corpus too small: {ok} ok, {bad} bad");
}
