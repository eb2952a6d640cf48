import * as grpc from "@grpc/grpc-js";
import { readFile, readdir, stat } from "node:fs/promises";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import * as C from "./convert.js";
import { AgentDBError, Status, errorFor, toAgentDBError } from "./errors.js";
import { services, type ServiceName } from "./proto.js";
import {
  backoffMs,
  isRetryable,
  refusedBeforeApplying,
  resolveRetry,
  sleep,
  type CallKind,
  type ResolvedRetryPolicy,
} from "./retry.js";
import type * as T from "./types.js";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Pb = any;

/** Files larger than this are reported as failed without sending them (the server's ingest limit). */
export const MAX_INGEST_FILE = 32 << 20;
export const DEFAULT_ADDRESS = "127.0.0.1:7720";

/** Called before each retry (for logging and tests). */
export type RetryListener = (info: { method: string; attempt: number; error: AgentDBError; waitMs: number }) => void;

export interface ClientOptions extends T.AgentDBOptions {
  onRetry?: RetryListener;
}

function pem(v: Buffer | string | undefined): Buffer | undefined {
  if (v === undefined) return undefined;
  if (Buffer.isBuffer(v)) return v;
  if (v.includes("-----BEGIN")) return Buffer.from(v);
  return readFileSync(v);
}

function env(name: string): string | undefined {
  const v = process.env[name];
  return v && v.trim() !== "" ? v.trim() : undefined;
}

async function bytes(v: T.BytesInput, what: string): Promise<Buffer | Uint8Array> {
  if (typeof v === "string") return readFile(v);
  if (v instanceof Uint8Array) return v;
  throw new TypeError(`${what} must be bytes (Buffer/Uint8Array) or a file path`);
}

const MODES: Record<string, string> = {
  dense: "RETRIEVAL_DENSE",
  keyword: "RETRIEVAL_KEYWORD",
  hybrid: "RETRIEVAL_HYBRID",
};
const FUSIONS: Record<string, string> = {
  calibrated: "FUSION_CALIBRATED",
  weighted: "FUSION_WEIGHTED",
  rrf: "FUSION_RRF",
};

/** Events from `subscribe`: an async iterator of `Event` and `Lagged`, closed by `close()` or `break`. */
export class Subscription implements AsyncIterableIterator<T.Event | T.Lagged> {
  /** @internal */
  current: grpc.ClientReadableStream<Pb> | undefined;
  /** @internal */
  closed = false;
  private gen: AsyncGenerator<T.Event | T.Lagged, void, undefined>;

  /** @internal */
  constructor(make: (self: Subscription) => AsyncGenerator<T.Event | T.Lagged, void, undefined>) {
    this.gen = make(this);
  }

  next(): Promise<IteratorResult<T.Event | T.Lagged, void>> {
    return this.gen.next();
  }

  async return(): Promise<IteratorResult<T.Event | T.Lagged, void>> {
    this.close();
    return this.gen.return(undefined);
  }

  /** Stop the subscription; a pending `next()` resolves as done. */
  close(): void {
    this.closed = true;
    this.current?.cancel();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

interface PendingFile {
  source: string;
  path?: string;
  content?: Uint8Array;
}

/**
 * The AgentDB client: one gRPC channel shared by every service, async methods, typed
 * results and errors, retries with backoff that honour the server's `retry-after-ms`.
 *
 * ```ts
 * const db = new AgentDB({ address: "127.0.0.1:7720", apiKey: process.env.AGENTDB_API_KEY });
 * ```
 */
export class AgentDB {
  readonly address: string;
  readonly tls: boolean;
  readonly timeoutMs: number;
  readonly retry: ResolvedRetryPolicy;
  private readonly bearer: string | undefined;
  private readonly clients: Record<ServiceName, grpc.Client & Record<string, Pb>>;
  private readonly onRetry: RetryListener | undefined;

  constructor(options: ClientOptions | string = {}) {
    const o: ClientOptions = typeof options === "string" ? { address: options } : options;
    let address = o.address ?? env("AGENTDB_URL") ?? env("AGENTDB_ADDRESS") ?? DEFAULT_ADDRESS;
    let tls = o.tls !== undefined && o.tls !== false;
    if (address.startsWith("https://")) {
      tls = true;
      address = address.slice("https://".length);
    } else if (address.startsWith("http://")) {
      if (tls) throw new TypeError("an http:// address with tls options: use https://");
      address = address.slice("http://".length);
    }
    address = address.replace(/\/+$/, "");
    this.address = address;
    this.tls = tls;
    if (o.apiKey !== undefined && o.token !== undefined) {
      throw new TypeError("give apiKey or token, not both (both travel as `authorization: Bearer`)");
    }
    const secret =
      o.apiKey ?? o.token ?? (o.apiKey === undefined && o.token === undefined ? env("AGENTDB_API_KEY") ?? env("AGENTDB_TOKEN") : undefined);
    this.bearer = secret ? `Bearer ${secret.trim()}` : undefined;
    this.timeoutMs = o.timeoutMs ?? 30000;
    this.retry = resolveRetry(o.retries);
    this.onRetry = o.onRetry;

    const channelOptions: Record<string, string | number> = {
      "grpc.max_receive_message_length": 64 << 20,
      "grpc.max_send_message_length": 64 << 20,
      ...(o.channelOptions ?? {}),
    };
    let creds: grpc.ChannelCredentials;
    if (tls) {
      const t: T.TlsOptions = typeof o.tls === "object" ? o.tls : {};
      const root = pem(t.rootCerts ?? env("AGENTDB_CA_CERT"));
      const cert = pem(t.certChain ?? env("AGENTDB_CLIENT_CERT"));
      const key = pem(t.privateKey ?? env("AGENTDB_CLIENT_KEY"));
      if ((cert === undefined) !== (key === undefined)) throw new TypeError("tls.certChain and tls.privateKey go together");
      creds = grpc.credentials.createSsl(root ?? null, key ?? null, cert ?? null);
      if (t.serverName) {
        channelOptions["grpc.ssl_target_name_override"] = t.serverName;
        channelOptions["grpc.default_authority"] = t.serverName;
      }
    } else {
      creds = grpc.credentials.createInsecure();
    }
    const ctors = services();
    const first = new ctors.Collections(address, creds, channelOptions);
    const channel = first.getChannel();
    const clients = { Collections: first } as unknown as Record<ServiceName, grpc.Client>;
    for (const [name, ctor] of Object.entries(ctors) as [ServiceName, grpc.ServiceClientConstructor][]) {
      if (name !== "Collections") clients[name] = new ctor(address, creds, { ...channelOptions, channelOverride: channel });
    }
    this.clients = clients as Record<ServiceName, grpc.Client & Record<string, Pb>>;
  }

  /** Close the channel (pending calls are cancelled). */
  close(): void {
    this.clients.Collections.close();
  }

  /** Wait until the channel is connected (or throw UnavailableError after `timeoutMs`). */
  async waitForReady(timeoutMs = this.timeoutMs): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.clients.Collections.waitForReady(new Date(Date.now() + timeoutMs), (e) =>
        e ? reject(errorFor(Status.UNAVAILABLE, e.message)) : resolve(),
      ),
    );
  }

