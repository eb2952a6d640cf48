//! Durable queues across a cluster (issue 21, point 6) through the real binary: a queue
//! created through one node is the same queue on every node; a message received through
//! a node that is then killed (-9) is delivered again through another once its
//! visibility timeout has passed (at least once); acks work through any node; messages
//! past `max_attempts` move to the dead-letter queue; the bounds and errors are a single
//! node's. A 3-server NATS JetStream cluster and two AgentDB nodes run on loopback.

mod common;

use agentdb_proto::v1;
use common::nats::{node, Nats};
use common::{authed, Server};
use std::time::{Duration, Instant};
use tonic::Code;

type Queues = v1::queues_client::QueuesClient<common::Authed>;

async fn client(s: &Server) -> Queues {
    v1::queues_client::QueuesClient::new(authed(&s.url(), None).await)
}

async fn receive(q: &mut Queues, queue: &str, max: u32, vis: u64, wait: u64) -> Vec<v1::QueueMessage> {
    q.receive(v1::ReceiveMessagesRequest {
        queue: queue.into(),
        max_messages: max,
        visibility_timeout_ms: vis,
        wait_ms: wait,
    })
    .await
    .unwrap()
    .into_inner()
    .messages
}

async fn stats(q: &mut Queues, name: &str) -> v1::QueueStats {
    q.stats(v1::QueueStatsRequest { name: name.into() }).await.unwrap().into_inner().queues.remove(0)
}

async fn send(q: &mut Queues, queue: &str, body: &str) -> Result<String, tonic::Status> {
    let attributes = [("kind".to_string(), "test".to_string())].into();
    Ok(q.send(v1::SendMessageRequest { queue: queue.into(), body: body.as_bytes().to_vec(), attributes })
        .await?
        .into_inner()
        .id)
}

