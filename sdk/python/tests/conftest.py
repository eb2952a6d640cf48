"""Fixtures: real `agentdb serve` processes on 127.0.0.1:0 in temporary data dirs.

AGENTDB_BIN names the binary (default ~/.cache/agentdb/target/release/agentdb).
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

import agentdb

BIN = os.environ.get("AGENTDB_BIN") or os.path.expanduser("~/.cache/agentdb/target/release/agentdb")
TESTDATA = Path(os.environ.get("AGENTDB_TESTDATA") or os.path.expanduser("~/.cache/agentdb/testdata"))
PHOTOS = TESTDATA / "photos"


class Server:
    def __init__(self, data_dir: Path, args: List[str]) -> None:
        self.data_dir = data_dir
        self.log = data_dir.parent / (data_dir.name + ".log")
        out = data_dir.parent / (data_dir.name + ".out")
        binary = self._binary()
        cmd = [binary, "serve", "--listen", "127.0.0.1:0", "--data-dir", str(data_dir), "--set", "http_listen="]
        cmd += args
        with open(out, "wb") as o, open(self.log, "wb") as e:
            self.proc = subprocess.Popen(cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            text = out.read_text(errors="replace")
            m = re.search(r"agentdb listening on (\S+)", text)
            if m:
                self.addr = m.group(1)
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start: {cmd}\n{text}\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        key = data_dir / "security" / "bootstrap-admin.key"
        self.admin_key: Optional[str] = key.read_text().strip() if key.exists() else None

    @staticmethod
    def _binary() -> str:
        # The binary may be replaced by a rebuild while the tests run: wait for it.
        deadline = time.monotonic() + 60
        while not os.access(BIN, os.X_OK):
            if time.monotonic() > deadline:
                pytest.fail(f"no agentdb binary at {BIN} (set AGENTDB_BIN)")
            time.sleep(0.5)
        return BIN

    @property
    def url(self) -> str:
        return self.addr

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def tmp_root() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="agentdb-sdk-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def server(tmp_root: Path) -> Iterator[Server]:
    """The main server: API-key auth on, fault injection allowed, a small ring."""
    s = Server(
        tmp_root / "main",
        [
            "--set", "security.auth=api_key",
            "--set", "debug.allow_fault_injection=true",
            "--set", "limits.max_audio_seconds=20",
        ],
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def open_server(tmp_root: Path) -> Iterator[Server]:
    """Authentication off (the default): every caller is the local operator."""
    s = Server(tmp_root / "open", [])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def admin(server: Server) -> Iterator[agentdb.Client]:
    with agentdb.Client(server.url, api_key=server.admin_key) as c:
        yield c


class SyncView:
    """Runs an AsyncClient's coroutines to completion, and its async generators
    (``iter_items``) as generators, so one test body drives both clients (``client``
    fixture). Streaming APIs are tested natively in test_async.py."""

    def __init__(self, make: Callable[[], agentdb.AsyncClient]) -> None:
        self.loop = asyncio.new_event_loop()

        async def build() -> agentdb.AsyncClient:
            return make()

        self.inner = self.loop.run_until_complete(build())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*a: Any, **kw: Any) -> Any:
            out = attr(*a, **kw)
            if asyncio.iscoroutine(out):
                return self.loop.run_until_complete(out)
            if inspect.isasyncgen(out):
                return self._drain(out)
            return out

        return call

    def _drain(self, agen: Any) -> Iterator[Any]:
        try:
            while True:
                try:
                    yield self.loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self.loop.run_until_complete(agen.aclose())

    def close(self) -> None:
        self.loop.run_until_complete(self.inner.close())
        self.loop.close()


def make_client(kind: str, *args: Any, **kwargs: Any) -> Any:
    if kind == "sync":
        return agentdb.Client(*args, **kwargs)
    return SyncView(lambda: agentdb.AsyncClient(*args, **kwargs))


@pytest.fixture(params=["sync", "async"])
def kind(request: Any) -> str:
    return request.param


@pytest.fixture
def client(kind: str, server: Server) -> Iterator[Any]:
    """An admin client, once sync and once asyncio (through SyncView)."""
    c = make_client(kind, server.url, api_key=server.admin_key)
    yield c
    c.close()


_counter = [0]


@pytest.fixture
def unique() -> Callable[[str], str]:
    def name(prefix: str) -> str:
        _counter[0] += 1
        return f"{prefix}_{os.getpid()}_{_counter[0]}"

    return name


# ------------------------------------------------------------------ TLS and OIDC material

def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _openssl(*args: str, cwd: Path, stdin: Optional[bytes] = None) -> bytes:
    return subprocess.run(["openssl", *args], cwd=cwd, input=stdin, check=True, capture_output=True).stdout


class Pki:
    """A CA, a server certificate for 127.0.0.1 and an RSA key signing OIDC tokens."""

    def __init__(self, d: Path) -> None:
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", "2", "-subj", "/CN=agentdb-sdk-test-ca", cwd=d)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
                 "-subj", "/CN=127.0.0.1", cwd=d)
        (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                                   "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
        _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
        # A second, unrelated CA: a client trusting it must refuse the server.
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other.pem",
                 "-days", "2", "-subj", "/CN=other-ca", cwd=d)
        _openssl("genrsa", "-out", "jwt.key", "2048", cwd=d)
        modulus = _openssl("rsa", "-in", "jwt.key", "-noout", "-modulus", cwd=d).decode().strip().split("=", 1)[1]
        n = bytes.fromhex(modulus)
        jwks = {"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig", "n": _b64url(n), "e": "AQAB"}]}
        (d / "jwks.json").write_text(json.dumps(jwks))
        self.ca = d / "ca.pem"
        self.other_ca = d / "other.pem"

    def token(self, claims: Dict[str, Any]) -> str:
        header = _b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
        body = _b64url(json.dumps(claims).encode())
        signing_input = f"{header}.{body}".encode()
        sig = _openssl("dgst", "-sha256", "-sign", "jwt.key", cwd=self.dir, stdin=signing_input)
        return f"{header}.{body}.{_b64url(sig)}"


ISSUER = "https://idp.sdk.test"
AUDIENCE = "agentdb-sdk"


@pytest.fixture(scope="module")
def secure_server(tmp_root: Path) -> Iterator[Any]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to mint test certificates")
    pki = Pki(tmp_root / "pki")
    s = Server(
        tmp_root / "secure",
        [
            "--set", "security.auth=api_key",
            "--set", f"security.tls.cert_file={pki.dir / 'server.pem'}",
            "--set", f"security.tls.key_file={pki.dir / 'server.key'}",
            "--set", "security.oidc.enabled=true",
            "--set", f"security.oidc.issuer={ISSUER}",
            "--set", f"security.oidc.audience={AUDIENCE}",
            "--set", f"security.oidc.jwks_file={pki.dir / 'jwks.json'}",
        ],
    )
    s.pki = pki  # type: ignore[attr-defined]
    yield s
    s.stop()


@pytest.fixture(scope="module")
def limited_server(tmp_root: Path) -> Iterator[Server]:
    """Request rate limit of 20/s per principal (burst 2) and a 3-item storage quota."""
    s = Server(
        tmp_root / "limited",
        [
            "--set", "security.auth=api_key",
            "--set", "security.rate_limit_per_sec=20",
            "--set", "security.rate_limit_burst=2",
            "--set", "security.storage_quota_items=3",
        ],
    )
    yield s
    s.stop()
