// Copy the AgentDB protos from the repository (proto/proto/agentdb/v1) into this package,
// which loads them at run time; test/proto_sync.test.mjs fails when the copy is stale.
import { copyFileSync, mkdirSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const from = path.resolve(here, "../../../proto/proto/agentdb/v1");
const to = path.resolve(here, "../proto/agentdb/v1");
mkdirSync(to, { recursive: true });
for (const f of readdirSync(to)) if (f.endsWith(".proto") && !readdirSync(from).includes(f)) throw new Error(`stale ${f}: remove it`);
for (const f of readdirSync(from).filter((f) => f.endsWith(".proto"))) {
  copyFileSync(path.join(from, f), path.join(to, f));
  console.log(`proto/agentdb/v1/${f}`);
}