  private metadata(): grpc.Metadata {
    const md = new grpc.Metadata();
    if (this.bearer) md.set("authorization", this.bearer);
    return md;
  }

  /** One unary call with retries. */
  private async call<R = Pb>(svc: ServiceName, method: string, req: Pb, kind: CallKind, opts: T.CallOptions = {}): Promise<R> {
    const client = this.clients[svc];
    const fn = client[method] as (...a: Pb[]) => grpc.ClientUnaryCall;
    const name = `${svc}/${method}`;
    for (let attempt = 1; ; attempt++) {
      try {
        return await new Promise<R>((resolve, reject) => {
          if (opts.signal?.aborted) return reject(errorFor(Status.CANCELLED, "aborted", undefined, name));
          const deadline = new Date(Date.now() + (opts.timeoutMs ?? this.timeoutMs));
          const call = fn.call(client, req, this.metadata(), { deadline }, (err: Pb, res: R) => {
            opts.signal?.removeEventListener("abort", onAbort);
            if (err) reject(err);
            else resolve(res);
          });
          const onAbort = () => call.cancel();
          opts.signal?.addEventListener("abort", onAbort, { once: true });
        });
      } catch (e) {
        const err = toAgentDBError(e, name);
        if (attempt >= this.retry.maxAttempts || opts.signal?.aborted || !isRetryable(err, kind)) throw err;
        const wait = backoffMs(this.retry, attempt, err);
        if (wait === undefined) throw err;
        this.onRetry?.({ method: name, attempt, error: err, waitMs: wait });
        await sleep(wait, opts.signal);
      }
    }
  }

  // ================================================================ collections

  /** Create a collection: `{ dim }` (one space), `{ spaces }`, or `{ multimodal: true }`. */
  async createCollection(name: string, opts: T.CreateCollectionOptions = {}): Promise<T.CollectionInfo> {
    const spaces: Pb[] = (opts.spaces ?? []).map(C.spaceSpecToPb);
    if (opts.dim !== undefined) {
      spaces.unshift(C.spaceSpecToPb({ name: "", dim: opts.dim, metric: opts.metric, index: opts.index }));
    }
    if (spaces.length === 0 && !opts.multimodal) {
      throw new TypeError("give dim, spaces or multimodal: true");
    }
    let keyword: Pb = undefined;
    if (opts.keyword === false) keyword = { disabled: true };
    else if (typeof opts.keyword === "object") {
      keyword = { disabled: false, language: opts.keyword.language ?? "", searchable: opts.keyword.searchable ?? [] };
    }
    const r = await this.call(
      "Collections",
      "Create",
      { name, spaces, multimodal: !!opts.multimodal, keyword, shards: opts.shards ?? 0, replicas: opts.replicas ?? 0 },
      "write",
      opts,
    );
    return C.collectionInfo(r.info);
  }

  async listCollections(opts?: T.CallOptions): Promise<T.CollectionInfo[]> {
    const r = await this.call("Collections", "List", {}, "read", opts);
    return (r.collections ?? []).map(C.collectionInfo);
  }

