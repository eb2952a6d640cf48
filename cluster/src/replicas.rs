//! Replicas: the loop that starts and stops this node's shard replicas, and the apply
//! loop that feeds a shard's stream into its local engine collection (the consumer's
//! ack floor is the checkpoint).

use super::*;

impl Cluster {
    // ---- replicas ---------------------------------------------------------------------

    /// Start applying the shards assigned to this node, stop the others.
    pub(crate) async fn replica_loop(self: Arc<Self>) {
        loop {
            let mine: Vec<(String, u32, CollectionMeta)> = {
                let st = self.state.read();
                st.assign
                    .iter()
                    .filter(|(_, a)| a.nodes.contains(&self.cfg.node_id))
                    .filter_map(|((c, s), _)| st.collections.get(c).map(|m| (c.clone(), *s, m.clone())))
                    .collect()
            };
            {
                let mut reps = self.replicas.lock();
                let keep: std::collections::HashSet<(String, u32)> =
                    mine.iter().map(|(c, s, _)| (c.clone(), *s)).collect();
                let mut dropped = Vec::new();
                reps.retain(|k, r| {
                    let stay = keep.contains(k);
                    if !stay {
                        r.task.abort();
                        if self.state.read().collections.contains_key(&k.0) {
                            tracing::info!(collection = %k.0, shard = k.1, "cluster: replica handed off");
                        } else {
                            dropped.push(shard_collection(&k.0, k.1));
                        }
                    }
                    stay
                });
                // The collection was dropped: its local replicas go too.
                for local in dropped {
                    let db = self.db.clone();
                    tokio::task::spawn_blocking(move || match db.drop_collection(&local) {
                        Ok(()) => {
                            tracing::info!(collection = %local, "cluster: replica of a dropped collection removed")
                        }
                        Err(e) => {
                            tracing::warn!(collection = %local, error = %e, "cluster: cannot remove a dropped collection's replica")
                        }
                    });
                }
                for (c, s, m) in mine {
                    if reps.contains_key(&(c.clone(), s)) {
                        continue;
                    }
                    let applied = Arc::new(AtomicU64::new(0));
                    let me = self.clone();
                    let (c2, a2) = (c.clone(), applied.clone());
                    let task = tokio::spawn(async move { me.apply(c2, s, m, a2).await }).abort_handle();
                    tracing::info!(collection = %c, shard = s, "cluster: replica assigned to this node");
                    reps.insert((c, s), Replica { applied, task });
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Apply shard `shard` of `name` from its stream to the local replica, forever.
    pub(crate) async fn apply(
        self: Arc<Self>,
        name: String,
        shard: u32,
        meta: CollectionMeta,
        applied: Arc<AtomicU64>,
    ) {
        loop {
            match self.apply_once(&name, shard, &meta, &applied).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(collection = %name, shard, error = %e, "cluster: replica apply stopped; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    pub(crate) async fn apply_once(
        self: &Arc<Self>,
        name: &str,
        shard: u32,
        meta: &CollectionMeta,
        applied: &AtomicU64,
    ) -> Result<()> {
        let local = shard_collection(name, shard);
        // Every NATS round trip is bounded: a request lost with a server that died (the
        // client reconnects elsewhere) must not stall the replica; the loop starts over.
        let bound = Duration::from_secs(10);
        let timed_out = |what: &str| Error::Unavailable(format!("{what}: no answer from NATS within {bound:?}"));
        let stream = tokio::time::timeout(bound, self.js.get_stream(stream_name(name, shard)))
            .await
            .map_err(|_| timed_out("stream"))?
            .map_err(nats)?;
        let durable = format!("apply-{}", self.cfg.node_id);
        // No durable consumer of this node on the stream: whatever local replica exists
        // belongs to an earlier collection of the same name (dropped while this node was
        // away) and is removed before applying from the stream's start. Only JetStream's
        // "consumer not found" means that: any other failure (a request lost while a
        // stream moves its leader off a dead server) is retried, never taken for absence.
        let existing = match tokio::time::timeout(bound, stream.consumer_info(&durable)).await {
            Err(_) => return Err(timed_out("consumer")),
            Ok(Ok(info)) => Some(info),
            Ok(Err(e)) if e.kind() == jetstream::context::ConsumerInfoErrorKind::NotFound => None,
            Ok(Err(e)) => return Err(nats(e)),
        };
        // A restore from a snapshot that did not complete (the node died during it): the
        // replica starts over.
        let marker = self.restore_marker(&local);
        let interrupted = marker.exists();
        if interrupted {
            tracing::warn!(collection = %name, shard, "cluster: a restore from a snapshot was interrupted; starting the replica over");
        }
        let fresh = existing.is_none() || interrupted;
        let (db, spec) = (self.db.clone(), CollectionSpec { name: local.clone(), ..meta.spec.clone() });
        let (col, created) = tokio::task::spawn_blocking(move || {
            if fresh && db.collection(&spec.name).is_ok() {
                tracing::info!(collection = %spec.name, "cluster: removing a stale local replica");
                db.drop_collection(&spec.name)?;
            }
            match db.collection(&spec.name) {
                Ok(c) => Ok((c, false)),
                Err(_) => db.create_collection(spec).map(|c| (c, true)),
            }
        })
        .await
        .map_err(nats)??;
        // A new, empty local replica: a consumer of this node describes a replica that no
        // longer exists (its data directory was lost or wiped, or a restore was cut short),
        // so it is replaced; the replica starts from the latest snapshot when there is one,
        // else from the stream's start.
        let mut start = None;
        if created {
            if let Some(info) = &existing {
                if info.ack_floor.stream_sequence > 0 {
                    tracing::warn!(collection = %name, shard, "cluster: local replica missing although this node had applied its stream; replaying the stream from its start");
                }
                tokio::time::timeout(bound, stream.delete_consumer(&durable))
                    .await
                    .map_err(|_| timed_out("delete consumer"))?
                    .map_err(nats)?;
            }
            start = self.snapshot_seq(name, shard).await?;
        }
        // A kept consumer with deliveries beyond its ack floor: a batch was in flight when
        // this replica was handed off, aborted or its node stopped. JetStream redelivers
        // those records only after the ack wait, behind newer ones, and with AckPolicy::All
        // the first ack of a newer record would count them as applied although they never
        // were (an acknowledged write missing from this replica for good). So the consumer
        // is made again, starting right after its floor: everything up to the floor is in
        // the local replica (a record is acknowledged only once applied). Should the node
        // die between the delete and the create, the next start finds no consumer and
        // rebuilds the replica from the stream.
        let mut resume_from = None;
        if let (Some(info), false) = (&existing, created || fresh) {
            let floor = applied_floor(info);
            if info.delivered.stream_sequence > floor || info.num_ack_pending > 0 {
                tracing::info!(collection = %name, shard, floor, delivered = info.delivered.stream_sequence,
                    "cluster: replica resuming after an unfinished batch; its consumer restarts after the floor");
                tokio::time::timeout(bound, stream.delete_consumer(&durable))
                    .await
                    .map_err(|_| timed_out("delete consumer"))?
                    .map_err(nats)?;
                resume_from = Some(floor);
            }
        }
        let deliver_policy = match start.or(resume_from) {
            Some(s) => jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence: s + 1 },
            None => jetstream::consumer::DeliverPolicy::All,
        };
        let consumer: jetstream::consumer::Consumer<pull::Config> = tokio::time::timeout(
            bound,
            stream.get_or_create_consumer(
                &durable,
                pull::Config {
                    durable_name: Some(durable.clone()),
                    ack_policy: jetstream::consumer::AckPolicy::All,
                    deliver_policy,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            ),
        )
        .await
        .map_err(|_| timed_out("consumer"))?
        .map_err(nats)?;
        // The consumer exists (starting after the snapshot) before the snapshot is loaded,
        // so a trim elsewhere keeps what this replica still needs.
        if start.is_some() {
            std::fs::write(&marker, b"").map_err(|e| nats(format!("{}: {e}", marker.display())))?;
            self.restore_snapshot(name, shard, col.clone()).await?;
            let _ = std::fs::remove_file(&marker);
        } else if interrupted {
            let _ = std::fs::remove_file(&marker);
        }
        let last_snapshot = Arc::new(AtomicU64::new(match start {
            Some(s) => s,
            None => self.snapshot_seq(name, shard).await.ok().flatten().unwrap_or(0),
        }));
        let snapshotting = Arc::new(AtomicBool::new(false));
        let mut consumer = consumer;
        let floor = applied_floor(
            tokio::time::timeout(bound, consumer.info())
                .await
                .map_err(|_| timed_out("consumer info"))?
                .map_err(nats)?,
        );
        if created {
            // A new local replica holds nothing yet, whatever an earlier attempt applied.
            applied.store(floor, Ordering::SeqCst);
        } else {
            applied.fetch_max(floor, Ordering::SeqCst);
        }
        tracing::info!(collection = %name, shard, from_seq = floor, "cluster: replica applying its stream");
        // Records must arrive in stream order, each once: the next one expected (known
        // unless the consumer was made to deliver the whole stream, which may begin past 1
        // after a trim). A record below it was applied already (a late redelivery) and is
        // skipped; one above it means records were skipped, and the replica starts over
        // (its consumer then restarts after the floor, above).
        let mut expect = (floor > 0).then_some(floor + 1);
        loop {
            let fetch = async {
                let mut batch = consumer
                    .fetch()
                    .max_messages(APPLY_BATCH)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await
                    .map_err(nats)?;
                let mut msgs = Vec::new();
                while let Some(m) = batch.next().await {
                    msgs.push(m.map_err(nats)?);
                }
                Ok::<_, Error>(msgs)
            };
            let msgs = tokio::time::timeout(Duration::from_secs(3), fetch).await.map_err(|_| timed_out("fetch"))??;
            let Some(last) = msgs.last() else { continue };
            let last_seq = last.info().map_err(nats)?.stream_sequence;
            tracing::debug!(collection = %name, shard, records = msgs.len(), last_seq, "cluster: applying");
            let mut writes = Vec::with_capacity(msgs.len());
            for m in &msgs {
                let seq = m.info().map_err(nats)?.stream_sequence;
                match expect {
                    Some(e) if seq < e => continue,
                    Some(e) if seq > e => return Err(self.skipped_records(name, shard, e, seq).await),
                    _ => expect = Some(seq + 1),
                }
                match serde_json::from_slice::<Write>(&m.payload) {
                    Ok(w) => writes.push((seq, w)),
                    Err(e) => {
                        tracing::error!(collection = %name, shard, seq, error = %e, "cluster: unreadable write record skipped")
                    }
                }
            }
            let c = col.clone();
            let (n, s) = (name.to_string(), shard);
            tokio::task::spawn_blocking(move || {
                for (seq, w) in writes {
                    let r = match w {
                        Write::Upsert { items, .. } => c.upsert(items.into_iter().map(Item::from).collect()).map(|_| ()),
                        Write::Delete { ids, .. } => c.delete(&ids).map(|_| ()),
                        Write::DeleteFilter { filter, .. } => c.delete_by_filter(&filter).map(|_| ()),
                    };
                    // The router validated the record, so every replica fails it alike.
                    if let Err(e) = r {
                        tracing::error!(collection = %n, shard = s, seq, error = %e, "cluster: write record refused by the engine");
                    }
                }
            })
            .await
            .map_err(nats)?;
            tokio::time::timeout(bound, msgs.last().expect("non-empty").ack())
                .await
                .map_err(|_| timed_out("ack"))?
                .map_err(nats)?;
            applied.fetch_max(last_seq, Ordering::SeqCst);
            self.maybe_snapshot(name, shard, &col, last_seq, &last_snapshot, &snapshotting);
        }
    }

    /// Records `expected..got` did not arrive. Still in the stream: the replica starts
    /// over and its consumer restarts after the floor (`apply_once`). Trimmed away (a
    /// snapshot's trim ran while this replica's consumer was being made again): the
    /// replica is rebuilt from the latest snapshot, which covers them.
    async fn skipped_records(&self, name: &str, shard: u32, expected: u64, got: u64) -> Error {
        let first = match self.js.get_stream(stream_name(name, shard)).await {
            Ok(mut s) => s.info().await.map(|i| i.state.first_sequence).unwrap_or(0),
            Err(_) => 0,
        };
        if first > expected {
            tracing::warn!(collection = %name, shard, expected, first, "cluster: records this replica needs were trimmed; rebuilding it from the latest snapshot");
            if let Ok(stream) = self.js.get_stream(stream_name(name, shard)).await {
                let _ = stream.delete_consumer(&format!("apply-{}", self.cfg.node_id)).await;
            }
        }
        Error::Unavailable(format!(
            "replica of {name} shard {shard}: expected record {expected}, got {got}; starting over"
        ))
    }
}

/// The last stream sequence a consumer's replica holds: its ack floor, or for a consumer
/// made to start after a snapshot (or after a floor) and not acknowledged since, the
/// sequence before its start (JetStream reports the floor as 0 until the first ack).
fn applied_floor(info: &jetstream::consumer::Info) -> u64 {
    let floor = info.ack_floor.stream_sequence;
    match info.config.deliver_policy {
        jetstream::consumer::DeliverPolicy::ByStartSequence { start_sequence } => {
            floor.max(start_sequence.saturating_sub(1))
        }
        _ => floor,
    }
}
