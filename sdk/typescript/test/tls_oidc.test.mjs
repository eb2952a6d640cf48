// TLS (a test CA) with API keys and OIDC tokens (RS256, a JWKS file).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import * as path from "node:path";
import { readFileSync } from "node:fs";
import { AgentDB, PermissionDeniedError, UnauthenticatedError, UnavailableError } from "../dist/index.js";
import { AUDIENCE, ISSUER, claims, makePki, rejection, startServer, tempDir, unique } from "./helpers.mjs";

let server, pki;

before(async () => {
  const root = tempDir();
  pki = makePki(path.join(root, "pki"));
  server = await startServer(
    [
      "--set", "security.auth=api_key",
      "--set", `security.tls.cert_file=${pki.cert}`,
      "--set", `security.tls.key_file=${pki.key}`,
      "--set", "security.oidc.enabled=true",
      "--set", `security.oidc.issuer=${ISSUER}`,
      "--set", `security.oidc.audience=${AUDIENCE}`,
      "--set", `security.oidc.jwks_file=${pki.jwks}`,
    ],
    { root },
  );
});

after(async () => {
  await server?.stop();
  server?.cleanup();
});

test("TLS with an API key, then OIDC tokens (admin and reader)", async () => {
  const coll = unique("tls");
  const admin = new AgentDB({ address: `https://${server.addr}`, apiKey: server.adminKey, tls: { rootCerts: pki.ca } });
  try {
    assert.equal(admin.tls, true);
    await admin.createCollection(coll, { dim: 2 });
    assert.deepEqual((await admin.upsert(coll, [{ id: "a", vector: [1, 0] }])).ids, ["a"]);
  } finally {
    admin.close();
  }
  // A bare address with tls: {...} and the CA as PEM bytes.
  const oidc = new AgentDB({ address: server.addr, tls: { rootCerts: readFileSync(pki.ca) }, token: pki.token(claims()) });
  try {
    assert.deepEqual((await oidc.search(coll, { vector: [1, 0] })).map((h) => h.id), ["a"]);
  } finally {
    oidc.close();
  }
  const reader = new AgentDB({ address: `https://${server.addr}`, tls: { rootCerts: pki.ca }, token: pki.token(claims({ sub: "bob", agentdb_role: "reader" })) });
  try {
    assert.equal(await reader.count(coll), 1);
    const e = await rejection(reader.upsert(coll, [{ id: "b", vector: [0, 1] }]));
    assert.ok(e instanceof PermissionDeniedError, String(e));
  } finally {
    reader.close();
  }
  const now = Math.floor(Date.now() / 1000);
  for (const bad of [pki.token(claims({ aud: "someone-else" })), pki.token(claims({ exp: now - 3600 })), "not.a.jwt"]) {
    const c = new AgentDB({ address: `https://${server.addr}`, tls: { rootCerts: pki.ca }, token: bad });
    try {
      const e = await rejection(c.count(coll));
      assert.ok(e instanceof UnauthenticatedError, String(e));
      assert.match(e.details, /OIDC|token/i);
    } finally {
      c.close();
    }
  }
});

test("TLS refuses a wrong CA, and plaintext is refused by a TLS server", async () => {
  for (const opts of [
    { address: `https://${server.addr}`, tls: { rootCerts: pki.otherCa } },
    { address: `http://${server.addr}` },
  ]) {
    const c = new AgentDB({ ...opts, apiKey: server.adminKey, retries: 1, timeoutMs: 5000 });
    try {
      const e = await rejection(c.listCollections());
      assert.ok(e instanceof UnavailableError, `${opts.address}: ${e}`);
    } finally {
      c.close();
    }
  }
});
