// Ingest of folders with progress, text search with the real text encoder, image search
// by example, hybrid/keyword modes and explain (multimodal collection, real models).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, writeFileSync, readFileSync, rmSync } from "node:fs";
import * as path from "node:path";
import { AgentDB } from "../dist/index.js";
import { PHOTOS, startServer, tempDir, unique } from "./helpers.mjs";

let server, db, dir, coll;
const PICS = ["chelsea.png", "coffee.png", "rocket.jpg", "astronaut.png", "horse.png"];
const TEXTS = {
  "bananas.txt": "Bananas come from tropical plantations in Ecuador and are shipped green.",
  "pipes.md": "# Organ pipes\n\nOrgan pipes are tuned by changing their length.",
  "bread.txt": "Knead the dough, let it rise overnight, then bake the loaf of bread at 230 degrees.",
};

before(async () => {
  server = await startServer(["--set", "security.auth=api_key"]);
  db = new AgentDB({ address: server.addr, apiKey: server.adminKey });
  dir = tempDir("agentdb-ts-ingest-");
  mkdirSync(path.join(dir, "photos"));
  mkdirSync(path.join(dir, "notes", "deeper"), { recursive: true });
  for (const p of PICS) copyFileSync(path.join(PHOTOS, p), path.join(dir, "photos", p));
  writeFileSync(path.join(dir, "notes", "bananas.txt"), TEXTS["bananas.txt"]);
  writeFileSync(path.join(dir, "notes", "deeper", "pipes.md"), TEXTS["pipes.md"]);
  writeFileSync(path.join(dir, "notes", ".hidden.txt"), "never ingested");
  coll = unique("mm");
  const info = await db.createCollection(coll, { multimodal: true });
  assert.ok(info.spaces.some((s) => s.dim === 384 && s.encoder.length > 0), JSON.stringify(info.spaces));
});

after(async () => {
  db?.close();
  await server?.stop();
  server?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("ingest folders and named bytes with progress callbacks", async () => {
  const progress = [];
  const report = await db.ingest(
    coll,
    [path.join(dir, "photos"), path.join(dir, "notes"), { source: "mem/bread.txt", content: TEXTS["bread.txt"] }, path.join(dir, "missing.txt")],
    { onProgress: (p) => progress.push(p), concurrency: 3 },
  );
  const expected = PICS.length + 2 + 1;
  assert.equal(report.ingested, expected, JSON.stringify(report.failed));
  assert.equal(report.files, expected + 1);
  assert.equal(report.failed.length, 1, "the missing path fails, without stopping the rest");
  assert.match(report.failed[0].source, /missing\.txt$/);
  assert.match(report.failed[0].error, /ENOENT|no such file/i);
  assert.ok(report.items >= expected);
  // One callback per file, `done` counting up to `total`.
  assert.equal(progress.length, expected + 1);
  assert.deepEqual(progress.map((p) => p.done), Array.from({ length: expected + 1 }, (_, i) => i + 1));
  assert.ok(progress.every((p) => p.total === expected + 1));
  const sources = progress.map((p) => p.result.source);
  assert.ok(sources.includes(path.join(dir, "notes", "deeper", "pipes.md")), "folders are walked recursively");
  assert.ok(!sources.some((s) => s.includes(".hidden")), "hidden files are skipped");
  const byName = Object.fromEntries(report.results.map((r) => [path.basename(r.source), r]));
  assert.equal(byName["chelsea.png"].mediaType, "image/png");
  assert.equal(byName["rocket.jpg"].mediaType, "image/jpeg");
  assert.match(byName["bread.txt"].mediaType, /^text\//);
  assert.match(byName["chelsea.png"].contentSha256, /^[0-9a-f]{64}$/);
  assert.equal(await db.count(coll), report.items);

  // Again: the server recognises the content and skips it.
  const again = await db.ingest(coll, path.join(dir, "photos"));
  assert.equal(again.skipped, PICS.length);
  assert.equal(again.ingested, 0);
  assert.equal(await db.count(coll), report.items);

  // An unknown collection is a per-file failure (the server answers each file), not a throw.
  const none = await db.ingest(unique("nocoll"), [{ source: "x.txt", content: "hello" }]);
  assert.equal(none.ingested, 0);
  assert.deepEqual(none.failed.map((f) => f.source), ["x.txt"]);
  assert.match(none.failed[0].error, /not found/);
});

test("text search with the real text encoder", async () => {
  let hits = await db.search(coll, { text: "where do bananas grow", topK: 3 });
  assert.equal(hits[0].source, path.join(dir, "notes", "bananas.txt"));
  assert.equal(hits[0].modality, "text");
  assert.match(hits[0].part, /chunk/);
  assert.match(hits[0].payload.text, /Ecuador/);
  // Dense only: the words of the query are not in the note, the meaning is.
  hits = await db.search(coll, { text: "how to make a baguette at home", topK: 2, mode: "dense", explain: true });
  assert.equal(hits[0].source, "mem/bread.txt");
  assert.ok(hits[0].explain.length >= 1 && hits[0].explain.every((l) => l.list !== "keyword"), JSON.stringify(hits[0].explain));
  // Keyword only, and hybrid with explain naming both lists.
  hits = await db.search(coll, { keyword: "organ pipes", topK: 1, mode: "keyword", explain: true });
  assert.match(hits[0].source, /pipes\.md$/);
  assert.equal(hits[0].explain[0].list, "keyword");
  assert.ok(hits[0].explain[0].matched.length > 0);
  hits = await db.search(coll, { text: "organ pipes length", topK: 1, mode: "hybrid", explain: true, fusion: "rrf" });
  assert.match(hits[0].source, /pipes\.md$/);
  const lists = hits[0].explain.map((l) => l.list);
  assert.ok(lists.includes("keyword") && lists.some((l) => l !== "keyword"), JSON.stringify(lists));
  // A filter on the payload.
  hits = await db.search(coll, { text: "a photograph", topK: 10, filter: 'modality = "text"' });
  assert.ok(hits.length >= 1 && hits.every((h) => h.modality === "text"), JSON.stringify(hits.map((h) => h.modality)));
  // Text to image: the cat photo.
  hits = await db.search(coll, { text: "a cat", topK: 3, filter: 'modality = "image"' });
  assert.equal(path.basename(hits[0].source), "chelsea.png");
});

test("image search: the query photo comes first", async () => {
  for (const name of ["chelsea.png", "rocket.jpg"]) {
    const file = path.join(PHOTOS, name);
    const byPath = await db.search(coll, { image: file, topK: 3, explain: true });
    assert.equal(path.basename(byPath[0].source), name, JSON.stringify(byPath.map((h) => [h.source, h.score])));
    assert.equal(byPath[0].modality, "image");
    assert.ok(byPath[0].score > byPath[1].score);
    assert.ok(byPath[0].explain.length >= 1);
    const byBytes = await db.search(coll, { image: readFileSync(file), topK: 1 });
    assert.equal(byBytes[0].id, byPath[0].id);
  }
});
