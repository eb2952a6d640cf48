//! Conversions between wire types (`v1::*`) and engine types. Malformed input becomes
//! `agentdb_engine::Error::InvalidArgument`, which the server maps to a gRPC status.

use crate::v1;
use agentdb_engine as engine;
use agentdb_engine::{Error, Result};

pub fn metric_from_wire(m: i32) -> Result<engine::Metric> {
    match v1::Metric::try_from(m) {
        Ok(v1::Metric::Unspecified) | Ok(v1::Metric::Cosine) => Ok(engine::Metric::Cosine),
        Ok(v1::Metric::InnerProduct) => Ok(engine::Metric::InnerProduct),
        Ok(v1::Metric::L2) => Ok(engine::Metric::L2),
        Err(_) => Err(Error::invalid(format!("unknown metric enum value {m}"))),
    }
}

pub fn metric_to_wire(m: engine::Metric) -> v1::Metric {
    match m {
        engine::Metric::Cosine => v1::Metric::Cosine,
        engine::Metric::InnerProduct => v1::Metric::InnerProduct,
        engine::Metric::L2 => v1::Metric::L2,
    }
}

pub fn space_from_wire(s: v1::SpaceSpec) -> Result<engine::SpaceSpec> {
    Ok(engine::SpaceSpec {
        name: if s.name.is_empty() { "default".into() } else { s.name },
        dim: s.dim as usize,
        metric: metric_from_wire(s.metric)?,
        index: if s.index.trim().is_empty() { engine::DEFAULT_INDEX.into() } else { s.index.trim().to_string() },
        encoder: if s.encoder.is_empty() { None } else { Some(s.encoder) },
    })
}

pub fn space_to_wire(s: &engine::SpaceSpec) -> v1::SpaceSpec {
    v1::SpaceSpec {
        name: s.name.clone(),
        dim: s.dim as u32,
        metric: metric_to_wire(s.metric) as i32,
        index: s.index.clone(),
        encoder: s.encoder.clone().unwrap_or_default(),
    }
}

pub fn info_to_wire(i: engine::CollectionInfo) -> v1::CollectionInfo {
    v1::CollectionInfo {
        name: i.name,
        spaces: i
            .spaces
            .iter()
            .map(|s| v1::SpaceInfo { spec: Some(space_to_wire(&s.spec)), index_kinds: s.index_kinds.clone() })
            .collect(),
        count: i.count,
        unindexed: i.unindexed,
        segments: i.segments,
        deleted_rows: i.deleted_rows,
        disk_bytes: i.disk_bytes,
        last_lsn: i.last_lsn,
        keyword_language: i.keyword.as_ref().map(|k| k.language.clone()).unwrap_or_default(),
        keyword_searchable: i.keyword.map(|k| k.searchable).unwrap_or_default(),
        // A local collection: not sharded (cluster mode fills these).
        shards: 0,
        replicas: 0,
    }
}

pub fn payload_from_wire(json: &str, what: &str) -> Result<serde_json::Value> {
    if json.trim().is_empty() {
        return Ok(serde_json::Value::Object(Default::default()));
    }
    serde_json::from_str(json).map_err(|e| Error::invalid(format!("{what}: payload_json is not valid JSON: {e}")))
}

/// A wire vector's values in `values`: a `packed` vector (little-endian float32) is
/// decoded into them. `what` names the vector in the error (built only on error).
pub fn unpack_vector(v: &mut v1::Vector, what: impl FnOnce() -> String) -> Result<()> {
    if v.packed.is_empty() {
        return Ok(());
    }
    if !v.values.is_empty() {
        return Err(Error::invalid(format!(
            "{}: the vector sets both `values` ({} floats) and `packed` ({} bytes); set one",
            what(),
            v.values.len(),
            v.packed.len()
        )));
    }
    if !v.packed.len().is_multiple_of(4) {
        return Err(Error::invalid(format!(
            "{}: `packed` has {} bytes, not a multiple of 4 (little-endian float32 values)",
            what(),
            v.packed.len()
        )));
    }
    v.values = v.packed.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    v.packed = Vec::new();
    Ok(())
}

