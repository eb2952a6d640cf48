//! Background work on a collection: sealing the write buffer into an indexed segment
//! (flush) and merging or rewriting segments (compaction). Both build outside the
//! locks and switch over atomically: in memory under the state lock, on disk through
//! the manifest.

use crate::bitmap::Bitmap;
use crate::collection::{Collection, MemTable};
use crate::error::Result;
use crate::manifest::Manifest;
use crate::segment::Segment;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

impl Collection {
    /// Seal the write buffer into a segment, build its indexes and persist it (merging
    /// it with any segments sealed but not yet indexed, so their rows are indexed once).
    /// Returns whether anything was flushed.
    pub fn flush(&self) -> Result<bool> {
        let _m = self.maintenance.lock();
        self.flush_locked("flush request")
    }

    /// Flush, then merge every segment into one (what `optimize` does in other engines),
    /// building one index over all of it.
    pub fn optimize(&self) -> Result<()> {
        let _m = self.maintenance.lock();
        self.check_open()?;
        self.seal_locked()?;
        let plan: Vec<Arc<Segment>> = {
            let st = self.state.read();
            let segs: Vec<Arc<Segment>> = st.segments.values().cloned().collect();
            let dirty = segs.len() > 1 || segs.iter().any(|s| s.deleted.read().count_ones() > 0);
            if dirty {
                segs
            } else {
                Vec::new()
            }
        };
        if !plan.is_empty() {
            self.merge_locked(&plan, "compacted segments (optimize)")?;
        }
        self.persist_pending()?;
        Ok(())
    }

    /// Periodic work: flush when the buffer is large or old, compact when needed.
    ///
    /// During a bulk load (the buffer fills to `flush_rows` again and again) a full
    /// buffer is sealed without building its index, up to `index_defer_rows` rows (and
    /// at most ten buffers' worth): those
    /// segments are searched exactly meanwhile, and are merged and indexed together
    /// once the load pauses (the buffer ages past `flush_interval`), on an explicit flush
    /// or optimize, or when the cap is reached. Each graph is then built once rather than
    /// per segment and again at the final merge. Their WAL records are kept until then.
    pub fn maintain(&self) -> Result<()> {
        if self.dropped.load(Ordering::Acquire) {
            return Ok(());
        }
        let Some(_m) = self.maintenance.try_lock() else { return Ok(()) };
        let (full, old, deferred, failed, mem_rows) = {
            let st = self.state.read();
            let (mut deferred, mut failed) = (0, false);
            for s in st.unpersisted.iter().filter_map(|(id, _)| st.segments.get(id)) {
                if s.indexes.read().iter().any(Option::is_none) {
                    deferred += s.rows();
                } else {
                    failed = true; // indexed, but its persist failed: retry now
                }
            }
            (
                st.mem.rows() >= self.options.flush_rows,
                st.mem.since.is_some_and(|t| t.elapsed() >= self.options.flush_interval),
                deferred,
                failed,
                st.mem.rows(),
            )
        };
        let paused = deferred > 0 && mem_rows == 0;
        // At most ten buffers wait: searches scan them exactly, and a crash replays them.
        let cap = self.options.index_defer_rows.min(self.options.flush_rows.saturating_mul(10));
        if full && !failed && deferred + mem_rows <= cap {
            if let Some(seg) = self.seal_locked()? {
                tracing::debug!(collection = %self.spec.name, segment = seg.id, rows = seg.rows(), waiting = deferred + mem_rows, "sealed the write buffer; its index waits for the bulk load to pause");
            }
        } else if full || old || failed || paused {
            let trigger = if failed {
                "retrying a failed persist"
            } else if full {
                "buffer full"
            } else if old {
                "buffer aged"
            } else {
                "bulk load paused"
            };
            self.flush_locked(trigger)?;
        }
        self.compact_locked()?;
        Ok(())
    }

