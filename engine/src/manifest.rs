//! The collection manifest: which segments exist, their deletion bitmaps, and the WAL
//! checkpoint up to which their contents are complete. Replaced atomically.

use crate::bitmap::Bitmap;
use crate::codec::crypto::Cipher;
use crate::codec::{self, Reader, Writer};
use crate::error::{Error, Result};
use crate::types::CollectionSpec;
use std::path::Path;

pub const FILE: &str = "MANIFEST";
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub spec: CollectionSpec,
    pub next_segment_id: u64,
    /// Every WAL record with an LSN at or below this is reflected in the segments.
    pub checkpoint_lsn: u64,
    /// (segment id, deletion bitmap over its rows)
    pub segments: Vec<(u64, Bitmap)>,
}

impl Manifest {
    pub fn new(spec: CollectionSpec) -> Self {
        Manifest { spec, next_segment_id: 1, checkpoint_lsn: 0, segments: Vec::new() }
    }

    /// Write atomically; encrypted when `cipher` is set.
    pub fn write(&self, dir: &Path, cipher: Option<&Cipher>) -> Result<()> {
        let mut w = Writer::default();
        w.str(&serde_json::to_string(&self.spec).expect("spec serialises"));
        w.u64(self.next_segment_id);
        w.u64(self.checkpoint_lsn);
        w.u64(self.segments.len() as u64);
        for (id, del) in &self.segments {
            w.u64(*id);
            w.u64(del.len() as u64);
            w.bytes(del.bytes());
        }
        codec::write_file_crypt(&dir.join(FILE), b"MANI", VERSION, &w.0, cipher, FILE)
    }

    pub fn read(dir: &Path, cipher: Option<&Cipher>) -> Result<Manifest> {
        let path = dir.join(FILE);
        let (_, body) = codec::read_file_crypt(&path, b"MANI", VERSION, cipher, FILE)?;
        let mut r = Reader::new(&body);
        let m = (|| {
            let spec: CollectionSpec = serde_json::from_str(r.str()?).map_err(|e| format!("collection spec: {e}"))?;
            let next_segment_id = r.u64()?;
            let checkpoint_lsn = r.u64()?;
            let n = r.u64()? as usize;
            let mut segments = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let id = r.u64()?;
                let rows = r.u64()? as usize;
                let bytes = r.bytes()?.to_vec();
                let del = Bitmap::from_bytes(bytes, rows)
                    .ok_or_else(|| format!("segment {id}: bitmap size does not match {rows} rows"))?;
                segments.push((id, del));
            }
            Ok::<_, String>(Manifest { spec, next_segment_id, checkpoint_lsn, segments })
        })()
        .map_err(|e| Error::corrupted(&path, e))?;
        Ok(m)
    }
}
