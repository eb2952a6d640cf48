//! Index descriptions: a strict grammar, with bounds, checked before anything reaches
//! FAISS's index factory.
//!
//! FAISS's `index_factory` trusts its input: `PQ0`, `IVF4,PQ0`, `HNSW0`, `IVF0,Flat`
//! crash the process (SIGFPE, SIGSEGV, SIGBUS) when the index is created, `PQ1x0`,
//! `PQ4x0` and `OPQ0,PQ2` when it is trained, and `HNSW1000000` takes gigabytes for a
//! few hundred vectors. A collection's description is stored in its manifest, so one
//! bad request would crash the server at every flush, also after a restart. Every
//! description is therefore parsed here first, against this grammar (a subset of
//! FAISS 1.12's factory language, same spellings):
//!
//! ```text
//! desc    := [pre ","] main
//! pre     := "OPQ" M ["_" D] | "PCA" D | "PCAR" D
//! main    := "Flat"
//!          | "HNSW" M ["," ("Flat" | sq)]
//!          | "IVF" nlist ["_HNSW" M] "," ("Flat" | sq | pq)
//!          | pq
//!          | sq
//! pq      := "PQ" m ["x" nbits]
//! sq      := "SQ4" | "SQ6" | "SQ8" | "SQfp16"
//! number  := "0" | [1-9][0-9]*        (no leading zeros, no signs, no k/M suffixes)
//! ```
//!
//! with the bounds of [`validate`] (each justified where it is defined) and a memory
//! estimate refused above [`IndexLimits`]. `IDMap`, `Refine` and `RFlat` stay refused:
//! AgentDB manages ids and re-ranks itself.
//!
//! `engine/tests/index_desc_fuzz.rs` builds every description this grammar accepts
//! (generated, and from `engine/tests/data/index_descriptions.txt`) with FAISS on a few
//! hundred vectors and searches it: accepted means safe to build.

use crate::error::{Error, Result};
use crate::types::{Metric, MAX_DIM};
use std::fmt;

/// Longest description accepted. The longest valid one,
/// `OPQ262144_262144,IVF65536_HNSW256,PQ262144x12`, has 46 characters.
pub const MAX_DESC_LEN: usize = 128;

/// HNSW M (links per node and level; level 0 has 2·M). FAISS computes its level
/// multiplier as 1/ln(M): M = 0 crashes, M = 1 divides by zero, so at least 2 (as
/// Milvus). Each vector carries 2·M·4 bytes of links and an insertion costs about
/// efConstruction·M distance computations; Milvus allows up to 2048, but on our
/// 2-core, 24 GiB budget M above 256 only buys build time and memory (useful values
/// are 8 to 64; `HNSW1000000` took 7 GB and 110 s for 300 vectors).
pub const HNSW_M_MIN: u64 = 2;
pub const HNSW_M_MAX: u64 = 256;

/// IVF nlist (coarse clusters). 0 crashes FAISS (SIGBUS); 65536 is Milvus's bound and
/// k-means costs nlist·rows·dim per iteration, so more is never sensible here.
pub const IVF_NLIST_MIN: u64 = 1;
pub const IVF_NLIST_MAX: u64 = 65_536;

/// PQ bits per sub-quantizer code (default 8). 0 crashes FAISS at training (SIGFPE).
/// Each sub-quantizer has 2^nbits centroids and needs at least that many training
/// rows; training costs 25 × 2^nbits × rows × dim flops and search-time lookup tables
/// m × 2^nbits floats per query (IVF-PQ with L2: nlist × m × 2^nbits precomputed).
/// Milvus allows 16; 12 (4096 centroids) is already far past the accuracy/cost sweet
/// spot (8) on a 2-core box.
pub const PQ_NBITS_MIN: u64 = 1;
pub const PQ_NBITS_MAX: u64 = 12;
pub const PQ_NBITS_DEFAULT: u32 = 8;

/// OPQ may widen the vectors to at most this many times the space's dimension (FAISS
/// pads with zeros); wider only costs memory (its training matrices are D²).
pub const OPQ_MAX_WIDEN: u64 = 4;

/// No number in a valid description exceeds this (an OPQ output dimension at 4×MAX_DIM).
const NUMBER_CAP: u64 = OPQ_MAX_WIDEN * MAX_DIM as u64;

/// Default limit on the index's fixed memory (see [`MemoryEstimate::fixed_bytes`]).
pub const MAX_INDEX_FIXED_BYTES: u64 = 1 << 30;
/// Default limit on the bytes per vector an index adds beyond the raw vector (see
/// [`MemoryEstimate::overhead_per_vector`]).
pub const MAX_INDEX_BYTES_PER_VECTOR: u64 = 64 << 10;

/// FAISS builds IVF-PQ precomputed tables only up to this size (`precomputed_table_max_bytes`).
const FAISS_PRECOMPUTED_TABLE_MAX: u128 = 1 << 31;

/// Memory limits applied to a description (defaults: [`MAX_INDEX_FIXED_BYTES`],
/// [`MAX_INDEX_BYTES_PER_VECTOR`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexLimits {
    pub max_index_fixed_bytes: u64,
    pub max_index_bytes_per_vector: u64,
}

impl Default for IndexLimits {
    fn default() -> Self {
        IndexLimits {
            max_index_fixed_bytes: MAX_INDEX_FIXED_BYTES,
            max_index_bytes_per_vector: MAX_INDEX_BYTES_PER_VECTOR,
        }
    }
}

