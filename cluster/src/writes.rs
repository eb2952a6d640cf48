//! Sharded collections and writes: creating and dropping them, upserts and deletes
//! routed to their shards' streams, acknowledged once JetStream stored them.

use super::*;

impl Cluster {
    // ---- collections ------------------------------------------------------------------

    /// Create a sharded collection: its streams, then its metadata (the leader places its
    /// replicas). Waits (up to 10 s) until every shard has a replica.
    pub async fn create_collection(&self, spec: CollectionSpec, shards: u32, replicas: u32) -> Result<CollectionMeta> {
        agentdb_engine::validate_name("collection", &spec.name).map_err(|e| Error::Invalid(e.to_string()))?;
        if !(1..=MAX_SHARDS).contains(&shards) {
            return Err(Error::Invalid(format!("shards must be 1 to {MAX_SHARDS}, got {shards}")));
        }
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(Error::Invalid(format!("replicas must be 1 to {MAX_REPLICAS}, got {replicas}")));
        }
        if spec.spaces.is_empty() {
            return Err(Error::Invalid("a collection needs at least one vector space".into()));
        }
        if self.collection(&spec.name).is_some()
            || self.meta_kv.get(format!("coll.{}", spec.name)).await.map_err(nats)?.is_some()
        {
            return Err(Error::AlreadyExists(format!("collection '{}' already exists in the cluster", spec.name)));
        }
        let stream_replicas = stream_replicas(&self.js).await;
        for s in 0..shards {
            let cfg = stream::Config {
                name: stream_name(&spec.name, s),
                subjects: vec![write_subject(&spec.name, s)],
                num_replicas: stream_replicas as usize,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            };
            self.js.get_or_create_stream(cfg).await.map_err(nats)?;
        }
        let meta = CollectionMeta { format: FORMAT, spec: spec.clone(), shards, replicas, stream_replicas };
        let body = serde_json::to_vec(&meta).map_err(nats)?;
        self.meta_kv
            .create(format!("coll.{}", spec.name), body.into())
            .await
            .map_err(|e| Error::AlreadyExists(format!("collection '{}': {e}", spec.name)))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let placed = {
                let st = self.state.read();
                st.collections.contains_key(&spec.name)
                    && (0..shards).all(|s| st.assign.get(&(spec.name.clone(), s)).is_some_and(|a| !a.nodes.is_empty()))
            };
            if placed {
                break;
            }
            if Instant::now() >= deadline {
                return Err(Error::Unavailable(format!(
                    "collection '{}' was created but its shards have no replica yet (is a leader up?)",
                    spec.name
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!(collection = %spec.name, shards, replicas, stream_replicas, "cluster: collection created");
        Ok(meta)
    }

    // ---- writes -----------------------------------------------------------------------

    pub(crate) fn meta(&self, name: &str) -> Result<CollectionMeta> {
        self.collection(name).ok_or_else(|| Error::NotFound(format!("collection '{name}' not found in the cluster")))
    }

    /// Upsert items (ids given or generated): acknowledged once JetStream stored every
    /// shard's record. Returns the ids (request order) and the consistency token.
    pub async fn upsert(&self, name: &str, items: Vec<Item>) -> Result<(Vec<String>, Token)> {
        let meta = self.meta(name)?;
        let mut by_shard: BTreeMap<u32, Vec<WireItem>> = BTreeMap::new();
        let mut ids = Vec::with_capacity(items.len());
        for (i, mut it) in items.into_iter().enumerate() {
            if it.id.is_empty() {
                it.id = uuid::Uuid::new_v4().to_string();
            }
            check_item(&meta.spec, &it).map_err(|e| Error::Invalid(format!("item {i} ('{}'): {e}", it.id)))?;
            ids.push(it.id.clone());
            by_shard.entry(shard_of(&it.id, meta.shards)).or_default().push(it.into());
        }
        let mut records = Vec::new();
        for (shard, items) in by_shard {
            for chunk in chunk_by_size(items) {
                records.push((shard, Write::Upsert { format: FORMAT, items: chunk }));
            }
        }
        let token = self.publish(name, records).await?;
        Ok((ids, token))
    }

    /// Delete by id (an id that does not exist is no error). Returns how many ids were
    /// sent and the token.
    pub async fn delete(&self, name: &str, ids: Vec<String>) -> Result<(usize, Token)> {
        let meta = self.meta(name)?;
        let n = ids.len();
        let mut by_shard: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for id in ids {
            by_shard.entry(shard_of(&id, meta.shards)).or_default().push(id);
        }
        let records = by_shard.into_iter().map(|(s, ids)| (s, Write::Delete { format: FORMAT, ids })).collect();
        Ok((n, self.publish(name, records).await?))
    }

    /// Delete the items matching `filter` on every shard. Returns how many matched when
    /// the request was served (counted through one replica per shard just before; a
    /// concurrent write can make the number deleted differ) and the token.
    pub async fn delete_by_filter(&self, name: &str, filter: Filter) -> Result<(u64, Token)> {
        let meta = self.meta(name)?;
        let n = self.count(name, Some(filter.clone()), &Token::default()).await?;
        let records =
            (0..meta.shards).map(|s| (s, Write::DeleteFilter { format: FORMAT, filter: filter.clone() })).collect();
        Ok((n, self.publish(name, records).await?))
    }

    /// Drop a sharded collection: its metadata first (no node routes to it any more;
    /// every node removes its replicas when it sees that), then its streams and its
    /// replica assignments.
    pub async fn drop_collection(&self, name: &str) -> Result<()> {
        let meta = self.meta(name)?;
        if !self.connected.load(Ordering::SeqCst) {
            return Err(Error::Refused(
                "this node is cut off from NATS: the drop is refused until it reconnects".into(),
            ));
        }
        self.meta_kv.delete(format!("coll.{name}")).await.map_err(nats)?;
        self.state.write().collections.remove(name);
        for s in 0..meta.shards {
            if let Err(e) = self.js.delete_stream(stream_name(name, s)).await {
                tracing::warn!(collection = %name, shard = s, error = %e, "cluster: cannot delete a dropped collection's stream");
            }
            let _ = self.meta_kv.delete(format!("assign.{name}.{s}")).await;
        }
        self.drop_media(name).await;
        tracing::info!(collection = %name, shards = meta.shards, "cluster: collection dropped");
        Ok(())
    }

    pub(crate) async fn publish(&self, name: &str, records: Vec<(u32, Write)>) -> Result<Token> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err(Error::Refused(
                "this node is cut off from NATS: writes are refused until it reconnects".into(),
            ));
        }
        let mut acks = Vec::with_capacity(records.len());
        for (shard, w) in records {
            let body = serde_json::to_vec(&w).map_err(nats)?;
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
            let ack = self
                .js
                .publish_with_headers(write_subject(name, shard), h, body.into())
                .await
                .map_err(|e| Error::Unavailable(format!("write to shard {shard} of '{name}' not stored: {e}")))?;
            acks.push((shard, ack));
        }
        let mut token = Token::default();
        for (shard, ack) in acks {
            let a = tokio::time::timeout(Duration::from_secs(10), ack)
                .await
                .map_err(|_| {
                    Error::Unavailable(format!("write to shard {shard} of '{name}': JetStream did not acknowledge"))
                })?
                .map_err(|e| Error::Unavailable(format!("write to shard {shard} of '{name}' not stored: {e}")))?;
            token.observe(shard, a.sequence);
        }
        Ok(token)
    }
}

/// The router's check of an item against the collection's spaces and the engine's
/// default limits (so no replica ever refuses a stored record for its shape).
fn check_item(spec: &CollectionSpec, it: &Item) -> std::result::Result<(), String> {
    let lim = agentdb_engine::Limits::default();
    if it.id.len() > lim.max_id_len {
        return Err(format!("id is {} bytes, the limit is {}", it.id.len(), lim.max_id_len));
    }
    if it.id.chars().any(char::is_control) {
        return Err("id contains control characters".into());
    }
    let mut seen = std::collections::HashSet::new();
    for (space, v) in &it.vectors {
        let (_, sp) = spec.resolve_space(space).map_err(|e| e.to_string())?;
        seen.insert(sp.name.clone());
        if v.len() != sp.dim {
            return Err(format!("vector for space '{}' has {} dimensions, the space has {}", sp.name, v.len(), sp.dim));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(format!("vector for space '{}' has a non-finite value", sp.name));
        }
    }
    if let Some(missing) = spec.spaces.iter().find(|s| !seen.contains(&s.name)) {
        return Err(format!("missing vector for space '{}'", missing.name));
    }
    match &it.payload {
        serde_json::Value::Null | serde_json::Value::Object(_) => {}
        _ => return Err("payload must be a JSON object".into()),
    }
    let n = it.payload.to_string().len();
    if n > lim.max_payload_bytes {
        return Err(format!("payload is {n} bytes, the limit is {}", lim.max_payload_bytes));
    }
    Ok(())
}

/// Split a shard's items into records under [`MAX_RECORD_BYTES`].
pub(crate) fn chunk_by_size(items: Vec<WireItem>) -> Vec<Vec<WireItem>> {
    let mut out = Vec::new();
    let (mut cur, mut size) = (Vec::new(), 0usize);
    for it in items {
        let n = serde_json::to_vec(&it).map_or(0, |b| b.len());
        if !cur.is_empty() && size + n > MAX_RECORD_BYTES {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += n;
        cur.push(it);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
