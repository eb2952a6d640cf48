//! The Queues API in cluster mode: every call goes to the cluster's queues on JetStream
//! (`agentdb_cluster`, queues.rs), so any node sends to, receives from and acks any
//! queue, and a message received through a node that dies is delivered again through
//! another once its visibility timeout has passed. Names, settings and limits are
//! checked as on a single node.

use crate::status::{to_status, ApiError};
use agentdb_cluster::{Cluster, QueueFigures, QueueSettings};
use agentdb_orchestrator::queue::{validate_queue_name, QueueConfig, DLQ_SUFFIX, MAX_RECEIVE};
use agentdb_proto::v1;
use std::collections::BTreeMap;
use tonic::Status;

fn err(e: agentdb_cluster::Error) -> Status {
    to_status(ApiError::from(e))
}

fn invalid(e: agentdb_orchestrator::Error) -> Status {
    Status::invalid_argument(e.to_string())
}

pub fn figures_to_wire(f: QueueFigures) -> v1::QueueStats {
    v1::QueueStats {
        name: f.name,
        max_attempts: f.settings.max_attempts,
        visibility_timeout_ms: f.settings.visibility_timeout_ms,
        max_messages: f.settings.max_messages,
        messages: f.messages,
        ready: f.ready,
        in_flight: f.in_flight,
        dead_letter_queue: f.dead_letter_queue,
        oldest_sent_unix_ms: f.oldest_sent_unix_ms,
        created_unix_ms: f.created_unix_ms,
    }
}

pub async fn create(c: &Cluster, name: &str, cfg: QueueConfig) -> Result<(bool, v1::QueueStats), Status> {
    validate_queue_name(name).map_err(invalid)?;
    if name.ends_with(DLQ_SUFFIX) {
        return Err(Status::invalid_argument(format!(
            "'{name}': names ending in {DLQ_SUFFIX} are dead-letter queues, created with their queue"
        )));
    }
    if cfg.visibility_timeout_ms == 0 || cfg.max_messages == 0 {
        return Err(Status::invalid_argument("visibility_timeout_ms and max_messages must be at least 1"));
    }
    let settings = QueueSettings {
        max_attempts: cfg.max_attempts,
        visibility_timeout_ms: cfg.visibility_timeout_ms,
        max_messages: cfg.max_messages,
    };
    let created = c.create_queue(name, settings).await.map_err(err)?;
    // Read right after the write: a replica that has not applied the new record or
    // stream yet (a node that just rejoined) answers "not found" for a moment.
    let mut tries = 0;
    let stats = loop {
        match c.queue_stats(name).await {
            Err(agentdb_cluster::Error::NotFound(_)) if tries < 30 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            r => break r.map_err(err)?,
        }
    };
    Ok((created, figures_to_wire(stats)))
}

pub async fn send(
    c: &Cluster,
    queue: &str,
    body: Vec<u8>,
    attributes: BTreeMap<String, String>,
) -> Result<String, Status> {
    validate_queue_name(queue).map_err(invalid)?;
    c.queue_send(queue, body, attributes).await.map_err(err)
}

/// Ready messages now (the caller long-polls).
pub async fn receive(c: &Cluster, r: &v1::ReceiveMessagesRequest) -> Result<Vec<v1::QueueMessage>, Status> {
    validate_queue_name(&r.queue).map_err(invalid)?;
    let max = (r.max_messages.max(1) as usize).min(MAX_RECEIVE);
    let got = c.queue_receive(&r.queue, max, r.visibility_timeout_ms).await.map_err(err)?;
    Ok(got
        .into_iter()
        .map(|d| v1::QueueMessage {
            id: d.id,
            body: d.body,
            attributes: d.attributes.into_iter().collect(),
            attempt: d.attempt,
            receipt: d.receipt,
            sent_unix_ms: d.sent_unix_ms,
            invisible_until_unix_ms: d.invisible_until_ms,
        })
        .collect())
}

pub async fn ack(c: &Cluster, queue: &str, receipt: &str) -> Result<(), Status> {
    validate_queue_name(queue).map_err(invalid)?;
    c.queue_ack(queue, receipt).await.map_err(err)
}

pub async fn stats(c: &Cluster, name: &str) -> Result<v1::QueueStats, Status> {
    validate_queue_name(name).map_err(invalid)?;
    Ok(figures_to_wire(c.queue_stats(name).await.map_err(err)?))
}

pub async fn list(c: &Cluster) -> Result<Vec<v1::QueueStats>, Status> {
    Ok(c.queue_list().await.map_err(err)?.into_iter().map(figures_to_wire).collect())
}
