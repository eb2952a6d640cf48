import { Metadata, status as Status } from "@grpc/grpc-js";

/** gRPC status codes (numeric, as on the wire). */
export { Status };

const CODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Status)
    .filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [v as number, k]),
);

/** The name of a gRPC status code, e.g. `NOT_FOUND`. */
export function codeName(code: number): string {
  return CODE_NAMES[code] ?? `CODE_${code}`;
}

/**
 * Every failure of a call is an `AgentDBError` (or one of its subclasses, one per gRPC
 * status code) carrying the gRPC status: `code` (numeric), `codeName`, `details` (the
 * server's message) and `metadata` (trailing metadata).
 */
export class AgentDBError extends Error {
  /** The gRPC status code (`Status.NOT_FOUND`, ...). */
  readonly code: number;
  /** The server's status message. */
  readonly details: string;
  /** Trailing metadata of the failed call (empty for client-side failures). */
  readonly metadata: Metadata;
  /** The server's `retry-after-ms` hint (rate limit, overload), when it sent one. */
  readonly retryAfterMs: number | undefined;
  /** The RPC that failed, e.g. `Items/Search`. */
  readonly method: string | undefined;

  constructor(code: number, details: string, metadata?: Metadata, method?: string) {
    super(`${codeName(code)}: ${details}${method ? ` (${method})` : ""}`);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
    this.metadata = metadata ?? new Metadata();
    this.method = method;
    this.retryAfterMs = retryAfterHint(this.metadata, details);
  }

  get codeName(): string {
    return codeName(this.code);
  }
}

export class CancelledError extends AgentDBError {}
export class UnknownError extends AgentDBError {}
export class InvalidArgumentError extends AgentDBError {}
export class DeadlineExceededError extends AgentDBError {}
export class NotFoundError extends AgentDBError {}
export class AlreadyExistsError extends AgentDBError {}
export class PermissionDeniedError extends AgentDBError {}
/** Rate limit, overload or storage quota; `retryAfterMs` is set for the first two. */
export class ResourceExhaustedError extends AgentDBError {}
export class FailedPreconditionError extends AgentDBError {}
export class AbortedError extends AgentDBError {}
export class OutOfRangeError extends AgentDBError {}
export class UnimplementedError extends AgentDBError {}
export class InternalError extends AgentDBError {}
export class UnavailableError extends AgentDBError {}
export class DataLossError extends AgentDBError {}
export class UnauthenticatedError extends AgentDBError {}

type ErrorClass = new (code: number, details: string, metadata?: Metadata, method?: string) => AgentDBError;

const BY_CODE: Record<number, ErrorClass> = {
  [Status.CANCELLED]: CancelledError,
  [Status.UNKNOWN]: UnknownError,
  [Status.INVALID_ARGUMENT]: InvalidArgumentError,
  [Status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [Status.NOT_FOUND]: NotFoundError,
  [Status.ALREADY_EXISTS]: AlreadyExistsError,
  [Status.PERMISSION_DENIED]: PermissionDeniedError,
  [Status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [Status.FAILED_PRECONDITION]: FailedPreconditionError,
  [Status.ABORTED]: AbortedError,
  [Status.OUT_OF_RANGE]: OutOfRangeError,
  [Status.UNIMPLEMENTED]: UnimplementedError,
  [Status.INTERNAL]: InternalError,
  [Status.UNAVAILABLE]: UnavailableError,
  [Status.DATA_LOSS]: DataLossError,
  [Status.UNAUTHENTICATED]: UnauthenticatedError,
};

/** Build the typed error for a status code. */
export function errorFor(code: number, details: string, metadata?: Metadata, method?: string): AgentDBError {
  const cls = BY_CODE[code] ?? AgentDBError;
  return new cls(code, details, metadata, method);
}

/** Convert whatever a grpc-js call rejected with into an `AgentDBError`. */
export function toAgentDBError(e: unknown, method?: string): AgentDBError {
  if (e instanceof AgentDBError) return e;
  const any = e as { code?: unknown; details?: unknown; message?: unknown; metadata?: unknown };
  if (any && typeof any.code === "number") {
    const details = typeof any.details === "string" ? any.details : String(any.message ?? "");
    const md = any.metadata instanceof Metadata ? any.metadata : undefined;
    return errorFor(any.code, details, md, method);
  }
  const msg = e instanceof Error ? e.message : String(e);
  return errorFor(Status.UNKNOWN, msg, undefined, method);
}

function retryAfterHint(md: Metadata, details: string): number | undefined {
  const v = md.get("retry-after-ms")[0];
  if (v !== undefined) {
    const n = Number(typeof v === "string" ? v : v.toString());
    if (Number.isFinite(n) && n >= 0) return n;
  }
  const m = /retry after (\d+) ?ms/i.exec(details);
  return m ? Number(m[1]) : undefined;
}
