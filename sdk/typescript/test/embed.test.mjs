// Embed: texts embedded by the encoder of a collection's space, the vectors the server
// stores for ingested text and searches with (real text encoder).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { AgentDB, InvalidArgumentError, NotFoundError, PermissionDeniedError } from "../dist/index.js";
import { rejection, startServer, unique } from "./helpers.mjs";

let server, db, coll;
const TEXTS = [
  "Knead the dough, let it rise and bake the bread in a hot oven.",
  "The red sports car raced down the motorway at high speed.",
  "Tomatoes grow best in full sun with regular watering.",
];

before(async () => {
  server = await startServer(["--set", "security.auth=api_key"]);
  db = new AgentDB({ address: server.addr, apiKey: server.adminKey });
  coll = unique("embed");
  await db.createCollection(coll, { multimodal: true });
  const report = await db.ingest(coll, TEXTS.map((content, i) => ({ source: `doc${i}.txt`, content })));
  assert.equal(report.ingested, TEXTS.length, JSON.stringify(report.failed));
});

after(async () => {
  db?.close();
  await server?.stop();
  server?.cleanup();
});

const close = (a, b, tol = 1e-4) => a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) <= tol);

test("embed: 384-d unit vectors of the text space's encoder, what a text search uses", async () => {
  const info = await db.getCollection(coll);
  const text = info.spaces.find((s) => s.name === "text");
  const emb = await db.embed(coll, TEXTS);
  assert.equal(emb.vectors.length, 3);
  assert.equal(emb.encoder, text.encoder);
  assert.match(emb.encoder, /^all-minilm/);
  for (const v of emb.vectors) {
    assert.ok(v instanceof Float32Array && v.length === 384);
    assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-3);
  }
  const again = await db.embed(coll, [TEXTS[1]], { space: "text" });
  assert.ok(close(again.vectors[0], emb.vectors[1], 1e-5));
  for (let i = 0; i < TEXTS.length; i++) {
    // A vector search with the embedding of a document's exact text finds that document first,
    const byVec = await db.search(coll, { vector: emb.vectors[i], space: "text", topK: 3, withVectors: true });
    assert.equal(byVec[0].payload.source, `doc${i}.txt`);
    assert.ok(byVec[0].score > 0.999, String(byVec[0].score));
    // its stored vector, and the one a dense text search uses (same hits, same scores).
    assert.ok(close(byVec[0].vector, emb.vectors[i]));
    const byText = await db.search(coll, { text: TEXTS[i], space: "text", topK: 3, mode: "dense", fusion: "weighted" });
    assert.deepEqual(byText.map((h) => h.id), byVec.map((h) => h.id));
    assert.ok(close(byText.map((h) => h.score), byVec.map((h) => h.score)));
  }
});

test("embed then upsert with the encoder id; another encoder is refused", async () => {
  const name = unique("embedup");
  await db.createCollection(name, { multimodal: true });
  const emb = await db.embed(name, TEXTS);
  await db.upsert(name, TEXTS.map((t, i) => ({ id: `d${i}`, vectors: { text: emb.vectors[i] }, encoders: { text: emb.encoder }, payload: { text: t } })));
  const hits = await db.search(name, { text: "baking bread at home", space: "text", topK: 1, mode: "dense" });
  assert.equal(hits[0].id, "d0");
  const e = await rejection(db.upsert(name, [{ id: "x", vectors: { text: emb.vectors[0] }, encoders: { text: "clip-vit-b-32@onnx" } }]));
  assert.ok(e instanceof InvalidArgumentError, String(e));
  await assert.rejects(() => db.upsert(name, [{ id: "y", vectors: { text: emb.vectors[0] }, encoders: { nope: emb.encoder } }]), TypeError);
});

test("embed errors", async () => {
  const raw = unique("raw");
  await db.createCollection(raw, { dim: 8 });
  assert.ok((await rejection(db.embed(unique("missing"), ["hello"]))) instanceof NotFoundError);
  assert.ok((await rejection(db.embed(coll, []))) instanceof InvalidArgumentError);
  assert.ok((await rejection(db.embed(coll, ["fine", "  "]))) instanceof InvalidArgumentError);
  assert.ok((await rejection(db.embed(coll, Array(1025).fill("x")))) instanceof InvalidArgumentError);
  assert.ok((await rejection(db.embed(raw, ["raw vectors have no text encoder"]))) instanceof InvalidArgumentError);
  assert.ok((await rejection(db.embed(coll, ["hello"], { space: "nope" }))) instanceof NotFoundError);
  assert.equal((await db.embed(coll, Array(1024).fill("x"))).vectors.length, 1024);
  // Read access is enough; a key scoped to another collection is refused.
  const key = await db.createKey(unique("reader"), "reader", { collections: [coll] });
  const reader = new AgentDB({ address: server.addr, apiKey: key.secret });
  try {
    assert.equal((await reader.embed(coll, ["readers may embed"])).vectors[0].length, 384);
    assert.ok((await rejection(reader.embed(raw, ["not this one"]))) instanceof PermissionDeniedError);
  } finally {
    reader.close();
  }
});
