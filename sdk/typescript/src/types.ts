import type { RetryPolicy } from "./retry.js";

/** A vector: a Float32Array (returned as one) or any array of numbers. */
export type VectorInput = Float32Array | ArrayLike<number>;
/** Bytes: a Buffer/Uint8Array, or a file path (read by the client). */
export type BytesInput = Uint8Array | string;
export type Payload = Record<string, unknown>;

export interface TlsOptions {
  /** PEM of the CA(s) to trust (a Buffer, PEM text or a file path); default AGENTDB_CA_CERT, else the system roots. */
  rootCerts?: Buffer | string;
  /** mTLS: client certificate chain and key (PEM, Buffer or path); default AGENTDB_CLIENT_CERT / AGENTDB_CLIENT_KEY. */
  certChain?: Buffer | string;
  privateKey?: Buffer | string;
  /** Verify the certificate for this name instead of the address's host. */
  serverName?: string;
}

export interface AgentDBOptions {
  /** `host:port`, `http://host:port` or `https://host:port` (TLS). Default AGENTDB_URL / AGENTDB_ADDRESS, else 127.0.0.1:7720. */
  address?: string;
  /** API key, sent as `authorization: Bearer KEY`. Default AGENTDB_API_KEY. */
  apiKey?: string;
  /** OIDC token (JWT), sent as `authorization: Bearer TOKEN`. Default AGENTDB_TOKEN. */
  token?: string;
  /** TLS: `true` (system roots or AGENTDB_CA_CERT) or options; also on for `https://` addresses. */
  tls?: boolean | TlsOptions;
  /** Deadline of each attempt of a unary call, in ms. Default 30000. */
  timeoutMs?: number;
  /** Retries: a number of retries (0 = none) or a policy. Default 4 retries with backoff. */
  retries?: number | RetryPolicy;
  /** Extra grpc-js channel options. */
  channelOptions?: Record<string, string | number>;
}

export interface CallOptions {
  /** Deadline of each attempt, in ms (overrides the client's `timeoutMs`). */
  timeoutMs?: number;
  /** Abort the call (and its retries). */
  signal?: AbortSignal;
}

// ------------------------------------------------------------------ collections

export type Metric = "cosine" | "ip" | "l2";

export interface SpaceSpec {
  /** e.g. "text"; "default" if empty. */
  name?: string;
  dim: number;
  metric?: Metric;
  /** FAISS index-factory string; "HNSW32" if empty. */
  index?: string;
  encoder?: string;
}

export interface SpaceInfo {
  name: string;
  dim: number;
  metric: Metric;
  index: string;
  encoder: string;
  indexKinds: string[];
}

export interface CollectionInfo {
  name: string;
  spaces: SpaceInfo[];
  count: number;
  unindexed: number;
  segments: number;
  deletedRows: number;
  diskBytes: number;
  lastLsn: number;
  shards: number;
  replicas: number;
  keywordLanguage: string;
  keywordSearchable: string[];
}

export interface CreateCollectionOptions extends CallOptions {
  /** One space ("default") of this dimension. */
  dim?: number;
  metric?: Metric;
  index?: string;
  /** Several named spaces. */
  spaces?: SpaceSpec[];
  /** The default spaces of the installed encoders (text, image, ...). */
  multimodal?: boolean;
  /** The BM25 keyword index (on by default): `false` turns it off, or its options. */
  keyword?: boolean | { language?: string; searchable?: string[] };
  shards?: number;
  replicas?: number;
}

// ------------------------------------------------------------------ items

export interface ItemInput {
  /** Generated (UUID v4) when absent. */
  id?: string;
  /** The vector of the collection's only space. */
  vector?: VectorInput;
  /** Vectors by space name. */
  vectors?: Record<string, VectorInput>;
  payload?: Payload;
  /**
   * The encoder that produced each vector, by space name ("" for `vector`), e.g.
   * `Embeddings.encoder`: the server refuses a vector whose space is bound to another.
   */
  encoders?: Record<string, string>;
}

export interface Item {
  id: string;
  /** Vectors by space name ("" or the space name), when asked for. */
  vectors: Record<string, Float32Array>;
  /** The vector when the item has exactly one. */
  vector: Float32Array | undefined;
  payload: Payload;
}

