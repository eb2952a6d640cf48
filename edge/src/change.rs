//! A change on the wire: one item's version (or tombstone) for one collection. The
//! header is JSON; the vectors follow as raw little-endian numbers in the encoding the
//! sending node is configured with (`f32`, `f16`, or `i8` with a per-vector scale).
//! A lossy encoding is applied on the origin too (it stores what it sends), so every
//! replica holds the same bits.

use crate::hlc::Stamp;
use crate::merge::Version;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorEncoding {
    /// 4 bytes a number, exact.
    #[default]
    F32,
    /// 2 bytes a number (IEEE half precision; relative error about 1e-3).
    F16,
    /// 1 byte a number plus 4 bytes a vector (the scale: max |x| / 127).
    I8,
}

impl VectorEncoding {
    pub fn parse(s: &str) -> Option<VectorEncoding> {
        match s {
            "f32" | "" => Some(VectorEncoding::F32),
            "f16" => Some(VectorEncoding::F16),
            "i8" | "int8" => Some(VectorEncoding::I8),
            _ => None,
        }
    }

    /// `v` as it reads back after encoding (what every replica stores).
    pub fn round_trip(self, v: &[f32]) -> Vec<f32> {
        let mut bytes = Vec::new();
        let scale = self.encode(v, &mut bytes);
        self.decode(&bytes, v.len(), scale).expect("own encoding decodes")
    }

