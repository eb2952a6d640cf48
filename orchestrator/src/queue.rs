//! Durable named message queues with at-least-once delivery.
//!
//! Every queue and message is a record of the internal collection `_queues`, so each
//! state change (send, receive, ack, a move to the dead-letter queue) is one engine
//! WAL record, fsynced before the call returns: after a crash (even `kill -9`)
//! nothing acknowledged as sent is lost, and a received but unacknowledged message is
//! delivered again once its visibility timeout has passed (timeouts are wall-clock
//! times, so they keep running across a restart).
//!
//! Records: `q:<name>` holds a queue's settings; `m<seq>` holds a message (its queue,
//! body, attributes, delivery attempts and the time it becomes visible again). A
//! message that has been delivered `max_attempts` times without an ack moves to the
//! queue `<name>.dlq` (one upsert that changes its queue: atomic) the next time it
//! would be delivered.

use crate::{Error, Result};
use agentdb_engine::Database;
use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

pub const COLLECTION: &str = "_queues";
pub const DLQ_SUFFIX: &str = ".dlq";
/// Largest message body (bytes); stored base64 in a payload of at most 1 MiB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Most messages returned by one receive.
pub const MAX_RECEIVE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// Deliveries before a message moves to `<name>.dlq` (0 = never).
    pub max_attempts: u32,
    /// How long a received message stays invisible unless acked (ms).
    pub visibility_timeout_ms: u64,
    /// Most messages the queue holds (sends beyond it fail).
    pub max_messages: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig { max_attempts: 5, visibility_timeout_ms: 30_000, max_messages: 100_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredQueue {
    kind: String,
    name: String,
    config: QueueConfig,
    created_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StoredMessage {
    kind: String,
    queue: String,
    seq: u64,
    body_b64: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    sent_unix_ms: u64,
    attempts: u32,
    invisible_until_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Message {
    body: Vec<u8>,
    attributes: BTreeMap<String, String>,
    sent_unix_ms: u64,
    attempts: u32,
    invisible_until_ms: u64,
}

struct Queue {
    config: QueueConfig,
    created_unix_ms: u64,
    messages: BTreeMap<u64, Message>,
}

/// A delivered message. Ack it with its `receipt` before `invisible_until_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: String,
    pub body: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    /// 1 on the first delivery.
    pub attempt: u32,
    pub receipt: String,
    pub sent_unix_ms: u64,
    pub invisible_until_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    pub name: String,
    pub config: QueueConfig,
    pub messages: u64,
    /// Visible now (would be delivered by a receive).
    pub ready: u64,
    /// Received, not yet acked, visibility timeout still running.
    pub in_flight: u64,
    /// `<name>.dlq`, or "" for a dead-letter queue itself and queues without one.
    pub dead_letter_queue: String,
    pub oldest_sent_unix_ms: u64,
    pub created_unix_ms: u64,
}

struct State {
    queues: BTreeMap<String, Queue>,
    next_seq: u64,
}

pub struct Queues {
    col: crate::Internal,
    state: Mutex<State>,
    defaults: QueueConfig,
}

fn msg_id(seq: u64) -> String {
    format!("m{seq:020}")
}

fn parse_receipt(receipt: &str) -> Option<(u64, u32)> {
    let (id, attempt) = receipt.split_once(':')?;
    Some((id.strip_prefix('m')?.parse().ok()?, attempt.parse().ok()?))
}

/// Queue names: letters, digits, `_`, `-` (and the reserved `.dlq` suffix), 1-100 characters.
pub fn validate_queue_name(name: &str) -> Result<()> {
    let base = name.strip_suffix(DLQ_SUFFIX).unwrap_or(name);
    let ok = !base.is_empty()
        && name.len() <= 100
        && !base.starts_with('-')
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid queue name '{name}': use 1 to 96 letters, digits, '_' and '-' (not leading '-')"
        )))
    }
}

