//! Cluster-wide durable queues on JetStream: any node sends to, receives from and acks a
//! queue, and a message received through a node that dies is delivered again (through
//! any node) once its visibility timeout has passed — the consumer's state lives in
//! JetStream (replicated like the shard streams), not on the node.
//!
//! A queue `Q` is the work-queue stream `AGENTDB-Q-Q` (subject `agentdb.q.Q`; an acked
//! message is removed, so `max_messages` bounds what is waiting or in flight, and a send
//! beyond it is refused) with one durable pull consumer `receivers` whose `ack_wait` is
//! the queue's visibility timeout. Its dead-letter queue `Q.dlq` is the stream
//! `AGENTDB-DLQ-Q`. The settings are the shared record `queue.Q`.
//!
//! - receive: a fetch from the consumer (no wait; the caller long-polls). A message
//!   already delivered `max_attempts` times is published to the DLQ and acked instead of
//!   being returned. A visibility timeout other than the queue's is a NAK with that delay
//!   (JetStream keeps the message pending and delivers it again after the delay).
//! - the receipt is the delivery's JetStream ack subject (base64url): an ack through any
//!   node is a request to it (`+ACK`, answered once JetStream took it). A receipt is
//!   checked to belong to the queue it is presented for, to name a message still in the
//!   queue (NOT_FOUND otherwise) and to be the latest delivery: JetStream would take an
//!   earlier delivery's ack as the message's, so each receive records the delivery it
//!   handed out in the KV bucket `agentdb-queue-deliveries` and an older receipt is
//!   refused (FAILED_PRECONDITION), as on a single node.

use super::*;
use base64::Engine as _;

/// The durable consumer every node receives through.
const RECEIVERS: &str = "receivers";
const ATTRS_HEADER: &str = "Agentdb-Attributes";
const ATTEMPTS_HEADER: &str = "Agentdb-Attempts";
/// Largest message body, as on a single node.
pub const MAX_QUEUE_BODY: usize = 256 * 1024;
const DLQ: &str = ".dlq";

/// A queue's settings (as `agentdb_orchestrator::queue::QueueConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueSettings {
    pub max_attempts: u32,
    pub visibility_timeout_ms: u64,
    pub max_messages: u64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct QueueRecord {
    settings: QueueSettings,
    created_unix_ms: u64,
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueDelivery {
    pub id: String,
    pub body: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
    pub attempt: u32,
    pub receipt: String,
    pub sent_unix_ms: u64,
    pub invisible_until_ms: u64,
}

/// A queue's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    pub name: String,
    pub settings: QueueSettings,
    pub messages: u64,
    pub ready: u64,
    pub in_flight: u64,
    pub dead_letter_queue: String,
    pub oldest_sent_unix_ms: u64,
    pub created_unix_ms: u64,
}

fn queue_stream(name: &str) -> String {
    match name.strip_suffix(DLQ) {
        Some(base) => format!("AGENTDB-DLQ-{base}"),
        None => format!("AGENTDB-Q-{name}"),
    }
}

fn queue_subject(name: &str) -> String {
    match name.strip_suffix(DLQ) {
        Some(base) => format!("agentdb.dlq.{base}"),
        None => format!("agentdb.q.{name}"),
    }
}

/// The deliveries bucket's key of message `seq` of queue `name` (`.` is a KV separator).
fn delivery_key(name: &str, seq: u64) -> String {
    format!("{}.{seq}", name.replace('.', "_"))
}

fn msg_id(seq: u64) -> String {
    format!("m{seq:020}")
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{what}: {e}"))
}

impl Cluster {
    fn queue_record_key(name: &str) -> String {
        format!("queue.{name}")
    }

    async fn queue_record(&self, name: &str) -> Result<QueueRecord> {
        let body = self
            .shared_get(&Self::queue_record_key(name))
            .await?
            .ok_or_else(|| Error::NotFound(format!("queue '{name}' not found")))?;
        serde_json::from_slice(&body).map_err(|e| Error::Nats(format!("queue '{name}': unreadable record: {e}")))
    }

