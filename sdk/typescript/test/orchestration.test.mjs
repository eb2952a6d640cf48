// Agents, queues, events (async-iterator subscriptions), standing queries and workflows.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { AgentDB, AgentDBError, AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from "../dist/index.js";
import { rejection, startServer, unique } from "./helpers.mjs";

let server, db;

before(async () => {
  server = await startServer(["--set", "security.auth=api_key"]);
  db = new AgentDB({ address: server.addr, apiKey: server.adminKey });
});

after(async () => {
  db?.close();
  await server?.stop();
  server?.cleanup();
});

/** The next value of an async iterator, or a failure after `ms`. */
async function nextWithin(it, ms = 10000) {
  let t;
  const timeout = new Promise((_, reject) => (t = setTimeout(() => reject(new Error(`no event within ${ms} ms`)), ms)));
  try {
    const r = await Promise.race([it.next(), timeout]);
    assert.equal(r.done, false, "the subscription ended");
    return r.value;
  } finally {
    clearTimeout(t);
  }
}

test("agents: register, update, heartbeat, list, states", async () => {
  const name = unique("agent");
  const a = await db.registerAgent(
    {
      name,
      description: "summarises reports",
      version: "1.2",
      skills: ["summarise", { id: "tr", name: "translate", tags: ["fr"] }],
      capabilities: ["streaming"],
      endpoint: "http://127.0.0.1:9/a2a",
    },
    { memory: false },
  );
  assert.equal(a.created, true);
  assert.equal(a.state, "registered");
  assert.equal(a.memoryCollection, "");
  assert.deepEqual(a.skills.map((s) => s.id), ["summarise", "tr"]);
  assert.deepEqual(a.skills[1].tags, ["fr"]);
  assert.deepEqual(a.capabilities, ["streaming"]);
  const again = await db.registerAgent({ name, description: "v2" }, { memory: false });
  assert.equal(again.created, false);
  assert.equal(again.description, "v2");
  const hb = await db.heartbeat(name);
  assert.equal(hb.state, "active");
  assert.equal(hb.healthy, true);
  assert.ok(hb.lastHeartbeatUnixMs > 0);
  assert.ok((await db.listAgents("active")).some((x) => x.name === name));
  assert.equal((await db.getAgent(name)).description, "v2");
  assert.equal((await db.setAgentState(name, "suspended", "test")).state, "suspended");
  assert.equal((await db.setAgentState(name, "retired")).state, "retired");
  const e = await rejection(db.setAgentState(name, "active"));
  assert.ok(e instanceof FailedPreconditionError, String(e));
  assert.match(e.details, /retired/);
  assert.ok((await rejection(db.getAgent(unique("ghost")))) instanceof NotFoundError);
  // With a memory collection (the installed encoders' spaces).
  const m = await db.registerAgent({ name: unique("mem") });
  assert.match(m.memoryCollection, /^agent_.*_memory$/);
  assert.equal((await db.getCollection(m.memoryCollection)).name, m.memoryCollection);
});