impl Queues {
    /// Load every queue and message from the `_queues` collection (creating it on first use).
    pub fn open(db: Arc<Database>, defaults: QueueConfig) -> Result<Queues> {
        let col = crate::Internal::open(db, COLLECTION);
        let mut queues = BTreeMap::new();
        let mut messages = Vec::new();
        let mut next_seq = 1;
        for (id, payload) in col.scan()? {
            match payload.get("kind").and_then(|k| k.as_str()) {
                Some("queue") => {
                    let q: StoredQueue = serde_json::from_value(payload)
                        .map_err(|e| Error::Invalid(format!("queue record '{id}' is unreadable: {e}")))?;
                    queues.insert(
                        q.name,
                        Queue { config: q.config, created_unix_ms: q.created_unix_ms, messages: BTreeMap::new() },
                    );
                }
                Some("message") => {
                    let m: StoredMessage = serde_json::from_value(payload)
                        .map_err(|e| Error::Invalid(format!("message record '{id}' is unreadable: {e}")))?;
                    next_seq = next_seq.max(m.seq + 1);
                    messages.push(m);
                }
                _ => tracing::warn!(id, "ignoring an unknown record in {COLLECTION}"),
            }
        }
        let n = messages.len();
        for m in messages {
            let body = base64::engine::general_purpose::STANDARD
                .decode(&m.body_b64)
                .map_err(|e| Error::Invalid(format!("message {} has an unreadable body: {e}", m.seq)))?;
            let q = queues.entry(m.queue.clone()).or_insert_with(|| Queue {
                config: QueueConfig { max_attempts: 0, ..defaults },
                created_unix_ms: m.sent_unix_ms,
                messages: BTreeMap::new(),
            });
            q.messages.insert(
                m.seq,
                Message {
                    body,
                    attributes: m.attributes,
                    sent_unix_ms: m.sent_unix_ms,
                    attempts: m.attempts,
                    invisible_until_ms: m.invisible_until_ms,
                },
            );
        }
        tracing::info!(queues = queues.len(), messages = n, "message queues loaded");
        Ok(Queues { col, state: Mutex::new(State { queues, next_seq }), defaults })
    }

    pub fn defaults(&self) -> QueueConfig {
        self.defaults
    }

    fn queue_record(name: &str, q: &Queue) -> agentdb_engine::Item {
        let stored = StoredQueue {
            kind: "queue".into(),
            name: name.to_string(),
            config: q.config,
            created_unix_ms: q.created_unix_ms,
        };
        crate::record(format!("q:{name}"), serde_json::to_value(stored).expect("serialisable"))
    }

    fn message_record(queue: &str, seq: u64, m: &Message) -> agentdb_engine::Item {
        let stored = StoredMessage {
            kind: "message".into(),
            queue: queue.to_string(),
            seq,
            body_b64: base64::engine::general_purpose::STANDARD.encode(&m.body),
            attributes: m.attributes.clone(),
            sent_unix_ms: m.sent_unix_ms,
            attempts: m.attempts,
            invisible_until_ms: m.invisible_until_ms,
        };
        crate::record(msg_id(seq), serde_json::to_value(stored).expect("serialisable"))
    }

    /// Create a queue (and its `<name>.dlq` when `max_attempts` > 0). Returns whether it
    /// was created; creating an existing queue with the same settings is a no-op.
    pub fn create(&self, name: &str, config: QueueConfig) -> Result<bool> {
        validate_queue_name(name)?;
        if name.ends_with(DLQ_SUFFIX) {
            return Err(Error::Invalid(format!(
                "'{name}': names ending in {DLQ_SUFFIX} are dead-letter queues, created with their queue"
            )));
        }
        if config.visibility_timeout_ms == 0 || config.max_messages == 0 {
            return Err(Error::Invalid("visibility_timeout_ms and max_messages must be at least 1".into()));
        }
        let mut st = self.state.lock();
        if let Some(q) = st.queues.get(name) {
            if q.config == config {
                return Ok(false);
            }
            return Err(Error::AlreadyExists(format!(
                "queue '{name}' exists with other settings (max_attempts {}, visibility_timeout_ms {}, max_messages {})",
                q.config.max_attempts, q.config.visibility_timeout_ms, q.config.max_messages
            )));
        }
        let now = crate::now_ms();
        let q = Queue { config, created_unix_ms: now, messages: BTreeMap::new() };
        let mut records = vec![Self::queue_record(name, &q)];
        let dlq_name = format!("{name}{DLQ_SUFFIX}");
        let dlq = (config.max_attempts > 0 && !st.queues.contains_key(&dlq_name)).then(|| Queue {
            config: QueueConfig { max_attempts: 0, ..config },
            created_unix_ms: now,
            messages: BTreeMap::new(),
        });
        if let Some(d) = &dlq {
            records.push(Self::queue_record(&dlq_name, d));
        }
        // One upsert: the queue and its DLQ appear together or not at all.
        self.col.upsert(records)?;
        st.queues.insert(name.to_string(), q);
        if let Some(d) = dlq {
            st.queues.insert(dlq_name, d);
        }
        Ok(true)
    }

