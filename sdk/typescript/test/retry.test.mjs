// Retries: a server with a request rate limit (20/s, burst 2) and a storage quota (3
// items per principal). Refusals carry `retry-after-ms`, which the client honours.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { AgentDB, ResourceExhaustedError, Status, UnavailableError, backoffMs, DEFAULT_RETRY, errorFor } from "../dist/index.js";
import { rejection, startServer, unique } from "./helpers.mjs";
import { Metadata } from "@grpc/grpc-js";

let server;
// Backoff alone (1-2 ms, 4 attempts) is far shorter than the bucket needs to refill
// (50 ms): the calls below succeed only because the client waits for the server's hint.
const PATIENT = { maxAttempts: 4, initialBackoffMs: 1, maxBackoffMs: 2 };

before(async () => {
  server = await startServer([
    "--set", "security.auth=api_key",
    "--set", "security.rate_limit_per_sec=20",
    "--set", "security.rate_limit_burst=2",
    "--set", "security.storage_quota_items=3",
  ]);
});

after(async () => {
  await server?.stop();
  server?.cleanup();
});

const settle = () => new Promise((r) => setTimeout(r, 250)); // refill the bucket

test("a rate-limit refusal is a ResourceExhaustedError with retryAfterMs (no retries)", async () => {
  const c = new AgentDB({ address: server.addr, apiKey: server.adminKey, retries: 0 });
  try {
    let err;
    for (let i = 0; i < 10 && !err; i++) {
      err = await c.listCollections().then(() => undefined, (e) => e);
    }
    assert.ok(err instanceof ResourceExhaustedError, String(err));
    assert.equal(err.code, Status.RESOURCE_EXHAUSTED);
    assert.match(err.details, /rate limit/);
    assert.ok(err.retryAfterMs > 0 && err.retryAfterMs <= 100, String(err.retryAfterMs));
    assert.equal(err.metadata.get("retry-after-ms")[0], String(err.retryAfterMs), "the hint comes from the trailing metadata");
  } finally {
    c.close();
  }
  await settle();
});

test("reads and writes are retried after the hint", async () => {
  const retries = [];
  const c = new AgentDB({ address: server.addr, apiKey: server.adminKey, retries: PATIENT, onRetry: (r) => retries.push(r) });
  try {
    const coll = unique("rl");
    await c.createCollection(coll, { dim: 2 });
    const t = Date.now();
    for (let i = 0; i < 10; i++) assert.equal(await c.count(coll), 0);
    // 11 calls at 20/s with a burst of 2 take at least ~0.4 s: they waited.
    assert.ok(Date.now() - t >= 350, `${Date.now() - t} ms`);
    assert.ok(retries.length >= 5, `${retries.length} retries`);
    for (const r of retries) {
      assert.ok(r.error instanceof ResourceExhaustedError);
      assert.ok(r.waitMs >= r.error.retryAfterMs, `waited ${r.waitMs} ms for a ${r.error.retryAfterMs} ms hint`);
    }
    // Writes with generated ids (not idempotent) are retried because the rate limiter
    // refused them before they ran: each is applied exactly once.
    const before = retries.length;
    const ids = [];
    for (let k = 0; k < 3; k++) ids.push((await c.upsert(coll, [{ vector: [1, k], payload: { k } }])).ids[0]);
    assert.ok(retries.length > before, "some writes were refused and retried");
    assert.ok(retries.slice(before).some((r) => r.method === "Items/Upsert"));
    assert.equal(await c.count(coll), 3);
    assert.equal(await c.delete(coll, ids), 3); // credits the storage quota back
  } finally {
    c.close();
  }
  await settle();
});

test("a storage-quota refusal is not retried", async () => {
  const admin = new AgentDB({ address: server.addr, apiKey: server.adminKey, retries: PATIENT });
  const coll = unique("quota");
  let secret;
  try {
    await admin.createCollection(coll, { dim: 2 });
    secret = (await admin.createKey(unique("w"), "writer")).secret;
  } finally {
    admin.close();
  }
  await settle();
  const retries = [];
  const w = new AgentDB({ address: server.addr, apiKey: secret, retries: PATIENT, onRetry: (r) => retries.push(r) });
  try {
    await w.upsert(coll, [1, 2, 3].map((k) => ({ id: `i${k}`, vector: [1, k] })));
    await settle();
    const e = await rejection(w.upsert(coll, [{ id: "i4", vector: [1, 4] }]));
    assert.ok(e instanceof ResourceExhaustedError, String(e));
    assert.match(e.details, /quota/);
    assert.equal(e.retryAfterMs, undefined);
    assert.equal(retries.filter((r) => /quota/.test(r.error.details)).length, 0, "never retried");
  } finally {
    w.close();
  }
  await settle();
});

