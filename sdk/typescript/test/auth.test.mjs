// API-key authentication: the admin key works, a reader is refused writes, no key or a
// wrong key is refused, environment variables are picked up; whoAmI with and without it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { AgentDB, PermissionDeniedError, Status, UnauthenticatedError } from "../dist/index.js";
import { BIN, rejection, startServer, unique } from "./helpers.mjs";

let server, admin;

before(async () => {
  server = await startServer(["--set", "security.auth=api_key"]);
  admin = new AgentDB({ address: `http://${server.addr}`, apiKey: server.adminKey });
});

after(async () => {
  admin?.close();
  await server?.stop();
  server?.cleanup();
});

test("no key and a wrong key are UNAUTHENTICATED", async () => {
  for (const opts of [{}, { apiKey: "adb_not_a_real_key" }, { token: "not.a.jwt" }]) {
    const c = new AgentDB({ address: server.addr, retries: 0, ...opts });
    try {
      const e = await rejection(c.listCollections());
      assert.ok(e instanceof UnauthenticatedError, `${JSON.stringify(opts)}: ${e}`);
      assert.equal(e.code, Status.UNAUTHENTICATED);
      assert.ok(e.details.length > 0);
    } finally {
      c.close();
    }
  }
});

test("a reader key (made by the CLI) reads but is refused writes", async () => {
  const coll = unique("authz");
  await admin.createCollection(coll, { dim: 2 });
  await admin.upsert(coll, [{ id: "a", vector: [1, 0], payload: { n: 1 } }]);
  // The CLI prints the secret on stdout.
  const out = execFileSync(BIN, ["keys", "create", unique("reader"), "--role", "reader"], {
    env: { ...process.env, AGENTDB_URL: `http://${server.addr}`, AGENTDB_API_KEY: server.adminKey },
    encoding: "utf8",
  });
  const secret = out.trim();
  assert.ok(secret.length > 20 && !/\s/.test(secret), `one secret on stdout: ${out}`);
  const reader = new AgentDB({ address: server.addr, apiKey: secret });
  try {
    assert.equal(await reader.count(coll), 1);
    assert.deepEqual((await reader.search(coll, { vector: [1, 0] })).map((h) => h.id), ["a"]);
    const e = await rejection(reader.upsert(coll, [{ id: "b", vector: [0, 1] }]));
    assert.ok(e instanceof PermissionDeniedError, String(e));
    assert.equal(e.code, Status.PERMISSION_DENIED);
    const d = await rejection(reader.dropCollection(coll));
    assert.ok(d instanceof PermissionDeniedError, String(d));
    const k = await rejection(reader.createKey(unique("x"), "admin"));
    assert.ok(k instanceof PermissionDeniedError, String(k));
  } finally {
    reader.close();
  }
  assert.equal(await admin.count(coll), 1, "the refused write did nothing");
});

test("a writer key writes; AGENTDB_URL / AGENTDB_API_KEY are the defaults", async () => {
  const coll = unique("writer");
  await admin.createCollection(coll, { dim: 2 });
  const { secret, key } = await admin.createKey(unique("w"), "writer", { collections: [coll] });
  assert.equal(key.role, "writer");
  const saved = { url: process.env.AGENTDB_URL, key: process.env.AGENTDB_API_KEY };
  process.env.AGENTDB_URL = server.addr;
  process.env.AGENTDB_API_KEY = secret;
  const w = new AgentDB();
  try {
    assert.equal(w.address, server.addr);
    assert.deepEqual((await w.upsert(coll, [{ id: "z", vector: [0, 1] }])).ids, ["z"]);
    assert.equal(await w.count(coll), 1);
    const other = unique("other");
    await admin.createCollection(other, { dim: 2 });
    const e = await rejection(w.upsert(other, [{ id: "z", vector: [0, 1] }]));
    assert.ok(e instanceof PermissionDeniedError, String(e));
  } finally {
    w.close();
    if (saved.url === undefined) delete process.env.AGENTDB_URL;
    else process.env.AGENTDB_URL = saved.url;
    if (saved.key === undefined) delete process.env.AGENTDB_API_KEY;
    else process.env.AGENTDB_API_KEY = saved.key;
  }
  assert.throws(() => new AgentDB({ address: server.addr, apiKey: "a", token: "b" }), TypeError);
});

test("whoAmI: the admin, a reader and a scoped writer; scroll stays within a row policy", async () => {
  const coll = unique("whoami");
  const other = unique("other");
  await admin.createCollection(coll, { dim: 2 });
  await admin.upsert(coll, ["a", "b", "c"].map((id, i) => ({ id, vector: [1, 0], payload: { team: i === 1 ? "y" : "x" } })));
  const me = await admin.whoAmI(coll);
  assert.equal(me.authEnabled, true);
  assert.equal(me.role, "admin");
  assert.equal(me.canAdmin, true);
  assert.match(me.id, /^key:/);
  assert.deepEqual(me.permissions, [{ collection: coll, read: true, write: true, admin: true }]);

  const made = await admin.createKey(unique("reader"), "reader");
  const reader = new AgentDB({ address: server.addr, apiKey: made.secret });
  try {
    const who = await reader.whoAmI([coll, other]);
    assert.deepEqual(who, {
      authEnabled: true,
      id: `key:${made.key.id}`,
      name: made.key.name,
      role: "reader",
      collections: [],
      rowFilter: "",
      canAdmin: false,
      permissions: [
        { collection: coll, read: true, write: false, admin: false },
        { collection: other, read: true, write: false, admin: false },
      ],
    });
    assert.deepEqual((await reader.whoAmI()).permissions, []);
    assert.deepEqual((await reader.scroll(coll)).items.map((it) => it.id), ["a", "b", "c"], "scroll needs read access only");
  } finally {
    reader.close();
  }

  const scoped = await admin.createKey(unique("scoped"), "writer", { collections: [coll], rowFilter: 'team = "x"' });
  const w = new AgentDB({ address: server.addr, apiKey: scoped.secret });
  try {
    const who = await w.whoAmI([coll, other]);
    assert.equal(who.role, "writer");
    assert.deepEqual(who.collections, [coll]);
    assert.equal(who.rowFilter, 'team = "x"');
    assert.deepEqual(who.permissions, [
      { collection: coll, read: true, write: true, admin: false },
      { collection: other, read: false, write: false, admin: false },
    ]);
    const seen = [];
    for await (const it of w.iterItems(coll, { pageSize: 1 })) seen.push(it.id);
    assert.deepEqual(seen, ["a", "c"]);
    assert.ok((await rejection(w.scroll(other))) instanceof PermissionDeniedError);
  } finally {
    w.close();
  }
});

test("whoAmI without authentication: the local operator may do everything", async () => {
  const open = await startServer([]);
  const c = new AgentDB({ address: open.addr, apiKey: "" });
  try {
    const me = await c.whoAmI(["anything", "else"]);
    assert.equal(me.authEnabled, false);
    assert.equal(me.id, "local");
    assert.equal(me.role, "admin");
    assert.equal(me.canAdmin, true);
    assert.deepEqual(me.permissions, ["anything", "else"].map((collection) => ({ collection, read: true, write: true, admin: true })));
  } finally {
    c.close();
    await open.stop();
    open.cleanup();
  }
});