  /** Describe a collection (NotFoundError when it does not exist). */
  async getCollection(name: string, opts?: T.CallOptions): Promise<T.CollectionInfo> {
    const r = await this.call("Collections", "Describe", { name }, "read", opts);
    return C.collectionInfo(r.info);
  }

  async dropCollection(name: string, opts?: T.CallOptions): Promise<void> {
    await this.call("Collections", "Drop", { name }, "write", opts);
  }

  /** Seal buffered writes into indexed segments (and merge segments with `optimize`). */
  async flush(collection: string, opts: T.CallOptions & { optimize?: boolean } = {}): Promise<T.CollectionInfo> {
    const r = await this.call("Collections", "Flush", { collection, optimize: !!opts.optimize }, "write", opts);
    return C.collectionInfo(r.info);
  }

  // ================================================================ items

  /** Insert or replace items; returns their ids (generated where absent) in order. */
  async upsert(collection: string, items: T.ItemInput[], opts?: T.CallOptions): Promise<T.UpsertResult> {
    if (!Array.isArray(items)) throw new TypeError("items must be an array");
    const pb = items.map((it, i) => {
      const vectors: Record<string, Pb> = {};
      if (it.vector !== undefined) vectors[""] = C.toVector(it.vector, `items[${i}].vector`);
      for (const [space, v] of Object.entries(it.vectors ?? {})) vectors[space] = C.toVector(v, `items[${i}].vectors.${space}`);
      for (const [space, enc] of Object.entries(it.encoders ?? {})) {
        if (!vectors[space]) throw new TypeError(`items[${i}].encoders.${space}: no vector for that space`);
        vectors[space].encoder = enc;
      }
      return { id: it.id ?? "", vectors, payloadJson: C.payloadJson(it.payload) };
    });
    const r = await this.call("Items", "Upsert", { collection, items: pb }, "write", opts);
    return { ids: r.ids ?? [], consistencyToken: r.consistencyToken ?? "" };
  }

  /**
   * Embed `texts` (at most 1024, none empty) with the encoder bound to the collection's
   * `space` ("" = its text space): the vectors the server stores for ingested text and
   * searches with for text queries. Upsert them with `encoders: { [space]: encoder }`.
   */
  async embed(collection: string, texts: string[], opts: T.EmbedOptions = {}): Promise<T.Embeddings> {
    if (!Array.isArray(texts)) throw new TypeError("texts must be an array of strings");
    const r = await this.call("Items", "Embed", { collection, space: opts.space ?? "", texts }, "read", opts);
    const vs: Pb[] = r.vectors ?? [];
    return {
      vectors: vs.map((v) => Float32Array.from((v.values ?? []) as number[])),
      encoder: vs[0]?.encoder ?? "",
    };
  }

  /** The items found, in request order (missing ids are left out). */
  async get(
    collection: string,
    ids: string[],
    opts: T.CallOptions & { withVectors?: boolean; consistencyToken?: string; allowStale?: boolean } = {},
  ): Promise<T.Item[]> {
    const r = await this.call(
      "Items",
      "Get",
      {
        collection,
        ids,
        withVectors: !!opts.withVectors,
        consistencyToken: opts.consistencyToken ?? "",
        allowStale: !!opts.allowStale,
      },
      "read",
      opts,
    );
    return (r.items ?? []).map(C.item);
  }

  /** Delete by ids or by `{ filter }`; returns how many were deleted. */
  async delete(collection: string, target: string[] | { ids?: string[]; filter?: string }, opts?: T.CallOptions): Promise<number> {
    const t = Array.isArray(target) ? { ids: target } : target;
    if (!t.ids?.length && !t.filter) throw new TypeError("give ids or a filter");
    const r = await this.call("Items", "Delete", { collection, ids: t.ids ?? [], filter: t.filter ?? "" }, "write", opts);
    return r.deleted;
  }

  async count(collection: string, filter = "", opts: T.CallOptions & { consistencyToken?: string; allowStale?: boolean } = {}): Promise<number> {
    const r = await this.call(
      "Items",
      "Count",
      { collection, filter, consistencyToken: opts.consistencyToken ?? "", allowStale: !!opts.allowStale },
      "read",
      opts,
    );
    return r.count;
  }

  /**
   * One page of the collection's items in id order: those matching `filter` (within the
   * caller's row policy) whose id comes after `after`, at most `limit` (default 100).
   * Pass the page's `nextAfter` as `after` for the next page; it is "" after the last.
   * `iterItems` walks every page.
   */
  async scroll(collection: string, opts: T.ScrollOptions = {}): Promise<T.ScrollPage> {
    if (opts.limit !== undefined && !(Number.isInteger(opts.limit) && opts.limit >= 1)) {
      throw new TypeError(`limit must be a whole number of at least 1, got ${opts.limit}`);
    }
    const r = await this.call(
      "Items",
      "Scroll",
      {
        collection,
        filter: opts.filter ?? "",
        after: opts.after ?? "",
        limit: opts.limit ?? 0,
        withPayload: opts.withPayload ?? true,
        withVectors: !!opts.withVectors,
        consistencyToken: opts.consistencyToken ?? "",
        allowStale: !!opts.allowStale,
      },
      "read",
      opts,
    );
    return { items: (r.items ?? []).map(C.item), nextAfter: r.nextAfter ?? "" };
  }

