//! The event bus: a fixed set of topics, one global monotonically increasing offset,
//! and a bounded ring of recent events per topic. Readers pull from an offset; a
//! reader whose next offset has already been evicted from a ring gets
//! [`Read::Lagged`] with the first offset it can resume from, so a slow subscriber
//! never makes the server buffer without bound.

use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// An ingest stream finished (files, items, failures).
    Ingestion,
    /// An item matched a standing query (topic reserved; no producer yet).
    StandingQuery,
    /// An agent became unhealthy (missed heartbeats) or healthy again.
    AgentHealth,
    /// An agent was registered or changed lifecycle state.
    AgentLifecycle,
    /// A workflow changed state (topic reserved; no producer yet).
    Workflow,
    /// The anomaly detector raised or cleared an alert.
    Alerts,
}

impl Topic {
    pub const ALL: [Topic; 6] = [
        Topic::Ingestion,
        Topic::StandingQuery,
        Topic::AgentHealth,
        Topic::AgentLifecycle,
        Topic::Workflow,
        Topic::Alerts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Ingestion => "ingestion",
            Topic::StandingQuery => "standing_query",
            Topic::AgentHealth => "agent_health",
            Topic::AgentLifecycle => "agent_lifecycle",
            Topic::Workflow => "workflow",
            Topic::Alerts => "alerts",
        }
    }

    pub fn parse(s: &str) -> crate::Result<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| {
            crate::Error::Invalid(format!("unknown topic '{s}' (topics: {})", Topic::ALL.map(Topic::as_str).join(", ")))
        })
    }

    /// Whether clients may publish to the topic (`Events/Publish`). Topics the server
    /// produces itself (ingestion, agent health and lifecycle, standing-query matches)
    /// are server-only, so subscribers can trust them.
    pub fn client_publishable(self) -> bool {
        matches!(self, Topic::Workflow | Topic::Alerts)
    }
}

/// One event. Offsets start at 1 and are unique across all topics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub offset: u64,
    pub topic: Topic,
    /// What happened, e.g. `agent.unhealthy`, `alert.firing`, `ingest.finished`.
    pub kind: String,
    /// What it happened to (an agent name, a collection, an alert signal).
    pub subject: String,
    pub data: serde_json::Value,
    pub unix_ms: u64,
}

/// The result of a read from an offset.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// Events with offsets at or after the requested one, in offset order (may be empty).
    Events(Vec<Arc<Event>>),
    /// Events at or after `from` in the requested topics were evicted: resume from
    /// `first_available` (events between the two are lost to this reader).
    Lagged { from: u64, first_available: u64 },
}

struct Ring {
    events: VecDeque<Arc<Event>>,
    /// One past the highest evicted offset (0 = nothing evicted yet).
    evicted_upto: u64,
}

struct Inner {
    next: u64,
    rings: BTreeMap<Topic, Ring>,
}

/// Per-topic retention figures, for `Events/Topics`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicStats {
    pub topic: Topic,
    pub retained: u64,
    pub first_offset: u64,
    pub last_offset: u64,
}

pub struct Bus {
    inner: Mutex<Inner>,
    capacity: usize,
    /// The latest published offset, for waiting readers.
    latest: tokio::sync::watch::Sender<u64>,
}

