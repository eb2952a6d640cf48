//! The event bus: a fixed set of topics, one global monotonically increasing offset,
//! and a bounded ring of recent events per topic. Readers pull from an offset; a
//! reader whose next offset has already been evicted from a ring gets
//! [`Read::Lagged`] with the first offset it can resume from, so a slow subscriber
//! never makes the server buffer without bound.

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Topic {
    /// An ingest stream finished (files, items, failures).
    Ingestion,
    /// An item matched a standing query.
    StandingQuery,
    /// An agent became unhealthy (missed heartbeats) or healthy again.
    AgentHealth,
    /// An agent was registered or changed lifecycle state.
    AgentLifecycle,
    /// A workflow run or step changed state, or a workflow step notified.
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

/// Who may read an event. `Events/Subscribe`, `wait_event` steps and every other reader
/// acting for a principal deliver only the events whose audience admits it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Audience {
    /// Everyone who may subscribe: agent health and lifecycle, alerts, and the events
    /// clients publish themselves (a shared channel by design).
    #[default]
    Everyone,
    /// Principals that may read every one of these collections in full (no collection
    /// scope excluding one, no row policy): ingest summaries, standing-query matches.
    Collections(Vec<String>),
    /// The principal with this id (who started a workflow run, or applied a definition),
    /// and principals that see everything.
    Principal(String),
}

impl Audience {
    /// Whether `p` may read an event with this audience (`None`: authentication is off,
    /// everything is visible).
    pub fn admits(&self, p: Option<&crate::security::Principal>) -> bool {
        let Some(p) = p else { return true };
        match self {
            Audience::Everyone => true,
            Audience::Collections(cs) => p.reads_all_of(cs),
            Audience::Principal(id) => p.id == *id || p.sees_everything(),
        }
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
    /// Who may read it (not sent to subscribers).
    #[serde(skip)]
    pub audience: Audience,
    /// Cluster mode: the node it was published on, when that is another node (it came
    /// through the cluster's relay); `None` for this node's own events.
    #[serde(skip)]
    pub origin: Option<String>,
}

/// An event as the cluster relays it to the other nodes (JSON over NATS): they publish it
/// on their own bus, with their own offset, remembering where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relayed {
    pub origin: String,
    pub topic: Topic,
    pub kind: String,
    pub subject: String,
    pub data: serde_json::Value,
    pub unix_ms: u64,
    pub audience: Audience,
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

/// The result of [`Bus::read_resuming`]: an optional lag notice and the events that
/// follow it, taken from one snapshot of the rings.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    /// `Some(first_available)` when events at or after the requested offset were
    /// evicted; `events` then start at `first_available` (the reader lost the events
    /// between the requested offset and it, and must be told so before `events`).
    pub lagged: Option<u64>,
    /// Events with offsets at or after the requested offset (or `first_available`
    /// when lagged), in offset order; never empty when `lagged` is set.
    pub events: Vec<Arc<Event>>,
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
    /// Cluster mode: this node's id and where its own events go to be relayed (bounded:
    /// when the relay falls behind, events are not relayed rather than queued without
    /// bound, and a warning says so).
    relay: Mutex<Option<(String, tokio::sync::mpsc::Sender<Vec<u8>>)>>,
}

impl Bus {
    /// A bus keeping the last `capacity` events of each topic (at least 1).
    pub fn new(capacity: usize) -> Bus {
        let rings = Topic::ALL.into_iter().map(|t| (t, Ring { events: VecDeque::new(), evicted_upto: 0 })).collect();
        Bus {
            inner: Mutex::new(Inner { next: 1, rings }),
            capacity: capacity.max(1),
            latest: tokio::sync::watch::Sender::new(0),
            relay: Mutex::new(None),
        }
    }

    /// Relay this node's own events (cluster mode): each is sent, as a [`Relayed`] in
    /// JSON, to `out`.
    pub fn set_relay(&self, node: &str, out: tokio::sync::mpsc::Sender<Vec<u8>>) {
        *self.relay.lock() = Some((node.to_string(), out));
    }