  /**
   * Every item of the collection matching `filter` (after `after`), in id order, fetched
   * lazily with `scroll`, `pageSize` items per call:
   * `for await (const item of db.iterItems("docs", { filter })) ...`.
   */
  async *iterItems(collection: string, opts: T.IterItemsOptions = {}): AsyncGenerator<T.Item, void, undefined> {
    const { pageSize, ...rest } = opts;
    let after = opts.after ?? "";
    for (;;) {
      const page = await this.scroll(collection, { ...rest, after, limit: pageSize });
      yield* page.items;
      if (!page.nextAfter) return;
      after = page.nextAfter;
    }
  }

  /**
   * Search by `vector`, `text`, `image`, `audio`, `video` and/or `keyword` (BM25), with
   * a filter, fusion options and `explain`. Hits carry their payload by default.
   */
  async search(collection: string, q: T.SearchOptions): Promise<T.Hit[]> {
    if (q === null || typeof q !== "object" || ArrayBuffer.isView(q) || Array.isArray(q)) {
      throw new TypeError("search(collection, { vector | text | image | audio | video | keyword, ... })");
    }
    if (q.vector === undefined && !q.text && q.image === undefined && q.audio === undefined && q.video === undefined && !q.keyword) {
      throw new TypeError("search needs a vector, text, image, audio, video or keyword query");
    }
    const mode = q.mode === undefined ? "RETRIEVAL_DEFAULT" : MODES[q.mode];
    if (!mode) throw new TypeError(`unknown mode '${q.mode}' (dense, keyword or hybrid)`);
    const fusion = q.fusion === undefined ? "FUSION_UNSPECIFIED" : FUSIONS[q.fusion];
    if (!fusion) throw new TypeError(`unknown fusion '${q.fusion}' (calibrated, weighted or rrf)`);
    const req: Pb = {
      collection,
      space: q.space ?? "",
      topK: q.topK ?? 10,
      filter: q.filter ?? "",
      withPayload: q.withPayload ?? true,
      withVectors: !!q.withVectors,
      params: { nprobe: q.nprobe ?? 0, exact: !!q.exact, ef: q.ef ?? 0 },
      text: q.text ?? "",
      explain: !!q.explain,
      fusion,
      weights: q.weights ?? {},
      mode,
      keywordQuery: q.keyword ?? "",
      keywordFields: q.keywordFields ?? {},
      consistencyToken: q.consistencyToken ?? "",
      allowStale: !!q.allowStale,
    };
    if (q.vector !== undefined) req.vector = C.toVector(q.vector);
    if (q.image !== undefined) req.image = await bytes(q.image, "image");
    if (q.audio !== undefined) req.audio = await bytes(q.audio, "audio");
    if (q.video !== undefined) req.video = await bytes(q.video, "video");
    const r = await this.call("Items", "Search", req, "read", q);
    return (r.hits ?? []).map(C.hit);
  }

  /** Several vector queries at once: one hit list per query. */
  async searchBatch(collection: string, vectors: T.VectorInput[], opts: T.SearchBatchOptions = {}): Promise<T.Hit[][]> {
    const r = await this.call(
      "Items",
      "SearchBatch",
      {
        collection,
        space: opts.space ?? "",
        vectors: vectors.map((v, i) => C.toVector(v, `vectors[${i}]`)),
        topK: opts.topK ?? 10,
        filter: opts.filter ?? "",
        withPayload: opts.withPayload ?? true,
        withVectors: !!opts.withVectors,
        params: { nprobe: opts.nprobe ?? 0, exact: !!opts.exact, ef: opts.ef ?? 0 },
      },
      "read",
      opts,
    );
    return (r.results ?? []).map((x: Pb) => (x.hits ?? []).map(C.hit));
  }

  // ================================================================ ingest

