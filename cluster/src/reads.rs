//! Reads: one replica per shard (this node first, the next on failure), vector search
//! merged exactly, gets, counts, flushes, and the read server other nodes ask.

use super::*;

impl Cluster {
    // ---- reads ------------------------------------------------------------------------

    /// The replicas to ask for `shard`, in order: this node first when it holds one, then
    /// the live others (rotating, to spread the load).
    pub(crate) fn read_order(&self, name: &str, shard: u32) -> Vec<String> {
        let st = self.state.read();
        let Some(a) = st.assign.get(&(name.to_string(), shard)) else { return Vec::new() };
        let mut live: Vec<String> =
            a.nodes.iter().filter(|n| self.alive(&st, n) && !a.catching_up.contains(n)).cloned().collect();
        if !live.is_empty() {
            let r = self.turn.fetch_add(1, Ordering::Relaxed) % live.len();
            live.rotate_left(r);
        }
        if let Some(i) = live.iter().position(|n| *n == self.cfg.node_id) {
            let me = live.remove(i);
            if self.replicas.lock().contains_key(&(name.to_string(), shard)) {
                live.insert(0, me);
            } else {
                live.push(me);
            }
        }
        // Replicas whose heartbeats are late come last, not never: a dead one fails fast
        // (no responders), a slow heartbeat must not fail a read.
        // Replicas still catching up come after those, as a last resort.
        live.extend(a.nodes.iter().filter(|n| !self.alive(&st, n) && !a.catching_up.contains(n)).cloned());
        live.extend(a.catching_up.iter().cloned());
        live
    }

    /// Run `read` (for `shard`) on a replica: locally or on the next node that answers.
    pub(crate) async fn read(&self, name: &str, shard: u32, read: Read, token: &Token) -> Result<ReadReply> {
        // Cut off from NATS, this node cannot know what it missed: it answers only when
        // the request accepts stale results, and only from its own replicas.
        if !self.connected.load(Ordering::SeqCst) {
            if !token.allow_stale {
                return Err(Error::Unavailable(format!(
                    "node {} is cut off from NATS; its replicas may be stale (allow stale reads to read them anyway)",
                    self.cfg.node_id
                )));
            }
            return match self.serve_read(read).await {
                ReadReply::Error { message, .. } => Err(Error::Unavailable(message)),
                ok => Ok(ok),
            };
        }
        let order = self.read_order(name, shard);
        let mut last = format!("shard {shard} of '{name}' has no live replica");
        for node in order {
            let r = self.ask(&node, read.clone(), self.cfg.rpc_timeout).await;
            match r {
                ReadReply::Error { unavailable: true, message } => {
                    tracing::debug!(collection = %name, shard, node = %node, error = %message, "cluster: replica read failed; next");
                    last = message;
                }
                ReadReply::Error { unavailable: false, message } => return Err(Error::Invalid(message)),
                ok => return Ok(ok),
            }
        }
        Err(Error::Unavailable(last))
    }

    /// Nearest neighbours of `vector` in space `space` across every shard, merged
    /// exactly (each shard's own top `k`, then the best `k` of those).
    #[allow(clippy::too_many_arguments)]
    pub async fn search(
        &self,
        name: &str,
        space: &str,
        vector: Vec<f32>,
        k: usize,
        filter: Option<Filter>,
        with_payload: bool,
        params: SearchParams,
        token: &Token,
    ) -> Result<Vec<WireHit>> {
        let meta = self.meta(name)?;
        let (_, sp) = meta.spec.resolve_space(space).map_err(|e| Error::Invalid(e.to_string()))?;
        let lower_is_better = sp.metric == Metric::L2;
        let reads = (0..meta.shards).map(|shard| {
            let read = Read::Search {
                collection: name.to_string(),
                shard,
                space: space.to_string(),
                vector: vector.clone(),
                k,
                filter: filter.clone(),
                with_payload,
                min_seq: token.min_seq(shard),
                params,
            };
            self.read(name, shard, read, token)
        });
        let mut hits = Vec::new();
        for r in futures_util::future::join_all(reads).await {
            match r? {
                ReadReply::Hits(h) => hits.extend(h),
                other => return Err(Error::Nats(format!("unexpected answer to a search: {other:?}"))),
            }
        }
        hits.sort_by(|a, b| {
            let o = a.score.partial_cmp(&b.score).unwrap_or(std::cmp::Ordering::Equal);
            let o = if lower_is_better { o } else { o.reverse() };
            o.then_with(|| a.id.cmp(&b.id))
        });
        hits.truncate(k);
        Ok(hits)
    }