    /// Publish an event another node published (from the relay). It is not relayed
    /// again.
    pub fn publish_relayed(&self, r: Relayed) -> u64 {
        let Relayed { origin, topic, kind, subject, data, unix_ms, audience } = r;
        self.insert(topic, kind, subject, data, audience, unix_ms, Some(origin)).offset
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Publish an event everyone may read; returns its offset.
    pub fn publish(&self, topic: Topic, kind: &str, subject: &str, data: serde_json::Value) -> u64 {
        self.publish_to(topic, kind, subject, data, Audience::Everyone)
    }

    /// Publish an event that only `audience` may read; returns its offset.
    pub fn publish_to(
        &self,
        topic: Topic,
        kind: &str,
        subject: &str,
        data: serde_json::Value,
        audience: Audience,
    ) -> u64 {
        let e = self.insert(topic, kind.to_string(), subject.to_string(), data, audience, crate::now_ms(), None);
        if let Some((node, out)) = &*self.relay.lock() {
            let r = Relayed {
                origin: node.clone(),
                topic,
                kind: e.kind.clone(),
                subject: e.subject.clone(),
                data: e.data.clone(),
                unix_ms: e.unix_ms,
                audience: e.audience.clone(),
            };
            if let Ok(body) = serde_json::to_vec(&r) {
                if out.try_send(body).is_err() {
                    tracing::warn!(
                        topic = topic.as_str(),
                        kind,
                        "the cluster's event relay is behind: event not relayed"
                    );
                }
            }
        }
        e.offset
    }

    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        topic: Topic,
        kind: String,
        subject: String,
        data: serde_json::Value,
        audience: Audience,
        unix_ms: u64,
        origin: Option<String>,
    ) -> Arc<Event> {
        let event = {
            let mut g = self.inner.lock();
            let offset = g.next;
            g.next += 1;
            let ring = g.rings.get_mut(&topic).expect("a ring per topic");
            let event = Arc::new(Event { offset, topic, kind, subject, data, unix_ms, audience, origin });
            ring.events.push_back(event.clone());
            while ring.events.len() > self.capacity {
                if let Some(old) = ring.events.pop_front() {
                    ring.evicted_upto = old.offset + 1;
                }
            }
            event
        };
        self.latest.send_replace(event.offset);
        tracing::debug!(topic = topic.as_str(), kind = %event.kind, subject = %event.subject, offset = event.offset, origin = ?event.origin, "event published");
        event
    }

    /// The offset the next event will get.
    pub fn next_offset(&self) -> u64 {
        self.inner.lock().next
    }

    /// Up to `max` events of `topics` (empty = all) with offset >= `from`.
    pub fn read(&self, topics: &[Topic], from: u64, max: usize) -> Read {
        let from = from.max(1);
        let g = self.inner.lock();
        let first_available = first_available(&g, topics);
        if first_available > from {
            return Read::Lagged { from, first_available };
        }
        Read::Events(collect(&g, topics, from, max))
    }

