// `npm pack`, install the tarball in a fresh project, type-check the README's quick start
// against the installed declarations, compile it and run it against a live server.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, readdirSync, rmSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as path from "node:path";
import { startServer, tempDir } from "./helpers.mjs";

const PKG = fileURLToPath(new URL("..", import.meta.url));
const TSC = path.join(PKG, "node_modules", "typescript", "bin", "tsc");
let server, work;

before(async () => {
  server = await startServer(["--set", "security.auth=api_key"]);
  work = tempDir("agentdb-ts-pack-");
});

after(async () => {
  await server?.stop();
  server?.cleanup();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** The first ```ts block of the README. */
export function quickStart() {
  const readme = readFileSync(path.join(PKG, "README.md"), "utf8");
  const m = /```ts\n([\s\S]*?)```/.exec(readme);
  assert.ok(m, "README has a ```ts quick start");
  return m[1];
}

test("the README quick start runs from the packed, installed package", { timeout: 240000 }, () => {
  const code = quickStart();
  assert.ok(code.trim().split("\n").length <= 6, "the quick start stays short");
  const npm = (args, cwd) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  // dist/ was built by run_tests.sh; --ignore-scripts skips the prepack rebuild.
  const packed = JSON.parse(npm(["pack", "--json", "--ignore-scripts", "--pack-destination", work], PKG));
  const files = packed[0].files.map((f) => f.path);
  for (const f of ["dist/index.js", "dist/index.d.ts", "proto/agentdb/v1/agentdb.proto", "proto/agentdb/v1/orchestration.proto", "README.md"]) {
    assert.ok(files.includes(f), `${f} in the tarball`);
  }
  assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("src/") || f.startsWith("node_modules/")), files.join(" "));
  const tarball = path.join(work, packed[0].filename);
  const app = path.join(work, "app");
  execFileSync("mkdir", ["-p", app]);
  writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "qs", version: "1.0.0", private: true, type: "module" }));
  npm(["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], app);
  assert.ok(readdirSync(path.join(app, "node_modules", "@agentdb")).includes("client"));

  // Type-check and compile the quick start against the installed package's declarations.
  writeFileSync(path.join(app, "quickstart.mts"), code);
  execFileSync(
    process.execPath,
    [TSC, "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext", "--skipLibCheck",
      "--typeRoots", path.join(PKG, "node_modules", "@types"), "--types", "node", "quickstart.mts"],
    { cwd: app, stdio: ["ignore", "pipe", "pipe"] },
  );
  // A misuse must not type-check: the declarations are really consulted.
  writeFileSync(path.join(app, "wrong.mts"), 'import { AgentDB } from "@agentdb/client";\nawait new AgentDB().search("c", { topK: "ten" });\n');
  assert.throws(() =>
    execFileSync(process.execPath, [TSC, "--noEmit", "--strict", "--target", "es2022", "--module", "nodenext", "--moduleResolution", "nodenext",
      "--skipLibCheck", "--typeRoots", path.join(PKG, "node_modules", "@types"), "--types", "node", "wrong.mts"], { cwd: app, stdio: "pipe" }),
  );

  const out = execFileSync(process.execPath, ["quickstart.mjs"], {
    cwd: app,
    encoding: "utf8",
    timeout: 60000,
    env: { ...process.env, AGENTDB_URL: server.addr, AGENTDB_ADDRESS: server.addr, AGENTDB_API_KEY: server.adminKey },
  });
  assert.equal(out.trim(), "a");
});