/// A preprocessing transform applied before the main index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pre {
    /// `OPQ{m}` / `OPQ{m}_{d_out}`: a rotation learned for a PQ with `m` sub-quantizers;
    /// `d_out` defaults to the input dimension.
    Opq { m: u32, d_out: Option<u32> },
    /// `PCA{d_out}` / `PCAR{d_out}` (`rotate`: followed by a random rotation).
    Pca { d_out: u32, rotate: bool },
}

/// Scalar quantiser types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sq {
    Sq4,
    Sq6,
    Sq8,
    Fp16,
}

/// How vectors are stored (coded) inside an HNSW or IVF index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Flat,
    Sq(Sq),
    Pq { m: u32, nbits: u32 },
}

/// The main index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Main {
    Flat,
    /// `HNSW{m}` [`,Flat` | `,SQ..`]; `storage` is never `Pq` (FAISS's HNSW-PQ ignores the metric).
    Hnsw {
        m: u32,
        storage: Codec,
    },
    /// `IVF{nlist}` [`_HNSW{m}`] `,` codec.
    Ivf {
        nlist: u32,
        hnsw_m: Option<u32>,
        codec: Codec,
    },
    Pq {
        m: u32,
        nbits: u32,
    },
    Sq(Sq),
}

/// A parsed index description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexDesc {
    pub pre: Option<Pre>,
    pub main: Main,
}

/// Estimated memory of an index (see [`IndexDesc::estimate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// Memory independent of the number of vectors, at its peak while training: IVF
    /// centroids, PQ codebooks and polysemous tables, IVF-PQ precomputed tables, OPQ
    /// and PCA matrices (with their training workspaces), scalar-quantiser ranges.
    pub fixed_bytes: u64,
    /// Bytes per indexed vector: its code, HNSW links, IVF list ids.
    pub bytes_per_vector: u64,
    /// The raw vector (4 × dim), which the engine keeps anyway and `MAX_DIM` bounds.
    pub raw_vector_bytes: u64,
}

impl MemoryEstimate {
    /// What the index adds per vector beyond the raw vector (the limited quantity).
    pub fn overhead_per_vector(&self) -> u64 {
        self.bytes_per_vector.saturating_sub(self.raw_vector_bytes)
    }
}

impl fmt::Display for Sq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Sq::Sq4 => "SQ4",
            Sq::Sq6 => "SQ6",
            Sq::Sq8 => "SQ8",
            Sq::Fp16 => "SQfp16",
        })
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_codec(f, *self, false)
    }
}

fn fmt_codec(f: &mut fmt::Formatter<'_>, c: Codec, np: bool) -> fmt::Result {
    match c {
        Codec::Flat => f.write_str("Flat"),
        Codec::Sq(s) => write!(f, "{s}"),
        Codec::Pq { m, nbits } => fmt_pq(f, m, nbits, np),
    }
}

fn fmt_pq(f: &mut fmt::Formatter<'_>, m: u32, nbits: u32, np: bool) -> fmt::Result {
    if nbits == PQ_NBITS_DEFAULT {
        write!(f, "PQ{m}")?;
    } else {
        write!(f, "PQ{m}x{nbits}")?;
    }
    if np {
        f.write_str("np")?;
    }
    Ok(())
}

/// The canonical spelling (FAISS parses it to the same index).
impl fmt::Display for IndexDesc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, false)
    }
}

/// [`IndexDesc::faiss_string`].
struct FaissString<'a>(&'a IndexDesc);

impl fmt::Display for FaissString<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, true)
    }
}

impl IndexDesc {
    /// The string given to FAISS's index factory: the canonical spelling with every PQ
    /// marked `np` (no polysemous training). FAISS's factory otherwise turns polysemous
    /// training on, which only reorders the PQ centroids for polysemous (Hamming)
    /// filtering, a search mode AgentDB never enables (IVF-PQ's `polysemous_ht` stays 0,
    /// a plain PQ searches with `ST_PQ`); it costs several seconds per sub-quantizer at
    /// 8 bits (16× more at 12) and an m × 4^nbits table, at every flush.
    pub fn faiss_string(&self) -> String {
        FaissString(self).to_string()
    }

    fn write(&self, f: &mut fmt::Formatter<'_>, np: bool) -> fmt::Result {
        match self.pre {
            Some(Pre::Opq { m, d_out: Some(d) }) => write!(f, "OPQ{m}_{d},")?,
            Some(Pre::Opq { m, d_out: None }) => write!(f, "OPQ{m},")?,
            Some(Pre::Pca { d_out, rotate }) => write!(f, "PCA{}{d_out},", if rotate { "R" } else { "" })?,
            None => {}
        }
        match self.main {
            Main::Flat => f.write_str("Flat"),
            Main::Hnsw { m, storage: Codec::Flat } => write!(f, "HNSW{m}"),
            Main::Hnsw { m, storage } => write!(f, "HNSW{m},{storage}"),
            Main::Ivf { nlist, hnsw_m, codec } => {
                write!(f, "IVF{nlist}")?;
                if let Some(m) = hnsw_m {
                    write!(f, "_HNSW{m}")?;
                }
                f.write_str(",")?;
                fmt_codec(f, codec, np)
            }
            Main::Pq { m, nbits } => fmt_pq(f, m, nbits, np),
            Main::Sq(s) => write!(f, "{s}"),
        }
    }
}