    /// Like [`Bus::read`], but a reader that lagged also gets the events from the
    /// first available offset on, under the same lock as the lag was noticed. A
    /// streaming reader that reports the lag and then read again would race the
    /// publishers: by the time the notice is delivered (a slow client blocks the
    /// send) the ring may have moved past `first_available` too, and the next read
    /// would lag again, so the notice would never be followed by the events it
    /// names (and a slow enough client would get only notices). The events returned
    /// here are kept alive by their `Arc`s, so they can be delivered after the
    /// notice however long that takes.
    pub fn read_resuming(&self, topics: &[Topic], from: u64, max: usize) -> Resume {
        let from = from.max(1);
        let g = self.inner.lock();
        let first_available = first_available(&g, topics);
        let (lagged, start) =
            if first_available > from { (Some(first_available), first_available) } else { (None, from) };
        Resume { lagged, events: collect(&g, topics, start, max.max(1)) }
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

fn selected<'a>(g: &'a Inner, topics: &'a [Topic]) -> impl Iterator<Item = &'a Ring> + 'a {
    g.rings.iter().filter(move |(t, _)| topics.is_empty() || topics.contains(t)).map(|(_, r)| r)
}

/// The first offset of `topics` still retained: every event of those topics at or
/// after it is in its ring (each ring only ever evicts from its front).
fn first_available(g: &Inner, topics: &[Topic]) -> u64 {
    selected(g, topics).map(|r| r.evicted_upto).max().unwrap_or(0)
}

/// Up to `max` retained events of `topics` with offset >= `from`, in offset order.
fn collect(g: &Inner, topics: &[Topic], from: u64, max: usize) -> Vec<Arc<Event>> {
    let mut out: Vec<Arc<Event>> = Vec::new();
    for r in selected(g, topics) {
        let start = r.events.partition_point(|e| e.offset < from);
        out.extend(r.events.range(start..).take(max).cloned());
    }
    out.sort_by_key(|e| e.offset);
    out.truncate(max);
    out
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
    fn own_events_are_relayed_and_relayed_ones_are_not_sent_back() {
        let bus = Bus::new(10);
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        bus.set_relay("n1", tx);
        bus.publish_to(
            Topic::Ingestion,
            "ingest.finished",
            "docs",
            serde_json::json!({"ok": 1}),
            Audience::Collections(vec!["docs".into()]),
        );
        let r: Relayed = serde_json::from_slice(&rx.try_recv().expect("relayed")).unwrap();
        assert_eq!((r.origin.as_str(), r.topic, r.kind.as_str()), ("n1", Topic::Ingestion, "ingest.finished"));
        assert_eq!(r.audience, Audience::Collections(vec!["docs".into()]), "who may read it travels with it");
        let from_n2 = Relayed { origin: "n2".into(), subject: "other".into(), ..r };
        let off = bus.publish_relayed(from_n2);
        assert!(rx.try_recv().is_err(), "an event from another node is not relayed again");
        let Read::Events(evs) = bus.read(&[], off, 10) else { panic!() };
        assert_eq!((evs[0].subject.as_str(), evs[0].origin.as_deref()), ("other", Some("n2")));
        // A full relay drops (and warns) rather than blocking the publisher.
        for i in 0..10 {
            bus.publish(Topic::Alerts, "alert.firing", &format!("s{i}"), serde_json::json!({}));
        }
        assert_eq!(bus.next_offset(), off + 11);
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
    fn a_lag_notice_comes_with_the_events_it_names() {
        let bus = Bus::new(4);
        let publish = |n: usize| {
            for _ in 0..n {
                bus.publish(Topic::Workflow, "w", "", serde_json::json!({}));
            }
        };
        publish(10);
        // Noticing the lag and reading on from it in two steps races the publishers:
        // the notice names 7, but the ring moves on while it waits for a slow client,
        // so the read from 7 lags again and the notice is never followed by 7.
        assert_eq!(bus.read(&[Topic::Workflow], 1, 100), Read::Lagged { from: 1, first_available: 7 });
        publish(10);
        assert_eq!(bus.read(&[Topic::Workflow], 7, 100), Read::Lagged { from: 7, first_available: 17 });
        // One snapshot: the notice and the events from its first available offset.
        let r = bus.read_resuming(&[Topic::Workflow], 7, 100);
        assert_eq!(r.lagged, Some(17));
        let held: Vec<u64> = r.events.iter().map(|e| e.offset).collect();
        assert_eq!(held, vec![17, 18, 19, 20]);
        // Evicting them from the ring does not take them from the reader.
        publish(10);
        assert_eq!(r.events.iter().map(|e| e.offset).collect::<Vec<_>>(), held);
        // Having delivered 20, the reader is told again, with the next events.
        let r = bus.read_resuming(&[Topic::Workflow], 21, 2);
        assert_eq!((r.lagged, r.events.iter().map(|e| e.offset).collect::<Vec<_>>()), (Some(27), vec![27, 28]));
        let r = bus.read_resuming(&[Topic::Workflow], 29, 100);
        assert_eq!((r.lagged, r.events.iter().map(|e| e.offset).collect::<Vec<_>>()), (None, vec![29, 30]));
        let r = bus.read_resuming(&[Topic::Workflow], 31, 100);
        assert_eq!((r.lagged, r.events.len()), (None, 0));
        // An evicted-from offset exactly at the ring's start is not a lag.
        let r = bus.read_resuming(&[Topic::Workflow], 27, 1);
        assert_eq!((r.lagged, r.events[0].offset), (None, 27));
    }

    /// A streaming reader (as `Events/Subscribe` drives it) interleaved with
    /// publishers on several topics, in a fixed pseudo-random schedule: every event of
    /// its topics is delivered exactly once, in order, unless a lag notice covering it
    /// was delivered first; each notice is followed by the events from its first
    /// available offset.
    #[test]
    fn a_streaming_reader_is_told_about_every_event_it_misses() {
        #[derive(Debug, Clone, Copy, PartialEq)]
        enum Msg {
            Lag { from: u64, first_available: u64 },
            Event(u64),
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let all = [Topic::Workflow, Topic::Alerts, Topic::Ingestion];
        for wanted in [vec![Topic::Workflow], vec![Topic::Workflow, Topic::Alerts], vec![]] {
            let bus = Bus::new(8);
            let mut published: Vec<(u64, Topic)> = Vec::new();
            let mut log: Vec<Msg> = Vec::new();
            let mut cursor = 1;
            let mut pending: VecDeque<Msg> = VecDeque::new();
            for _ in 0..20_000 {
                if rand(3) == 0 {
                    for _ in 0..rand(20) {
                        let t = all[rand(all.len() as u64) as usize];
                        published.push((bus.publish(t, "k", "", serde_json::Value::Null), t));
                    }
                    continue;
                }
                if pending.is_empty() {
                    let r = bus.read_resuming(&wanted, cursor, 1 + rand(6) as usize);
                    if let Some(first_available) = r.lagged {
                        pending.push_back(Msg::Lag { from: cursor, first_available });
                        cursor = first_available;
                    }
                    pending.extend(r.events.iter().map(|e| Msg::Event(e.offset)));
                }
                // Deliver a few (a slow client), then let the publishers run again.
                for _ in 0..rand(4) {
                    let Some(m) = pending.pop_front() else { break };
                    if let Msg::Event(o) = m {
                        cursor = o + 1;
                    }
                    log.push(m);
                }
            }
            let ours: Vec<u64> =
                published.iter().filter(|(_, t)| wanted.is_empty() || wanted.contains(t)).map(|(o, _)| *o).collect();
            let lags = log.iter().filter(|m| matches!(m, Msg::Lag { .. })).count();
            assert!(lags > 10 && log.len() > lags + 1000, "{wanted:?}: {lags} lags in {} messages", log.len());
            // Walk the log against what was published: every event in order, or a
            // notice naming where it resumes, followed by exactly that event.
            let mut next = ours.iter().peekable();
            let mut expected_from = 1;
            for (i, m) in log.iter().enumerate() {
                match *m {
                    Msg::Lag { from, first_available } => {
                        assert_eq!(from, expected_from, "{wanted:?}: message {i}");
                        assert!(first_available > from, "{wanted:?}: message {i}");
                        while next.next_if(|o| **o < first_available).is_some() {}
                        let Some(Msg::Event(o)) = log.get(i + 1) else {
                            panic!("{wanted:?}: message {i}: a notice is followed by an event")
                        };
                        assert_eq!(Some(o), next.peek().copied(), "{wanted:?}: message {i}");
                    }
                    Msg::Event(o) => {
                        assert_eq!(Some(&o), next.next(), "{wanted:?}: message {i}: no silent gap, no duplicate");
                        expected_from = o + 1;
                    }
                }
            }
        }
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