  /**
   * Ingest files (folders are walked, hidden entries skipped) and/or `{ source, content }`
   * pairs over one streaming call, `concurrency` files in flight; the server detects each
   * file's type and turns it into items. Failures are reported per file, never thrown; a
   * transient failure of the stream resends only the files not yet answered (the server
   * skips content it already has).
   */
  async ingest(collection: string, inputs: T.IngestInput | T.IngestInput[], opts: T.IngestOptions = {}): Promise<T.IngestReport> {
    const started = Date.now();
    const list = Array.isArray(inputs) ? inputs : [inputs];
    const files: PendingFile[] = [];
    const localFailures: T.IngestResult[] = [];
    const fail = (source: string, error: string): T.IngestResult => ({
      source,
      status: "failed",
      error,
      items: 0,
      mediaType: "",
      contentSha256: "",
    });
    for (const input of list) {
      if (typeof input === "string") {
        await walk(input, files, (s, e) => localFailures.push(fail(s, e)));
      } else if (input && typeof input.source === "string" && input.content !== undefined) {
        const content = typeof input.content === "string" ? Buffer.from(input.content, "utf8") : input.content;
        files.push({ source: input.source, content });
      } else {
        throw new TypeError("ingest inputs are paths or { source, content } objects");
      }
    }
    const report: T.IngestReport = { files: 0, ingested: 0, skipped: 0, items: 0, failed: [], results: [], seconds: 0 };
    const total = files.length + localFailures.length;
    const record = (r: T.IngestResult) => {
      report.results.push(r);
      if (r.status === "ingested") {
        report.ingested++;
        report.items += r.items;
      } else if (r.status === "skipped") report.skipped++;
      else report.failed.push({ source: r.source, error: r.error });
      opts.onProgress?.({ done: report.results.length, total, result: r });
    };
    localFailures.forEach(record);

    let pending = files;
    const name = "Items/Ingest";
    for (let attempt = 1; pending.length > 0; attempt++) {
      const answered = new Set<PendingFile>();
      try {
        await this.ingestStream(collection, pending, opts, (f, r) => {
          answered.add(f);
          record(r);
        }, fail);
        break;
      } catch (e) {
        const err = toAgentDBError(e, name);
        pending = pending.filter((f) => !answered.has(f));
        // Ingest is idempotent (content-addressed): a broken stream may be resent.
        const retryable = refusedBeforeApplying(err) || err.code === Status.UNAVAILABLE || err.code === Status.ABORTED;
        if (attempt >= this.retry.maxAttempts || opts.signal?.aborted || !retryable) throw err;
        const wait = backoffMs(this.retry, attempt, err);
        if (wait === undefined) throw err;
        this.onRetry?.({ method: name, attempt, error: err, waitMs: wait });
        await sleep(wait, opts.signal);
      }
    }
    report.files = report.results.length;
    report.seconds = (Date.now() - started) / 1000;
    return report;
  }

  private ingestStream(
    collection: string,
    files: PendingFile[],
    opts: T.IngestOptions,
    onResult: (f: PendingFile, r: T.IngestResult) => void,
    fail: (source: string, error: string) => T.IngestResult,
  ): Promise<void> {
    const concurrency = Math.max(1, opts.concurrency ?? 4);
    const client = this.clients.Items;
    const callOpts: grpc.CallOptions = opts.timeoutMs ? { deadline: new Date(Date.now() + opts.timeoutMs) } : {};
    const call: grpc.ClientDuplexStream<Pb, Pb> = client.Ingest(this.metadata(), callOpts);
    // Sent files not yet answered, by source (answers may come out of order).
    const inFlight = new Map<string, PendingFile[]>();
    let inFlightCount = 0;
    let wake: (() => void) | undefined;
    const notify = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    let done = false;
    return new Promise<void>((resolve, reject) => {
      let statusOk = false;
      let ended = false;
      const finish = (e?: unknown) => {
        if (done) return;
        done = true;
        opts.signal?.removeEventListener("abort", onAbort);
        notify();
        if (e) reject(e);
        else resolve();
      };
      const onAbort = () => call.cancel();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      call.on("data", (r: Pb) => {
        const res = C.ingestResult(r);
        const q = inFlight.get(res.source);
        const f = q?.shift();
        if (q && q.length === 0) inFlight.delete(res.source);
        inFlightCount--;
        onResult(f ?? { source: res.source }, res);
        notify();
      });
      call.on("error", (e) => finish(e));
      call.on("status", (s: grpc.StatusObject) => {
        if (s.code === Status.OK) {
          statusOk = true;
          if (ended) finish();
        }
      });
      call.on("end", () => {
        ended = true;
        if (statusOk) finish();
      });
      (async () => {
        for (const f of files) {
          while (!done && inFlightCount >= concurrency) await new Promise<void>((r) => (wake = r));
          if (done) return;
          let content: Uint8Array;
          try {
            if (f.content !== undefined) content = f.content;
            else {
              const st = await stat(f.path!);
              if (st.size > MAX_INGEST_FILE) throw new Error(`file is ${st.size} bytes; the ingest limit is ${MAX_INGEST_FILE}`);
              content = await readFile(f.path!);
            }
          } catch (e) {
            onResult(f, fail(f.source, e instanceof Error ? e.message : String(e)));
            continue;
          }
          if (done) return;
          const q = inFlight.get(f.source) ?? [];
          q.push(f);
          inFlight.set(f.source, q);
          inFlightCount++;
          if (!call.write({ collection, source: f.source, content })) {
            await new Promise<void>((r) => {
              const go = () => {
                call.off("drain", go);
                r();
              };
              call.on("drain", go);
              const prev = wake;
              wake = () => {
                prev?.();
                go();
              };
            });
          }
        }
        if (!done) call.end();
      })().catch((e) => {
        call.cancel();
        finish(e);
      });
    });
  }

  // ================================================================ models, server, security, cluster

  async listModels(opts?: T.CallOptions): Promise<T.ModelInfo[]> {
    const r = await this.call("Models", "List", {}, "read", opts);
    return (r.models ?? []).map((m: Pb) => ({ ...m }));
  }

  async status(opts?: T.CallOptions): Promise<T.ServerStatus> {
    return C.serverStatus(await this.call("Server", "Status", {}, "read", opts));
  }

  async alerts(opts?: T.CallOptions): Promise<T.Alert[]> {
    const r = await this.call("Server", "Alerts", {}, "read", opts);
    return (r.alerts ?? []).map((a: Pb) => ({ ...a }));
  }