/// A description as it may be shown in a message: control characters escaped, long
/// ones cut.
fn shown(desc: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = desc.chars().take(MAX).flat_map(char::escape_debug).collect();
    if desc.chars().count() > MAX {
        out.push('…');
    }
    out
}

fn refuse(desc: &str, detail: impl fmt::Display) -> Error {
    Error::invalid(format!("invalid index description '{}': {detail}", shown(desc)))
}

/// `digits` as a number in `lo..=hi`, for the message `what` (e.g. "HNSW M").
fn bounded(digits: &str, part: &str, what: &str, lo: u64, hi: u64) -> std::result::Result<u32, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{part}': expected a number for the {what}, got '{digits}'"));
    }
    if digits.len() > 1 && digits.starts_with('0') {
        return Err(format!("'{part}': the {what} '{digits}' has a leading zero"));
    }
    // At most 19 digits always fit in a u64; longer ones are out of range anyway.
    let v = if digits.len() <= 19 { digits.parse::<u64>().ok() } else { None };
    match v {
        Some(v) if (lo..=hi).contains(&v) => Ok(v as u32),
        _ => Err(format!("{what} must be between {lo} and {hi}, got {digits}")),
    }
}

fn parse_sq(s: &str) -> Option<Sq> {
    Some(match s {
        "SQ4" => Sq::Sq4,
        "SQ6" => Sq::Sq6,
        "SQ8" => Sq::Sq8,
        "SQfp16" => Sq::Fp16,
        _ => return None,
    })
}

/// `PQ{m}[x{nbits}]`; None if `s` is not a PQ part at all.
fn parse_pq(s: &str) -> Option<std::result::Result<(u32, u32), String>> {
    let rest = s.strip_prefix("PQ")?;
    Some((|| {
        let (m, nbits) = match rest.split_once('x') {
            Some((m, b)) => (m, Some(b)),
            None => (rest, None),
        };
        let m = bounded(m, s, "PQ m (number of sub-quantizers)", 1, NUMBER_CAP)?;
        let nbits = match nbits {
            Some(b) => bounded(b, s, "PQ nbits", PQ_NBITS_MIN, PQ_NBITS_MAX)?,
            None => PQ_NBITS_DEFAULT,
        };
        Ok((m, nbits))
    })())
}

const CODECS: &str = "Flat, PQ{m}[x{nbits}], SQ4, SQ6, SQ8 or SQfp16";
const HNSW_STORAGE: &str = "Flat, SQ4, SQ6, SQ8 or SQfp16";
const MAINS: &str =
    "Flat, HNSW{M}[,Flat|,SQ..], IVF{nlist}[_HNSW{M}],{Flat|PQ..|SQ..}, PQ{m}[x{nbits}], SQ4, SQ6, SQ8 or SQfp16";

fn parse_codec(s: &str, after: &str) -> std::result::Result<Codec, String> {
    if s == "Flat" {
        return Ok(Codec::Flat);
    }
    if let Some(q) = parse_sq(s) {
        return Ok(Codec::Sq(q));
    }
    if let Some(pq) = parse_pq(s) {
        let (m, nbits) = pq?;
        return Ok(Codec::Pq { m, nbits });
    }
    Err(format!("unknown code '{s}' after '{after}' (expected {CODECS})"))
}

fn parse_pre(s: &str) -> Option<std::result::Result<Pre, String>> {
    if let Some(rest) = s.strip_prefix("OPQ") {
        return Some((|| {
            let (m, d) = match rest.split_once('_') {
                Some((m, d)) => (m, Some(d)),
                None => (rest, None),
            };
            let m = bounded(m, s, "OPQ M", 1, NUMBER_CAP)?;
            let d_out = d.map(|d| bounded(d, s, "OPQ output dimension", 1, NUMBER_CAP)).transpose()?;
            Ok(Pre::Opq { m, d_out })
        })());
    }
    if let Some(rest) = s.strip_prefix("PCA") {
        return Some((|| {
            let (rotate, digits) = match rest.strip_prefix('R') {
                Some(d) => (true, d),
                None => (false, rest),
            };
            let d_out = bounded(digits, s, "PCA output dimension", 1, MAX_DIM as u64)?;
            Ok(Pre::Pca { d_out, rotate })
        })());
    }
    None
}

