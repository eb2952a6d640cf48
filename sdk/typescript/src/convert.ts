// Conversions between the wire messages (proto-loader objects, camelCase) and the SDK's types.
import type * as T from "./types.js";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Pb = any;

export function toValues(v: T.VectorInput, what = "vector"): number[] {
  if (v == null || typeof (v as ArrayLike<number>).length !== "number") {
    throw new TypeError(`${what} must be a Float32Array or an array of numbers`);
  }
  const out = Array.from(v as ArrayLike<number>);
  for (const x of out) {
    if (typeof x !== "number" || !Number.isFinite(x)) throw new TypeError(`${what} must hold finite numbers`);
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A vector as the wire's `Vector.packed` (little-endian float32 bytes): one buffer
 * instead of a protobuf element per number. */
export function toVector(v: T.VectorInput, what?: string): Pb {
  const f = Float32Array.from(toValues(v, what));
  if (LITTLE_ENDIAN) return { packed: Buffer.from(f.buffer, f.byteOffset, f.byteLength) };
  const buf = Buffer.alloc(f.length * 4);
  f.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return { packed: buf };
}

export function fromVector(v: Pb): Float32Array | undefined {
  if (!v || !Array.isArray(v.values) || v.values.length === 0) return undefined;
  return Float32Array.from(v.values as number[]);
}

export function parseJson(s: string | undefined, fallback: unknown = null): unknown {
  if (!s) return fallback;
  try {
    return JSON.parse(s);
  } catch {
    return fallback;
  }
}

export function payloadJson(p: T.Payload | undefined): string {
  if (p === undefined || p === null) return "";
  if (typeof p !== "object" || Array.isArray(p)) throw new TypeError("payload must be a plain object");
  return JSON.stringify(p);
}

function payload(s: string): T.Payload {
  const v = parseJson(s, {});
  return v && typeof v === "object" && !Array.isArray(v) ? (v as T.Payload) : {};
}

const METRIC_TO_PB: Record<string, string> = {
  cosine: "METRIC_COSINE",
  ip: "METRIC_INNER_PRODUCT",
  inner_product: "METRIC_INNER_PRODUCT",
  l2: "METRIC_L2",
};
const METRIC_FROM_PB: Record<string, T.Metric> = {
  METRIC_UNSPECIFIED: "cosine",
  METRIC_COSINE: "cosine",
  METRIC_INNER_PRODUCT: "ip",
  METRIC_L2: "l2",
};

export function metricToPb(m: string | undefined): string {
  if (m === undefined || m === "") return "METRIC_UNSPECIFIED";
  const v = METRIC_TO_PB[m.toLowerCase()];
  if (!v) throw new TypeError(`unknown metric '${m}' (cosine, ip or l2)`);
  return v;
}

export function spaceSpecToPb(s: T.SpaceSpec): Pb {
  return { name: s.name ?? "", dim: s.dim, metric: metricToPb(s.metric), index: s.index ?? "", encoder: s.encoder ?? "" };
}

export function collectionInfo(c: Pb): T.CollectionInfo {
  return {
    name: c.name,
    spaces: (c.spaces ?? []).map((s: Pb) => ({
      name: s.spec?.name ?? "",
      dim: s.spec?.dim ?? 0,
      metric: METRIC_FROM_PB[s.spec?.metric] ?? "cosine",
      index: s.spec?.index ?? "",
      encoder: s.spec?.encoder ?? "",
      indexKinds: s.indexKinds ?? [],
    })),
    count: c.count,
    unindexed: c.unindexed,
    segments: c.segments,
    deletedRows: c.deletedRows,
    diskBytes: c.diskBytes,
    lastLsn: c.lastLsn,
    shards: c.shards,
    replicas: c.replicas,
    keywordLanguage: c.keywordLanguage,
    keywordSearchable: c.keywordSearchable ?? [],
  };
}

export function item(i: Pb): T.Item {
  const vectors: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(i.vectors ?? {})) {
    const f = fromVector(v);
    if (f) vectors[k] = f;
  }
  const all = Object.values(vectors);
  return { id: i.id, vectors, vector: all.length === 1 ? all[0] : undefined, payload: payload(i.payloadJson) };
}

export function hit(h: Pb): T.Hit {
  return {
    id: h.id,
    score: h.score,
    payload: payload(h.payloadJson),
    vector: fromVector(h.vector),
    source: h.source,
    modality: h.modality,
    part: h.part,
    explain: (h.explain ?? []).map((l: Pb) => ({
      list: l.list,
      rank: l.rank,
      score: l.score,
      matched: l.matched ?? [],
      snippet: l.snippet,
      contribution: l.contribution,
      coverage: l.coverage,
    })),
  };
}

export function ingestResult(r: Pb): T.IngestResult {
  return {
    source: r.source,
    status: r.status,
    error: r.error,
    items: r.items,
    mediaType: r.mediaType,
    contentSha256: r.contentSha256,
  };
}

export function apiKey(k: Pb): T.ApiKeyInfo {
  return {
    id: k.id,
    name: k.name,
    role: k.role,
    collections: k.collections ?? [],
    createdUnix: k.createdUnix,
    revoked: k.revoked,
    rowFilter: k.rowFilter,
  };
}

export function identity(r: Pb): T.Identity {
  return {
    authEnabled: r.authEnabled,
    id: r.id,
    name: r.name,
    role: r.role,
    collections: r.collections ?? [],
    rowFilter: r.rowFilter,
    canAdmin: r.canAdmin,
    permissions: (r.permissions ?? []).map((p: Pb) => ({ collection: p.collection, read: p.read, write: p.write, admin: p.admin })),
  };
}

export function agent(a: Pb): T.Agent {
  const c = a.card ?? {};
  return {
    name: c.name ?? "",
    description: c.description ?? "",
    version: c.version ?? "",
    skills: (c.skills ?? []).map((s: Pb) => ({ id: s.id, name: s.name, description: s.description, tags: s.tags ?? [] })),
    capabilities: c.capabilities ?? [],
    endpoint: c.endpoint ?? "",
    state: a.state,
    healthy: a.healthy,
    registeredUnixMs: a.registeredUnixMs,
    updatedUnixMs: a.updatedUnixMs,
    lastHeartbeatUnixMs: a.lastHeartbeatUnixMs,
    heartbeatTimeoutMs: a.heartbeatTimeoutMs,
    memoryCollection: a.memoryCollection,
  };
}

export function agentCard(c: T.AgentCard): Pb {
  return {
    name: c.name,
    description: c.description ?? "",
    version: c.version ?? "",
    skills: (c.skills ?? []).map((s) =>
      typeof s === "string"
        ? { id: s, name: s, description: "", tags: [] }
        : { id: s.id ?? s.name ?? "", name: s.name ?? s.id ?? "", description: s.description ?? "", tags: s.tags ?? [] },
    ),
    capabilities: c.capabilities ?? [],
    endpoint: c.endpoint ?? "",
  };
}

export function event(e: Pb): T.Event {
  return {
    type: "event",
    offset: e.offset,
    topic: e.topic,
    kind: e.kind,
    subject: e.subject,
    data: parseJson(e.dataJson, null),
    dataJson: e.dataJson,
    unixMs: e.unixMs,
  };
}

export function queueStats(q: Pb): T.QueueStats {
  return {
    name: q.name,
    maxAttempts: q.maxAttempts,
    visibilityTimeoutMs: q.visibilityTimeoutMs,
    maxMessages: q.maxMessages,
    messages: q.messages,
    ready: q.ready,
    inFlight: q.inFlight,
    deadLetterQueue: q.deadLetterQueue,
    oldestSentUnixMs: q.oldestSentUnixMs,
    createdUnixMs: q.createdUnixMs,
  };
}

export function queueMessage(queue: string, m: Pb): T.QueueMessage {
  const body: Buffer = Buffer.isBuffer(m.body) ? m.body : Buffer.from(m.body ?? []);
  return {
    queue,
    id: m.id,
    body,
    attributes: { ...(m.attributes ?? {}) },
    attempt: m.attempt,
    receipt: m.receipt,
    sentUnixMs: m.sentUnixMs,
    invisibleUntilUnixMs: m.invisibleUntilUnixMs,
    text: () => body.toString("utf8"),
    json: <V = unknown>() => JSON.parse(body.toString("utf8")) as V,
  };
}

export function standingQuery(q: Pb): T.StandingQuery {
  return {
    id: q.id,
    agent: q.agent,
    name: q.name,
    collection: q.collection,
    space: q.space,
    metric: q.metric,
    text: q.text,
    filter: q.filter,
    threshold: q.threshold,
    dim: q.dim,
    createdUnixMs: q.createdUnixMs,
  };
}

export function workflowInfo(w: Pb): T.WorkflowInfo {
  return {
    name: w.name,
    version: w.version,
    description: w.description,
    yaml: w.yaml,
    sha256: w.sha256,
    appliedUnixMs: w.appliedUnixMs,
    appliedBy: w.appliedBy,
    triggers: w.triggers ?? [],
    steps: w.steps ?? [],
    versions: w.versions,
  };
}

function obj(s: string): Record<string, unknown> {
  const v = parseJson(s, {});
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function workflowRun(r: Pb): T.WorkflowRun {
  return {
    id: r.id,
    workflow: r.workflow,
    version: r.version,
    state: r.state,
    agent: r.agent,
    priority: r.priority,
    inputs: obj(r.inputsJson),
    trigger: obj(r.triggerJson),
    principal: r.principal,
    steps: (r.steps ?? []).map((s: Pb) => ({
      id: s.id,
      kind: s.kind,
      state: s.state,
      attempts: s.attempts,
      error: s.error,
      attemptErrors: s.attemptErrors ?? [],
      output: parseJson(s.outputJson, null),
      outputJson: s.outputJson,
      startedUnixMs: s.startedUnixMs,
      finishedUnixMs: s.finishedUnixMs,
      nextAttemptUnixMs: s.nextAttemptUnixMs,
    })),
    error: r.error,
    createdUnixMs: r.createdUnixMs,
    startedUnixMs: r.startedUnixMs,
    finishedUnixMs: r.finishedUnixMs,
  };
}

export function serverStatus(s: Pb): T.ServerStatus {
  return {
    version: s.version,
    uptimeSeconds: s.uptimeSeconds,
    rssBytes: s.rssBytes,
    dataDir: s.dataDir,
    dataBytes: s.dataBytes,
    diskFreeBytes: s.diskFreeBytes,
    diskTotalBytes: s.diskTotalBytes,
    collections: (s.collections ?? []).map(collectionInfo),
    queriesPerSecond: s.queriesPerSecond,
    upsertsPerSecond: s.upsertsPerSecond,
    growthBytesPerDay: s.growthBytesPerDay,
    daysUntilDiskFull: s.daysUntilDiskFull,
    device: s.device,
    damaged: (s.damaged ?? []).map((d: Pb) => ({ name: d.name, reason: d.reason })),
  };
}
