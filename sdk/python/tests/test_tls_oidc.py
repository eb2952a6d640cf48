"""TLS (a test CA) with API keys and OIDC tokens (RS256, a JWKS file)."""

from __future__ import annotations

import time

import pytest

import agentdb
from conftest import AUDIENCE, ISSUER, make_client


def _claims(**extra):
    now = int(time.time())
    c = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 600, "agentdb_role": "admin"}
    c.update(extra)
    return c


def test_tls_with_api_key_and_oidc(kind, secure_server, unique):
    s, pki = secure_server, secure_server.pki
    https = f"https://{s.url}"
    admin = make_client(kind, https, api_key=s.admin_key, root_certificates=pki.ca)
    try:
        coll = unique("tls")
        admin.create_collection(coll, 2)
        assert admin.upsert(coll, ids=["a"], vectors=[[1, 0]]).ids == ["a"]
    finally:
        admin.close()

    # An OIDC token (PEM given as bytes, tls=True with a bare address).
    oidc = make_client(kind, s.url, tls=True, root_certificates=pki.ca.read_bytes(), token=pki.token(_claims()))
    try:
        assert oidc.search(coll, [1, 0]).ids == ["a"]
    finally:
        oidc.close()
    reader = make_client(kind, https, root_certificates=pki.ca, token=pki.token(_claims(sub="bob", agentdb_role="reader")))
    try:
        assert reader.count(coll) == 1
        with pytest.raises(agentdb.PermissionDenied):
            reader.upsert(coll, ids=["b"], vectors=[[0, 1]])
    finally:
        reader.close()
    for bad in (pki.token(_claims(aud="someone-else")), pki.token(_claims(exp=int(time.time()) - 3600)), "not.a.jwt"):
        c = make_client(kind, https, root_certificates=pki.ca, token=bad)
        try:
            with pytest.raises(agentdb.Unauthenticated) as e:
                c.count(coll)
            assert "OIDC" in e.value.details or "token" in e.value.details.lower()
        finally:
            c.close()


def test_tls_refuses_wrong_ca_and_plaintext(kind, secure_server):
    s, pki = secure_server, secure_server.pki
    for kwargs in ({"url": f"https://{s.url}", "root_certificates": pki.other_ca}, {"url": f"http://{s.url}"}):
        c = make_client(kind, kwargs.pop("url"), api_key=s.admin_key, retries=1, timeout=5, **kwargs)
        try:
            with pytest.raises(agentdb.Unavailable):
                c.list_collections()
        finally:
            c.close()