test("queues: create, send, receive, ack, redelivery, stats", async () => {
  const q = unique("jobs");
  const created = await db.createQueue(q, { maxAttempts: 2, visibilityTimeoutMs: 300 });
  assert.equal(created.created, true);
  assert.deepEqual([created.maxAttempts, created.visibilityTimeoutMs], [2, 300]);
  assert.equal((await db.createQueue(q, { maxAttempts: 2, visibilityTimeoutMs: 300 })).created, false);
  assert.ok((await rejection(db.createQueue(q, { maxAttempts: 9 }))) instanceof AlreadyExistsError);
  const id1 = await db.sendMessage(q, { doc: 7 }, { attributes: { kind: "json" } });
  const id2 = await db.sendMessage(q, "plain text");
  await db.sendMessage(q, Buffer.from([0, 1]));
  assert.ok(id1 && id2 && id1 !== id2);
  const [stats] = await db.queueStats(q);
  assert.deepEqual([stats.name, stats.messages, stats.ready], [q, 3, 3]);
  const got = await db.receiveMessages(q, { maxMessages: 2 });
  assert.deepEqual(got.map((m) => m.id), [id1, id2]);
  assert.deepEqual(got[0].json(), { doc: 7 });
  assert.deepEqual(got[0].attributes, { kind: "json" });
  assert.equal(got[0].attempt, 1);
  assert.equal(got[1].text(), "plain text");
  await db.ackMessage(got[0]);
  await db.ackMessage({ queue: q, receipt: got[1].receipt });
  const third = await db.receiveMessages(q, { maxMessages: 5 });
  assert.deepEqual(third.map((m) => [...m.body]), [[0, 1]]);
  // Not acked: redelivered after the visibility timeout (long poll), attempt 2.
  const t = Date.now();
  const re = await db.receiveMessages(q, { waitMs: 3000 });
  assert.deepEqual(re.map((m) => m.attempt), [2]);
  assert.ok(Date.now() - t < 3000);
  await db.ackMessage(re[0]);
  assert.equal((await db.queueStats(q))[0].messages, 0);
  assert.deepEqual(await db.receiveMessages(q, { waitMs: 50 }), []);
  assert.ok((await db.queueStats()).some((s) => s.name === q));
  assert.ok((await rejection(db.sendMessage(unique("noqueue"), "x"))) instanceof AgentDBError);
});

test("events: subscribe as an async iterator, publish, replay, topics", async () => {
  const start = (await db.topics()).nextOffset;
  const sub = db.subscribe("alerts", { fromOffset: start });
  try {
    const off = await db.publish("alerts", "sdk.test", { subject: "s1", data: { n: 1 } });
    const offs = await db.publishMany([{ topic: "alerts", kind: "sdk.test", data: { n: 2 } }]);
    assert.equal(offs.length, 1);
    assert.ok(offs[0] > off);
    const ev = await nextWithin(sub);
    assert.equal(ev.type, "event");
    assert.deepEqual([ev.offset, ev.topic, ev.kind, ev.subject, ev.data], [off, "alerts", "sdk.test", "s1", { n: 1 }]);
    assert.ok(ev.unixMs > 1.6e12);
    assert.deepEqual((await nextWithin(sub)).data, { n: 2 });
    // Replay from an offset with for-await; break closes the stream.
    const seen = [];
    for await (const e of db.subscribe(["alerts"], { fromOffset: off })) {
      seen.push(e.offset);
      if (seen.length === 2) break;
    }
    assert.deepEqual(seen, [off, offs[0]]);
    const t = await db.topics();
    const alerts = t.topics.find((x) => x.name === "alerts");
    assert.ok(alerts.clientPublishable);
    assert.ok(alerts.lastOffset >= offs[0]);
    assert.ok(t.nextOffset > offs[0]);
    assert.ok(t.ringCapacity > 0);
    assert.ok((await rejection(db.publish("agent_health", "forged"))) instanceof AgentDBError);
  } finally {
    sub.close();
  }
  // close() ends a pending next() and the iteration.
  const idle = db.subscribe("alerts");
  const pending = idle.next();
  setTimeout(() => idle.close(), 100);
  assert.equal((await pending).done, true);
  // An AbortSignal stops a subscription too.
  const ac = new AbortController();
  const s2 = db.subscribe("alerts", { signal: ac.signal });
  const p2 = s2.next();
  ac.abort();
  assert.equal((await p2).done, true);
});