fn body(m: &v1::QueueMessage) -> String {
    String::from_utf8(m.body.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_deliver_at_least_once_across_nodes_and_a_node_dying() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), 3);
    let n1 = node(&dir.path().join("n1"), &nats, "n1");
    let mut n2 = node(&dir.path().join("n2"), &nats, "n2");
    let (mut q1, mut q2) = (client(&n1).await, client(&n2).await);

    // Created through n1: the same queue through n2, with its dead-letter queue.
    let create = |visibility_timeout_ms: u64| v1::CreateQueueRequest {
        name: "jobs".into(),
        max_attempts: Some(2),
        visibility_timeout_ms,
        max_messages: 5,
    };
    let r = q1.create(create(1500)).await.unwrap().into_inner();
    assert!(r.created);
    let r = q2.create(create(1500)).await.unwrap().into_inner();
    assert!(!r.created, "the same settings again: a no-op");
    assert_eq!(q2.create(create(900)).await.unwrap_err().code(), Code::AlreadyExists);
    let s = stats(&mut q2, "jobs").await;
    assert_eq!((s.max_attempts, s.visibility_timeout_ms, s.max_messages), (2, 1500, 5));
    assert_eq!(s.dead_letter_queue, "jobs.dlq");
    let all = q2.stats(v1::QueueStatsRequest::default()).await.unwrap().into_inner().queues;
    assert_eq!(all.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(), ["jobs", "jobs.dlq"]);
    let e = q1.create(v1::CreateQueueRequest { name: "bad name".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = send(&mut q1, "nosuch", "x").await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");

    // Sent through n1, received through n2, acked through n1.
    for b in ["a", "b", "c"] {
        send(&mut q1, "jobs", b).await.unwrap();
    }
    let s = stats(&mut q1, "jobs").await;
    assert_eq!((s.messages, s.ready, s.in_flight), (3, 3, 0));
    let got = receive(&mut q2, "jobs", 1, 0, 0).await;
    assert_eq!(got.len(), 1);
    assert_eq!((body(&got[0]).as_str(), got[0].attempt), ("a", 1));
    assert_eq!(got[0].attributes.get("kind").map(String::as_str), Some("test"));
    q1.ack(v1::AckMessageRequest { queue: "jobs".into(), receipt: got[0].receipt.clone() }).await.unwrap();
    let e = q1.ack(v1::AckMessageRequest { queue: "jobs".into(), receipt: got[0].receipt.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "acked twice: {e:?}");
    // A receipt is checked against the queue it is presented for.
    let e =
        q1.ack(v1::AckMessageRequest { queue: "jobs.dlq".into(), receipt: got[0].receipt.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = q1.ack(v1::AckMessageRequest { queue: "jobs".into(), receipt: "garbage".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // b and c received through n2, which is then killed before acking them: they are
    // delivered again through n1 once the visibility timeout has passed.
    let got = receive(&mut q2, "jobs", 10, 0, 0).await;
    assert_eq!(got.iter().map(body).collect::<Vec<_>>(), ["b", "c"]);
    let s = stats(&mut q1, "jobs").await;
    assert_eq!((s.messages, s.ready, s.in_flight), (2, 0, 2));
    n2.kill9();
    let killed = Instant::now();
    assert!(receive(&mut q1, "jobs", 10, 0, 0).await.is_empty(), "invisible while the timeout runs");
    let mut again = Vec::new();
    while again.len() < 2 {
        again.extend(receive(&mut q1, "jobs", 10, 0, 5000).await);
        assert!(killed.elapsed() < Duration::from_secs(10), "not delivered again: {again:?}");
    }
    let waited = killed.elapsed();
    eprintln!("redelivered through n1 {waited:?} after the receiving node was killed");
    assert!(waited >= Duration::from_millis(1000), "not before the visibility timeout: {waited:?}");
    assert_eq!(again.iter().map(|m| (body(m), m.attempt)).collect::<Vec<_>>(), [("b".into(), 2), ("c".into(), 2)]);
    q1.ack(v1::AckMessageRequest { queue: "jobs".into(), receipt: again[0].receipt.clone() }).await.unwrap();
    // c's receipt from its first delivery (through the dead node) is stale now.
    let e = q1.ack(v1::AckMessageRequest { queue: "jobs".into(), receipt: got[1].receipt.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");

    // c is not acked again: its next delivery would be its third (> max_attempts 2), so
    // it moves to jobs.dlq, with its attributes.
    let t = Instant::now();
    while stats(&mut q1, "jobs.dlq").await.messages == 0 {
        assert!(receive(&mut q1, "jobs", 10, 0, 500).await.is_empty(), "c is not delivered a third time");
        assert!(t.elapsed() < Duration::from_secs(10), "c did not reach the dead-letter queue");
    }
    assert_eq!(stats(&mut q1, "jobs").await.messages, 0);
    let dead = receive(&mut q1, "jobs.dlq", 10, 0, 0).await;
    assert_eq!(dead.iter().map(body).collect::<Vec<_>>(), ["c"]);
    assert_eq!(dead[0].attributes.get("kind").map(String::as_str), Some("test"));
    q1.ack(v1::AckMessageRequest { queue: "jobs.dlq".into(), receipt: dead[0].receipt.clone() }).await.unwrap();

    // A visibility timeout of the receive's own: the message comes back after it.
    send(&mut q1, "jobs", "d").await.unwrap();
    let got = receive(&mut q1, "jobs", 1, 300, 0).await;
    let t = Instant::now();
    let back = loop {
        let g = receive(&mut q1, "jobs", 1, 0, 1000).await;
        if !g.is_empty() {
            break g;
        }
        assert!(t.elapsed() < Duration::from_secs(1), "not back after the receive's 300 ms");
    };
    assert!(t.elapsed() < Duration::from_millis(1200), "{:?}", t.elapsed());
    assert_eq!((body(&back[0]).as_str(), back[0].attempt), ("d", 2));
    assert!(got[0].invisible_until_unix_ms < back[0].invisible_until_unix_ms);
    q1.ack(v1::AckMessageRequest { queue: "jobs".into(), receipt: back[0].receipt.clone() }).await.unwrap();

    // max_messages bounds what is waiting or in flight.
    for i in 0..5 {
        send(&mut q1, "jobs", &format!("f{i}")).await.unwrap();
    }
    let e = send(&mut q1, "jobs", "one too many").await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("full"), "{e:?}");
    let e = send(&mut q1, "jobs", &"x".repeat(300 * 1024)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");

    // n2 comes back: it sees the same queue, the same figures.
    let n2 = node(&dir.path().join("n2"), &nats, "n2");
    let mut q2 = client(&n2).await;
    assert_eq!(stats(&mut q2, "jobs").await.messages, 5);

    // A workflow's notify step on n2 puts its message on the cluster's queue: it is
    // received through n1. (The CLI's queue commands go to the cluster's queues too.)
    n2.ok(&["queue", "create", "reports"]);
    let wf = dir.path().join("wf.yaml");
    std::fs::write(
        &wf,
        "name: report\nsteps:\n  - id: tell\n    notify: {queue: reports, message: 'run {{ run.id }} done'}\n",
    )
    .unwrap();
    n2.ok(&["workflow", "apply", wf.to_str().unwrap()]);
    let run: serde_json::Value = serde_json::from_slice(&n2.ok(&["workflow", "run", "report", "--json"])).unwrap();
    let id = run["id"].as_str().unwrap().to_string();
    let t = Instant::now();
    let got = loop {
        let g = receive(&mut q1, "reports", 1, 0, 1000).await;
        if !g.is_empty() {
            break g;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "the workflow's message did not arrive through n1");
    };
    assert!(body(&got[0]).contains(&format!("run {id} done")), "{}", body(&got[0]));
    assert_eq!(got[0].attributes.get("run"), Some(&id));
}
