//! Workflow runs across a cluster (issue 21, point 6) through the real binary: a
//! definition applied through one node is known to the others; a run executing on a node
//! that is killed (-9) is taken over by another node, which resumes it (finished steps
//! kept, the interrupted step started over) and finishes it; the killed node, restarted,
//! does not run it again. A 3-server NATS JetStream cluster and two nodes on loopback.

mod common;

use common::nats::{node, Nats};
use common::Server;
use serde_json::Value;
use std::time::{Duration, Instant};

fn status(s: &Server, run: &str) -> Option<Value> {
    let out = s.cli(&["workflow", "status", run, "--json"]);
    out.status.success().then(|| serde_json::from_slice(&out.stdout).unwrap())
}

fn wait_run(s: &Server, run: &str, wait: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let t = Instant::now();
    loop {
        if let Some(r) = status(s, run).filter(|r| pred(r)) {
            return r;
        }
        assert!(
            t.elapsed() < wait,
            "run {run} did not get there in {wait:?}: {:?}\nlog:\n{}",
            status(s, run),
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn step<'a>(r: &'a Value, id: &str) -> &'a Value {
    r["steps"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap()
}

#[test]
fn a_run_on_a_node_that_dies_is_taken_over_and_finished_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), 3);
    let mut n1 = node(&dir.path().join("n1"), &nats, "n1");
    let n2 = node(&dir.path().join("n2"), &nats, "n2");
    n1.ok(&["queue", "create", "done"]);
    let wf = dir.path().join("long.yaml");
    std::fs::write(
        &wf,
        "name: long\nsteps:\n  - {id: a, sleep: 100ms}\n  - {id: b, needs: [a], sleep: 3s, retry: {max_attempts: 2}}\n  - id: c\n    needs: [b]\n    notify: {queue: done, message: 'run {{ run.id }} done'}\n",
    )
    .unwrap();
    n1.ok(&["workflow", "apply", wf.to_str().unwrap()]);
    // The definition reaches n2.
    let t = Instant::now();
    while !String::from_utf8(n2.ok(&["workflow", "list"])).unwrap().contains("long") {
        assert!(t.elapsed() < Duration::from_secs(10), "the definition did not reach n2");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A run on n1, killed while its step b runs.
    let r: Value = serde_json::from_slice(&n1.ok(&["workflow", "run", "long", "--json"])).unwrap();
    let id = r["id"].as_str().unwrap().to_string();
    wait_run(&n1, &id, Duration::from_secs(20), |r| step(r, "b")["state"] == "running");
    n1.kill9();
    let killed = Instant::now();

    // n2 takes it over and finishes it.
    let r = wait_run(&n2, &id, Duration::from_secs(30), |r| r["state"] == "succeeded");
    eprintln!("run taken over and finished {:?} after its node was killed", killed.elapsed());
    assert_eq!(step(&r, "a")["attempts"], 1, "finished steps are not run again: {r:#}");
    let b = step(&r, "b");
    assert_eq!(b["attempts"], 2, "the interrupted attempt counts: {r:#}");
    assert!(b["attempt_errors"][0].as_str().unwrap().contains("interrupted"), "{r:#}");
    assert!(n2.log_text().contains("taking over a workflow run"), "{}", n2.log_text());
    let got = String::from_utf8(n2.ok(&["queue", "receive", "done"])).unwrap();
    assert!(got.contains(&format!("run {id} done")), "{got}");

    // n1 comes back: it does not run it again, and reports how it ended.
    let n1 = node(&dir.path().join("n1"), &nats, "n1");
    let r = status(&n1, &id).unwrap();
    assert_eq!(r["state"], "succeeded", "{r:#}");
    assert!(n1.log_text().contains("taken over by another node"), "{}", n1.log_text());
    std::thread::sleep(Duration::from_secs(2));
    let out = String::from_utf8(n2.ok(&["queue", "receive", "done", "--wait-ms", "500"])).unwrap_or_default();
    assert!(!out.contains(&id), "the run's last step ran twice: {out}");
    drop(n1);
}