impl Bus {
    /// A bus keeping the last `capacity` events of each topic (at least 1).
    pub fn new(capacity: usize) -> Bus {
        let rings = Topic::ALL.into_iter().map(|t| (t, Ring { events: VecDeque::new(), evicted_upto: 0 })).collect();
        Bus {
            inner: Mutex::new(Inner { next: 1, rings }),
            capacity: capacity.max(1),
            latest: tokio::sync::watch::Sender::new(0),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Publish an event; returns its offset.
    pub fn publish(&self, topic: Topic, kind: &str, subject: &str, data: serde_json::Value) -> u64 {
        let offset = {
            let mut g = self.inner.lock();
            let offset = g.next;
            g.next += 1;
            let ring = g.rings.get_mut(&topic).expect("a ring per topic");
            ring.events.push_back(Arc::new(Event {
                offset,
                topic,
                kind: kind.to_string(),
                subject: subject.to_string(),
                data,
                unix_ms: crate::now_ms(),
            }));
            while ring.events.len() > self.capacity {
                if let Some(old) = ring.events.pop_front() {
                    ring.evicted_upto = old.offset + 1;
                }
            }
            offset
        };
        self.latest.send_replace(offset);
        tracing::debug!(topic = topic.as_str(), kind, subject, offset, "event published");
        offset
    }

    /// The offset the next event will get.
    pub fn next_offset(&self) -> u64 {
        self.inner.lock().next
    }

    /// Up to `max` events of `topics` (empty = all) with offset >= `from`.
    pub fn read(&self, topics: &[Topic], from: u64, max: usize) -> Read {
        let from = from.max(1);
        let g = self.inner.lock();
        let selected: Vec<&Ring> =
            g.rings.iter().filter(|(t, _)| topics.is_empty() || topics.contains(t)).map(|(_, r)| r).collect();
        let first_available = selected.iter().map(|r| r.evicted_upto).max().unwrap_or(0);
        if first_available > from {
            return Read::Lagged { from, first_available };
        }
        let mut out: Vec<Arc<Event>> = Vec::new();
        for r in selected {
            let start = r.events.partition_point(|e| e.offset < from);
            out.extend(r.events.range(start..).take(max).cloned());
        }
        out.sort_by_key(|e| e.offset);
        out.truncate(max);
        Read::Events(out)
    }

    /// A receiver that changes whenever an event is published.
    pub fn watch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }

    pub fn stats(&self) -> Vec<TopicStats> {
        let g = self.inner.lock();
        g.rings
            .iter()
            .map(|(t, r)| TopicStats {
                topic: *t,
                retained: r.events.len() as u64,
                first_offset: r.events.front().map_or(0, |e| e.offset),
                last_offset: r.events.back().map_or(0, |e| e.offset),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(r: &Read) -> Vec<u64> {
        match r {
            Read::Events(v) => v.iter().map(|e| e.offset).collect(),
            Read::Lagged { .. } => panic!("unexpected lag: {r:?}"),
        }
    }

    #[test]
    fn offsets_are_global_and_reads_filter_by_topic() {
        let bus = Bus::new(10);
        assert_eq!(bus.publish(Topic::Alerts, "a", "x", serde_json::json!({})), 1);
        assert_eq!(bus.publish(Topic::AgentHealth, "h", "y", serde_json::json!({})), 2);
        assert_eq!(bus.publish(Topic::Alerts, "a", "z", serde_json::json!({})), 3);
        assert_eq!(offsets(&bus.read(&[], 0, 100)), vec![1, 2, 3]);
        assert_eq!(offsets(&bus.read(&[Topic::Alerts], 1, 100)), vec![1, 3]);
        assert_eq!(offsets(&bus.read(&[Topic::Alerts], 2, 100)), vec![3]);
        assert_eq!(offsets(&bus.read(&[], 2, 1)), vec![2]);
        assert_eq!(offsets(&bus.read(&[], 4, 100)), Vec::<u64>::new());
        assert_eq!(bus.next_offset(), 4);
    }

    #[test]
    fn a_reader_behind_the_ring_is_told_it_lagged_and_resumes() {
        let bus = Bus::new(4);
        for i in 0..10 {
            bus.publish(Topic::Alerts, "a", &i.to_string(), serde_json::json!({ "i": i }));
        }
        // Offsets 1..=6 were evicted; 7..=10 remain.
        assert_eq!(bus.read(&[Topic::Alerts], 3, 100), Read::Lagged { from: 3, first_available: 7 });
        assert_eq!(bus.read(&[], 0, 100), Read::Lagged { from: 1, first_available: 7 });
        assert_eq!(offsets(&bus.read(&[Topic::Alerts], 7, 100)), vec![7, 8, 9, 10]);
        // Another topic's ring is unaffected.
        let o = bus.publish(Topic::Workflow, "w", "", serde_json::json!({}));
        assert_eq!(offsets(&bus.read(&[Topic::Workflow], 1, 100)), vec![o]);
        let st = bus.stats();
        let alerts = st.iter().find(|s| s.topic == Topic::Alerts).unwrap();
        assert_eq!((alerts.retained, alerts.first_offset, alerts.last_offset), (4, 7, 10));
    }

    #[test]
    fn topics_parse_and_server_topics_are_not_publishable() {
        for t in Topic::ALL {
            assert_eq!(Topic::parse(t.as_str()).unwrap(), t);
        }
        assert!(Topic::parse("nope").is_err());
        assert!(!Topic::AgentHealth.client_publishable());
        assert!(Topic::Alerts.client_publishable());
    }

    #[test]
    fn watchers_see_new_offsets() {
        let bus = Bus::new(2);
        let mut rx = bus.watch();
        rx.borrow_and_update();
        bus.publish(Topic::Alerts, "a", "", serde_json::json!({}));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 1);
    }
}
