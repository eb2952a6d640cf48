use super::errors::*;
use super::model::*;
use super::params::*;
use super::push::*;
use super::*;
use agentdb_orchestrator::security::principal_memory_collection;
use serde_json::json;
use tokio::sync::broadcast;

#[test]
fn routing_convention() {
    let j = job_from_parts(&[Part::Text("Remember: the key rotates on Mondays".into())]);
    assert_eq!(j.skill.as_deref(), Some("remember"));
    assert_eq!(j.text, "the key rotates on Mondays");
    let j = job_from_parts(&[Part::Text("when does the key rotate?".into())]);
    assert_eq!(j.skill.as_deref(), Some("recall"));
    let j = job_from_parts(&[Part::Data(json!({"skill": "Search", "collection": "c", "text": "x"}))]);
    assert_eq!(j.skill.as_deref(), Some("search"));
    let j = job_from_parts(&[Part::File { name: "a.txt".into(), mime: "text/plain".into(), bytes: b"x".to_vec() }]);
    assert_eq!(j.skill.as_deref(), Some("ingest"));
}

fn task(id: &str, seq: u64, state: TaskState) -> TaskRec {
    TaskRec {
        id: id.into(),
        context_id: "c".into(),
        owner: "local".into(),
        status: StatusRec { state, message: Some(agent_text("why")), timestamp: now_rfc3339() },
        artifacts: vec![ArtifactRec {
            id: "a".into(),
            name: "recall".into(),
            description: "d".into(),
            parts: vec![Part::Text("t".into()), Part::Data(json!({"hits": []}))],
        }],
        history: (0..MAX_STORED_HISTORY + 5).map(|i| agent_text(format!("m{i}"))).collect(),
        pending: None,
        events: broadcast::channel(1).0,
        abort: None,
        seq,
        push: Vec::new(),
        push_tx: None,
        live: None,
        run: None,
    }
}

#[test]
fn stored_tasks_round_trip_with_bounded_history() {
    let t = task("t1", 7, TaskState::InputRequired);
    let back: StoredTask = serde_json::from_value(t.stored()).unwrap();
    assert_eq!((back.id.as_str(), back.seq, back.status.state), ("t1", 7, TaskState::InputRequired));
    assert_eq!(back.history.len(), MAX_STORED_HISTORY);
    assert!(matches!(&back.history[0].parts[0], Part::Text(m) if m == "m5"));
    assert_eq!(back.artifacts[0].render(Dialect::V1), t.artifacts[0].render(Dialect::V1));
}

#[test]
fn eviction_prefers_finished_tasks() {
    let mut tasks = Tasks::default();
    for i in 0..MAX_TASKS {
        let state = if i == 0 || i == 1 { TaskState::Working } else { TaskState::Completed };
        assert!(tasks.insert(task(&format!("t{i}"), i as u64, state)).is_empty());
    }
    assert_eq!(tasks.insert(task("new", 0, TaskState::Submitted)), ["t2"]);
    assert!(tasks.map.contains_key("t0") && tasks.map.contains_key("t1"));
}

#[test]
fn parts_in_both_dialects() {
    let p = parse_part(&json!({"raw": "aGk=", "filename": "a.txt", "mediaType": "text/plain"})).unwrap();
    assert!(matches!(p, Part::File { ref bytes, .. } if bytes == b"hi"));
    let p = parse_part(&json!({"kind": "file", "file": {"bytes": "aGk=", "name": "a.txt"}})).unwrap();
    assert!(matches!(p, Part::File { ref name, .. } if name == "a.txt"));
    let p = parse_part(&json!({"kind": "file", "file": {"uri": "data:text/plain,h%69"}})).unwrap();
    assert!(matches!(p, Part::File { ref bytes, ref mime, .. } if bytes == b"hi" && mime == "text/plain"));
    assert!(parse_part(&json!({"url": "https://example.com/x"})).is_err());
    assert!(matches!(parse_part(&json!({"kind": "data", "data": {"a": 1}})).unwrap(), Part::Data(_)));
}

#[test]
fn push_targets() {
    for ok in ["https://hooks.example.com/a2a?x=1", "http://93.184.216.34:8080/h", "http://[2606:4700::1]/h"] {
        assert!(check_push_url(ok, false).is_ok(), "{ok}");
    }
    for bad in [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "example.com/x",
        "http://user:pw@example.com/",
        "http://127.0.0.1:9/h",
        "http://localhost/h",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://100.64.0.1/",
        "http://[::1]/h",
        "http://[fd00::1]/h",
        "http://[::ffff:127.0.0.1]/h",
        "http://0.0.0.0/",
    ] {
        let e = check_push_url(bad, false).unwrap_err();
        assert_eq!(e.code, INVALID_PARAMS, "{bad}");
    }
    assert!(check_push_url("http://127.0.0.1:9/h", true).is_ok());
    assert!(check_push_url("ftp://127.0.0.1/h", true).is_err());
    let c = parse_push_config(
        json!({"url": "https://h.example.com/", "authentication": {"schemes": ["Basic"], "credentials": "dTpw"}})
            .as_object()
            .unwrap(),
        Dialect::V03,
        false,
    )
    .unwrap();
    assert_eq!(c.auth, Some(("Basic".to_string(), Some("dTpw".to_string()))));
    assert_eq!(c.render(Dialect::V1, "t")["authentication"], json!({"scheme": "Basic"}));
    let bad = json!({"url": "https://h.example.com/", "token": "a\nb"});
    assert!(parse_push_config(bad.as_object().unwrap(), Dialect::V1, false).is_err());
}

#[test]
fn names_and_times() {
    assert_eq!(principal_memory_collection("key:ab12"), "memory-key-ab12");
    assert_eq!(TaskState::parse("TASK_STATE_INPUT_REQUIRED"), Some(TaskState::InputRequired));
    assert_eq!(TaskState::parse("input-required"), Some(TaskState::InputRequired));
    let t = now_rfc3339();
    assert!(t.len() == 24 && t.ends_with('Z') && t.starts_with("20"), "{t}");
}
