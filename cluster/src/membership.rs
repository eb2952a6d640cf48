//! Membership and metadata: heartbeats into the nodes bucket, the watchers that keep
//! this node's view of both buckets, the leader's lease and its placement of replicas,
//! draining.

use super::*;

impl Cluster {
    // ---- membership and metadata ------------------------------------------------------

    pub(crate) async fn heartbeat(&self) -> Result<()> {
        let applied: BTreeMap<String, u64> = self
            .replicas
            .lock()
            .iter()
            .map(|((c, s), r)| (format!("{c}/{s}"), r.applied.load(Ordering::SeqCst)))
            .collect();
        let info = NodeInfo {
            id: self.cfg.node_id.clone(),
            addr: self.cfg.addr.clone(),
            started_unix_ms: self.started,
            applied,
        };
        let body = serde_json::to_vec(&info).map_err(nats)?;
        self.nodes_kv.put(&self.cfg.node_id, body.into()).await.map_err(nats)?;
        Ok(())
    }

    pub(crate) async fn heartbeat_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.cfg.heartbeat).await;
            if let Err(e) = self.heartbeat().await {
                tracing::warn!(error = %e, "cluster: heartbeat failed");
            }
        }
    }

    /// Follow a bucket (nodes or meta) into the state, from its current contents on.
    pub(crate) async fn watch_bucket(self: Arc<Self>, nodes: bool) {
        let kv = if nodes { &self.nodes_kv } else { &self.meta_kv };
        loop {
            let mut w = match kv.watch_with_history(">").await {
                Ok(w) => w,
                Err(e) => {
                    tracing::warn!(error = %e, "cluster: cannot watch {}; retrying", if nodes { NODES_BUCKET } else { META_BUCKET });
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while let Some(e) = w.next().await {
                let Ok(e) = e else { break };
                let gone = !matches!(e.operation, kv::Operation::Put);
                let mut st = self.state.write();
                if nodes {
                    if gone {
                        st.nodes.remove(&e.key);
                    } else if let Ok(info) = serde_json::from_slice::<NodeInfo>(&e.value) {
                        let moved = st.nodes.get(&e.key).is_none_or(|s| s.revision != e.revision);
                        let at = if moved { Instant::now() } else { st.nodes[&e.key].moved };
                        st.nodes.insert(e.key.clone(), Seen { info, revision: e.revision, moved: at });
                    }
                } else if let Some(name) = e.key.strip_prefix("coll.") {
                    if gone {
                        st.collections.remove(name);
                    } else if let Ok(m) = serde_json::from_slice::<CollectionMeta>(&e.value) {
                        st.collections.insert(name.to_string(), m);
                    }
                } else if let Some(node) = e.key.strip_prefix("drain.") {
                    if gone {
                        st.draining.remove(node);
                    } else {
                        st.draining.insert(node.to_string());
                    }
                } else if let Some(rest) = e.key.strip_prefix("assign.") {
                    let Some((c, s)) = rest.rsplit_once('.') else { continue };
                    let Ok(s) = s.parse::<u32>() else { continue };
                    if gone {
                        st.assign.remove(&(c.to_string(), s));
                    } else if let Ok(a) = serde_json::from_slice::<Assignment>(&e.value) {
                        st.assign.insert((c.to_string(), s), a);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Take, renew or take over the leader's lease; as leader, place replicas.
    pub(crate) async fn leader_loop(self: Arc<Self>) {
        let me = self.cfg.node_id.clone();
        loop {
            tokio::time::sleep(self.cfg.heartbeat).await;
            let entry = match self.leader_kv.entry(LEADER_KEY).await {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster: cannot read the leader lease");
                    continue;
                }
            };
            let holder = entry
                .as_ref()
                .filter(|e| e.operation == kv::Operation::Put)
                .map(|e| (String::from_utf8_lossy(&e.value).to_string(), e.revision));
            let won = match &holder {
                None => self.leader_kv.create(LEADER_KEY, Bytes::from(me.clone())).await.is_ok(),
                Some((who, rev)) if *who == me => {
                    self.leader_kv.update(LEADER_KEY, Bytes::from(me.clone()), *rev).await.is_ok()
                }
                Some((who, rev)) => {
                    // Another's lease: take it over only when it has not moved for node_ttl.
                    let stale = {
                        let mut st = self.state.write();
                        match &st.leader {
                            Some((w, r, at)) if w == who && r == rev => at.elapsed() >= self.cfg.node_ttl,
                            _ => {
                                st.leader = Some((who.clone(), *rev, Instant::now()));
                                false
                            }
                        }
                    };
                    if stale {
                        let ok = self.leader_kv.update(LEADER_KEY, Bytes::from(me.clone()), *rev).await.is_ok();
                        if ok {
                            tracing::warn!(previous = %who, "cluster: the leader's lease expired; this node took it over");
                        }
                        ok
                    } else {
                        false
                    }
                }
            };
            if won {
                let newly = !matches!(&holder, Some((w, _)) if *w == me);
                if newly {
                    tracing::info!(node = %me, "cluster: this node is the leader");
                }
                self.state.write().leader = Some((me.clone(), 0, Instant::now()));
                if let Err(e) = self.place().await {
                    tracing::warn!(error = %e, "cluster: placement failed");
                }
            }
        }
    }

    /// The leader's placement: every shard gets `replicas` live nodes, keeping the ones it
    /// has, adding the least loaded live nodes, and dropping dead ones it can replace.
    pub(crate) async fn place(&self) -> Result<()> {
        // The streams' ends for the shards with a replica catching up.
        let catching: Vec<(String, u32)> = {
            let st = self.state.read();
            st.assign.iter().filter(|(_, a)| !a.catching_up.is_empty()).map(|(k, _)| k.clone()).collect()
        };
        let mut last: HashMap<(String, u32), u64> = HashMap::new();
        for (c, sh) in catching {
            if let Ok(mut stream) = self.js.get_stream(stream_name(&c, sh)).await {
                if let Ok(info) = stream.info().await {
                    last.insert((c, sh), info.state.last_sequence);
                }
            }
        }
        let plans = {
            let st = self.state.read();
            if !self.sees_heartbeats(&st) {
                return Ok(()); // judging others dead now could be wrong: wait
            }
            let live: Vec<String> = st.nodes.keys().filter(|n| self.alive(&st, n)).cloned().collect();
            let draining: Vec<String> = st.draining.iter().cloned().collect();
            let caught_up = |c: &str, sh: u32, n: &str| {
                let Some(end) = last.get(&(c.to_string(), sh)) else { return false };
                st.nodes.get(n).and_then(|s| s.info.applied.get(&format!("{c}/{sh}"))).is_some_and(|a| a >= end)
            };
            placement(&PlaceInput {
                collections: &st.collections,
                assign: &st.assign,
                live: &live,
                draining: &draining,
                caught_up: &caught_up,
            })
        };
        for (key, a) in plans {
            tracing::info!(key = %key, nodes = ?a.nodes, catching_up = ?a.catching_up, "cluster: shard replicas placed");
            let body = serde_json::to_vec(&a).map_err(nats)?;
            self.meta_kv.put(&key, body.into()).await.map_err(nats)?;
        }
        Ok(())
    }

    /// Drain `node` (or stop draining it): it takes no new replica and the leader moves
    /// its replicas to other nodes, each once its successor has caught up.
    pub async fn drain(&self, node: &str, on: bool) -> Result<()> {
        agentdb_engine::validate_name("node id", node).map_err(|e| Error::Invalid(e.to_string()))?;
        let key = format!("drain.{node}");
        if on {
            self.meta_kv.put(&key, Bytes::from_static(b"1")).await.map_err(nats)?;
        } else {
            self.meta_kv.delete(&key).await.map_err(nats)?;
        }
        tracing::info!(node = %node, draining = on, "cluster: drain set");
        Ok(())
    }
}