  /** Testing aid (refused unless the server sets debug.allow_fault_injection). */
  async injectFault(fault: { searchDelayMs?: number }, opts?: T.CallOptions): Promise<void> {
    await this.call("Server", "InjectFault", { searchDelayMs: fault.searchDelayMs ?? 0 }, "write", opts);
  }

  /** Change the server's log filter (admin); returns the previous one. */
  async setLogLevel(filter: string, opts?: T.CallOptions): Promise<string> {
    const r = await this.call("Server", "SetLogLevel", { filter }, "write", opts);
    return r.previous;
  }

  async createKey(
    name: string,
    role: T.Role,
    opts: T.CallOptions & { collections?: string[]; rowFilter?: string } = {},
  ): Promise<T.CreatedKey> {
    const r = await this.call(
      "Security",
      "CreateKey",
      { name, role, collections: opts.collections ?? [], rowFilter: opts.rowFilter ?? "" },
      "write",
      opts,
    );
    return { key: C.apiKey(r.key), secret: r.secret };
  }

  async listKeys(opts?: T.CallOptions): Promise<T.ApiKeyInfo[]> {
    const r = await this.call("Security", "ListKeys", {}, "read", opts);
    return (r.keys ?? []).map(C.apiKey);
  }

  async revokeKey(id: string, opts?: T.CallOptions): Promise<T.ApiKeyInfo> {
    const r = await this.call("Security", "RevokeKey", { id }, "write", opts);
    return C.apiKey(r.key);
  }

  /**
   * Who this client is (its key, token or certificate; `local` when the server has
   * authentication off) and what it may do, server-wide and on each of `collections`
   * (`permissions`, in that order). For showing only what the caller may use: the
   * server still checks every request.
   */
  async whoAmI(collections: string | string[] = [], opts?: T.CallOptions): Promise<T.Identity> {
    const list = typeof collections === "string" ? [collections] : collections;
    return C.identity(await this.call("Security", "WhoAmI", { collections: list }, "read", opts));
  }

  async clusterStatus(opts?: T.CallOptions): Promise<T.ClusterStatus> {
    const r = await this.call("Cluster", "Status", {}, "read", opts);
    return {
      enabled: r.enabled,
      nodeId: r.nodeId,
      leader: r.leader,
      connected: r.connected,
      nodes: (r.nodes ?? []).map((n: Pb) => ({ ...n })),
      collections: (r.collections ?? []).map((c: Pb) => ({
        name: c.name,
        shards: c.shards,
        replicas: c.replicas,
        streamReplicas: c.streamReplicas,
        shardStatus: (c.shardStatus ?? []).map((s: Pb) => ({
          shard: s.shard,
          lastSeq: s.lastSeq,
          replicas: (s.replicas ?? []).map((x: Pb) => ({ ...x })),
        })),
      })),
    };
  }

  /** Drain a cluster node (admin), or stop draining it with `undo`. */
  async drainNode(node: string, opts: T.CallOptions & { undo?: boolean } = {}): Promise<void> {
    await this.call("Cluster", "Drain", { node, undo: !!opts.undo }, "write", opts);
  }

  // ================================================================ agents

  /** Register an agent (or update its card); `created` is false for an update. */
  async registerAgent(card: T.AgentCard, opts: T.RegisterAgentOptions = {}): Promise<T.Agent & { created: boolean }> {
    const r = await this.call(
      "Agents",
      "Register",
      {
        card: C.agentCard(card),
        heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 0,
        memorySpaces: (opts.memorySpaces ?? []).map(C.spaceSpecToPb),
        noMemory: opts.memory === false,
      },
      "write",
      opts,
    );
    return { ...C.agent(r.agent), created: r.created };
  }

  async listAgents(state = "", opts?: T.CallOptions): Promise<T.Agent[]> {
    const r = await this.call("Agents", "List", { state }, "read", opts);
    return (r.agents ?? []).map(C.agent);
  }

  async getAgent(name: string, opts?: T.CallOptions): Promise<T.Agent> {
    const r = await this.call("Agents", "Get", { name }, "read", opts);
    return C.agent(r.agent);
  }

  /** active, suspended or retired; an illegal transition is FailedPreconditionError. */
  async setAgentState(name: string, state: string, reason = "", opts?: T.CallOptions): Promise<T.Agent> {
    const r = await this.call("Agents", "SetState", { name, state, reason }, "write", opts);
    return C.agent(r.agent);
  }

  async heartbeat(name: string, opts?: T.CallOptions): Promise<T.Agent> {
    const r = await this.call("Agents", "Heartbeat", { name }, "write", opts);
    return C.agent(r.agent);
  }

  // ================================================================ events