    /// The last sequence written to `shard`'s stream (0 when it cannot be read).
    async fn stream_last(&self, name: &str, shard: u32) -> u64 {
        match self.js.get_stream(stream_name(name, shard)).await {
            Ok(mut s) => s.info().await.map_or(0, |i| i.state.last_sequence),
            Err(_) => 0,
        }
    }

    /// A token covering every write acknowledged so far to the shards that hold `ids`:
    /// a read with it sees them, whichever replica answers (for checks that must not
    /// miss a write through another node: quotas, row policies on replaced items).
    pub async fn latest_token(&self, name: &str, ids: &[String]) -> Result<Token> {
        let meta = self.meta(name)?;
        let shards: std::collections::BTreeSet<u32> = ids.iter().map(|id| shard_of(id, meta.shards)).collect();
        let lasts = futures_util::future::join_all(shards.iter().map(|&s| self.stream_last(name, s))).await;
        let mut t = Token::default();
        for (&shard, last) in shards.iter().zip(lasts) {
            t.observe(shard, last);
        }
        Ok(t)
    }

    /// Items by id (found ones, in request order).
    pub async fn get(&self, name: &str, ids: Vec<String>, with_vectors: bool, token: &Token) -> Result<Vec<WireItem>> {
        let meta = self.meta(name)?;
        let mut by_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for id in &ids {
            by_shard.entry(shard_of(id, meta.shards)).or_default().push(id.clone());
        }
        let reads = by_shard.into_iter().map(|(shard, ids)| {
            let read =
                Read::Get { collection: name.to_string(), shard, ids, with_vectors, min_seq: token.min_seq(shard) };
            self.read(name, shard, read, token)
        });
        let mut found: HashMap<String, WireItem> = HashMap::new();
        for r in futures_util::future::join_all(reads).await {
            if let ReadReply::Items(items) = r? {
                found.extend(items.into_iter().map(|it| (it.id.clone(), it)));
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    /// Live items (matching `filter`) across every shard.
    pub async fn count(&self, name: &str, filter: Option<Filter>, token: &Token) -> Result<u64> {
        let meta = self.meta(name)?;
        let reads = (0..meta.shards).map(|shard| {
            let read = Read::Count {
                collection: name.to_string(),
                shard,
                filter: filter.clone(),
                min_seq: token.min_seq(shard),
            };
            self.read(name, shard, read, token)
        });
        let mut n = 0;
        for r in futures_util::future::join_all(reads).await {
            if let ReadReply::Count(c) = r? {
                n += c;
            }
        }
        Ok(n)
    }

    /// Run `read` on `node`'s replica: locally when it is this node, else over NATS
    /// request-reply within `timeout` (no answer, or none in time, is an UNAVAILABLE reply).
    pub(crate) async fn ask(&self, node: &str, read: Read, timeout: Duration) -> ReadReply {
        if node == self.cfg.node_id {
            return self.serve_read(read).await;
        }
        let body = match serde_json::to_vec(&read) {
            Ok(b) => b,
            Err(e) => return ReadReply::Error { unavailable: false, message: e.to_string() },
        };
        match tokio::time::timeout(timeout, self.client.request(rpc_subject(node), body.into())).await {
            Ok(Ok(m)) => serde_json::from_slice(&m.payload)
                .unwrap_or(ReadReply::Error { unavailable: true, message: "unreadable answer".into() }),
            Ok(Err(e)) => ReadReply::Error { unavailable: true, message: format!("node {node}: {e}") },
            Err(_) => ReadReply::Error { unavailable: true, message: format!("node {node} did not answer") },
        }
    }

    /// Flush (or optimize) every replica of every shard, once each has applied what was
    /// written so far; returns the live items.
    pub async fn flush(&self, name: &str, optimize: bool) -> Result<u64> {
        let meta = self.meta(name)?;
        let mut calls = Vec::new();
        for shard in 0..meta.shards {
            let last = self.stream_last(name, shard).await;
            let nodes =
                self.state.read().assign.get(&(name.to_string(), shard)).map(|a| a.nodes.clone()).unwrap_or_default();
            for node in nodes {
                let read = Read::Flush { collection: name.to_string(), shard, optimize, min_seq: last };
                // An index build can take a while: a generous bound.
                calls.push(async move { self.ask(&node, read, Duration::from_secs(600)).await });
            }
        }
        for r in futures_util::future::join_all(calls).await {
            if let ReadReply::Error { message, .. } = r {
                return Err(Error::Unavailable(format!("flush of '{name}': {message}")));
            }
        }
        self.count(name, None, &Token::default()).await
    }

    /// Answer other nodes' reads of this node's replicas.
    pub(crate) async fn serve_reads(
        self: &Arc<Self>,
    ) -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
        let mut sub = self.client.subscribe(rpc_subject(&self.cfg.node_id)).await.map_err(nats)?;
        let me = self.clone();
        Ok(async move {
            while let Some(m) = sub.next().await {
                let Some(reply) = m.reply.clone() else { continue };
                let me = me.clone();
                tokio::spawn(async move {
                    let answer = match serde_json::from_slice::<Read>(&m.payload) {
                        Ok(read) => me.serve_read(read).await,
                        Err(e) => ReadReply::Error { unavailable: false, message: format!("unreadable request: {e}") },
                    };
                    let body = serde_json::to_vec(&answer).unwrap_or_default();
                    if let Err(e) = me.client.publish(reply, body.into()).await {
                        tracing::debug!(error = %e, "cluster: cannot answer a read");
                    }
                });
            }
        })
    }

    /// A read on this node's replica, once it has applied `min_seq`.
    pub(crate) async fn serve_read(&self, read: Read) -> ReadReply {
        let (name, shard, min_seq) = match &read {
            Read::Search { collection, shard, min_seq, .. }
            | Read::Get { collection, shard, min_seq, .. }
            | Read::Count { collection, shard, min_seq, .. }
            | Read::KeywordStats { collection, shard, min_seq, .. }
            | Read::Keyword { collection, shard, min_seq, .. }
            | Read::Scroll { collection, shard, min_seq, .. }
            | Read::Flush { collection, shard, min_seq, .. } => (collection.clone(), *shard, *min_seq),
        };
        let deadline = Instant::now() + self.cfg.read_wait;
        let applied = loop {
            if let Some(a) = self.replicas.lock().get(&(name.clone(), shard)).map(|r| r.applied.clone()) {
                break a;
            }
            // Assigned here but not started yet (a placement just made): wait for it.
            let assigned = self
                .state
                .read()
                .assign
                .get(&(name.clone(), shard))
                .is_some_and(|a| a.nodes.contains(&self.cfg.node_id));
            if !assigned || Instant::now() >= deadline {
                return ReadReply::Error {
                    unavailable: true,
                    message: format!("node {} holds no replica of shard {shard} of '{name}'", self.cfg.node_id),
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        while applied.load(Ordering::SeqCst) < min_seq {
            if Instant::now() >= deadline {
                return ReadReply::Error {
                    unavailable: true,
                    message: format!(
                        "shard {shard} of '{name}' on node {} has applied {} of {min_seq} after {:?}",
                        self.cfg.node_id,
                        applied.load(Ordering::SeqCst),
                        self.cfg.read_wait
                    ),
                };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let db = self.db.clone();
        let local = shard_collection(&name, shard);
        // A replica just assigned creates its local collection as it starts applying.
        while db.collection(&local).is_err() {
            if Instant::now() >= deadline {
                return ReadReply::Error {
                    unavailable: true,
                    message: format!("shard {shard} of '{name}' on node {} is still starting", self.cfg.node_id),
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let r = tokio::task::spawn_blocking(move || -> agentdb_engine::Result<ReadReply> {
            let c = db.collection(&local)?;
            Ok(match read {
                Read::Search { space, vector, k, filter, with_payload, params, .. } => {
                    let hits = c.search(SearchRequest {
                        space: &space,
                        queries: vec![vector],
                        k,
                        filter: filter.as_ref(),
                        params,
                        with_payload,
                        with_vectors: false,
                    })?;
                    ReadReply::Hits(
                        hits.into_iter()
                            .next()
                            .unwrap_or_default()
                            .into_iter()
                            .map(|h| WireHit { id: h.id, score: h.score, payload: h.payload })
                            .collect(),
                    )
                }
                Read::Get { ids, with_vectors, .. } => ReadReply::Items(
                    c.get(&ids, with_vectors)?
                        .into_iter()
                        .map(|it| WireItem { id: it.id, vectors: it.vectors, payload: it.payload })
                        .collect(),
                ),
                Read::Count { filter, .. } => ReadReply::Count(c.count(filter.as_ref())?),
                read @ (Read::KeywordStats { .. } | Read::Keyword { .. } | Read::Scroll { .. }) => {
                    queries::serve_local(&c, read)?
                }
                Read::Flush { optimize, .. } => {
                    if optimize {
                        c.optimize()?;
                    } else {
                        c.flush()?;
                    }
                    ReadReply::Count(c.count(None)?)
                }
            })
        })
        .await;
        match r {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => ReadReply::Error { unavailable: false, message: e.to_string() },
            Err(e) => ReadReply::Error { unavailable: true, message: e.to_string() },
        }
    }
}