fn parse_main(parts: &[&str]) -> std::result::Result<Main, String> {
    let first = parts[0];
    let extra = |n: usize| -> std::result::Result<(), String> {
        match parts.get(n) {
            Some(x) => Err(format!("unexpected '{x}' after '{}'", parts[..n].join(","))),
            None => Ok(()),
        }
    };
    if first == "Flat" {
        extra(1)?;
        return Ok(Main::Flat);
    }
    if let Some(q) = parse_sq(first) {
        extra(1)?;
        return Ok(Main::Sq(q));
    }
    if let Some(pq) = parse_pq(first) {
        let (m, nbits) = pq?;
        extra(1)?;
        return Ok(Main::Pq { m, nbits });
    }
    if let Some(rest) = first.strip_prefix("HNSW") {
        let m = bounded(rest, first, "HNSW M", HNSW_M_MIN, HNSW_M_MAX)?;
        let storage = match parts.get(1) {
            None => Codec::Flat,
            Some(&"Flat") => Codec::Flat,
            Some(s) => match parse_sq(s) {
                Some(q) => Codec::Sq(q),
                None => return Err(format!("unknown storage '{s}' after '{first}' (expected {HNSW_STORAGE})")),
            },
        };
        extra(2)?;
        return Ok(Main::Hnsw { m, storage });
    }
    if let Some(rest) = first.strip_prefix("IVF") {
        let (nlist, hnsw) = match rest.split_once('_') {
            Some((n, h)) => (n, Some(h)),
            None => (rest, None),
        };
        let nlist = bounded(nlist, first, "IVF nlist", IVF_NLIST_MIN, IVF_NLIST_MAX)?;
        let hnsw_m = match hnsw {
            None => None,
            Some(h) => match h.strip_prefix("HNSW") {
                Some(m) => Some(bounded(m, first, "HNSW M", HNSW_M_MIN, HNSW_M_MAX)?),
                None => {
                    return Err(format!("'{first}': unknown coarse quantizer '{h}' (expected IVF{{nlist}}_HNSW{{M}})"))
                }
            },
        };
        let Some(code) = parts.get(1) else {
            return Err(format!("'{first}' needs a code after it: one of {CODECS}, e.g. '{first},Flat'"));
        };
        let codec = parse_codec(code, first)?;
        extra(2)?;
        return Ok(Main::Ivf { nlist, hnsw_m, codec });
    }
    if parse_pre(first).is_some() {
        return Err(format!("only one preprocessing step is supported, got another: '{first}'"));
    }
    Err(format!("unknown index '{first}' (expected {MAINS}, optionally after OPQ{{M}}[_{{D}}], PCA{{D}} or PCAR{{D}})"))
}

/// Parse a description against the grammar and its dimension-independent bounds.
/// Surrounding whitespace is ignored. Never calls FAISS.
pub fn parse(desc: &str) -> Result<IndexDesc> {
    let d = desc.trim();
    if d.is_empty() {
        return Err(Error::invalid("empty index description"));
    }
    if d.len() > MAX_DESC_LEN {
        return Err(refuse(d, format!("{} bytes long, at most {MAX_DESC_LEN}", d.len())));
    }
    for banned in ["IDMap", "Refine", "RFlat"] {
        if d.contains(banned) {
            return Err(Error::invalid(format!(
                "invalid index description '{}': '{banned}' is not allowed (AgentDB manages ids and re-ranks itself)",
                shown(d)
            )));
        }
    }
    if let Some((i, c)) = d.char_indices().find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == ',' || *c == '_')) {
        return Err(refuse(
            d,
            format!("unexpected character '{}' at byte {i} (use letters, digits, ',' and '_')", c.escape_debug()),
        ));
    }
    let parts: Vec<&str> = d.split(',').collect();
    if let Some(i) = parts.iter().position(|p| p.is_empty()) {
        return Err(refuse(d, format!("empty part {} (stray ',')", i + 1)));
    }
    let (pre, main_parts) = match parse_pre(parts[0]) {
        Some(pre) => {
            let pre = pre.map_err(|e| refuse(d, e))?;
            if parts.len() == 1 {
                return Err(refuse(d, format!("preprocessing '{}' must be followed by ',' and an index", parts[0])));
            }
            (Some(pre), &parts[1..])
        }
        None => (None, &parts[..]),
    };
    let main = parse_main(main_parts).map_err(|e| refuse(d, e))?;
    Ok(IndexDesc { pre, main })
}

fn code_bytes(c: Codec, d: u128) -> u128 {
    match c {
        Codec::Flat => 4 * d,
        Codec::Sq(Sq::Sq8) => d,
        Codec::Sq(Sq::Sq6) => (6 * d).div_ceil(8),
        Codec::Sq(Sq::Sq4) => d.div_ceil(2),
        Codec::Sq(Sq::Fp16) => 2 * d,
        Codec::Pq { m, nbits } => (m as u128 * nbits as u128).div_ceil(8),
    }
}

/// Fixed memory of a codec over `d` dimensions.
fn codec_fixed(c: Codec, d: u128) -> u128 {
    match c {
        Codec::Flat => 0,
        // Trained per-dimension min and range.
        Codec::Sq(_) => 2 * d * 4,
        // Centroids: 2^nbits per sub-quantizer of d/m dimensions. (No polysemous
        // tables: see [`IndexDesc::faiss_string`].)
        Codec::Pq { nbits, .. } => (1u128 << nbits) * d * 4,
    }
}

/// HNSW bytes per vector: 2·M level-0 links, upper levels (about M/(M-1) links on
/// average), the offset and level entries.
fn hnsw_bytes(m: u32) -> u128 {
    2 * m as u128 * 4 + 20
}

fn clamp(v: u128) -> u64 {
    v.min(u64::MAX as u128) as u64
}

impl IndexDesc {
    /// The dimension the main index works in (after preprocessing), for input `dim`.
    pub fn inner_dim(&self, dim: usize) -> usize {
        match self.pre {
            Some(Pre::Opq { d_out: Some(d), .. }) | Some(Pre::Pca { d_out: d, .. }) => d as usize,
            Some(Pre::Opq { d_out: None, .. }) | None => dim,
        }
    }

    pub fn is_hnsw(&self) -> bool {
        matches!(self.main, Main::Hnsw { .. })
    }

    pub fn is_ivf(&self) -> bool {
        matches!(self.main, Main::Ivf { .. })
    }

