import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { fileURLToPath } from "node:url";

/** The folder holding the package's copy of the AgentDB protos (`agentdb/v1/*.proto`). */
export const PROTO_DIR = fileURLToPath(new URL("../proto/", import.meta.url));
export const PROTO_FILES = ["agentdb/v1/agentdb.proto", "agentdb/v1/orchestration.proto"];

export const SERVICES = [
  "Collections",
  "Items",
  "Models",
  "Server",
  "Security",
  "Cluster",
  "Agents",
  "Events",
  "Queues",
  "StandingQueries",
  "Workflows",
] as const;
export type ServiceName = (typeof SERVICES)[number];

let cached: Record<ServiceName, grpc.ServiceClientConstructor> | undefined;

/** The service client constructors, loaded once from the .proto files. */
export function services(): Record<ServiceName, grpc.ServiceClientConstructor> {
  if (cached) return cached;
  const def = protoLoader.loadSync(PROTO_FILES, {
    includeDirs: [PROTO_DIR],
    keepCase: false, // camelCase field names
    longs: Number, // uint64 as numbers (exact below 2^53)
    enums: String,
    bytes: Buffer,
    defaults: true,
    arrays: true,
    objects: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    agentdb: { v1: Record<string, grpc.ServiceClientConstructor> };
  };
  const out = {} as Record<ServiceName, grpc.ServiceClientConstructor>;
  for (const s of SERVICES) {
    const ctor = pkg.agentdb.v1[s];
    if (!ctor) throw new Error(`service agentdb.v1.${s} missing from the protos`);
    out[s] = ctor;
  }
  cached = out;
  return out;
}