    /// Move the write buffer into a new segment (not indexed or persisted yet; the WAL
    /// holds its rows until it is). Returns the segment, if the buffer had rows.
    fn seal_locked(&self) -> Result<Option<Arc<Segment>>> {
        let spaces = self.spec.spaces.len();
        let mut wal = self.wal.lock();
        let mut st = self.state.write();
        if st.mem.rows() == 0 {
            return Ok(None);
        }
        let checkpoint = wal.rotate()?;
        let new_id = st.next_segment_id;
        st.next_segment_id += 1;
        let mem = std::mem::replace(&mut st.mem, MemTable::new(new_id, spaces));
        let seg = Arc::new(mem.into_segment());
        st.segments.insert(seg.id, seg.clone());
        st.unpersisted.push((seg.id, checkpoint));
        Ok(Some(seg))
    }

    /// `trigger` says in the log why the flush ran (a request, or which of `maintain`'s
    /// conditions).
    fn flush_locked(&self, trigger: &str) -> Result<bool> {
        self.check_open()?;
        let t = Instant::now();
        let sealed = self.seal_locked()?;
        let pending: Vec<Arc<Segment>> = {
            let st = self.state.read();
            st.unpersisted.iter().filter_map(|(id, _)| st.segments.get(id).cloned()).collect()
        };
        if pending.is_empty() {
            return Ok(false);
        }
        if pending.len() > 1 {
            // Sealed during a bulk load (or left by a failed persist): one index over all.
            self.merge_locked(&pending, "merged the segments sealed during a bulk load into one indexed segment")?;
        }
        self.persist_pending()?;
        if let Some(seg) = sealed {
            tracing::info!(collection = %self.spec.name, segment = seg.id, rows = seg.rows(), merged = pending.len(), ms = t.elapsed().as_millis() as u64, trigger, "flushed write buffer to an indexed segment");
        }
        Ok(true)
    }