    /// Check the bounds that depend on the space's dimension (no memory limits).
    pub fn check_dim(&self, dim: usize) -> std::result::Result<(), String> {
        if dim == 0 || dim > MAX_DIM {
            return Err(format!("dimension must be between 1 and {MAX_DIM}, got {dim}"));
        }
        let mut after = String::new();
        match self.pre {
            Some(Pre::Pca { d_out, rotate }) => {
                let name = if rotate { "PCAR" } else { "PCA" };
                if d_out as usize > dim {
                    return Err(format!(
                        "{name} output dimension must be between 1 and the space's dimension {dim}, got {d_out}"
                    ));
                }
                after = format!(" after '{name}{d_out}'");
            }
            Some(Pre::Opq { m, d_out }) => {
                let d = d_out.map_or(dim as u64, u64::from);
                if d > OPQ_MAX_WIDEN * dim as u64 {
                    return Err(format!(
                        "OPQ output dimension must be between 1 and {OPQ_MAX_WIDEN} × the space's dimension ({}), got {d}",
                        OPQ_MAX_WIDEN * dim as u64
                    ));
                }
                if !d.is_multiple_of(m as u64) {
                    return Err(format!("OPQ M must divide its output dimension {d}, got {m}"));
                }
                after = format!(" after 'OPQ{m}{}'", d_out.map(|d| format!("_{d}")).unwrap_or_default());
            }
            None => {}
        }
        let d = self.inner_dim(dim) as u64;
        let pq_m = match self.main {
            Main::Pq { m, .. } | Main::Ivf { codec: Codec::Pq { m, .. }, .. } => Some(m),
            _ => None,
        };
        if let Some(m) = pq_m {
            if !d.is_multiple_of(m as u64) {
                return Err(format!("PQ m must divide the dimension {d}{after}, got {m}"));
            }
        }
        Ok(())
    }