test("standing queries fire events on matching writes", async () => {
  const coll = unique("watch");
  await db.createCollection(coll, { multimodal: true });
  const agent = unique("watcher");
  await db.registerAgent({ name: agent }, { memory: false });
  const sq = await db.createStandingQuery(agent, "bread", coll, { text: "baking bread at home", threshold: 0.3 });
  assert.equal(sq.id, `${agent}.bread`);
  assert.equal(sq.dim, 384);
  assert.ok((await db.listStandingQueries(agent)).some((q) => q.id === sq.id));
  const sub = db.subscribe("standing_query", { fromOffset: (await db.topics()).nextOffset });
  try {
    await db.ingest(coll, [{ source: "recipes/bread.txt", content: "How to bake a loaf of bread at home: flour, water, yeast." }]);
    const ev = await nextWithin(sub, 20000);
    assert.equal(ev.topic, "standing_query");
    assert.equal(ev.kind, "standing_query.match");
    assert.ok((ev.subject + ev.dataJson).includes(sq.id), ev.subject + ev.dataJson);
  } finally {
    sub.close();
  }
  assert.equal((await db.deleteStandingQuery(sq.id)).id, sq.id);
  assert.deepEqual(await db.listStandingQueries(agent), []);
  await assert.rejects(() => db.createStandingQuery(agent, "x", coll, {}), TypeError);
});

const WORKFLOW = (name, coll, queue) => `
name: ${name}
description: find a note and report it
inputs: { query: "nothing" }
steps:
  - id: find
    search: { collection: ${coll}, text: "{{ inputs.query }}", top_k: 3 }
  - id: best
    needs: [find]
    filter: { items: "{{ steps.find.output.hits }}", limit: 1 }
  - id: report
    needs: [best]
    notify: { queue: ${queue}, message: "{{ steps.best.output.items[0].source }}" }
`;

test("workflows: apply, run, wait, list, cancel, delete", async () => {
  const [coll, queue, name] = [unique("wfnotes"), unique("wfq"), unique("wf")];
  await db.createCollection(coll, { multimodal: true });
  await db.ingest(coll, [
    { source: "notes/bananas.txt", content: "Bananas come from tropical plantations in Ecuador." },
    { source: "notes/pipes.txt", content: "Organ pipes are tuned by their length." },
  ]);
  await db.createQueue(queue);
  const wf = await db.applyWorkflow(WORKFLOW(name, coll, queue));
  assert.deepEqual([wf.name, wf.version, wf.changed, wf.steps.length], [name, 1, true, 3]);
  assert.equal((await db.applyWorkflow(WORKFLOW(name, coll, queue))).changed, false);
  assert.ok((await db.listWorkflows()).some((w) => w.name === name));
  assert.match((await db.getWorkflow(name, { version: 1 })).yaml.trim(), /^name:/);

  const run = await db.runWorkflow(name, { inputs: { query: "where do bananas come from" } });
  assert.equal(run.workflow, name);
  assert.match(run.inputs.query, /^where/);
  const done = await db.waitRun(run.id, { waitMs: 30000 });
  assert.equal(done.state, "succeeded", JSON.stringify([done.error, done.steps]));
  const find = done.steps.find((s) => s.id === "find");
  assert.equal(find.output.hits[0].source, "notes/bananas.txt");
  const msgs = await db.receiveMessages(queue, { waitMs: 2000 });
  assert.equal(msgs.length, 1);
  assert.equal(msgs[0].json().message, "notes/bananas.txt");
  assert.equal(msgs[0].json().run, run.id);
  assert.ok((await db.listRuns({ workflow: name })).some((r) => r.id === run.id));

  const slow = unique("slow");
  await db.applyWorkflow(`name: ${slow}\nsteps:\n  - id: nap\n    sleep: 30s\n`);
  const r = await db.runWorkflow(slow, { priority: 5 });
  assert.equal(r.priority, 5);
  const canceled = await db.cancelRun(r.id);
  assert.equal((await db.waitRun(canceled.id, { waitMs: 10000 })).state, "canceled");
  assert.deepEqual((await db.listRuns({ workflow: slow, state: "canceled" })).map((x) => x.id), [r.id]);
  assert.ok((await rejection(db.applyWorkflow("name: broken\nsteps: []\n"))) instanceof InvalidArgumentError);
  await db.deleteWorkflow(slow);
  assert.ok((await rejection(db.getWorkflow(slow))) instanceof NotFoundError);
});
