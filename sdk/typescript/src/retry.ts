import { AgentDBError, Status } from "./errors.js";

/** How failed calls are retried. */
export interface RetryPolicy {
  /** Attempts in all, the first included (1 = no retries). Default 5. */
  maxAttempts?: number;
  /** First backoff. Default 100 ms. */
  initialBackoffMs?: number;
  /** Largest backoff (before the server's hint, which may be longer). Default 5000 ms. */
  maxBackoffMs?: number;
  /** Backoff growth per attempt. Default 2. */
  multiplier?: number;
  /** Random spread of each backoff, as a fraction (0.2 = ±20%). Default 0.2. */
  jitter?: number;
  /** A server hint longer than this is not waited for: the error is thrown. Default 30000 ms. */
  maxRetryAfterMs?: number;
}

export type ResolvedRetryPolicy = Required<RetryPolicy>;

export const DEFAULT_RETRY: ResolvedRetryPolicy = {
  maxAttempts: 5,
  initialBackoffMs: 100,
  maxBackoffMs: 5000,
  multiplier: 2,
  jitter: 0.2,
  maxRetryAfterMs: 30000,
};

/** `retries` option: a number of retries (0 = none) or a policy. */
export function resolveRetry(r: number | RetryPolicy | undefined): ResolvedRetryPolicy {
  if (r === undefined) return { ...DEFAULT_RETRY };
  if (typeof r === "number") {
    if (!Number.isInteger(r) || r < 0) throw new TypeError("retries must be a non-negative integer");
    return { ...DEFAULT_RETRY, maxAttempts: r + 1 };
  }
  const p = { ...DEFAULT_RETRY, ...stripUndefined(r) };
  if (!(p.maxAttempts >= 1)) throw new TypeError("retries.maxAttempts must be at least 1");
  return p;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Reads can be retried after any transient failure; writes only when the server refused them before doing anything. */
export type CallKind = "read" | "write";

/**
 * Whether a failure was a refusal made before the server did anything: a rate limit or
 * an overloaded admission queue (RESOURCE_EXHAUSTED with a `retry-after-ms` hint or
 * "overloaded"), a server shutting down before admitting the call, or no connection at
 * all. A storage-quota refusal (RESOURCE_EXHAUSTED without a hint) is not: retrying it
 * fails the same way.
 */
export function refusedBeforeApplying(e: AgentDBError): boolean {
  if (e.code === Status.RESOURCE_EXHAUSTED) {
    return e.retryAfterMs !== undefined || /overloaded/i.test(e.details);
  }
  if (e.code === Status.UNAVAILABLE) {
    return (
      e.retryAfterMs !== undefined ||
      /shutting down|No connection established|ECONNREFUSED|connection refused|failed to connect/i.test(e.details)
    );
  }
  return false;
}

export function isRetryable(e: AgentDBError, kind: CallKind): boolean {
  if (refusedBeforeApplying(e)) return true;
  if (kind === "read") return e.code === Status.UNAVAILABLE || e.code === Status.ABORTED;
  return false;
}

/**
 * The wait before attempt `attempt + 1` (attempt counts from 1): exponential backoff
 * with jitter, and at least the server's hint. `undefined`: do not retry (the hint is
 * longer than `maxRetryAfterMs`).
 */
export function backoffMs(p: ResolvedRetryPolicy, attempt: number, e: AgentDBError, random = Math.random): number | undefined {
  const base = Math.min(p.maxBackoffMs, p.initialBackoffMs * Math.pow(p.multiplier, attempt - 1));
  const spread = base * p.jitter * (2 * random() - 1);
  let wait = Math.max(0, base + spread);
  if (e.retryAfterMs !== undefined) {
    if (e.retryAfterMs > p.maxRetryAfterMs) return undefined;
    // The hint is when a token is available again; a little jitter above it spreads
    // clients that were refused together.
    wait = Math.max(wait, e.retryAfterMs + e.retryAfterMs * p.jitter * random());
  }
  return Math.round(wait);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