    fn queue_mut<'a>(st: &'a mut State, name: &str) -> Result<&'a mut Queue> {
        st.queues.get_mut(name).ok_or_else(|| Error::NotFound(format!("queue '{name}' not found")))
    }

    /// Append a message; returns its id once it is durable.
    pub fn send(&self, queue: &str, body: Vec<u8>, attributes: BTreeMap<String, String>) -> Result<String> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Error::LimitExceeded(format!(
                "message body is {} bytes, the limit is {MAX_BODY_BYTES}",
                body.len()
            )));
        }
        let mut st = self.state.lock();
        let seq = st.next_seq;
        let q = Self::queue_mut(&mut st, queue)?;
        if q.messages.len() as u64 >= q.config.max_messages {
            return Err(Error::LimitExceeded(format!(
                "queue '{queue}' is full ({} messages, max_messages)",
                q.config.max_messages
            )));
        }
        let m = Message { body, attributes, sent_unix_ms: crate::now_ms(), attempts: 0, invisible_until_ms: 0 };
        self.col.upsert(vec![Self::message_record(queue, seq, &m)])?;
        q.messages.insert(seq, m);
        st.next_seq += 1;
        Ok(msg_id(seq))
    }

    /// Deliver up to `max` visible messages, oldest first, hiding each for
    /// `visibility_timeout_ms` (0 = the queue's setting). Messages that were already
    /// delivered `max_attempts` times move to the dead-letter queue instead.
    pub fn receive(&self, queue: &str, max: usize, visibility_timeout_ms: u64, now: u64) -> Result<Vec<Delivery>> {
        let max = max.clamp(1, MAX_RECEIVE);
        let mut st = self.state.lock();
        let q = Self::queue_mut(&mut st, queue)?;
        let vis = if visibility_timeout_ms == 0 { q.config.visibility_timeout_ms } else { visibility_timeout_ms };
        let max_attempts = q.config.max_attempts;
        let dlq_config = QueueConfig { max_attempts: 0, ..q.config };
        let mut deliver = Vec::new();
        let mut dead = Vec::new();
        for (&seq, m) in q.messages.iter() {
            if deliver.len() >= max {
                break;
            }
            if m.invisible_until_ms > now {
                continue;
            }
            if max_attempts > 0 && m.attempts >= max_attempts {
                dead.push(seq);
            } else {
                deliver.push(seq);
            }
        }
        if deliver.is_empty() && dead.is_empty() {
            return Ok(Vec::new());
        }
        let dlq_name = format!("{queue}{DLQ_SUFFIX}");
        let mut records = Vec::new();
        let mut updated = Vec::new();
        for &seq in &deliver {
            let mut m = q.messages[&seq].clone();
            m.attempts += 1;
            m.invisible_until_ms = now + vis;
            records.push(Self::message_record(queue, seq, &m));
            updated.push((seq, m));
        }
        let mut moved = Vec::new();
        for &seq in &dead {
            let mut m = q.messages[&seq].clone();
            m.invisible_until_ms = 0;
            records.push(Self::message_record(&dlq_name, seq, &m));
            moved.push((seq, m));
        }
        // One WAL record for the whole batch, then the in-memory state.
        self.col.upsert(records)?;
        let mut out = Vec::with_capacity(updated.len());
        for (seq, m) in updated {
            out.push(Delivery {
                id: msg_id(seq),
                body: m.body.clone(),
                attributes: m.attributes.clone(),
                attempt: m.attempts,
                receipt: format!("{}:{}", msg_id(seq), m.attempts),
                sent_unix_ms: m.sent_unix_ms,
                invisible_until_ms: m.invisible_until_ms,
            });
            q.messages.insert(seq, m);
        }
        for (seq, _) in &moved {
            q.messages.remove(seq);
        }
        if !moved.is_empty() {
            tracing::info!(queue, dlq = %dlq_name, messages = moved.len(), "messages moved to the dead-letter queue");
            let dlq = st.queues.entry(dlq_name).or_insert_with(|| Queue {
                config: dlq_config,
                created_unix_ms: now,
                messages: BTreeMap::new(),
            });
            dlq.messages.extend(moved);
        }
        Ok(out)
    }

    /// Acknowledge a delivery: the message is deleted. A receipt from an earlier
    /// delivery of a message that was delivered again is refused (FAILED_PRECONDITION).
    pub fn ack(&self, queue: &str, receipt: &str) -> Result<()> {
        let (seq, attempt) =
            parse_receipt(receipt).ok_or_else(|| Error::Invalid(format!("malformed receipt '{receipt}'")))?;
        let mut st = self.state.lock();
        let q = Self::queue_mut(&mut st, queue)?;
        let m = q.messages.get(&seq).ok_or_else(|| {
            Error::NotFound(format!("message {} is not in queue '{queue}' (already acknowledged?)", msg_id(seq)))
        })?;
        if m.attempts != attempt || attempt == 0 {
            return Err(Error::FailedPrecondition(format!(
                "receipt '{receipt}' is stale: message {} is on delivery {} now",
                msg_id(seq),
                m.attempts
            )));
        }
        self.col.delete(&[msg_id(seq)])?;
        q.messages.remove(&seq);
        Ok(())
    }

    pub fn stats(&self, name: &str, now: u64) -> Result<QueueStats> {
        let st = self.state.lock();
        let q = st.queues.get(name).ok_or_else(|| Error::NotFound(format!("queue '{name}' not found")))?;
        Ok(Self::stats_of(name, q, now, &st))
    }

    pub fn list(&self, now: u64) -> Vec<QueueStats> {
        let st = self.state.lock();
        st.queues.iter().map(|(n, q)| Self::stats_of(n, q, now, &st)).collect()
    }

    fn stats_of(name: &str, q: &Queue, now: u64, st: &State) -> QueueStats {
        let in_flight = q.messages.values().filter(|m| m.invisible_until_ms > now).count() as u64;
        let dlq = format!("{name}{DLQ_SUFFIX}");
        QueueStats {
            name: name.to_string(),
            config: q.config,
            messages: q.messages.len() as u64,
            ready: q.messages.len() as u64 - in_flight,
            in_flight,
            dead_letter_queue: if st.queues.contains_key(&dlq) { dlq } else { String::new() },
            oldest_sent_unix_ms: q.messages.values().map(|m| m.sent_unix_ms).min().unwrap_or(0),
            created_unix_ms: q.created_unix_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &std::path::Path) -> (Arc<Database>, Queues) {
        let db = Database::open(dir, Default::default()).unwrap();
        let q = Queues::open(db.clone(), QueueConfig::default()).unwrap();
        (db, q)
    }

    fn cfg(max_attempts: u32, vis: u64) -> QueueConfig {
        QueueConfig { max_attempts, visibility_timeout_ms: vis, max_messages: 100 }
    }

    #[test]
    fn send_receive_ack_and_redelivery_after_the_visibility_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, q) = open(dir.path());
        assert!(q.create("jobs", cfg(0, 1000)).unwrap());
        assert!(!q.create("jobs", cfg(0, 1000)).unwrap(), "same settings: idempotent");
        assert!(matches!(q.create("jobs", cfg(3, 1000)), Err(Error::AlreadyExists(_))));
        let a = q.send("jobs", b"a".to_vec(), Default::default()).unwrap();
        let b = q.send("jobs", b"b".to_vec(), Default::default()).unwrap();
        let t = 1_000_000;
        let got = q.receive("jobs", 1, 0, t).unwrap();
        assert_eq!((got[0].id.as_str(), got[0].body.as_slice(), got[0].attempt), (a.as_str(), &b"a"[..], 1));
        // a is invisible: the next receive gets b.
        let got2 = q.receive("jobs", 10, 0, t + 1).unwrap();
        assert_eq!(got2.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), vec![b.clone()]);
        assert!(q.receive("jobs", 10, 0, t + 2).unwrap().is_empty());
        let s = q.stats("jobs", t + 2).unwrap();
        assert_eq!((s.messages, s.ready, s.in_flight), (2, 0, 2));
        q.ack("jobs", &got2[0].receipt).unwrap();
        assert!(matches!(q.ack("jobs", &got2[0].receipt), Err(Error::NotFound(_))));
        // After the timeout a is delivered again; the old receipt is stale.
        let again = q.receive("jobs", 10, 0, t + 1000).unwrap();
        assert_eq!((again[0].id.as_str(), again[0].attempt), (a.as_str(), 2));
        assert!(matches!(q.ack("jobs", &got[0].receipt), Err(Error::FailedPrecondition(_))));
        q.ack("jobs", &again[0].receipt).unwrap();
        assert_eq!(q.stats("jobs", t + 1000).unwrap().messages, 0);
    }

    #[test]
    fn dead_letter_after_max_attempts() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, q) = open(dir.path());
        q.create("work", cfg(2, 10)).unwrap();
        assert!(q.stats("work.dlq", 0).is_ok(), "the DLQ is created with its queue");
        assert_eq!(q.stats("work", 0).unwrap().dead_letter_queue, "work.dlq");
        q.send("work", b"poison".to_vec(), Default::default()).unwrap();
        let mut t = 100;
        for attempt in 1..=2 {
            let d = q.receive("work", 1, 0, t).unwrap();
            assert_eq!(d[0].attempt, attempt);
            t += 10;
        }
        assert!(q.receive("work", 1, 0, t).unwrap().is_empty(), "moved to the DLQ instead of a third delivery");
        assert_eq!(q.stats("work", t).unwrap().messages, 0);
        let dead = q.receive("work.dlq", 1, 0, t).unwrap();
        assert_eq!(dead[0].body, b"poison");
        assert!(matches!(q.create("x.dlq", cfg(0, 10)), Err(Error::Invalid(_))));
        assert!(matches!(q.send("nope", vec![], Default::default()), Err(Error::NotFound(_))));
    }

    #[test]
    fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, receipt);
        {
            let (db, q) = open(dir.path());
            q.create("jobs", cfg(3, 60_000)).unwrap();
            a = q.send("jobs", b"a".to_vec(), [("k".to_string(), "v".to_string())].into()).unwrap();
            b = q.send("jobs", b"b".to_vec(), Default::default()).unwrap();
            q.send("jobs", b"c".to_vec(), Default::default()).unwrap();
            let d = q.receive("jobs", 2, 0, 1000).unwrap();
            receipt = d[1].receipt.clone();
            q.ack("jobs", &d[0].receipt).unwrap();
            drop(q);
            drop(db); // no close(): like a crash, only the WAL has it
        }
        let (_db, q) = open(dir.path());
        let s = q.stats("jobs", 2000).unwrap();
        assert_eq!((s.messages, s.in_flight, s.config.max_attempts), (2, 1, 3));
        assert!(q.stats("jobs.dlq", 0).is_ok());
        // b is still in flight until 61_000; c is ready.
        let d = q.receive("jobs", 10, 0, 2000).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].body, b"c");
        let d = q.receive("jobs", 10, 0, 61_000).unwrap();
        assert_eq!((d[0].id.as_str(), d[0].attempt), (b.as_str(), 2));
        assert!(matches!(q.ack("jobs", &receipt), Err(Error::FailedPrecondition(_))));
        assert_ne!(a, b);
        // New sends continue the sequence.
        let n = q.send("jobs", b"d".to_vec(), Default::default()).unwrap();
        assert!(n > b);
    }

    #[test]
    fn names_and_limits() {
        assert!(validate_queue_name("a_b-1").is_ok());
        assert!(validate_queue_name("a_b-1.dlq").is_ok());
        for bad in ["", "-a", "a b", "a.b", ".dlq", "a/b"] {
            assert!(validate_queue_name(bad).is_err(), "{bad}");
        }
        let dir = tempfile::tempdir().unwrap();
        let (db, q) = open(dir.path());
        assert!(db.collection(COLLECTION).is_err(), "created on first write only");
        q.create("small", QueueConfig { max_attempts: 0, visibility_timeout_ms: 10, max_messages: 1 }).unwrap();
        q.send("small", vec![1], Default::default()).unwrap();
        assert!(matches!(q.send("small", vec![2], Default::default()), Err(Error::LimitExceeded(_))));
        assert!(matches!(
            q.send("small", vec![0; MAX_BODY_BYTES + 1], Default::default()),
            Err(Error::LimitExceeded(_))
        ));
    }
}