/** Texts embedded by the server (`AgentDB.embed`). */
export interface Embeddings {
  /** One vector per text, in request order. */
  vectors: Float32Array[];
  /** The id of the encoder that produced them (the model the space is bound to). */
  encoder: string;
}

export interface EmbedOptions extends CallOptions {
  /** The space whose encoder embeds the texts; "" (default) = the collection's text space. */
  space?: string;
}

export interface UpsertResult {
  /** Ids in request order. */
  ids: string[];
  /** Cluster mode: pass to later reads for read-your-writes. */
  consistencyToken: string;
}

export interface ScrollOptions extends CallOptions {
  /** Filter expression, e.g. `color = "red"` (within the caller's row policy). */
  filter?: string;
  /** Start after this id ("" = from the first): the previous page's `nextAfter`. */
  after?: string;
  /** Items per page: default 100, the server allows up to 1000. */
  limit?: number;
  /** Default true; false returns ids (and vectors) only. */
  withPayload?: boolean;
  withVectors?: boolean;
  consistencyToken?: string;
  allowStale?: boolean;
}

/** `AgentDB.iterItems`: the options of `scroll`, with `pageSize` the items fetched per call. */
export interface IterItemsOptions extends Omit<ScrollOptions, "limit"> {
  /** Items per call: default 100, at most 1000. */
  pageSize?: number;
}

/** One page of `AgentDB.scroll`. */
export interface ScrollPage {
  /** In id order. */
  items: Item[];
  /** Pass it as `after` for the next page; "" when this page reached the end. */
  nextAfter: string;
}

export type SearchMode = "dense" | "keyword" | "hybrid";
export type Fusion = "calibrated" | "weighted" | "rrf";

export interface SearchOptions extends CallOptions {
  /** Query vector. */
  vector?: VectorInput;
  /** Query text (embedded by the server's text encoder; hybrid with BM25 by default). */
  text?: string;
  /** Query image: bytes or a file path. */
  image?: BytesInput;
  /** Query recording (its speech is transcribed): bytes or a path. */
  audio?: BytesInput;
  /** Query video: bytes or a path. */
  video?: BytesInput;
  /** Keyword (BM25) query syntax: words, "phrases", field:word, +must, -must_not, word^2. */
  keyword?: string;
  space?: string;
  /** Default 10. */
  topK?: number;
  /** Filter expression, e.g. `color = "red" and price >= 10`. */
  filter?: string;
  /** Default true. */
  withPayload?: boolean;
  withVectors?: boolean;
  /** Per-list scores and ranks in each hit's `explain`. */
  explain?: boolean;
  mode?: SearchMode;
  fusion?: Fusion;
  /** Weight per ranked list, keyed "space/modality". */
  weights?: Record<string, number>;
  /** Weight per keyword field (text, transcript, ocr, labels, filename, title, tags, meta). */
  keywordFields?: Record<string, number>;
  exact?: boolean;
  ef?: number;
  nprobe?: number;
  consistencyToken?: string;
  allowStale?: boolean;
}

export interface ListScore {
  list: string;
  rank: number;
  score: number;
  matched: string[];
  snippet: string;
  contribution: number;
  coverage: number;
}

export interface Hit {
  id: string;
  score: number;
  payload: Payload;
  vector: Float32Array | undefined;
  /** Fused (text/image/...) queries: the ingested path or URI the hit came from. */
  source: string;
  modality: string;
  part: string;
  explain: ListScore[];
}

export interface SearchBatchOptions extends CallOptions {
  space?: string;
  topK?: number;
  filter?: string;
  withPayload?: boolean;
  withVectors?: boolean;
  exact?: boolean;
  ef?: number;
  nprobe?: number;
}

// ------------------------------------------------------------------ ingest

/** What to ingest: a file or folder path (folders are walked), or named bytes. */
export type IngestInput = string | { source: string; content: Uint8Array | string };

export interface IngestResult {
  source: string;
  /** "ingested", "skipped" (same content already there) or "failed". */
  status: "ingested" | "skipped" | "failed" | string;
  error: string;
  items: number;
  mediaType: string;
  contentSha256: string;
}