    async fn queue_consumer(&self, name: &str) -> Result<jetstream::consumer::Consumer<pull::Config>> {
        if let Some(c) = self.queue_consumers.lock().get(name) {
            return Ok(c.clone());
        }
        let bound = self.cfg.rpc_timeout;
        let stream = tokio::time::timeout(bound, self.js.get_stream(queue_stream(name)))
            .await
            .map_err(|_| unavailable("queue stream", "no answer from NATS"))?
            .map_err(|e| match e.kind() {
                jetstream::context::GetStreamErrorKind::JetStream(j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    Error::NotFound(format!("queue '{name}' not found"))
                }
                _ => unavailable("queue stream", e),
            })?;
        let c = tokio::time::timeout(bound, stream.get_consumer::<pull::Config>(RECEIVERS))
            .await
            .map_err(|_| unavailable("queue consumer", "no answer from NATS"))?
            .map_err(|e| unavailable("queue consumer", e))?;
        self.queue_consumers.lock().insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// Create queue `name` (and `name.dlq` when `max_attempts` > 0) for the whole
    /// cluster. Returns whether it was created; the same settings again are a no-op,
    /// other settings ALREADY_EXISTS. (The caller validated the name and settings.)
    pub async fn create_queue(&self, name: &str, settings: QueueSettings) -> Result<bool> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err(Error::Refused(
                "this node is cut off from NATS: queues are unavailable until it reconnects".into(),
            ));
        }
        if let Ok(r) = self.queue_record(name).await {
            if r.settings == settings {
                return Ok(false);
            }
            let s = r.settings;
            return Err(Error::AlreadyExists(format!(
                "queue '{name}' exists with other settings (max_attempts {}, visibility_timeout_ms {}, max_messages {})",
                s.max_attempts, s.visibility_timeout_ms, s.max_messages
            )));
        }
        let replicas = stream_replicas(&self.js).await as usize;
        let mut names = vec![(name.to_string(), settings)];
        if settings.max_attempts > 0 {
            names.push((format!("{name}{DLQ}"), QueueSettings { max_attempts: 0, ..settings }));
        }
        // Streams and consumers first, the record last: a queue is listed once it works.
        for (n, s) in &names {
            let stream = self
                .js
                .get_or_create_stream(stream::Config {
                    name: queue_stream(n),
                    subjects: vec![queue_subject(n)],
                    retention: stream::RetentionPolicy::WorkQueue,
                    max_messages: s.max_messages.min(i64::MAX as u64) as i64,
                    discard: stream::DiscardPolicy::New,
                    max_message_size: (MAX_QUEUE_BODY + 64 * 1024) as i32,
                    num_replicas: replicas,
                    ..Default::default()
                })
                .await
                .map_err(|e| unavailable(&format!("creating queue '{n}'"), e))?;
            stream
                .get_or_create_consumer(
                    RECEIVERS,
                    pull::Config {
                        durable_name: Some(RECEIVERS.into()),
                        ack_policy: jetstream::consumer::AckPolicy::Explicit,
                        ack_wait: Duration::from_millis(s.visibility_timeout_ms),
                        max_ack_pending: 100_000,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| unavailable(&format!("creating queue '{n}'"), e))?;
        }
        let now = now_ms();
        for (n, s) in names.iter().rev() {
            let rec = QueueRecord { settings: *s, created_unix_ms: now };
            let body = serde_json::to_vec(&rec).map_err(nats)?;
            // Created concurrently through another node: the record there wins (same
            // streams); a DLQ record that exists is kept. Any other failure is the
            // caller's error: without its record the queue would not be listed.
            self.shared_cas(&Self::queue_record_key(n), body, None).await?;
        }
        tracing::info!(queue = %name, ?settings, "cluster: queue created");
        Ok(true)
    }

    /// Append a message; its id once JetStream stored it.
    pub async fn queue_send(&self, name: &str, body: Vec<u8>, attributes: BTreeMap<String, String>) -> Result<String> {
        if body.len() > MAX_QUEUE_BODY {
            return Err(Error::Invalid(format!("message body is {} bytes, the limit is {MAX_QUEUE_BODY}", body.len())));
        }
        if !self.connected.load(Ordering::SeqCst) {
            return Err(Error::Refused("this node is cut off from NATS: sends are refused until it reconnects".into()));
        }
        let rec = self.queue_record(name).await?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(ATTRS_HEADER, serde_json::to_string(&attributes).map_err(nats)?.as_str());
        let ack = self
            .js
            .publish_with_headers(queue_subject(name), headers, body.into())
            .await
            .map_err(|e| unavailable("send", e))?;
        let ack = tokio::time::timeout(self.cfg.rpc_timeout, ack)
            .await
            .map_err(|_| unavailable("send", "JetStream did not acknowledge in time"))?
            .map_err(|e| {
                let m = e.to_string();
                if m.contains("maximum messages") {
                    Error::Full(format!(
                        "queue '{name}' is full ({} messages, max_messages)",
                        rec.settings.max_messages
                    ))
                } else {
                    unavailable("send", m)
                }
            })?;
        Ok(msg_id(ack.sequence))
    }

