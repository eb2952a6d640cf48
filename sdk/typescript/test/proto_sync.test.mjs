// The package loads its own copy of the protos at run time: it must equal the
// repository's (refresh it with `npm run sync-proto`), and every service must load.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as path from "node:path";
import { PROTO_DIR, PROTO_FILES } from "../dist/index.js";
import { services } from "../dist/proto.js";

const REPO_PROTOS = fileURLToPath(new URL("../../../proto/proto/agentdb/v1/", import.meta.url));

test("the package's proto copy equals proto/proto/agentdb/v1", { skip: !existsSync(REPO_PROTOS) && "not in the repository" }, () => {
  const ours = readdirSync(path.join(PROTO_DIR, "agentdb/v1")).filter((f) => f.endsWith(".proto")).sort();
  const theirs = readdirSync(REPO_PROTOS).filter((f) => f.endsWith(".proto")).sort();
  assert.deepEqual(ours, theirs, "same files (npm run sync-proto)");
  for (const f of theirs) {
    const a = readFileSync(path.join(PROTO_DIR, "agentdb/v1", f), "utf8");
    const b = readFileSync(path.join(REPO_PROTOS, f), "utf8");
    assert.ok(a === b, `proto/agentdb/v1/${f} is stale: run \`npm run sync-proto\` in sdk/typescript`);
  }
  assert.deepEqual([...PROTO_FILES].map((f) => path.basename(f)).sort(), theirs, "PROTO_FILES lists every proto");
});

test("every service of the protos is loaded, with the methods the client calls", () => {
  const s = services();
  const text = PROTO_FILES.map((f) => readFileSync(path.join(PROTO_DIR, f), "utf8")).join("\n");
  const declared = [...text.matchAll(/^service (\w+) \{([\s\S]*?)^\}/gm)].map((m) => [m[1], [...m[2].matchAll(/rpc (\w+)\(/g)].map((r) => r[1])]);
  assert.ok(declared.length >= 11);
  for (const [svc, rpcs] of declared) {
    assert.ok(s[svc], `service ${svc} not loaded by the client`);
    for (const rpc of rpcs) assert.equal(typeof s[svc].prototype[rpc], "function", `${svc}.${rpc}`);
  }
});

// Which AgentDB method wraps each RPC: a new RPC in the protos fails this test until the
// SDK has a method for it.
const WRAPPERS = {
  "Collections/Create": "createCollection", "Collections/List": "listCollections", "Collections/Describe": "getCollection",
  "Collections/Drop": "dropCollection", "Collections/Flush": "flush",
  "Items/Upsert": "upsert", "Items/Get": "get", "Items/Delete": "delete", "Items/Count": "count", "Items/Search": "search",
  "Items/SearchBatch": "searchBatch", "Items/Ingest": "ingest", "Items/Embed": "embed", "Items/Scroll": "scroll",
  "Models/List": "listModels",
  "Server/Status": "status", "Server/Alerts": "alerts", "Server/InjectFault": "injectFault", "Server/SetLogLevel": "setLogLevel",
  "Security/CreateKey": "createKey", "Security/ListKeys": "listKeys", "Security/RevokeKey": "revokeKey", "Security/WhoAmI": "whoAmI",
  "Cluster/Status": "clusterStatus", "Cluster/Drain": "drainNode",
  "Agents/Register": "registerAgent", "Agents/List": "listAgents", "Agents/Get": "getAgent", "Agents/SetState": "setAgentState",
  "Agents/Heartbeat": "heartbeat",
  "Events/Subscribe": "subscribe", "Events/Publish": "publish", "Events/Topics": "topics",
  "Queues/Create": "createQueue", "Queues/Send": "sendMessage", "Queues/Receive": "receiveMessages", "Queues/Ack": "ackMessage",
  "Queues/Stats": "queueStats",
  "StandingQueries/Create": "createStandingQuery", "StandingQueries/List": "listStandingQueries", "StandingQueries/Delete": "deleteStandingQuery",
  "Workflows/Apply": "applyWorkflow", "Workflows/List": "listWorkflows", "Workflows/Get": "getWorkflow", "Workflows/Delete": "deleteWorkflow",
  "Workflows/Run": "runWorkflow", "Workflows/GetRun": "getRun", "Workflows/ListRuns": "listRuns", "Workflows/Cancel": "cancelRun",
};

test("every RPC has an AgentDB method", async () => {
  const { AgentDB } = await import("../dist/index.js");
  const text = PROTO_FILES.map((f) => readFileSync(path.join(PROTO_DIR, f), "utf8")).join("\n");
  const rpcs = [...text.matchAll(/^service (\w+) \{([\s\S]*?)^\}/gm)].flatMap((m) => [...m[2].matchAll(/rpc (\w+)\(/g)].map((r) => `${m[1]}/${r[1]}`));
  assert.ok(rpcs.length >= 45, String(rpcs.length));
  for (const rpc of rpcs) {
    const method = WRAPPERS[rpc];
    assert.ok(method, `no SDK method for ${rpc}`);
    assert.equal(typeof AgentDB.prototype[method], "function", `${rpc} -> AgentDB.${method}`);
  }
  assert.deepEqual(Object.keys(WRAPPERS).sort(), [...rpcs].sort());
});