  /**
   * Subscribe to topics (empty = all): an async iterator of `Event` and `Lagged`.
   * After a transient failure it resubscribes from the offset after the last event.
   */
  subscribe(topics: string | string[] = [], opts: T.SubscribeOptions = {}): Subscription {
    const list = typeof topics === "string" ? [topics] : topics;
    const reconnect = opts.reconnect ?? true;
    const self = this;
    return new Subscription(async function* (sub: Subscription) {
      let from = opts.fromOffset;
      const onAbort = () => sub.close();
      opts.signal?.addEventListener("abort", onAbort, { once: true });
      if (opts.signal?.aborted) sub.closed = true;
      try {
        for (let attempt = 1; !sub.closed; attempt++) {
          const req: Pb = { topics: list };
          if (from !== undefined) req.fromOffset = from;
          const call: grpc.ClientReadableStream<Pb> = self.clients.Events.Subscribe(req, self.metadata());
          call.on("error", () => {}); // surfaced through the iterator
          sub.current = call;
          try {
            for await (const m of call) {
              attempt = 1;
              if (m.event) {
                const ev = C.event(m.event);
                from = ev.offset + 1;
                yield ev;
              } else if (m.lagged) {
                from = m.lagged.firstAvailableOffset;
                yield { type: "lagged", requestedOffset: m.lagged.requestedOffset, firstAvailableOffset: m.lagged.firstAvailableOffset };
              }
              if (sub.closed) break;
            }
            if (sub.closed) return;
            // The server ended the stream (shutting down): resubscribe like after an error.
            throw errorFor(Status.UNAVAILABLE, "the event stream ended", undefined, "Events/Subscribe");
          } catch (e) {
            if (sub.closed) return;
            const err = toAgentDBError(e, "Events/Subscribe");
            const retryable = refusedBeforeApplying(err) || err.code === Status.UNAVAILABLE;
            if (!reconnect || !retryable || attempt >= self.retry.maxAttempts) throw err;
            const wait = backoffMs(self.retry, attempt, err);
            if (wait === undefined) throw err;
            self.onRetry?.({ method: "Events/Subscribe", attempt, error: err, waitMs: wait });
            await sleep(wait);
          } finally {
            call.cancel();
          }
        }
      } finally {
        opts.signal?.removeEventListener("abort", onAbort);
      }
    });
  }

  /** Publish one event (topics standing_query, workflow and alerts); returns its offset. */
  async publish(topic: string, kind: string, opts: T.CallOptions & { subject?: string; data?: unknown } = {}): Promise<number> {
    const [off] = await this.publishMany([{ topic, kind, subject: opts.subject, data: opts.data }], opts);
    return off!;
  }

  async publishMany(events: T.PublishEventInput[], opts?: T.CallOptions): Promise<number[]> {
    const r = await this.call(
      "Events",
      "Publish",
      {
        events: events.map((e) => ({
          topic: e.topic,
          kind: e.kind,
          subject: e.subject ?? "",
          dataJson: e.data === undefined ? "" : JSON.stringify(e.data),
        })),
      },
      "write",
      opts,
    );
    return r.offsets ?? [];
  }

  async topics(opts?: T.CallOptions): Promise<T.Topics> {
    const r = await this.call("Events", "Topics", {}, "read", opts);
    return {
      topics: (r.topics ?? []).map((t: Pb) => ({ ...t })),
      nextOffset: r.nextOffset,
      ringCapacity: r.ringCapacity,
    };
  }

  // ================================================================ queues

  /** Create a queue (idempotent with the same settings; `created` is false then). */
  async createQueue(name: string, opts: T.CreateQueueOptions = {}): Promise<T.QueueStats & { created: boolean }> {
    const req: Pb = { name, visibilityTimeoutMs: opts.visibilityTimeoutMs ?? 0, maxMessages: opts.maxMessages ?? 0 };
    if (opts.maxAttempts !== undefined) req.maxAttempts = opts.maxAttempts;
    const r = await this.call("Queues", "Create", req, "write", opts);
    return { ...C.queueStats(r.queue), created: r.created };
  }

  /** Send a message: bytes, text, or any other value (sent as JSON). Returns its id. */
  async sendMessage(queue: string, body: unknown, opts: T.CallOptions & { attributes?: Record<string, string> } = {}): Promise<string> {
    let b: Uint8Array;
    if (body instanceof Uint8Array) b = body;
    else if (typeof body === "string") b = Buffer.from(body, "utf8");
    else b = Buffer.from(JSON.stringify(body), "utf8");
    const r = await this.call("Queues", "Send", { queue, body: b, attributes: opts.attributes ?? {} }, "write", opts);
    return r.id;
  }

  async receiveMessages(queue: string, opts: T.ReceiveOptions = {}): Promise<T.QueueMessage[]> {
    const wait = opts.waitMs ?? 0;
    const r = await this.call(
      "Queues",
      "Receive",
      { queue, maxMessages: opts.maxMessages ?? 1, visibilityTimeoutMs: opts.visibilityTimeoutMs ?? 0, waitMs: wait },
      "write",
      { ...opts, timeoutMs: Math.max(opts.timeoutMs ?? this.timeoutMs, wait + 10000) },
    );
    return (r.messages ?? []).map((m: Pb) => C.queueMessage(queue, m));
  }

  /** Acknowledge (delete) a received message: the message, or its queue and receipt. */
  async ackMessage(message: T.QueueMessage | { queue: string; receipt: string }, opts?: T.CallOptions): Promise<void> {
    await this.call("Queues", "Ack", { queue: message.queue, receipt: message.receipt }, "write", opts);
  }

  /** Stats of one queue, or of every queue (no name). */
  async queueStats(name = "", opts?: T.CallOptions): Promise<T.QueueStats[]> {
    const r = await this.call("Queues", "Stats", { name }, "read", opts);
    return (r.queues ?? []).map(C.queueStats);
  }