    /// Index and persist every sealed segment not yet on disk (including earlier
    /// failures), then advance the checkpoint and drop the WAL records they hold.
    fn persist_pending(&self) -> Result<()> {
        let pending: Vec<(Arc<Segment>, u64)> = {
            let st = self.state.read();
            st.unpersisted.iter().filter_map(|(id, cp)| st.segments.get(id).map(|s| (s.clone(), *cp))).collect()
        };
        if pending.is_empty() {
            return Ok(());
        }
        let mut checkpoint = 0;
        for (seg, cp) in &pending {
            if seg.indexes.read().iter().any(Option::is_none) {
                self.stats.indexed_rows.fetch_add(seg.rows() as u64, Ordering::Relaxed);
            }
            seg.build_indexes(&self.spec, self.options.tuning)?;
            seg.persist(&self.segments_dir(), &self.spec, self.options.cipher.as_deref())?;
            checkpoint = checkpoint.max(*cp);
        }
        {
            let mut st = self.state.write();
            st.unpersisted.retain(|(id, _)| !pending.iter().any(|(s, _)| s.id == *id));
            st.checkpoint = st.checkpoint.max(checkpoint);
        }
        self.write_manifest()?;
        self.wal.lock().remove_up_to(checkpoint)?;
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn write_manifest(&self) -> Result<()> {
        let m = {
            let st = self.state.read();
            Manifest {
                spec: self.spec.clone(),
                next_segment_id: st.next_segment_id,
                checkpoint_lsn: st.checkpoint,
                segments: st
                    .segments
                    .values()
                    .filter(|s| !st.unpersisted.iter().any(|(id, _)| *id == s.id))
                    .map(|s| (s.id, s.deleted.read().clone()))
                    .collect(),
            }
        };
        m.write(&self.dir, self.options.cipher.as_deref())
    }

    /// Pick persisted segments to rewrite: those with many deleted rows, plus the smaller
    /// half when there are too many segments (`optimize` merges everything itself).
    fn compaction_plan(&self) -> Vec<Arc<Segment>> {
        let st = self.state.read();
        let segs: Vec<Arc<Segment>> =
            st.segments.values().filter(|s| !st.unpersisted.iter().any(|(id, _)| *id == s.id)).cloned().collect();
        let mut plan: Vec<Arc<Segment>> = segs
            .iter()
            .filter(|s| {
                s.rows() > 0
                    && s.deleted.read().count_ones() as f64 >= self.options.compact_deleted_ratio * s.rows() as f64
            })
            .cloned()
            .collect();
        if segs.len() > self.options.max_segments {
            let mut by_size = segs.clone();
            by_size.sort_by_key(|s| s.live_rows());
            for s in by_size.into_iter().take(segs.len().div_ceil(2).max(2)) {
                if !plan.iter().any(|p| p.id == s.id) {
                    plan.push(s);
                }
            }
        }
        plan
    }

    fn compact_locked(&self) -> Result<bool> {
        self.check_open()?;
        let plan = self.compaction_plan();
        if plan.is_empty() {
            return Ok(false);
        }
        tracing::info!(collection = %self.spec.name, segments = plan.len(), rows = plan.iter().map(|s| s.rows()).sum::<usize>(), "compaction started");
        self.merge_locked(&plan, "compacted segments")?;
        Ok(true)
    }

    /// Merge the live rows of `plan` into one new segment, index and persist it, and
    /// swap it in for them. Segments of the plan that were sealed but not persisted
    /// give up their WAL records (the checkpoint advances past them); persisted ones
    /// lose their folders.
    fn merge_locked(&self, plan: &[Arc<Segment>], what: &str) -> Result<()> {
        let t = Instant::now();
        let spaces = &self.spec.spaces;
        // Snapshot deletions; rows deleted after this are carried over below.
        let snapshots: Vec<Bitmap> = plan.iter().map(|s| s.deleted.read().clone()).collect();
        let mut ids = Vec::new();
        let mut payloads = Vec::new();
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); spaces.len()];
        // (old segment index in plan, old row) for each new row
        let mut origin: Vec<(usize, u32)> = Vec::new();
        for (pi, seg) in plan.iter().enumerate() {
            for row in 0..seg.rows() {
                if snapshots[pi].get(row) {
                    continue;
                }
                ids.push(seg.ids[row].clone());
                payloads.push(seg.payloads[row].clone());
                for (s, sp) in spaces.iter().enumerate() {
                    vectors[s].extend_from_slice(seg.vector(s, sp.dim, row));
                }
                origin.push((pi, row as u32));
            }
        }
        let new_seg = if ids.is_empty() {
            None
        } else {
            let new_id = {
                let mut st = self.state.write();
                st.next_segment_id += 1;
                st.next_segment_id - 1
            };
            let n = ids.len();
            let seg = Segment::new(new_id, ids, payloads, vectors, Bitmap::new(n));
            self.stats.indexed_rows.fetch_add(n as u64, Ordering::Relaxed);
            seg.build_indexes(&self.spec, self.options.tuning)?;
            seg.persist(&self.segments_dir(), &self.spec, self.options.cipher.as_deref())?;
            Some(Arc::new(seg))
        };
        let checkpoint = {
            let mut st = self.state.write();
            if let Some(new) = &new_seg {
                let mut del = new.deleted.write();
                for (new_row, (pi, old_row)) in origin.iter().enumerate() {
                    let old = &plan[*pi];
                    if old.deleted.read().get(*old_row as usize) {
                        // Deleted (or replaced) while we were building.
                        del.set(new_row);
                    } else if let Some(loc) = st.locations.get_mut(&new.ids[new_row]) {
                        if *loc == (old.id, *old_row) {
                            *loc = (new.id, new_row as u32);
                        }
                    }
                }
                drop(del);
                st.segments.insert(new.id, new.clone());
            }
            for s in plan {
                st.segments.remove(&s.id);
            }
            let mut checkpoint = None;
            st.unpersisted.retain(|(id, cp)| {
                let merged = plan.iter().any(|s| s.id == *id);
                if merged {
                    checkpoint = Some(checkpoint.unwrap_or(0).max(*cp));
                }
                !merged
            });
            if let Some(cp) = checkpoint {
                st.checkpoint = st.checkpoint.max(cp);
            }
            checkpoint
        };
        self.write_manifest()?;
        if let Some(cp) = checkpoint {
            self.wal.lock().remove_up_to(cp)?;
        }
        for s in plan {
            let dir = self.segments_dir().join(crate::segment::dir_name(s.id));
            if !dir.exists() {
                continue; // sealed, never persisted
            }
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove compacted segment folder; it will be removed at next start");
            }
        }
        self.stats.compactions.fetch_add(1, Ordering::Relaxed);
        tracing::info!(collection = %self.spec.name, merged = plan.len(), rows = new_seg.as_ref().map_or(0, |s| s.rows()), ms = t.elapsed().as_millis() as u64, "{what}");
        Ok(())
    }
}
