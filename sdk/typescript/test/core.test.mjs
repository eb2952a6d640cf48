// Collections, items, vector search, filters, errors and server/security calls against a
// real server with API-key authentication on.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  AgentDB,
  AgentDBError,
  AlreadyExistsError,
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  Status,
  UnauthenticatedError,
} from "../dist/index.js";
import { rejection, startServer, unique } from "./helpers.mjs";

let server, db;

before(async () => {
  server = await startServer(["--set", "security.auth=api_key", "--set", "debug.allow_fault_injection=true"]);
  assert.ok(server.adminKey, "bootstrap admin key written");
  db = new AgentDB({ address: server.addr, apiKey: server.adminKey });
});

after(async () => {
  db?.close();
  await server?.stop();
  server?.cleanup();
});

test("collections: create, describe, list, flush, drop", async () => {
  const name = unique("coll");
  const info = await db.createCollection(name, { dim: 4, metric: "l2", keyword: { language: "french", searchable: ["title"] } });
  assert.equal(info.name, name);
  assert.equal(info.spaces.length, 1);
  assert.deepEqual([info.spaces[0].dim, info.spaces[0].metric], [4, "l2"]);
  assert.equal(info.keywordLanguage, "french");
  assert.deepEqual(info.keywordSearchable, ["title"]);
  assert.ok((await db.listCollections()).some((c) => c.name === name));
  const two = unique("spaces");
  const multi = await db.createCollection(two, {
    spaces: [{ name: "a", dim: 2 }, { name: "b", dim: 3, metric: "ip" }],
    keyword: false,
  });
  assert.deepEqual(multi.spaces.map((s) => [s.name, s.dim, s.metric]), [["a", 2, "cosine"], ["b", 3, "ip"]]);
  assert.equal(multi.keywordLanguage, "");
  const e = await rejection(db.createCollection(name, { dim: 4 }));
  assert.ok(e instanceof AlreadyExistsError && e instanceof AgentDBError, String(e));
  assert.equal(e.code, Status.ALREADY_EXISTS);
  await db.upsert(name, [{ id: "x", vector: [1, 2, 3, 4] }]);
  const flushed = await db.flush(name, { optimize: true });
  assert.equal(flushed.count, 1);
  assert.equal(flushed.unindexed, 0);
  await db.dropCollection(name);
  const gone = await rejection(db.getCollection(name));
  assert.ok(gone instanceof NotFoundError);
  assert.equal(gone.code, Status.NOT_FOUND);
  assert.match(gone.details, new RegExp(name));
  assert.equal(gone.codeName, "NOT_FOUND");
  await assert.rejects(() => db.createCollection(unique("none")), TypeError);
});

test("items: Float32Array round trip, payloads, get, count, delete", async () => {
  const name = unique("items");
  // Inner product: vectors are stored as given (cosine spaces normalise them).
  await db.createCollection(name, { dim: 3, metric: "ip" });
  const v = new Float32Array([0.1, -2.5, 3.25]);
  const up = await db.upsert(name, [
    { id: "a", vector: v, payload: { color: "red", price: 12, tags: ["new"] } },
    { id: "b", vector: [0, 1, 0], payload: { color: "blue", price: 5 } },
    { vector: [0, 0, 1], payload: { color: "red", price: 3 } },
  ]);
  assert.equal(up.ids.length, 3);
  assert.deepEqual(up.ids.slice(0, 2), ["a", "b"]);
  assert.match(up.ids[2], /^[0-9a-f-]{36}$/, "generated UUID");
  const got = await db.get(name, ["a", "nope", "b"], { withVectors: true });
  assert.deepEqual(got.map((x) => x.id), ["a", "b"], "missing ids are left out");
  const a = got[0];
  assert.ok(a.vector instanceof Float32Array);
  assert.deepEqual(Array.from(a.vector), Array.from(v), "float32 values survive exactly");
  assert.deepEqual(a.payload, { color: "red", price: 12, tags: ["new"] });
  const noVec = await db.get(name, ["a"]);
  assert.equal(noVec[0].vector, undefined);
  assert.equal(await db.count(name), 3);
  assert.equal(await db.count(name, 'color = "red"'), 2);
  assert.equal(await db.count(name, 'color = "red" and price >= 10'), 1);
  assert.equal(await db.delete(name, { filter: "price < 4" }), 1);
  assert.equal(await db.delete(name, ["b"]), 1);
  assert.equal(await db.count(name), 1);
  const bad = await rejection(db.upsert(name, [{ id: "c", vector: [1, 2] }]));
  assert.ok(bad instanceof InvalidArgumentError, String(bad));
  assert.match(bad.details, /dim|dimension|3/i);
  await assert.rejects(() => db.upsert(name, [{ id: "d", vector: [1, NaN, 0] }]), TypeError);
});