  // ================================================================ standing queries

  async createStandingQuery(
    agent: string,
    name: string,
    collection: string,
    opts: T.CreateStandingQueryOptions,
  ): Promise<T.StandingQuery> {
    if ((opts.text === undefined) === (opts.vector === undefined)) throw new TypeError("give text or vector (one of them)");
    const req: Pb = {
      agent,
      name,
      collection,
      space: opts.space ?? "",
      filter: opts.filter ?? "",
      threshold: opts.threshold ?? 0,
    };
    if (opts.text !== undefined) req.text = opts.text;
    else req.vector = C.toVector(opts.vector!);
    const r = await this.call("StandingQueries", "Create", req, "write", opts);
    return C.standingQuery(r.query);
  }

  async listStandingQueries(agent = "", opts?: T.CallOptions): Promise<T.StandingQuery[]> {
    const r = await this.call("StandingQueries", "List", { agent }, "read", opts);
    return (r.queries ?? []).map(C.standingQuery);
  }

  async deleteStandingQuery(id: string, opts?: T.CallOptions): Promise<T.StandingQuery> {
    const r = await this.call("StandingQueries", "Delete", { id }, "write", opts);
    return C.standingQuery(r.query);
  }

  // ================================================================ workflows

  /** Validate and store a workflow definition (YAML); `changed` is false when identical to the latest. */
  async applyWorkflow(yaml: string, opts?: T.CallOptions): Promise<T.WorkflowInfo & { changed: boolean }> {
    const r = await this.call("Workflows", "Apply", { yaml }, "write", opts);
    return { ...C.workflowInfo(r.workflow), changed: r.changed };
  }

  async listWorkflows(opts?: T.CallOptions): Promise<T.WorkflowInfo[]> {
    const r = await this.call("Workflows", "List", {}, "read", opts);
    return (r.workflows ?? []).map(C.workflowInfo);
  }

  async getWorkflow(name: string, opts: T.CallOptions & { version?: number } = {}): Promise<T.WorkflowInfo> {
    const r = await this.call("Workflows", "Get", { name, version: opts.version ?? 0 }, "read", opts);
    return C.workflowInfo(r.workflow);
  }

  async deleteWorkflow(name: string, opts?: T.CallOptions): Promise<void> {
    await this.call("Workflows", "Delete", { name }, "write", opts);
  }

  async runWorkflow(name: string, opts: T.RunWorkflowOptions = {}): Promise<T.WorkflowRun> {
    const req: Pb = {
      name,
      version: opts.version ?? 0,
      inputsJson: opts.inputs === undefined ? "" : JSON.stringify(opts.inputs),
      agent: opts.agent ?? "",
    };
    if (opts.priority !== undefined) req.priority = opts.priority;
    const r = await this.call("Workflows", "Run", req, "write", opts);
    return C.workflowRun(r.run);
  }

  async getRun(id: string, opts?: T.CallOptions): Promise<T.WorkflowRun> {
    const r = await this.call("Workflows", "GetRun", { id }, "read", opts);
    return C.workflowRun(r.run);
  }

  /** Poll a run until it has finished (succeeded, failed or canceled). */
  async waitRun(id: string, opts: T.CallOptions & { waitMs?: number; pollMs?: number } = {}): Promise<T.WorkflowRun> {
    const until = Date.now() + (opts.waitMs ?? 60000);
    for (;;) {
      const run = await this.getRun(id, opts);
      if (["succeeded", "failed", "canceled"].includes(run.state)) return run;
      if (Date.now() > until) {
        throw errorFor(Status.DEADLINE_EXCEEDED, `workflow run ${id} still ${run.state} after ${opts.waitMs ?? 60000} ms`);
      }
      await sleep(opts.pollMs ?? 200, opts.signal);
    }
  }

  async listRuns(opts: T.CallOptions & { workflow?: string; state?: string; limit?: number } = {}): Promise<T.WorkflowRun[]> {
    const r = await this.call(
      "Workflows",
      "ListRuns",
      { workflow: opts.workflow ?? "", state: opts.state ?? "", limit: opts.limit ?? 0 },
      "read",
      opts,
    );
    return (r.runs ?? []).map(C.workflowRun);
  }

  async cancelRun(id: string, opts?: T.CallOptions): Promise<T.WorkflowRun> {
    const r = await this.call("Workflows", "Cancel", { id }, "write", opts);
    return C.workflowRun(r.run);
  }
}

/** Walk a file or folder (sorted, hidden entries skipped), as `agentdb ingest` does. */
async function walk(p: string, out: PendingFile[], fail: (source: string, error: string) => void): Promise<void> {
  let st;
  try {
    st = await stat(p);
  } catch (e) {
    fail(p, e instanceof Error ? e.message : String(e));
    return;
  }
  if (st.isDirectory()) {
    let names: string[];
    try {
      names = (await readdir(p)).sort();
    } catch (e) {
      fail(p, e instanceof Error ? e.message : String(e));
      return;
    }
    for (const n of names) if (!n.startsWith(".")) await walk(path.join(p, n), out, fail);
  } else if (st.isFile()) {
    out.push({ source: p, path: p });
  }
}