test("ingest and subscribe streams are retried after a rate-limit refusal", async () => {
  const retries = [];
  const c = new AgentDB({ address: server.addr, apiKey: server.adminKey, retries: PATIENT, onRetry: (r) => retries.push(r) });
  const burner = new AgentDB({ address: server.addr, apiKey: server.adminKey, retries: 0 });
  try {
    const burn = () => Promise.allSettled(Array.from({ length: 6 }, () => burner.listCollections()));
    for (let i = 0; i < 5 && !retries.some((r) => r.method === "Items/Ingest"); i++) {
      await settle();
      await burn();
      const report = await c.ingest(unique("nocoll"), [{ source: "a.txt", content: "hello" }]);
      // The stream ran once admitted: the server answered the file (unknown collection).
      assert.equal(report.files, 1);
      assert.match(report.failed[0].error, /not found/);
    }
    const ingestRetry = retries.find((r) => r.method === "Items/Ingest");
    assert.ok(ingestRetry, "the ingest stream was refused and retried");
    assert.ok(ingestRetry.error instanceof ResourceExhaustedError && ingestRetry.waitMs >= ingestRetry.error.retryAfterMs);

    for (let i = 0; i < 5 && !retries.some((r) => r.method === "Events/Subscribe"); i++) {
      await settle();
      const from = (await c.topics()).nextOffset;
      await burn();
      const sub = c.subscribe("alerts", { fromOffset: from });
      const next = sub.next();
      await settle();
      const off = await c.publish("alerts", "sdk.retry", { data: { i } });
      const ev = (await next).value;
      assert.equal(ev.offset, off);
      sub.close();
    }
    assert.ok(retries.some((r) => r.method === "Events/Subscribe"), "the subscription was refused and retried");
  } finally {
    c.close();
    burner.close();
  }
  await settle();
});

test("reads are retried on UNAVAILABLE with growing backoff, then the error is thrown", async () => {
  // A port with nothing listening.
  const port = await new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
  const retries = [];
  const c = new AgentDB({
    address: `127.0.0.1:${port}`,
    retries: { maxAttempts: 3, initialBackoffMs: 20, multiplier: 4, jitter: 0 },
    timeoutMs: 3000,
    onRetry: (r) => retries.push(r),
  });
  try {
    const e = await rejection(c.listCollections());
    assert.ok(e instanceof UnavailableError, String(e));
    assert.deepEqual(retries.map((r) => r.waitMs), [20, 80]);
  } finally {
    c.close();
  }
});

test("backoff: exponential, capped, jittered, never below the hint", () => {
  const p = { ...DEFAULT_RETRY, initialBackoffMs: 100, maxBackoffMs: 1000, multiplier: 2, jitter: 0.5, maxRetryAfterMs: 5000 };
  const plain = errorFor(Status.UNAVAILABLE, "down");
  assert.equal(backoffMs(p, 1, plain, () => 0.5), 100);
  assert.equal(backoffMs(p, 3, plain, () => 0.5), 400);
  assert.equal(backoffMs(p, 10, plain, () => 0.5), 1000, "capped");
  assert.equal(backoffMs(p, 1, plain, () => 0), 50, "jitter down");
  assert.equal(backoffMs(p, 1, plain, () => 1), 150, "jitter up");
  const md = new Metadata();
  md.set("retry-after-ms", "700");
  const hinted = errorFor(Status.RESOURCE_EXHAUSTED, "rate limit", md);
  assert.equal(hinted.retryAfterMs, 700);
  assert.equal(backoffMs(p, 1, hinted, () => 0), 700);
  const long = new Metadata();
  long.set("retry-after-ms", "60000");
  assert.equal(backoffMs(p, 1, errorFor(Status.RESOURCE_EXHAUSTED, "x", long), () => 0), undefined, "too long: give up");
  assert.equal(errorFor(Status.RESOURCE_EXHAUSTED, "retry after 42 ms").retryAfterMs, 42, "hint from the message");
});
