//! Snapshots of shard replicas in the JetStream object store, so a long stream history
//! neither has to be kept nor replayed: a replica built from nothing (a node joining, a
//! node that lost its disk) restores the latest snapshot of its shard and applies the
//! stream from the sequence after it.
//!
//! - **Taking one.** One replica per shard (the first full replica in the assignment)
//!   snapshots once it has applied `snapshot_every` records since the last snapshot: every
//!   item (id, vectors as little-endian f32 in base64, payload) scrolled into a temporary
//!   file as JSON lines, then put to the bucket `agentdb-snapshots` as `NAME.SHARD`
//!   with the sequence in its metadata. The sequence is the replica's applied sequence
//!   *before* the scroll starts and applying goes on meanwhile, so the snapshot may hold
//!   some later writes too; replaying the stream after that sequence converges to the
//!   same state anyway (every record is a full replacement, a delete or a filter delete
//!   resolved in stream order, and any later state in the snapshot is written again by
//!   its own record in the replayed tail).
//! - **Trimming.** After a snapshot at S, durable consumers of nodes that no longer hold
//!   the shard are deleted (such a node rebuilds from a snapshot if the shard comes back
//!   to it) and the stream is purged below min(S, every remaining consumer's ack floor)
//!   + 1: no replica that is still applying loses a record it has not applied.
//! - **Restoring.** A new local replica with a snapshot available: its consumer is
//!   created first, starting after the snapshot's sequence (so a concurrent trim counts
//!   it), then the snapshot is loaded, then the stream is applied. A marker file in the
//!   data directory is removed once the restore completed; a node that dies during a
//!   restore finds the marker and starts the replica over.

use super::*;
use base64::Engine as _;
use std::io::{BufRead, Write as _};

/// Items per upsert while restoring, and per scroll page while snapshotting.
const PAGE: usize = 500;
const FORMAT_VERSION: u32 = 1;

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    format: u32,
    collection: String,
    shard: u32,
    seq: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    id: String,
    /// space -> base64 of the vector's little-endian f32 bytes.
    vectors: BTreeMap<String, String>,
    payload: serde_json::Value,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

pub(crate) fn snapshot_object(name: &str, shard: u32) -> String {
    format!("{name}.{shard}")
}

impl Cluster {
    /// The restore marker of local replica `local`.
    pub(crate) fn restore_marker(&self, local: &str) -> std::path::PathBuf {
        self.db.dir().join(format!(".cluster-restoring-{local}"))
    }

    /// The sequence of the latest snapshot of a shard (None: no snapshot).
    pub(crate) async fn snapshot_seq(&self, name: &str, shard: u32) -> Result<Option<u64>> {
        let bound = Duration::from_secs(10);
        match tokio::time::timeout(bound, self.snapshots.info(snapshot_object(name, shard))).await {
            Err(_) => Err(Error::Unavailable("snapshot info: no answer from NATS".into())),
            Ok(Ok(info)) if !info.deleted => Ok(info.metadata.get("seq").and_then(|s| s.parse().ok())),
            Ok(Ok(_)) => Ok(None),
            Ok(Err(e)) if matches!(e.kind(), jetstream::object_store::InfoErrorKind::NotFound) => Ok(None),
            Ok(Err(e)) => Err(nats(e)),
        }
    }