test("scroll: pages in id order, filter, payloads and vectors; iterItems walks every page", async () => {
  const name = unique("scroll");
  await db.createCollection(name, { dim: 2, metric: "ip" }); // ip: vectors stored as given
  const ids = Array.from({ length: 25 }, (_, i) => `k${String(i).padStart(2, "0")}`);
  // Written out of id order.
  const order = ids.map((_, i) => (i * 7) % 25);
  await db.upsert(name, order.map((i) => ({ id: ids[i], vector: [i, 1], payload: { n: i, even: i % 2 === 0 } })));

  const pages = [];
  for (let after = ""; ; ) {
    const page = await db.scroll(name, { after, limit: 10 });
    pages.push(page);
    if (!page.nextAfter) break;
    after = page.nextAfter;
  }
  assert.deepEqual(pages.map((p) => p.items.length), [10, 10, 5]);
  assert.deepEqual(pages.map((p) => p.nextAfter), ["k09", "k19", ""]);
  assert.deepEqual(pages.flatMap((p) => p.items.map((it) => it.id)), ids, "in id order, each once");
  assert.deepEqual(pages[0].items[0].payload, { n: 0, even: true });
  assert.equal(pages[0].items[0].vector, undefined);
  assert.deepEqual((await db.scroll(name, { after: "k22" })).items.map((it) => it.id), ["k23", "k24"]);
  assert.equal((await db.scroll(name)).items.length, 25, "the server's default page (100)");

  const even = await db.scroll(name, { filter: "even = true", limit: 5, withVectors: true, withPayload: false });
  assert.deepEqual(even.items.map((it) => it.id), ["k00", "k02", "k04", "k06", "k08"]);
  assert.equal(even.nextAfter, "k08");
  assert.deepEqual(even.items[1].payload, {});
  assert.ok(even.items[1].vector instanceof Float32Array);
  assert.deepEqual(Array.from(even.items[1].vector), [2, 1]);
  assert.deepEqual(Array.from(even.items[1].vectors.default), [2, 1]);

  const all = [];
  for await (const it of db.iterItems(name, { pageSize: 10 })) all.push(it.id);
  assert.deepEqual(all, ids);
  const late = [];
  for await (const it of db.iterItems(name, { filter: "n >= 20", pageSize: 2, withVectors: true })) late.push(it);
  assert.deepEqual(late.map((it) => it.id), ids.slice(20));
  assert.deepEqual(late.map((it) => it.payload.n), [20, 21, 22, 23, 24]);
  assert.deepEqual(late.map((it) => it.vector[0]), [20, 21, 22, 23, 24]);
  // Breaking out of the loop stops fetching pages.
  let first;
  for await (const it of db.iterItems(name, { pageSize: 1 })) {
    first = it.id;
    break;
  }
  assert.equal(first, "k00");
  for await (const it of db.iterItems(name, { after: "k24" })) assert.fail(`nothing after the last id, got ${it.id}`);

  assert.ok((await rejection(db.scroll(name, { limit: 1001 }))) instanceof InvalidArgumentError);
  assert.ok((await rejection(db.scroll(name, { filter: "n = = 1" }))) instanceof InvalidArgumentError);
  assert.ok((await rejection(db.scroll(unique("missing")))) instanceof NotFoundError);
  await assert.rejects(() => db.scroll(name, { limit: 0 }), TypeError);
});