export interface IngestProgress {
  /** Files answered so far (this one included). */
  done: number;
  /** Files to ingest in all. */
  total: number;
  result: IngestResult;
}

export interface IngestOptions extends CallOptions {
  /** Called once per file as the server answers (or the client fails to read it). */
  onProgress?: (p: IngestProgress) => void;
  /** Files in flight at once. Default 4. */
  concurrency?: number;
}

export interface IngestReport {
  files: number;
  ingested: number;
  skipped: number;
  /** Text chunks, images, ... written. */
  items: number;
  failed: { source: string; error: string }[];
  results: IngestResult[];
  seconds: number;
}

// ------------------------------------------------------------------ server, models, security

export interface ModelInfo {
  name: string;
  version: string;
  modality: string;
  dim: number;
  sha256: string;
  source: string;
  encoder: string;
  loaded: boolean;
}

export interface ServerStatus {
  version: string;
  uptimeSeconds: number;
  rssBytes: number;
  dataDir: string;
  dataBytes: number;
  diskFreeBytes: number;
  diskTotalBytes: number;
  collections: CollectionInfo[];
  queriesPerSecond: number;
  upsertsPerSecond: number;
  growthBytesPerDay: number;
  daysUntilDiskFull: number;
  device: string;
  damaged: { name: string; reason: string }[];
}

export interface Alert {
  id: number;
  signal: string;
  state: string;
  startedUnixMs: number;
  resolvedUnixMs: number;
  value: number;
  baseline: number;
  z: number;
}

export type Role = "reader" | "writer" | "admin" | string;

export interface ApiKeyInfo {
  id: string;
  name: string;
  role: Role;
  collections: string[];
  createdUnix: number;
  revoked: boolean;
  rowFilter: string;
}

export interface CreatedKey {
  key: ApiKeyInfo;
  /** Shown once. */
  secret: string;
}

/** What the caller may do with one collection (`admin`: create and drop it). */
export interface CollectionPermissions {
  collection: string;
  read: boolean;
  write: boolean;
  admin: boolean;
}

/**
 * Who the caller is and what it may do (`AgentDB.whoAmI`). With authentication off the
 * caller is `local` and may do everything. The server still checks every request.
 */
export interface Identity {
  authEnabled: boolean;
  /** `key:<id>`, `oidc:<sub>`, `mtls:<name>`; `local` when authentication is off. */
  id: string;
  name: string;
  role: Role;
  /** The key's collection scope; empty = every collection. */
  collections: string[];
  /** The row-level policy applied to every read and write ("" = none). */
  rowFilter: string;
  /** Server-wide admin: create any collection, manage keys, see every agent and run. */
  canAdmin: boolean;
  /** One entry per collection asked about, in request order. */
  permissions: CollectionPermissions[];
}

export interface ClusterStatus {
  enabled: boolean;
  nodeId: string;
  leader: string;
  connected: boolean;
  nodes: { id: string; addr: string; alive: boolean; replicas: number; draining: boolean }[];
  collections: {
    name: string;
    shards: number;
    replicas: number;
    streamReplicas: number;
    shardStatus: { shard: number; lastSeq: number; replicas: { node: string; applied: number; alive: boolean }[] }[];
  }[];
}

// ------------------------------------------------------------------ agents

export interface AgentSkill {
  id: string;
  name: string;
  description: string;
  tags: string[];
}

export interface AgentCard {
  name: string;
  description?: string;
  version?: string;
  /** Skills: objects, or bare ids. */
  skills?: (Partial<AgentSkill> | string)[];
  capabilities?: string[];
  endpoint?: string;
}

export interface Agent {
  name: string;
  description: string;
  version: string;
  skills: AgentSkill[];
  capabilities: string[];
  endpoint: string;
  /** registered, active, suspended or retired. */
  state: string;
  healthy: boolean;
  registeredUnixMs: number;
  updatedUnixMs: number;
  lastHeartbeatUnixMs: number;
  heartbeatTimeoutMs: number;
  memoryCollection: string;
}

