//! Restarting stalled sources. JetStream re-creates a stream source's consumer after a
//! failure with a back-off that grows 10 s per failure up to 2 minutes, so after a link
//! has been down a while the first retry can come long after the link is back (measured:
//! a 60 s cut, then 50 s before the hub's changes reached the edge again). Every
//! housekeeping round (once it has reached the hub) checks the sync streams' sources: one
//! JetStream has not heard from for `STALL` (a healthy idle source hears a heartbeat
//! about every second) whose far side is alive is removed from the stream and added back
//! at once, which sets it up afresh; it resumes after the last message it delivered (the
//! server finds that from the stored messages' source headers), and records are
//! idempotent besides. The edge restarts its inbox's sources (the hub is alive: it just
//! answered); the hub restarts an edge's source only while that edge is registering (its
//! entry in the seen bucket changed within the last rounds), not one that is offline.

use crate::streams::{HUB_STREAM, INBOX_STREAM};
use crate::{Edge, Role};
use agentdb_engine::Result;
use async_nats::jetstream::stream;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A source silent this long is stalled.
pub(crate) const STALL: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct Watch {
    /// When each source (by key) was last restarted, or first noticed when it had never
    /// been heard from: restarted at most once per `STALL`.
    restarted: Mutex<HashMap<String, Instant>>,
    /// Hub: per node, the revision of its seen entry and when that last changed.
    revisions: Mutex<HashMap<String, (u64, Instant)>>,
}

/// A source's identity: stream name, filter and API prefix (an edge's, for the hub).
fn key(name: &str, filter: &str, api: &str) -> String {
    format!("{name}|{filter}|{api}")
}

fn config_key(s: &stream::Source) -> String {
    key(
        &s.name,
        s.filter_subject.as_deref().unwrap_or_default(),
        s.external.as_ref().map(|e| e.api_prefix.as_str()).unwrap_or_default(),
    )
}

/// The node an edge source reads from (`$JS.<node>.API`).
fn node_of(api: &str) -> Option<&str> {
    api.strip_prefix("$JS.")?.strip_suffix(".API")
}

impl Edge {
    /// Hub: note `node`'s seen-entry revision this round.
    pub(crate) fn note_revision(&self, node: &str, revision: u64) {
        let mut r = self.watch.revisions.lock();
        let e = r.entry(node.to_string()).or_insert((revision, Instant::now()));
        if e.0 != revision {
            *e = (revision, Instant::now());
        }
    }

    /// Hub: whether `node` registered lately (its seen entry changed in the last rounds).
    fn alive(&self, node: &str) -> bool {
        let window = (self.cfg.clock_interval * 3).max(STALL);
        self.watch.revisions.lock().get(node).is_some_and(|(_, at)| at.elapsed() < window)
    }

    /// Restart this node's stalled sync sources (see the module note); the number restarted.
    pub(crate) async fn restart_stalled_sources(&self) -> Result<usize> {
        let name = match self.cfg.role {
            Role::Edge => INBOX_STREAM,
            Role::Hub => HUB_STREAM,
        };
        let what = |e: String| crate::unavailable(name, e);
        // The raw stream info: the client's type leaves out each source's API prefix.
        let info: serde_json::Value = self
            .local
            .request(format!("STREAM.INFO.{name}"), &serde_json::json!({}))
            .await
            .map_err(|e| what(e.to_string()))?;
        if let Some(e) = info.get("error") {
            return Err(what(e.to_string()));
        }
        let mut cfg: stream::Config =
            serde_json::from_value(info["config"].clone()).map_err(|e| what(format!("its configuration: {e}")))?;
        if self.cfg.role == Role::Edge {
            // An inbox missing a source (a restart below cut off halfway) gets it back
            // first; the hub's sources are set every round by `source_edges`.
            let want = self.inbox_sources();
            let have: Vec<String> = cfg.sources.iter().flatten().map(config_key).collect();
            if want.iter().any(|w| !have.contains(&config_key(w))) {
                cfg.sources = Some(want);
                self.local.update_stream(cfg).await.map_err(|e| what(e.to_string()))?;
                tracing::warn!(stream = name, "edge: the inbox's sources were restored");
                return Ok(0);
            }
        }
        let mut stalled = Vec::new();
        for s in info["sources"].as_array().into_iter().flatten() {
            let api = s["external"]["api"].as_str().unwrap_or_default();
            let k = key(s["name"].as_str().unwrap_or_default(), s["filter_subject"].as_str().unwrap_or_default(), api);
            // Nanoseconds since it was last heard from; -1 (or absent): never.
            let silent = s["active"].as_i64().filter(|a| *a >= 0).map(|a| Duration::from_nanos(a as u64));
            if silent.is_some_and(|d| d < STALL) {
                continue;
            }
            if self.cfg.role == Role::Hub && !node_of(api).is_some_and(|n| self.alive(n)) {
                continue;
            }
            {
                // Restarted (or, never heard from, first noticed) less than STALL ago: give it time.
                let mut r = self.watch.restarted.lock();
                let at = *r.entry(k.clone()).or_insert_with(|| {
                    if silent.is_none() {
                        Instant::now()
                    } else {
                        Instant::now().checked_sub(STALL).unwrap_or_else(Instant::now)
                    }
                });
                if at.elapsed() < STALL {
                    continue;
                }
            }
            stalled.push((k, silent));
        }
        if stalled.is_empty() {
            return Ok(0);
        }
        let keys: Vec<&String> = stalled.iter().map(|(k, _)| k).collect();
        let mut without = cfg.clone();
        without.sources =
            Some(cfg.sources.iter().flatten().filter(|src| !keys.contains(&&config_key(src))).cloned().collect());
        self.local.update_stream(without).await.map_err(|e| what(e.to_string()))?;
        self.local.update_stream(cfg).await.map_err(|e| what(e.to_string()))?;
        let now = Instant::now();
        let mut r = self.watch.restarted.lock();
        for (k, silent) in &stalled {
            r.insert(k.clone(), now);
            tracing::warn!(stream = name, source = %k, silent_ms = silent.map(|d| d.as_millis() as u64), "edge: a stalled source was restarted");
        }
        Ok(stalled.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_keys_and_nodes() {
        assert_eq!(node_of("$JS.edge-a.API"), Some("edge-a"));
        assert_eq!(node_of("$JS.API"), None);
        let s = stream::Source {
            name: "AGENTDB_SYNC".into(),
            external: Some(stream::External { api_prefix: "$JS.edge-a.API".into(), delivery_prefix: None }),
            ..Default::default()
        };
        assert_eq!(config_key(&s), key("AGENTDB_SYNC", "", "$JS.edge-a.API"));
    }
}
