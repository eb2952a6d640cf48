// Test harness: real `agentdb serve` processes on 127.0.0.1:0 in temporary data dirs.
// AGENTDB_BIN names the binary (default ~/.cache/agentdb/target/release/agentdb).
import { spawn, execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir, homedir } from "node:os";
import * as path from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { createSign, createPrivateKey, generateKeyPairSync } from "node:crypto";

export const BIN = process.env.AGENTDB_BIN || path.join(homedir(), ".cache/agentdb/target/release/agentdb");
export const TESTDATA = process.env.AGENTDB_TESTDATA || path.join(homedir(), ".cache/agentdb/testdata");
export const PHOTOS = path.join(TESTDATA, "photos");

export function tempDir(prefix = "agentdb-ts-") {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

async function binary() {
  // The binary may be replaced by a rebuild while the tests run: wait for it.
  const until = Date.now() + 60000;
  for (;;) {
    try {
      accessSync(BIN, constants.X_OK);
      return BIN;
    } catch {
      if (Date.now() > until) throw new Error(`no agentdb binary at ${BIN} (set AGENTDB_BIN)`);
      await delay(500);
    }
  }
}

/** Start a server; resolves once it prints `agentdb listening on ADDR`. */
export async function startServer(args = [], { root = tempDir() } = {}) {
  const dataDir = path.join(root, "data");
  const outFile = path.join(root, "server.out");
  const logFile = path.join(root, "server.log");
  const bin = await binary();
  const cmd = ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--set", "http_listen=", ...args];
  const proc = spawn(bin, cmd, { stdio: ["ignore", openSync(outFile, "w"), openSync(logFile, "w")] });
  let exited = null;
  proc.on("exit", (code, sig) => (exited = code ?? sig));
  const until = Date.now() + 60000;
  let addr;
  for (;;) {
    const out = existsSync(outFile) ? readFileSync(outFile, "utf8") : "";
    const m = /agentdb listening on (\S+)/.exec(out);
    if (m) {
      addr = m[1];
      break;
    }
    if (exited !== null || Date.now() > until) {
      proc.kill("SIGKILL");
      const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-3000) : "";
      throw new Error(`server did not start (${exited}): ${bin} ${cmd.join(" ")}\n${out}\n${log}`);
    }
    await delay(50);
  }
  const keyFile = path.join(dataDir, "security", "bootstrap-admin.key");
  const adminKey = existsSync(keyFile) ? readFileSync(keyFile, "utf8").trim() : undefined;
  return {
    addr,
    dataDir,
    root,
    adminKey,
    proc,
    async stop() {
      if (exited !== null) return;
      const gone = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 10000);
      await gone;
      clearTimeout(t);
    },
    cleanup() {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

let counter = 0;
export function unique(prefix) {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}`;
}

/** Collect a rejection: `await rejects(promise)` returns the error (fails if it resolved). */
export async function rejection(p) {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected the call to fail, it succeeded");
}

// ------------------------------------------------------------------ TLS and OIDC material

const b64url = (b) => Buffer.from(b).toString("base64url");

export const ISSUER = "https://idp.sdk-ts.test";
export const AUDIENCE = "agentdb-sdk-ts";

/** A CA, a server certificate for 127.0.0.1/localhost, an unrelated CA, and an RSA key signing OIDC tokens (JWKS file). */
export function makePki(dir) {
  mkdirSync(dir, { recursive: true });
  const ssl = (...a) => execFileSync("openssl", a, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=agentdb-ts-test-ca");
  ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1");
  writeFileSync(
    path.join(dir, "ext.cnf"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
  );
  ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf");
  ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem", "-days", "2", "-subj", "/CN=other-ca");
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const jwk = publicKey.export({ format: "jwk" });
  writeFileSync(path.join(dir, "jwks.json"), JSON.stringify({ keys: [{ ...jwk, kid: "k1", alg: "RS256", use: "sig" }] }));
  return {
    dir,
    ca: path.join(dir, "ca.pem"),
    otherCa: path.join(dir, "other.pem"),
    cert: path.join(dir, "server.pem"),
    key: path.join(dir, "server.key"),
    jwks: path.join(dir, "jwks.json"),
    token(claims) {
      const header = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "k1" }));
      const body = b64url(JSON.stringify(claims));
      const s = createSign("RSA-SHA256");
      s.update(`${header}.${body}`);
      return `${header}.${body}.${s.sign(privateKey).toString("base64url")}`;
    },
  };
}

export function claims(extra = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { iss: ISSUER, aud: AUDIENCE, sub: "alice", iat: now, exp: now + 600, agentdb_role: "admin", ...extra };
}
