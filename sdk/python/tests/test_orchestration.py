"""Agents, queues, events, standing queries and workflows (sync and asyncio clients)."""

from __future__ import annotations

import time

import pytest

import agentdb


def test_agents(client, unique):
    name = unique("agent")
    a = client.register_agent(
        name,
        description="summarises reports",
        version="1.2",
        skills=["summarise", {"id": "tr", "name": "translate", "tags": ["fr"]}],
        capabilities=["streaming"],
        endpoint="http://127.0.0.1:9/a2a",
        memory=False,
    )
    assert isinstance(a, agentdb.Agent) and a.created is True
    assert a.state == "registered" and a.memory_collection == ""
    assert [s.id for s in a.skills] == ["summarise", "tr"] and a.skills[1].tags == ("fr",)
    again = client.register_agent(name, description="v2", memory=False)
    assert again.created is False and again.description == "v2"
    hb = client.heartbeat(name)
    assert hb.state == "active" and hb.healthy and hb.last_heartbeat_unix_ms > 0
    assert name in [x.name for x in client.list_agents("active")]
    assert client.get_agent(name).description == "v2"
    assert client.set_agent_state(name, "suspended", reason="test").state == "suspended"
    assert client.set_agent_state(name, "retired").state == "retired"
    with pytest.raises(agentdb.FailedPrecondition) as e:
        client.set_agent_state(name, "active")
    assert "retired" in e.value.details
    with pytest.raises(agentdb.NotFound):
        client.get_agent(unique("ghost"))


def test_queues(client, unique):
    q = unique("jobs")
    created = client.create_queue(q, max_attempts=2, visibility_timeout_ms=300)
    assert isinstance(created, agentdb.Queue) and created.created is True
    assert created.max_attempts == 2 and created.visibility_timeout_ms == 300
    assert client.create_queue(q, max_attempts=2, visibility_timeout_ms=300).created is False
    with pytest.raises(agentdb.AlreadyExists):
        client.create_queue(q, max_attempts=9)
    id1 = client.send_message(q, {"doc": 7}, attributes={"kind": "json"})
    id2 = client.send_message(q, "plain text")
    client.send_message(q, b"\x00\x01")
    assert id1 and id2 and id1 != id2
    stats = client.queue_stats(q)
    assert len(stats) == 1 and stats[0].messages == 3 and stats[0].ready == 3
    got = client.receive_messages(q, max_messages=2)
    assert [m.id for m in got] == [id1, id2]
    assert got[0].json() == {"doc": 7} and got[0].attributes == {"kind": "json"} and got[0].attempt == 1
    assert got[1].text() == "plain text"
    client.ack_message(got[0])
    client.ack_message(got[1].receipt, queue=q)
    third = client.receive_messages(q, max_messages=5)
    assert [m.body for m in third] == [b"\x00\x01"]
    # Not acked: redelivered after the visibility timeout, attempt 2 (long poll).
    t = time.monotonic()
    redelivered = client.receive_messages(q, wait_ms=3000)
    assert [m.attempt for m in redelivered] == [2] and time.monotonic() - t < 3.0
    client.ack_message(redelivered[0])
    assert client.queue_stats(q)[0].messages == 0
    assert client.receive_messages(q, wait_ms=50) == []
    with pytest.raises(agentdb.AgentDBError):
        client.send_message(unique("noqueue"), "x")


def test_events_publish_and_topics(client, admin):
    # From the next offset: no race between the subscription reaching the server and the publish.
    sub = admin.subscribe("alerts", from_offset=client.topics().next_offset)
    try:
        off = client.publish("alerts", "sdk.test", subject="s1", data={"n": 1})
        offs = client.publish_many([{"topic": "alerts", "kind": "sdk.test", "data": {"n": 2}}])
        assert offs == [off + 1] or offs[0] > off
        ev = next(sub)
        assert isinstance(ev, agentdb.Event)
        assert (ev.offset, ev.topic, ev.kind, ev.subject, ev.data) == (off, "alerts", "sdk.test", "s1", {"n": 1})
        assert next(sub).data == {"n": 2}
    finally:
        sub.close()
    # Replay from an offset.
    with admin.subscribe(["alerts"], from_offset=off) as replay:
        assert next(replay).offset == off
    t = client.topics()
    alerts = {x.name: x for x in t.topics}["alerts"]
    assert alerts.client_publishable and alerts.last_offset >= off + 1 and t.next_offset > off
    with pytest.raises(agentdb.AgentDBError):
        client.publish("agent_health", "forged")


