"""API keys: admin, reader refused writes, missing / bad / revoked keys; who_am_i with and
without authentication."""

from __future__ import annotations

import os
import subprocess

import pytest

import agentdb
from conftest import BIN, make_client


def test_keys_and_roles(client, kind, server, unique):
    coll = unique("authz")
    client.create_collection(coll, 2)
    client.upsert(coll, ids=["a"], vectors=[[1, 0]], payloads=[{"team": "x"}])

    created = client.create_key(unique("reader"), "reader")
    assert isinstance(created, agentdb.CreatedKey) and created.secret.startswith("adb_")
    assert created.key.role == "reader" and not created.key.revoked
    assert created.key.id in [k.id for k in client.list_keys()]

    reader = make_client(kind, server.url, api_key=created.secret)
    try:
        assert reader.count(coll) == 1
        assert reader.search(coll, [1, 0]).ids == ["a"]
        with pytest.raises(agentdb.PermissionDenied) as e:
            reader.upsert(coll, ids=["b"], vectors=[[0, 1]])
        assert e.value.code.name == "PERMISSION_DENIED" and e.value.details
        with pytest.raises(agentdb.PermissionDenied):
            reader.create_key("nope", "admin")
        revoked = client.revoke_key(created.key.id)
        assert revoked.revoked
        with pytest.raises(agentdb.Unauthenticated):
            reader.count(coll)
    finally:
        reader.close()
    assert client.count(coll) == 1

    # A key scoped to one collection with a row filter.
    scoped = client.create_key(unique("scoped"), "writer", collections=[coll], row_filter='team = "x"')
    assert scoped.key.collections == (coll,) and scoped.key.row_filter == 'team = "x"'
    w = make_client(kind, server.url, token=scoped.secret)  # token= sends the same Bearer header
    try:
        w.upsert(coll, ids=["c"], vectors=[[0, 1]], payloads=[{"team": "x"}])
        with pytest.raises(agentdb.PermissionDenied):
            w.upsert(coll, ids=["d"], vectors=[[0, 1]], payloads=[{"team": "y"}])
        with pytest.raises(agentdb.PermissionDenied):
            w.list_keys()
    finally:
        w.close()
    assert client.count(coll) == 2


def test_who_am_i_and_scroll_under_keys(client, kind, server, unique):
    coll, other = unique("whoami"), unique("other")
    client.create_collection(coll, 2)
    client.upsert(coll, ids=["a", "b", "c"], vectors=[[1, 0]] * 3,
                  payloads=[{"team": "x"}, {"team": "y"}, {"team": "x"}])
    me = client.who_am_i(coll)
    assert isinstance(me, agentdb.Identity)
    assert me.auth_enabled and me.role == "admin" and me.can_admin and me.id.startswith("key:")
    assert me.permissions == (agentdb.CollectionPermissions(coll, read=True, write=True, admin=True),)

    created = client.create_key(unique("reader"), "reader")
    reader = make_client(kind, server.url, api_key=created.secret)
    try:
        who = reader.who_am_i([coll, other])
        assert who.auth_enabled and who.id == f"key:{created.key.id}" and who.name == created.key.name
        assert who.role == "reader" and not who.can_admin and who.collections == () and who.row_filter == ""
        assert [p.collection for p in who.permissions] == [coll, other]
        assert who.permission(coll) == agentdb.CollectionPermissions(coll, read=True, write=False, admin=False)
        assert reader.who_am_i().permissions == ()
        assert reader.scroll(coll).ids == ["a", "b", "c"]  # scroll needs read access only
    finally:
        reader.close()

    scoped = client.create_key(unique("scoped"), "writer", collections=[coll], row_filter='team = "x"')
    w = make_client(kind, server.url, api_key=scoped.secret)
    try:
        who = w.who_am_i([coll, other])
        assert who.role == "writer" and who.collections == (coll,) and who.row_filter == 'team = "x"'
        assert who.permission(coll) == agentdb.CollectionPermissions(coll, read=True, write=True, admin=False)
        assert who.permission(other) == agentdb.CollectionPermissions(other, read=False, write=False, admin=False)
        # Scrolling stays within the key's row policy.
        assert [it.id for it in w.iter_items(coll, page_size=1)] == ["a", "c"]
        with pytest.raises(agentdb.PermissionDenied):
            w.scroll(other)
    finally:
        w.close()


def test_who_am_i_without_authentication(kind, open_server, unique, monkeypatch):
    monkeypatch.delenv("AGENTDB_API_KEY", raising=False)
    c = make_client(kind, open_server.url)
    try:
        me = c.who_am_i(["anything", "else"])
        assert not me.auth_enabled and me.id == "local" and me.role == "admin" and me.can_admin
        assert me.permissions == tuple(
            agentdb.CollectionPermissions(n, read=True, write=True, admin=True) for n in ("anything", "else")
        )
        assert me.permission("else").write
        with pytest.raises(KeyError):
            me.permission("unasked")
    finally:
        c.close()


@pytest.mark.parametrize("key", [None, "adb_not_a_real_key"])
def test_missing_or_bad_key_is_unauthenticated(kind, server, key, monkeypatch):
    monkeypatch.delenv("AGENTDB_API_KEY", raising=False)
    c = make_client(kind, server.url, api_key=key)
    try:
        with pytest.raises(agentdb.Unauthenticated) as e:
            c.list_collections()
        assert e.value.code.name == "UNAUTHENTICATED"
        assert isinstance(e.value, agentdb.AgentDBError)
    finally:
        c.close()


def test_env_defaults_and_cli_key(admin, server, monkeypatch, unique):
    """Client() reads AGENTDB_URL / AGENTDB_API_KEY, like the CLI; a key the CLI created works."""
    env = dict(os.environ, AGENTDB_URL=f"http://{server.url}", AGENTDB_API_KEY=server.admin_key)
    out = subprocess.run([BIN, "keys", "create", unique("cli"), "--role", "writer"], env=env,
                         capture_output=True, text=True, check=True).stdout
    secret = next(tok for tok in out.split() if tok.startswith("adb_"))
    monkeypatch.setenv("AGENTDB_URL", f"http://{server.url}")
    monkeypatch.setenv("AGENTDB_API_KEY", secret)
    coll = unique("envcoll")
    admin.create_collection(coll, 2)
    with agentdb.Client() as c:
        assert c.target == server.url
        assert c.upsert(coll, ids=["x"], vectors=[[1, 2]]).ids == ["x"]
        with pytest.raises(agentdb.PermissionDenied):
            c.drop_collection(coll)
    assert admin.count(coll) == 1