    /// Up to `max` ready messages (no waiting: the caller polls), each invisible for
    /// `visibility_timeout_ms` (0: the queue's). Messages past `max_attempts` go to the
    /// DLQ instead.
    pub async fn queue_receive(
        &self,
        name: &str,
        max: usize,
        visibility_timeout_ms: u64,
    ) -> Result<Vec<QueueDelivery>> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err(Error::Refused(
                "this node is cut off from NATS: receives are refused until it reconnects".into(),
            ));
        }
        let rec = self.queue_record(name).await?;
        let consumer = self.queue_consumer(name).await?;
        let bound = self.cfg.rpc_timeout;
        let fetch = async {
            let mut batch = consumer
                .fetch()
                .max_messages(max.clamp(1, 100))
                .messages()
                .await
                .map_err(|e| unavailable("receive", e))?;
            let mut msgs = Vec::new();
            while let Some(m) = batch.next().await {
                msgs.push(m.map_err(|e| unavailable("receive", e))?);
            }
            Ok::<_, Error>(msgs)
        };
        let msgs =
            tokio::time::timeout(bound, fetch).await.map_err(|_| unavailable("receive", "no answer from NATS"))??;
        let vis = if visibility_timeout_ms == 0 { rec.settings.visibility_timeout_ms } else { visibility_timeout_ms };
        let mut out = Vec::new();
        for m in msgs {
            let info = m.info().map_err(|e| unavailable("receive", e))?;
            let (seq, attempt) = (info.stream_sequence, info.delivered.max(1) as u32);
            let sent = (info.published.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
            let reply = m.reply.as_ref().map(|s| s.to_string()).unwrap_or_default();
            let headers = m.headers.clone().unwrap_or_default();
            let attributes: BTreeMap<String, String> =
                headers.get(ATTRS_HEADER).and_then(|v| serde_json::from_str(v.as_str()).ok()).unwrap_or_default();
            let max_attempts = rec.settings.max_attempts;
            if max_attempts > 0 && attempt > max_attempts {
                // Delivered max_attempts times without an ack: to the DLQ (published
                // first, then acked here: at worst it is in both, never in neither).
                let mut h = async_nats::HeaderMap::new();
                h.insert(ATTRS_HEADER, serde_json::to_string(&attributes).map_err(nats)?.as_str());
                h.insert(ATTEMPTS_HEADER, (attempt - 1).to_string().as_str());
                let dlq = format!("{name}{DLQ}");
                let ack = self
                    .js
                    .publish_with_headers(queue_subject(&dlq), h, m.payload.clone())
                    .await
                    .map_err(|e| unavailable("dead-lettering", e))?;
                tokio::time::timeout(bound, ack)
                    .await
                    .map_err(|_| unavailable("dead-lettering", "no answer"))?
                    .map_err(|e| unavailable("dead-lettering", e))?;
                m.double_ack().await.map_err(|e| unavailable("dead-lettering", e))?;
                let _ = tokio::time::timeout(bound, self.deliveries_kv.purge(delivery_key(name, seq))).await;
                tracing::info!(queue = %name, dlq = %dlq, id = %msg_id(seq), "cluster: message moved to the dead-letter queue");
                continue;
            }
            if vis != rec.settings.visibility_timeout_ms {
                m.ack_with(jetstream::AckKind::Nak(Some(Duration::from_millis(vis))))
                    .await
                    .map_err(|e| unavailable("receive", e))?;
            }
            // The delivery handed out, for the ack's staleness check (best effort: a
            // missing record only skips that check).
            let _ = tokio::time::timeout(
                bound,
                self.deliveries_kv.put(delivery_key(name, seq), attempt.to_string().into_bytes().into()),
            )
            .await;
            out.push(QueueDelivery {
                id: msg_id(seq),
                body: m.payload.to_vec(),
                attributes,
                attempt,
                receipt: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(reply.as_bytes()),
                sent_unix_ms: sent,
                invisible_until_ms: now_ms() + vis,
            });
        }
        Ok(out)
    }

    /// Acknowledge a delivery through any node: the message is removed.
    pub async fn queue_ack(&self, name: &str, receipt: &str) -> Result<()> {
        let bad = || Error::Invalid(format!("malformed receipt '{receipt}' for queue '{name}'"));
        let subject = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(receipt)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        // $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.… (or with a domain and
        // an account hash before the stream).
        let tokens: Vec<&str> = subject.split('.').collect();
        let stream_name = queue_stream(name);
        let at = tokens.windows(2).position(|w| w[0] == stream_name && w[1] == RECEIVERS);
        let num = |k: usize| at.and_then(|i| tokens.get(i + k)).and_then(|t| t.parse::<u64>().ok());
        let (true, Some(delivered), Some(seq), false) =
            (subject.starts_with("$JS.ACK."), num(2), num(3), subject.contains(['*', '>', ' ']))
        else {
            return Err(bad());
        };
        if !self.connected.load(Ordering::SeqCst) {
            return Err(Error::Refused("this node is cut off from NATS: acks are refused until it reconnects".into()));
        }
        self.queue_record(name).await?;
        let bound = self.cfg.rpc_timeout;
        let stream = tokio::time::timeout(bound, self.js.get_stream(&stream_name))
            .await
            .map_err(|_| unavailable("ack", "no answer from NATS"))?
            .map_err(|e| unavailable("ack", e))?;
        // Is the message still there? (An acked one is removed from the work queue.)
        let present = |stream: jetstream::stream::Stream| async move {
            match tokio::time::timeout(bound, stream.get_raw_message(seq)).await {
                Err(_) => Err(unavailable("ack", "no answer from NATS")),
                Ok(Ok(_)) => Ok(true),
                Ok(Err(e)) if matches!(e.kind(), jetstream::stream::LastRawMessageErrorKind::NoMessageFound) => {
                    Ok(false)
                }
                Ok(Err(e)) if e.to_string().contains("no message found") => Ok(false),
                Ok(Err(e)) => Err(unavailable("ack", e)),
            }
        };
        if !present(stream.clone()).await? {
            return Err(Error::NotFound(format!(
                "message {} is not in queue '{name}' (already acknowledged?)",
                msg_id(seq)
            )));
        }
        // JetStream takes an ack of an earlier delivery as an ack of the message: the
        // delivery each receive handed out is recorded, and an older receipt is refused
        // (the message is with someone else now; it must not vanish under them).
        let key = delivery_key(name, seq);
        if let Ok(Ok(Some(current))) = tokio::time::timeout(bound, self.deliveries_kv.get(&key)).await {
            let current: u64 = std::str::from_utf8(&current).ok().and_then(|t| t.parse().ok()).unwrap_or(0);
            if current > delivered {
                return Err(Error::Conflict(format!(
                    "receipt is stale: message {} is on delivery {current} now (ack the latest delivery)",
                    msg_id(seq)
                )));
            }
        }
        tokio::time::timeout(bound, self.client.request(subject, Bytes::from_static(b"+ACK")))
            .await
            .map_err(|_| unavailable("ack", "no answer from NATS"))?
            .map_err(|e| unavailable("ack", e))?;
        let _ = tokio::time::timeout(bound, self.deliveries_kv.purge(&key)).await;
        Ok(())
    }

    /// A queue's figures (from JetStream: every node sees the same).
    pub async fn queue_stats(&self, name: &str) -> Result<QueueFigures> {
        let rec = self.queue_record(name).await?;
        let mut consumer = self.queue_consumer(name).await?;
        let bound = self.cfg.rpc_timeout;
        let ci = tokio::time::timeout(bound, consumer.info())
            .await
            .map_err(|_| unavailable("queue stats", "no answer from NATS"))?
            .map_err(|e| unavailable("queue stats", e))?
            .clone();
        let mut stream = tokio::time::timeout(bound, self.js.get_stream(queue_stream(name)))
            .await
            .map_err(|_| unavailable("queue stats", "no answer from NATS"))?
            .map_err(|e| unavailable("queue stats", e))?;
        let si = tokio::time::timeout(bound, stream.info())
            .await
            .map_err(|_| unavailable("queue stats", "no answer from NATS"))?
            .map_err(|e| unavailable("queue stats", e))?
            .clone();
        let messages = si.state.messages;
        let in_flight = (ci.num_ack_pending as u64).min(messages);
        let dlq = format!("{name}{DLQ}");
        let has_dlq = !name.ends_with(DLQ) && rec.settings.max_attempts > 0;
        Ok(QueueFigures {
            name: name.to_string(),
            settings: rec.settings,
            messages,
            ready: messages - in_flight,
            in_flight,
            dead_letter_queue: if has_dlq { dlq } else { String::new() },
            oldest_sent_unix_ms: if messages == 0 {
                0
            } else {
                (si.state.first_timestamp.unix_timestamp_nanos() / 1_000_000).max(0) as u64
            },
            created_unix_ms: rec.created_unix_ms,
        })
    }

    /// Every queue of the cluster with its figures.
    pub async fn queue_list(&self) -> Result<Vec<QueueFigures>> {
        let mut keys = self.shared_kv.keys().await.map_err(|e| unavailable("queue list", e))?;
        let mut names = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| unavailable("queue list", e))?;
            if let Some(n) = k.strip_prefix("queue.") {
                names.push(n.to_string());
            }
        }
        names.sort();
        let mut out = Vec::new();
        for n in names {
            out.push(self.queue_stats(&n).await?);
        }
        Ok(out)
    }
}