    /// Load the latest snapshot of `name`/`shard` into the empty local replica `col`;
    /// returns its sequence.
    pub(crate) async fn restore_snapshot(
        &self,
        name: &str,
        shard: u32,
        col: Arc<agentdb_engine::Collection>,
    ) -> Result<u64> {
        let mut obj = self.snapshots.get(snapshot_object(name, shard)).await.map_err(nats)?;
        let tmp = self.db.dir().join(format!(
            ".cluster-snapshot-in-{}-{}",
            shard_collection(name, shard),
            uuid::Uuid::new_v4()
        ));
        {
            let mut f = tokio::fs::File::create(&tmp).await.map_err(|e| nats(format!("{}: {e}", tmp.display())))?;
            tokio::io::copy(&mut obj, &mut f).await.map_err(|e| nats(format!("downloading the snapshot: {e}")))?;
            tokio::io::AsyncWriteExt::flush(&mut f).await.map_err(nats)?;
        }
        let (t2, n2) = (tmp.clone(), name.to_string());
        let r = tokio::task::spawn_blocking(move || -> Result<(u64, usize)> {
            let f = std::fs::File::open(&t2).map_err(nats)?;
            let mut lines = std::io::BufReader::new(f).lines();
            let header: Header = match lines.next() {
                Some(l) => {
                    serde_json::from_str(&l.map_err(nats)?).map_err(|e| nats(format!("snapshot header: {e}")))?
                }
                None => return Err(nats("empty snapshot")),
            };
            if header.format != FORMAT_VERSION || header.collection != n2 || header.shard != shard {
                return Err(nats(format!(
                    "snapshot of {}/{} (format {}) is not of this shard",
                    header.collection, header.shard, header.format
                )));
            }
            let (mut batch, mut n) = (Vec::with_capacity(PAGE), 0usize);
            for l in lines {
                let line: Line =
                    serde_json::from_str(&l.map_err(nats)?).map_err(|e| nats(format!("snapshot item: {e}")))?;
                let mut vectors = BTreeMap::new();
                for (space, v) in line.vectors {
                    let bytes = b64().decode(v).map_err(|e| nats(format!("snapshot vector: {e}")))?;
                    vectors.insert(
                        space,
                        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
                    );
                }
                batch.push(Item { id: line.id, vectors, payload: line.payload });
                if batch.len() == PAGE {
                    n += batch.len();
                    col.upsert(std::mem::take(&mut batch))?;
                }
            }
            n += batch.len();
            if !batch.is_empty() {
                col.upsert(batch)?;
            }
            Ok((header.seq, n))
        })
        .await
        .map_err(nats)?;
        let _ = std::fs::remove_file(&tmp);
        let (seq, items) = r?;
        tracing::info!(collection = %name, shard, seq, items, "cluster: replica restored from a snapshot");
        Ok(seq)
    }

