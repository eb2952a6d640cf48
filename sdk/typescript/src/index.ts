export { AgentDB, Subscription, MAX_INGEST_FILE, DEFAULT_ADDRESS } from "./client.js";
export type { ClientOptions, RetryListener } from "./client.js";
export * from "./errors.js";
export { DEFAULT_RETRY, isRetryable, refusedBeforeApplying, backoffMs } from "./retry.js";
export type { RetryPolicy, CallKind } from "./retry.js";
export { PROTO_DIR, PROTO_FILES } from "./proto.js";
export type * from "./types.js";
