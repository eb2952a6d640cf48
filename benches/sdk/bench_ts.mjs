#!/usr/bin/env node
// TypeScript/Node side of benches/sdk/bench.sh: search round trips through the SDK
// (@agentdb/client, sdk/typescript/dist) and through raw gRPC (@grpc/grpc-js +
// @grpc/proto-loader on the SDK's copy of the protos, loaded with the same options), on
// the same server, collection and query vectors. Variants alternate A B / B A per round.
// One JSON line per measurement on stdout.
//
//   node bench_ts.mjs --grpc HOST:PORT --collection C --queries Q.json --k 10
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const sdkDir = path.resolve(here, "../../sdk/typescript");
const require = createRequire(path.join(sdkDir, "package.json"));
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const { AgentDB, PROTO_DIR, PROTO_FILES } = await import(pathToFileURL(path.join(sdkDir, "dist/index.js")).href);

function args() {
  const a = { k: 10, n: 2000, warmup: 200, concurrency: 8, seconds: 3, rounds: 2, case: "" };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i += 2) {
    const key = v[i].replace(/^--/, "");
    a[key] = typeof a[key] === "number" ? Number(v[i + 1]) : v[i + 1];
  }
  for (const r of ["grpc", "collection", "queries"]) if (!a[r]) throw new Error(`--${r} is required`);
  return a;
}

const a = args();
const queries = JSON.parse(readFileSync(a.queries, "utf8")).map((q) => Float32Array.from(q));
const coll = a.collection;
const k = a.k;

// ---- raw gRPC: the generated service client, as a user without the SDK would write it
// (same request as the SDK's defaults: payloads, no vectors; no deadline, no retries).
// Every client hands the caller (id, score, payload object), so the raw baseline parses
// the payload JSON as the SDK does.
const def = protoLoader.loadSync(PROTO_FILES, {
  includeDirs: [PROTO_DIR],
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  objects: true,
  oneofs: true,
});
const pkg = grpc.loadPackageDefinition(def);
const raw = new pkg.agentdb.v1.Items(a.grpc, grpc.credentials.createInsecure(), {
  "grpc.max_receive_message_length": 64 << 20,
  "grpc.max_send_message_length": 64 << 20,
});
const rawSearch = (q) =>
  new Promise((resolve, reject) => {
    raw.Search({ collection: coll, vector: { values: Array.from(q) }, topK: k, withPayload: true }, (err, r) => {
      if (err) reject(err);
      else resolve(r.hits.map((h) => [h.id, h.score, h.payloadJson ? JSON.parse(h.payloadJson) : {}]));
    });
  });

// ---- the SDK, default settings (30 s deadline, retries on).
const db = new AgentDB({ address: a.grpc });
const sdkSearch = async (q) => (await db.search(coll, { vector: q, topK: k })).map((h) => [h.id, h.score, h.payload]);

const fns = { raw: rawSearch, sdk: sdkSearch };

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

async function latency(fn) {
  for (let i = 0; i < a.warmup; i++) await fn(queries[i % queries.length]);
  const lat = new Array(a.n);
  for (let i = 0; i < a.n; i++) {
    const q = queries[i % queries.length];
    const t = process.hrtime.bigint();
    await fn(q);
    lat[i] = Number(process.hrtime.bigint() - t) / 1e6;
  }
  const mean = lat.reduce((x, y) => x + y, 0) / a.n;
  lat.sort((x, y) => x - y);
  return { n: a.n, p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), mean_ms: mean };
}

async function qps(fn) {
  await fn(queries[0]);
  let done = 0;
  const t0 = performance.now();
  const deadline = t0 + a.seconds * 1000;
  async function work(w) {
    let i = w;
    while (performance.now() < deadline) {
      await fn(queries[i % queries.length]);
      i += a.concurrency;
      done++;
    }
  }
  await Promise.all(Array.from({ length: a.concurrency }, (_, w) => work(w)));
  const el = (performance.now() - t0) / 1000;
  return { requests: done, seconds: el, qps: done / el };
}

const emit = (o) => process.stdout.write(JSON.stringify(o) + "\n");

const r0 = (await rawSearch(queries[0])).map((h) => h[0]);
const s0 = (await sdkSearch(queries[0])).map((h) => h[0]);
if (JSON.stringify(r0) !== JSON.stringify(s0)) console.error(`warning: raw ${r0.slice(0, 3)} vs sdk ${s0.slice(0, 3)}`);

const base = { lang: "typescript", case: a.case || `k=${k}`, k, dim: queries[0].length };
const clients = ["raw", "sdk"];
for (let r = 0; r < a.rounds; r++) {
  for (const c of r % 2 === 0 ? clients : [...clients].reverse()) {
    emit({ ...base, client: c, round: r, kind: "latency", ...(await latency(fns[c])) });
    emit({ ...base, client: c, round: r, kind: `qps_async${a.concurrency}`, ...(await qps(fns[c])) });
  }
}
raw.close();
db.close();