/// [`unpack_vector`], taking the values out.
pub fn vector_from_wire(mut v: v1::Vector, what: impl FnOnce() -> String) -> Result<Vec<f32>> {
    unpack_vector(&mut v, what)?;
    Ok(v.values)
}

pub fn item_from_wire(it: v1::Item, index: usize) -> Result<engine::Item> {
    let payload = payload_from_wire(&it.payload_json, &format!("item {index}"))?;
    let vectors = it
        .vectors
        .into_iter()
        .map(|(k, v)| {
            let values = vector_from_wire(v, || format!("item {index}, space '{k}'"))?;
            Ok((k, values))
        })
        .collect::<Result<_>>()?;
    Ok(engine::Item { id: it.id, vectors, payload })
}

pub fn item_to_wire(it: engine::StoredItem) -> v1::Item {
    v1::Item {
        id: it.id,
        vectors: it.vectors.into_iter().map(|(k, v)| (k, v1::Vector { values: v, ..Default::default() })).collect(),
        payload_json: it.payload.to_string(),
    }
}

pub fn hit_to_wire(h: engine::Hit) -> v1::Hit {
    v1::Hit {
        id: h.id,
        score: h.score,
        payload_json: h.payload.map(|p| p.to_string()).unwrap_or_default(),
        vector: h.vector.map(|values| v1::Vector { values, ..Default::default() }),
        ..Default::default()
    }
}

pub fn params_from_wire(p: Option<v1::SearchParams>) -> engine::SearchParams {
    let p = p.unwrap_or_default();
    engine::SearchParams { ef: p.ef as usize, nprobe: p.nprobe as usize, exact: p.exact }
}

/// Parse an optional filter expression (empty = none).
pub fn filter_from_wire(expr: &str) -> Result<Option<engine::Filter>> {
    if expr.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(engine::filter::parse(expr)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(values: Vec<f32>, packed: Vec<u8>) -> v1::Vector {
        v1::Vector { values, packed, ..Default::default() }
    }

    #[test]
    fn packed_vectors_decode_to_the_same_values() {
        let x = vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3.0e38, -7.25];
        let bytes: Vec<u8> = x.iter().flat_map(|f| f.to_le_bytes()).collect();
        let got = vector_from_wire(v(vec![], bytes.clone()), || "q".into()).unwrap();
        assert_eq!(
            got.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
            x.iter().map(|f| f.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(vector_from_wire(v(x.clone(), vec![]), || "q".into()).unwrap(), x);
        let mut w = v(vec![], bytes);
        unpack_vector(&mut w, || "q".into()).unwrap();
        assert_eq!((w.values, w.packed.len()), (x, 0));
        assert!(vector_from_wire(v(vec![], vec![]), || "q".into()).unwrap().is_empty());
    }

    #[test]
    fn malformed_packed_vectors_are_refused_by_name() {
        let e = vector_from_wire(v(vec![], vec![0; 7]), || "query 3".into()).unwrap_err().to_string();
        assert!(e.contains("query 3") && e.contains("7 bytes") && e.contains("multiple of 4"), "{e}");
        let e = vector_from_wire(v(vec![1.0], vec![0; 4]), || "item 2, space 'a'".into()).unwrap_err().to_string();
        assert!(e.contains("item 2, space 'a'") && e.contains("both"), "{e}");
        let it = v1::Item {
            id: "a".into(),
            vectors: [("s".to_string(), v(vec![], vec![1, 2, 3]))].into(),
            payload_json: String::new(),
        };
        let e = item_from_wire(it, 5).unwrap_err().to_string();
        assert!(e.contains("item 5, space 's'") && e.contains("3 bytes"), "{e}");
    }
}