    /// Called by the apply loop after each batch: start a snapshot of this shard when this
    /// node is its snapshotter and `snapshot_every` records were applied since the last.
    pub(crate) fn maybe_snapshot(
        self: &Arc<Self>,
        name: &str,
        shard: u32,
        col: &Arc<agentdb_engine::Collection>,
        applied: u64,
        last: &Arc<AtomicU64>,
        busy: &Arc<AtomicBool>,
    ) {
        let every = self.cfg.snapshot_every;
        if every == 0 || applied < last.load(Ordering::SeqCst) + every || busy.load(Ordering::SeqCst) {
            return;
        }
        let first = {
            let st = self.state.read();
            st.assign
                .get(&(name.to_string(), shard))
                .and_then(|a| a.nodes.iter().find(|n| !a.catching_up.contains(n)).cloned())
        };
        if first.as_deref() != Some(self.cfg.node_id.as_str()) || busy.swap(true, Ordering::SeqCst) {
            return;
        }
        let (me, name, col, last, busy) = (self.clone(), name.to_string(), col.clone(), last.clone(), busy.clone());
        tokio::spawn(async move {
            let trimmed_to = match me.take_snapshot(&name, shard, col, applied).await {
                Ok(floor) => {
                    last.store(applied, Ordering::SeqCst);
                    floor
                }
                Err(e) => {
                    tracing::warn!(collection = %name, shard, error = %e, "cluster: snapshot failed; trying again later");
                    applied
                }
            };
            busy.store(false, Ordering::SeqCst);
            // A replica that had not yet acknowledged up to the snapshot held the trim
            // back: trim again as it catches up (once a second, for up to two minutes),
            // rather than only after the next snapshot.
            let mut floor = trimmed_to;
            for _ in 0..120 {
                if floor >= applied {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                match me.trim(&name, shard, applied).await {
                    Ok(f) => floor = f,
                    Err(e) => {
                        tracing::debug!(collection = %name, shard, error = %e, "cluster: trimming again failed");
                        break;
                    }
                }
            }
        });
    }

    async fn take_snapshot(
        &self,
        name: &str,
        shard: u32,
        col: Arc<agentdb_engine::Collection>,
        seq: u64,
    ) -> Result<u64> {
        let t = Instant::now();
        let tmp = self.db.dir().join(format!(
            ".cluster-snapshot-out-{}-{}",
            shard_collection(name, shard),
            uuid::Uuid::new_v4()
        ));
        let (t2, n2) = (tmp.clone(), name.to_string());
        let items = tokio::task::spawn_blocking(move || -> Result<usize> {
            let f = std::fs::File::create(&t2).map_err(nats)?;
            let mut w = std::io::BufWriter::new(f);
            let header = Header { format: FORMAT_VERSION, collection: n2, shard, seq };
            serde_json::to_writer(&mut w, &header).map_err(nats)?;
            w.write_all(b"\n").map_err(nats)?;
            let (mut after, mut n) = (String::new(), 0usize);
            loop {
                let (page, next) = col.scroll(None, &after, PAGE, true)?;
                for it in page {
                    let vectors = it
                        .vectors
                        .into_iter()
                        .map(|(s, v)| (s, b64().encode(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())))
                        .collect();
                    serde_json::to_writer(&mut w, &Line { id: it.id, vectors, payload: it.payload }).map_err(nats)?;
                    w.write_all(b"\n").map_err(nats)?;
                    n += 1;
                }
                match next {
                    Some(c) => after = c,
                    None => break,
                }
            }
            w.flush().map_err(nats)?;
            Ok(n)
        })
        .await
        .map_err(nats)?;
        let items = match items {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let put = async {
            let mut f = tokio::fs::File::open(&tmp).await.map_err(nats)?;
            let meta = jetstream::object_store::ObjectMetadata {
                name: snapshot_object(name, shard),
                metadata: [("seq".to_string(), seq.to_string()), ("items".to_string(), items.to_string())].into(),
                ..Default::default()
            };
            self.snapshots.put(meta, &mut f).await.map_err(nats)
        };
        let r = put.await;
        let _ = std::fs::remove_file(&tmp);
        let info = r?;
        tracing::info!(collection = %name, shard, seq, items, bytes = info.size, took_ms = t.elapsed().as_millis() as u64, "cluster: shard snapshot stored");
        self.trim(name, shard, seq).await
    }

    /// Drop what no replica still needs from a shard's stream (see the module notes);
    /// the sequence it was trimmed to (below `snapshot_seq` while a replica is behind).
    async fn trim(&self, name: &str, shard: u32, snapshot_seq: u64) -> Result<u64> {
        let holders: Vec<String> = {
            let st = self.state.read();
            match st.assign.get(&(name.to_string(), shard)) {
                Some(a) => a.nodes.iter().chain(a.catching_up.iter()).cloned().collect(),
                None => return Ok(snapshot_seq),
            }
        };
        let mut stream = self.js.get_stream(stream_name(name, shard)).await.map_err(nats)?;
        let mut infos = stream.consumers();
        let mut floor = snapshot_seq;
        let mut gone = Vec::new();
        while let Some(c) = infos.next().await {
            let c = c.map_err(nats)?;
            match c.name.strip_prefix("apply-") {
                Some(node) if !holders.iter().any(|h| h == node) => gone.push(c.name.clone()),
                _ => floor = floor.min(c.ack_floor.stream_sequence),
            }
        }
        for c in gone {
            match stream.delete_consumer(&c).await {
                Ok(_) => {
                    tracing::info!(collection = %name, shard, consumer = %c, "cluster: consumer of a node that no longer holds the shard deleted")
                }
                Err(e) => {
                    tracing::warn!(collection = %name, shard, consumer = %c, error = %e, "cluster: cannot delete a stale consumer")
                }
            }
        }
        if floor > 0 {
            let before = stream.info().await.map_err(nats)?.state.first_sequence;
            if floor + 1 > before {
                stream.purge().sequence(floor + 1).await.map_err(nats)?;
                tracing::info!(collection = %name, shard, below = floor + 1, "cluster: stream trimmed after a snapshot");
            }
        }
        Ok(floor)
    }
}