    /// Estimated memory for input dimension `dim` (see [`MemoryEstimate`]).
    pub fn estimate(&self, dim: usize, metric: Metric) -> MemoryEstimate {
        let din = dim as u128;
        let d = self.inner_dim(dim) as u128;
        let mut fixed: u128 = match self.pre {
            None => 0,
            Some(Pre::Opq { d_out, .. }) => {
                // FAISS trains with a dmax × dmax rotation and 4·dmax² of SVD workspace
                // (dmax = max(d_in, d_out)), plus an 8-bit PQ over d_out.
                let dmax = din.max(d_out.map_or(din, u128::from));
                5 * dmax * dmax * 4 + 256 * d * 4
            }
            // Covariance (d_in² floats) and its double copy for the eigen-decomposition,
            // the d_out × d_in projection, mean, eigenvalues and bias.
            Some(Pre::Pca { d_out, .. }) => (3 * din * din + d_out as u128 * din + 2 * din + d_out as u128) * 4,
        };
        let per_vector: u128 = match self.main {
            Main::Flat => 4 * d,
            Main::Hnsw { m, storage } => {
                fixed += codec_fixed(storage, d);
                hnsw_bytes(m) + code_bytes(storage, d)
            }
            Main::Ivf { nlist, hnsw_m, codec } => {
                let nlist = nlist as u128;
                // Centroids, inverted-list headers, the HNSW over the centroids.
                fixed += nlist * d * 4 + nlist * 64 + hnsw_m.map_or(0, |m| nlist * hnsw_bytes(m));
                fixed += codec_fixed(codec, d);
                if let (Codec::Pq { m, nbits }, Metric::L2) = (codec, metric) {
                    // Precomputed distance tables (L2 with residuals only), which FAISS
                    // builds only when they fit its own limit.
                    let tables = nlist * m as u128 * (1u128 << nbits) * 4;
                    if tables <= FAISS_PRECOMPUTED_TABLE_MAX {
                        fixed += tables;
                    }
                }
                // The code and an 8-byte id in the inverted list.
                code_bytes(codec, d) + 8
            }
            Main::Pq { m, nbits } => {
                let c = Codec::Pq { m, nbits };
                fixed += codec_fixed(c, d);
                code_bytes(c, d)
            }
            Main::Sq(q) => {
                fixed += codec_fixed(Codec::Sq(q), d);
                code_bytes(Codec::Sq(q), d)
            }
        };
        MemoryEstimate {
            fixed_bytes: clamp(fixed),
            bytes_per_vector: clamp(per_vector),
            raw_vector_bytes: clamp(4 * din),
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parse `desc` and check it for a space of dimension `dim` against the default
/// [`IndexLimits`]: grammar, bounds, divisibility, memory. Never calls FAISS.
pub fn validate(desc: &str, dim: usize, metric: Metric) -> Result<IndexDesc> {
    validate_with(desc, dim, metric, &IndexLimits::default())
}

/// [`validate`] with explicit memory limits.
pub fn validate_with(desc: &str, dim: usize, metric: Metric, limits: &IndexLimits) -> Result<IndexDesc> {
    let parsed = parse(desc)?;
    let d = desc.trim();
    parsed.check_dim(dim).map_err(|e| refuse(d, e))?;
    let est = parsed.estimate(dim, metric);
    if est.fixed_bytes > limits.max_index_fixed_bytes {
        return Err(refuse(
            d,
            format!(
                "needs about {} ({} bytes) of fixed memory for dimension {dim} (centroids, codebooks, tables, matrices), over the limit of {} ({} bytes)",
                human(est.fixed_bytes),
                est.fixed_bytes,
                human(limits.max_index_fixed_bytes),
                limits.max_index_fixed_bytes
            ),
        ));
    }
    if est.overhead_per_vector() > limits.max_index_bytes_per_vector {
        return Err(refuse(
            d,
            format!(
                "needs about {} bytes per vector for dimension {dim}, {} more than the {}-byte vector itself, over the limit of {} bytes per vector",
                est.bytes_per_vector,
                est.overhead_per_vector(),
                est.raw_vector_bytes,
                limits.max_index_bytes_per_vector
            ),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(desc: &str, dim: usize) -> String {
        match validate(desc, dim, Metric::L2) {
            Ok(d) => panic!("'{desc}' at dim {dim} was accepted as {d:?}"),
            Err(e) => {
                assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
                e.to_string()
            }
        }
    }

    fn ok(desc: &str, dim: usize) -> IndexDesc {
        validate(desc, dim, Metric::L2).unwrap_or_else(|e| panic!("'{desc}' at dim {dim}: {e}"))
    }

    #[test]
    fn accepts_every_form_the_repo_uses() {
        for (desc, dim) in [
            ("Flat", 4),
            ("HNSW32", 16),
            ("HNSW16", 8),
            ("HNSW32,Flat", 16),
            ("HNSW32,SQ8", 16),
            ("HNSW16,SQfp16", 7),
            ("IVF1024,Flat", 8),
            ("IVF64,Flat", 384),
            ("IVF16,Flat", 16),
            ("IVF64,PQ4", 16),
            ("IVF16,PQ8", 32),
            ("IVF1024,PQ32", 768),
            ("IVF256,PQ16x8", 128),
            ("IVF256,PQ16x4", 128),
            ("OPQ16,IVF256,PQ16", 128),
            ("OPQ16_64,IVF256,PQ16", 128),
            ("PCA64,HNSW32", 128),
            ("PCAR32,IVF64,SQ8", 128),
            ("PQ16", 128),
            ("PQ8x12", 64),
            ("SQ8", 3),
            ("SQ4", 5),
            ("SQ6", 9),
            ("SQfp16", 1),
            ("IVF4096,SQ8", 1536),
            ("IVF1024_HNSW32,Flat", 64),
            ("IVF65536,Flat", 1024),
            ("HNSW256", 65_536),
            ("Flat", 65_536),
            ("  HNSW32 ", 4),
        ] {
            ok(desc, dim);
        }
    }

    #[test]
    fn parses_to_typed_descriptions_and_back() {
        assert_eq!(parse("Flat").unwrap(), IndexDesc { pre: None, main: Main::Flat });
        assert_eq!(parse("HNSW32").unwrap().main, Main::Hnsw { m: 32, storage: Codec::Flat });
        assert_eq!(
            parse("OPQ16_64,IVF256_HNSW16,PQ16x6").unwrap(),
            IndexDesc {
                pre: Some(Pre::Opq { m: 16, d_out: Some(64) }),
                main: Main::Ivf { nlist: 256, hnsw_m: Some(16), codec: Codec::Pq { m: 16, nbits: 6 } }
            }
        );
        assert_eq!(parse("PCAR8,SQfp16").unwrap().pre, Some(Pre::Pca { d_out: 8, rotate: true }));
        for s in [
            "Flat",
            "HNSW32",
            "HNSW16,SQ4",
            "IVF64,PQ4",
            "IVF64,PQ4x6",
            "OPQ16,IVF256,PQ16",
            "OPQ8_32,Flat",
            "PCA8,HNSW2",
            "PCAR8,IVF1_HNSW256,SQ6",
            "PQ3x1",
            "SQ8",
        ] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
        assert_eq!(parse("HNSW32,Flat").unwrap().to_string(), "HNSW32");
        // FAISS gets every PQ without polysemous training.
        for (s, f) in [
            ("IVF64,PQ4", "IVF64,PQ4np"),
            ("OPQ16_64,IVF256_HNSW16,PQ16x6", "OPQ16_64,IVF256_HNSW16,PQ16x6np"),
            ("PQ8x8", "PQ8np"),
            ("PCA8,PQ2x12", "PCA8,PQ2x12np"),
            ("HNSW32,SQ8", "HNSW32,SQ8"),
            ("IVF8,Flat", "IVF8,Flat"),
            ("Flat", "Flat"),
        ] {
            assert_eq!(parse(s).unwrap().faiss_string(), f);
        }
        assert_eq!(parse("PQ4x8").unwrap().to_string(), "PQ4");
        assert!(parse("HNSW32").unwrap().is_hnsw() && parse("IVF4_HNSW8,Flat").unwrap().is_ivf());
        assert_eq!(parse("PCA8,Flat").unwrap().inner_dim(16), 8);
        assert_eq!(parse("OPQ4,Flat").unwrap().inner_dim(16), 16);
    }

    #[test]
    fn hnsw_m_bounds() {
        assert!(err("HNSW0", 16).contains("invalid index description 'HNSW0': HNSW M must be between 2 and 256, got 0"));
        assert!(err("HNSW1", 16).contains("HNSW M must be between 2 and 256, got 1"));
        assert!(err("HNSW257", 16).contains("got 257"));
        assert!(err("HNSW1000000", 4).contains("HNSW M must be between 2 and 256, got 1000000"));
        assert!(err("IVF16_HNSW1,Flat", 16).contains("HNSW M must be between 2 and 256, got 1"));
        ok("HNSW2", 4);
        ok("HNSW256", 4);
        assert!(err("HNSW", 16).contains("expected a number for the HNSW M"));
        assert!(err("HNSW32,PQ4", 16).contains("unknown storage 'PQ4' after 'HNSW32'"));
        assert!(err("HNSW32,Nope", 16).contains("invalid index description 'HNSW32,Nope': unknown storage 'Nope'"));
        assert!(err("HNSW32,Flat,Flat", 16).contains("unexpected 'Flat' after 'HNSW32,Flat'"));
        assert!(err("HNSW32_Flat", 16).contains("expected a number for the HNSW M, got '32_Flat'"));
    }

    #[test]
    fn ivf_nlist_bounds() {
        assert!(err("IVF0,Flat", 16).contains("IVF nlist must be between 1 and 65536, got 0"));
        assert!(err("IVF65537,Flat", 16).contains("IVF nlist must be between 1 and 65536, got 65537"));
        ok("IVF1,Flat", 16);
        ok("IVF65536,Flat", 16);
        assert!(err("IVF64", 16).contains("'IVF64' needs a code after it"));
        assert!(err("IVF64,Nope", 16).contains("unknown code 'Nope' after 'IVF64'"));
        assert!(err("IVF64_NSG32,Flat", 16).contains("unknown coarse quantizer 'NSG32'"));
        assert!(err("IVF1k,Flat", 16).contains("expected a number for the IVF nlist, got '1k'"));
    }

    #[test]
    fn pq_bounds() {
        assert!(err("PQ0", 16).contains("PQ m (number of sub-quantizers) must be between 1 and 262144, got 0"));
        assert!(err("IVF4,PQ0", 16).contains("got 0"));
        assert!(err("PQ1x0", 16).contains("PQ nbits must be between 1 and 12, got 0"));
        assert!(err("PQ4x0", 16).contains("PQ nbits must be between 1 and 12, got 0"));
        assert!(err("PQ4x13", 16).contains("PQ nbits must be between 1 and 12, got 13"));
        ok("PQ4x1", 16);
        ok("PQ4x12", 16);
        assert!(err("PQ5", 16).contains("PQ m must divide the dimension 16, got 5"));
        assert!(err("IVF64,PQ5", 16).contains("PQ m must divide the dimension 16, got 5"));
        assert!(err("PQ32", 16).contains("PQ m must divide the dimension 16, got 32"));
        assert!(err("PCA8,PQ16", 16).contains("PQ m must divide the dimension 8 after 'PCA8', got 16"));
        assert!(err("PQ4np", 16).contains("expected a number for the PQ m"));
        assert!(err("PQ4x4fs", 16).contains("expected a number for the PQ nbits"));
        ok("PQ16", 16);
    }

    #[test]
    fn opq_and_pca_bounds() {
        assert!(err("OPQ0,PQ2", 16).contains("OPQ M must be between 1 and 262144, got 0"));
        assert!(err("OPQ4_0,PQ2", 16).contains("OPQ output dimension must be between 1 and 262144, got 0"));
        assert!(err("OPQ3,PQ4", 16).contains("OPQ M must divide its output dimension 16, got 3"));
        assert!(err("OPQ4_65,Flat", 16)
            .contains("OPQ output dimension must be between 1 and 4 × the space's dimension (64), got 65"));
        ok("OPQ4_64,Flat", 16);
        assert!(err("OPQ4_32,PQ3", 16).contains("PQ m must divide the dimension 32 after 'OPQ4_32', got 3"));
        assert!(err("PCA0,Flat", 16).contains("PCA output dimension must be between 1 and 65536, got 0"));
        assert!(err("PCA17,Flat", 16)
            .contains("PCA output dimension must be between 1 and the space's dimension 16, got 17"));
        assert!(err("PCAR17,Flat", 16).contains("PCAR output dimension"));
        ok("PCA16,Flat", 16);
        assert!(err("PCA8", 16).contains("preprocessing 'PCA8' must be followed by ',' and an index"));
        assert!(err("PCA8,OPQ4,Flat", 16).contains("only one preprocessing step is supported"));
        assert!(err("PCAW8,Flat", 16).contains("expected a number for the PCA output dimension, got 'W8'"));
    }

    #[test]
    fn numbers_are_strict() {
        assert!(
            err("HNSW99999999999999999999", 16).contains("HNSW M must be between 2 and 256, got 99999999999999999999")
        );
        assert!(err("IVF18446744073709551616,Flat", 16).contains("got 18446744073709551616"));
        assert!(err("PQ4294967297", 16).contains("must be between 1 and 262144, got 4294967297"));
        assert!(err("HNSW032", 16).contains("'HNSW032': the HNSW M '032' has a leading zero"));
        assert!(err("IVF00,Flat", 16).contains("leading zero"));
        assert!(err("HNSW+32", 16).contains("unexpected character '+'"));
        assert!(err("HNSW-1", 16).contains("unexpected character '-'"));
        assert!(err("HNSW３２", 16).contains("unexpected character '３'"));
    }

    #[test]
    fn syntax_messages() {
        assert_eq!(err("", 4), "empty index description");
        assert_eq!(err("  ", 4), "empty index description");
        assert!(err("Nonsense42", 4).contains("unknown index 'Nonsense42'"));
        assert!(err("flat", 4).contains("unknown index 'flat'"));
        assert!(err("HNSW32,", 4).contains("empty part 2 (stray ',')"));
        assert!(err(",Flat", 4).contains("empty part 1"));
        assert!(err("HNSW 32", 4).contains("unexpected character ' ' at byte 4"));
        assert!(err("Flat\0", 4).contains("unexpected character '\\0'"));
        assert_eq!(parse("\tFlat\n").unwrap().main, Main::Flat, "surrounding whitespace is ignored");
        assert!(err("IDMap,Flat", 4).contains("'IDMap' is not allowed"));
        assert!(err("HNSW32,IDMap2", 4).contains("'IDMap' is not allowed"));
        assert!(err("IVF64,PQ4,Refine(Flat)", 16).contains("'Refine' is not allowed"));
        assert!(err("IVF64,PQ4,RFlat", 16).contains("'RFlat' is not allowed"));
        assert!(err("Flat,Flat", 4).contains("unexpected 'Flat' after 'Flat'"));
        assert!(err("LSH", 4).contains("unknown index 'LSH'"));
        assert!(err("NSG32", 4).contains("unknown index 'NSG32'"));
        let long = "HNSW32".repeat(30);
        let e = err(&long, 4);
        assert!(e.contains("180 bytes long, at most 128") && e.contains('…') && e.len() < 200, "{e}");
        // Control characters never reach a message raw.
        let e = err("\u{1b}[31mHNSW", 4);
        assert!(!e.contains('\u{1b}') && e.contains("\\u{1b}"), "{e}");
    }

    #[test]
    fn dimension_bounds() {
        assert!(err("Flat", 0).contains("dimension must be between 1 and 65536, got 0"));
        assert!(err("Flat", 65_537).contains("got 65537"));
    }

    #[test]
    fn memory_estimates_and_limits() {
        // IVF centroids: 65536 × 8192 × 4 = 2 GiB.
        let e = err("IVF65536,Flat", 8192);
        assert!(
            e.contains("needs about 2.0 GiB")
                && e.contains("fixed memory")
                && e.contains("over the limit of 1.0 GiB (1073741824 bytes)"),
            "{e}"
        );
        ok("IVF65536,Flat", 1024);
        // PQ codebooks: 2^nbits × d floats.
        assert_eq!(parse("PQ16x12").unwrap().estimate(16384, Metric::Cosine).fixed_bytes, 4096 * 16384 * 4);
        ok("PQ16x12", 64);
        // IVF-PQ precomputed tables (L2 only): 4096 × 16 × 4096 × 4 = 1 GiB.
        assert!(err("IVF4096,PQ16x12", 64).contains("fixed memory"));
        assert!(validate("IVF4096,PQ16x12", 64, Metric::Cosine).is_ok());
        // OPQ and PCA training matrices grow with dim².
        assert!(err("OPQ16,Flat", 8192).contains("fixed memory"));
        ok("OPQ16,Flat", 1024);
        assert!(err("PCA64,Flat", 16384).contains("fixed memory"));
        ok("PCA64,Flat", 4096);
        // Per vector: OPQ widening to 4 × 8192 dims stores 4 × 32 KiB per vector.
        let e = err("OPQ4_32768,Flat", 8192);
        assert!(e.contains("fixed memory") || e.contains("per vector"), "{e}");
        let desc = parse("OPQ4_32768,Flat").unwrap();
        let est = desc.estimate(8192, Metric::L2);
        assert_eq!((est.bytes_per_vector, est.raw_vector_bytes, est.overhead_per_vector()), (131072, 32768, 98304));
        let lim = IndexLimits { max_index_fixed_bytes: u64::MAX, ..IndexLimits::default() };
        let e = validate_with("OPQ4_32768,Flat", 8192, Metric::L2, &lim).unwrap_err().to_string();
        assert!(e.contains("needs about 131072 bytes per vector for dimension 8192, 98304 more than the 32768-byte vector itself, over the limit of 65536 bytes per vector"), "{e}");
        // HNSW links: 2 × 256 × 4 + 20 bytes.
        let est = parse("HNSW256").unwrap().estimate(16, Metric::L2);
        assert_eq!(est.bytes_per_vector, 2048 + 20 + 64);
        let tight = IndexLimits { max_index_fixed_bytes: 1 << 30, max_index_bytes_per_vector: 1024 };
        assert!(validate_with("HNSW256", 16, Metric::L2, &tight).unwrap_err().to_string().contains("per vector"));
        assert!(validate_with("HNSW64", 16, Metric::L2, &tight).is_ok());
        // IVF-PQ precomputed tables count for L2 only.
        let l2 = parse("IVF4096,PQ64").unwrap().estimate(256, Metric::L2);
        let ip = parse("IVF4096,PQ64").unwrap().estimate(256, Metric::InnerProduct);
        assert_eq!(l2.fixed_bytes - ip.fixed_bytes, 4096 * 64 * 256 * 4);
        let small = IndexLimits { max_index_fixed_bytes: 1 << 20, ..IndexLimits::default() };
        assert!(validate_with("IVF4096,Flat", 128, Metric::L2, &small).is_err());
        assert!(validate_with("IVF16,Flat", 128, Metric::L2, &small).is_ok());
        // Flat at the largest dimension is only the raw vectors.
        assert_eq!(parse("Flat").unwrap().estimate(MAX_DIM, Metric::L2).overhead_per_vector(), 0);
    }
}