export interface RegisterAgentOptions extends CallOptions {
  heartbeatTimeoutMs?: number;
  /** Spaces of the agent's memory collection (default: the installed encoders'). */
  memorySpaces?: SpaceSpec[];
  /** `false`: no memory collection. Default true. */
  memory?: boolean;
}

// ------------------------------------------------------------------ events

export interface Event {
  type: "event";
  offset: number;
  topic: string;
  kind: string;
  subject: string;
  /** `dataJson` parsed (null when empty or not JSON). */
  data: unknown;
  dataJson: string;
  unixMs: number;
}

/** Events were evicted before the subscriber read them; delivery continues from `firstAvailableOffset`. */
export interface Lagged {
  type: "lagged";
  requestedOffset: number;
  firstAvailableOffset: number;
}

export interface PublishEventInput {
  topic: string;
  kind: string;
  subject?: string;
  /** Any JSON value (sent as `data_json`). */
  data?: unknown;
}

export interface TopicInfo {
  name: string;
  retained: number;
  firstOffset: number;
  lastOffset: number;
  clientPublishable: boolean;
}

export interface Topics {
  topics: TopicInfo[];
  nextOffset: number;
  ringCapacity: number;
}

export interface SubscribeOptions {
  /** Deliver events from this offset (default: only events published from now on). */
  fromOffset?: number;
  /** Stop the subscription. */
  signal?: AbortSignal;
  /** Resubscribe (from the next offset) after a transient failure. Default true. */
  reconnect?: boolean;
}

// ------------------------------------------------------------------ queues

export interface QueueStats {
  name: string;
  maxAttempts: number;
  visibilityTimeoutMs: number;
  maxMessages: number;
  messages: number;
  ready: number;
  inFlight: number;
  deadLetterQueue: string;
  oldestSentUnixMs: number;
  createdUnixMs: number;
}

export interface CreateQueueOptions extends CallOptions {
  /** Deliveries before a message moves to <name>.dlq; 0 = never; absent = server default. */
  maxAttempts?: number;
  visibilityTimeoutMs?: number;
  maxMessages?: number;
}

export interface QueueMessage {
  queue: string;
  id: string;
  body: Buffer;
  attributes: Record<string, string>;
  attempt: number;
  receipt: string;
  sentUnixMs: number;
  invisibleUntilUnixMs: number;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON. */
  json<T = unknown>(): T;
}

export interface ReceiveOptions extends CallOptions {
  /** Default 1, at most 100. */
  maxMessages?: number;
  visibilityTimeoutMs?: number;
  /** Long poll: wait up to this long (at most 20000 ms) for a message. */
  waitMs?: number;
}

// ------------------------------------------------------------------ standing queries

export interface StandingQuery {
  id: string;
  agent: string;
  name: string;
  collection: string;
  space: string;
  metric: string;
  text: string;
  filter: string;
  threshold: number;
  dim: number;
  createdUnixMs: number;
}

export interface CreateStandingQueryOptions extends CallOptions {
  text?: string;
  vector?: VectorInput;
  space?: string;
  filter?: string;
  threshold?: number;
}

// ------------------------------------------------------------------ workflows

export interface WorkflowInfo {
  name: string;
  version: number;
  description: string;
  yaml: string;
  sha256: string;
  appliedUnixMs: number;
  appliedBy: string;
  triggers: string[];
  steps: string[];
  versions: number;
}

export interface WorkflowStepRun {
  id: string;
  kind: string;
  state: string;
  attempts: number;
  error: string;
  attemptErrors: string[];
  /** `outputJson` parsed. */
  output: unknown;
  outputJson: string;
  startedUnixMs: number;
  finishedUnixMs: number;
  nextAttemptUnixMs: number;
}

export interface WorkflowRun {
  id: string;
  workflow: string;
  version: number;
  /** queued, running, succeeded, failed or canceled. */
  state: string;
  agent: string;
  priority: number;
  inputs: Record<string, unknown>;
  trigger: Record<string, unknown>;
  principal: string;
  steps: WorkflowStepRun[];
  error: string;
  createdUnixMs: number;
  startedUnixMs: number;
  finishedUnixMs: number;
}

export interface RunWorkflowOptions extends CallOptions {
  inputs?: Record<string, unknown>;
  version?: number;
  agent?: string;
  priority?: number;
}