test("search: vector, filters, top_k, vectors back, batch, explain, keyword", async () => {
  const name = unique("search");
  await db.createCollection(name, { dim: 2, keyword: { searchable: ["title"] } });
  const items = [];
  for (let i = 0; i < 20; i++) {
    const angle = (i / 20) * Math.PI;
    items.push({ id: `p${i}`, vector: [Math.cos(angle), Math.sin(angle)], payload: { i, even: i % 2 === 0, title: `item number ${i}` } });
  }
  await db.upsert(name, items);
  let hits = await db.search(name, { vector: new Float32Array([1, 0]), topK: 3 });
  assert.deepEqual(hits.map((h) => h.id), ["p0", "p1", "p2"]);
  assert.ok(Math.abs(hits[0].score - 1) < 1e-5);
  assert.ok(hits[0].score > hits[1].score && hits[1].score > hits[2].score);
  assert.equal(hits[1].payload.i, 1);
  assert.equal(hits[0].vector, undefined);
  hits = await db.search(name, { vector: [1, 0], topK: 3, filter: "even = false and i >= 5", withVectors: true, exact: true });
  assert.deepEqual(hits.map((h) => h.id), ["p5", "p7", "p9"]);
  assert.ok(hits[0].vector instanceof Float32Array && hits[0].vector.length === 2);
  assert.ok(Math.abs(hits[0].vector[0] - Math.cos(Math.PI / 4)) < 1e-6);
  hits = await db.search(name, { vector: [1, 0], topK: 2, withPayload: false });
  assert.deepEqual(hits[0].payload, {});
  const batch = await db.searchBatch(name, [[1, 0], new Float32Array([-1, 0])], { topK: 1, filter: "i < 19" });
  assert.deepEqual(batch.map((r) => r[0].id), ["p0", "p18"]);
  const kw = await db.search(name, { keyword: "title:13", topK: 3, explain: true });
  assert.equal(kw[0].id, "p13");
  assert.ok(kw[0].explain.length >= 1, "explain lists");
  assert.equal(kw[0].explain[0].list, "keyword");
  assert.equal(kw[0].explain[0].rank, 1);
  assert.ok(kw[0].explain[0].score > 0);
  const bad = await rejection(db.search(name, { vector: [1, 0], filter: "i >>> 3" }));
  assert.ok(bad instanceof InvalidArgumentError, String(bad));
  await assert.rejects(() => db.search(name, {}), TypeError);
  await assert.rejects(() => db.search(name, { vector: [1, 0], mode: "bogus" }), TypeError);
});

test("server, models and keys", async () => {
  const st = await db.status();
  assert.match(st.version, /^\d+\.\d+/);
  assert.ok(st.uptimeSeconds > 0 && st.rssBytes > 0);
  assert.equal(st.dataDir, server.dataDir);
  assert.ok(st.collections.length >= 1);
  const models = await db.listModels();
  assert.ok(models.some((m) => m.modality === "text" && m.dim === 384), JSON.stringify(models.map((m) => m.name)));
  assert.ok(Array.isArray(await db.alerts()));
  const prev = await db.setLogLevel("info");
  assert.equal(typeof prev, "string");
  await db.injectFault({ searchDelayMs: 0 });
  const cluster = await db.clusterStatus();
  assert.equal(cluster.enabled, false);

  const made = await db.createKey(unique("k"), "reader", { collections: ["only_this"] });
  assert.equal(made.key.role, "reader");
  assert.deepEqual(made.key.collections, ["only_this"]);
  assert.ok(made.secret.length > 20);
  assert.ok((await db.listKeys()).some((k) => k.id === made.key.id && !k.revoked));
  const reader = new AgentDB({ address: server.addr, apiKey: made.secret });
  try {
    const e = await rejection(reader.getCollection(unique("other")));
    assert.ok(e instanceof PermissionDeniedError || e instanceof NotFoundError, String(e));
    assert.equal((await db.revokeKey(made.key.id)).revoked, true);
    const after = await rejection(reader.listCollections());
    assert.ok(after instanceof UnauthenticatedError, String(after));
  } finally {
    reader.close();
  }
});