    fn encode(self, v: &[f32], out: &mut Vec<u8>) -> f32 {
        match self {
            VectorEncoding::F32 => {
                v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
                1.0
            }
            VectorEncoding::F16 => {
                v.iter().for_each(|x| out.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes()));
                1.0
            }
            VectorEncoding::I8 => {
                let m = v.iter().fold(0f32, |m, x| m.max(x.abs()));
                let scale = if m > 0.0 { m / 127.0 } else { 1.0 };
                v.iter().for_each(|x| out.push((x / scale).round().clamp(-127.0, 127.0) as i8 as u8));
                scale
            }
        }
    }

    fn width(self) -> usize {
        match self {
            VectorEncoding::F32 => 4,
            VectorEncoding::F16 => 2,
            VectorEncoding::I8 => 1,
        }
    }

    fn decode(self, b: &[u8], dim: usize, scale: f32) -> Option<Vec<f32>> {
        if b.len() != dim * self.width() {
            return None;
        }
        Some(match self {
            VectorEncoding::F32 => b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            VectorEncoding::F16 => b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            VectorEncoding::I8 => b.iter().map(|&x| (x as i8) as f32 * scale).collect(),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct VecHeader {
    /// Space name.
    n: String,
    dim: usize,
    e: VectorEncoding,
    #[serde(default = "one", skip_serializing_if = "is_one")]
    k: f32,
}

fn one() -> f32 {
    1.0
}

fn is_one(k: &f32) -> bool {
    *k == 1.0
}

#[derive(Serialize, Deserialize)]
struct Header {
    /// Collection.
    c: String,
    id: String,
    s: Stamp,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    d: bool,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    p: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    v: Vec<VecHeader>,
}

/// One change: a collection's item at a version.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub collection: String,
    pub id: String,
    pub version: Version,
}

impl Change {
    /// The record's bytes, vectors in `enc`.
    pub fn encode(&self, enc: VectorEncoding) -> Vec<u8> {
        let mut body = Vec::new();
        let mut v = Vec::new();
        for (name, x) in &self.version.vectors {
            let k = enc.encode(x, &mut body);
            v.push(VecHeader { n: name.clone(), dim: x.len(), e: enc, k });
        }
        let h = Header {
            c: self.collection.clone(),
            id: self.id.clone(),
            s: self.version.stamp.clone(),
            d: self.version.deleted,
            p: self.version.payload.clone(),
            v,
        };
        let head = serde_json::to_vec(&h).expect("a change header serialises");
        let mut out = Vec::with_capacity(4 + head.len() + body.len());
        out.extend_from_slice(&(head.len() as u32).to_le_bytes());
        out.extend_from_slice(&head);
        out.extend_from_slice(&body);
        out
    }

    pub fn decode(b: &[u8]) -> Result<Change, String> {
        if b.len() < 4 {
            return Err(format!("a change record of {} bytes is too short", b.len()));
        }
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let head = b.get(4..4 + n).ok_or("a change record's header is cut short")?;
        let h: Header = serde_json::from_slice(head).map_err(|e| format!("change header: {e}"))?;
        let mut at = 4 + n;
        let mut vectors = BTreeMap::new();
        for vh in h.v {
            let len = vh.dim * vh.e.width();
            let bytes = b.get(at..at + len).ok_or("a change record's vectors are cut short")?;
            let x = vh.e.decode(bytes, vh.dim, vh.k).ok_or("a change record's vector does not decode")?;
            if x.iter().any(|f| !f.is_finite()) {
                return Err(format!("space '{}': a non-finite number", vh.n));
            }
            vectors.insert(vh.n, x);
            at += len;
        }
        if at != b.len() {
            return Err(format!("{} bytes after a change record's vectors", b.len() - at));
        }
        Ok(Change { collection: h.c, id: h.id, version: Version { stamp: h.s, deleted: h.d, vectors, payload: h.p } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use serde_json::json;

    fn change() -> Change {
        let v: Vec<f32> = (0..384).map(|i| ((i as f32) * 0.37).sin() / 13.0).collect();
        let Value::Object(payload) = json!({"title": "a lamp", "stock": 3}) else { panic!() };
        Change {
            collection: "products".into(),
            id: "sku-1".into(),
            version: Version {
                stamp: Stamp { hlc: Hlc { wall: 1_700_000_000_000, logical: 2 }, origin: "edge-a".into() },
                deleted: false,
                vectors: BTreeMap::from([("text".to_string(), v)]),
                payload,
            },
        }
    }

    #[test]
    fn records_round_trip_exactly_once_rounded() {
        let c = change();
        for enc in [VectorEncoding::F32, VectorEncoding::F16, VectorEncoding::I8] {
            let mut rounded = c.clone();
            for x in rounded.version.vectors.values_mut() {
                *x = enc.round_trip(x);
            }
            let back = Change::decode(&c.encode(enc)).unwrap();
            assert_eq!(back, rounded, "{enc:?}");
            // Rounding again changes nothing: the origin stores what the others get.
            assert_eq!(Change::decode(&rounded.encode(enc)).unwrap(), rounded, "{enc:?}");
            let orig = &c.version.vectors["text"];
            let err = back.version.vectors["text"].iter().zip(orig).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            let bound = match enc {
                VectorEncoding::F32 => 0.0,
                VectorEncoding::F16 => 1e-4,
                VectorEncoding::I8 => 1.0 / 13.0 / 127.0,
            };
            assert!(err <= bound, "{enc:?}: error {err}");
        }
        let sizes: Vec<usize> =
            [VectorEncoding::F32, VectorEncoding::F16, VectorEncoding::I8].iter().map(|e| c.encode(*e).len()).collect();
        assert!(sizes[0] - sizes[1] == 384 * 2 && sizes[1] - sizes[2] >= 384 - 24, "{sizes:?}");
    }

    #[test]
    fn damaged_records_are_refused_with_a_reason() {
        let b = change().encode(VectorEncoding::F16);
        assert!(Change::decode(&b[..2]).unwrap_err().contains("too short"));
        assert!(Change::decode(&b[..b.len() - 1]).unwrap_err().contains("cut short"));
        let mut extra = b.clone();
        extra.push(0);
        assert!(Change::decode(&extra).unwrap_err().contains("after"));
        let mut bad = b.clone();
        bad[5] = b'!';
        assert!(Change::decode(&bad).unwrap_err().contains("header"));
    }
}