def test_standing_query_fires_event(client, admin, unique):
    coll = unique("watch")
    client.create_collection(coll, multimodal=True)
    agent = unique("watcher")
    client.register_agent(agent, memory=False)
    sq = client.create_standing_query(agent, "bread", coll, text="baking bread at home", threshold=0.3)
    assert isinstance(sq, agentdb.StandingQuery) and sq.id == f"{agent}.bread" and sq.dim == 384
    assert sq.id in [q.id for q in client.list_standing_queries(agent)]
    with admin.subscribe("standing_query", from_offset=admin.topics().next_offset) as sub:
        client.ingest(coll, [("recipes/bread.txt", b"How to bake a loaf of bread at home: flour, water, yeast.")])
        ev = next(sub)
    assert ev.topic == "standing_query" and ev.kind == "standing_query.match"
    assert sq.id in (ev.subject + str(ev.data))
    assert client.delete_standing_query(sq.id).id == sq.id
    assert client.list_standing_queries(agent) == []
    with pytest.raises(ValueError):
        client.create_standing_query(agent, "x", coll)


WORKFLOW = """
name: {name}
description: find a note and report it
inputs: {{ query: "nothing" }}
steps:
  - id: find
    search: {{ collection: {coll}, text: "{{{{ inputs.query }}}}", top_k: 3 }}
  - id: best
    needs: [find]
    filter: {{ items: "{{{{ steps.find.output.hits }}}}", limit: 1 }}
  - id: report
    needs: [best]
    notify: {{ queue: {queue}, message: "{{{{ steps.best.output.items[0].source }}}}" }}
"""

SLOW = """
name: {name}
steps:
  - id: nap
    sleep: 30s
"""


def test_workflows(client, unique):
    coll, queue, name = unique("wfnotes"), unique("wfq"), unique("wf")
    client.create_collection(coll, multimodal=True)
    client.ingest(coll, [("notes/bananas.txt", b"Bananas come from tropical plantations in Ecuador."),
                         ("notes/pipes.txt", b"Organ pipes are tuned by their length.")])
    client.create_queue(queue)
    wf = client.apply_workflow(WORKFLOW.format(name=name, coll=coll, queue=queue))
    assert isinstance(wf, agentdb.Workflow) and wf.version == 1 and wf.changed is True
    assert list(wf.steps) and len(wf.steps) == 3
    assert client.apply_workflow(WORKFLOW.format(name=name, coll=coll, queue=queue)).changed is False
    assert name in [w.name for w in client.list_workflows()]
    assert client.get_workflow(name, version=1).yaml.strip().startswith("name:")

    run = client.run_workflow(name, {"query": "where do bananas come from"})
    assert isinstance(run, agentdb.WorkflowRun) and run.workflow == name and run.inputs["query"].startswith("where")
    done = client.wait_run(run.id, timeout=30)
    assert done.state == "succeeded", (done.error, done.steps)
    assert done.step("find").output["hits"][0]["source"] == "notes/bananas.txt"
    msgs = client.receive_messages(queue, wait_ms=2000)
    assert len(msgs) == 1
    assert msgs[0].json()["message"] == "notes/bananas.txt" and msgs[0].json()["run"] == run.id
    assert run.id in [r.id for r in client.list_runs(name)]

    slow = unique("slow")
    client.apply_workflow(SLOW.format(name=slow))
    r = client.run_workflow(slow, priority=5)
    assert r.priority == 5
    canceled = client.cancel_run(r.id)
    final = client.wait_run(canceled.id, timeout=10)
    assert final.state == "canceled"
    assert [x.id for x in client.list_runs(slow, state="canceled")] == [r.id]
    with pytest.raises(agentdb.InvalidArgument):
        client.apply_workflow("name: broken\nsteps: []\n")
    client.delete_workflow(slow)
    with pytest.raises(agentdb.NotFound):
        client.get_workflow(slow)
