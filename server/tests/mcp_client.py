"""Drives AgentDB's MCP server with the official MCP Python SDK (`mcp`), the way an agent
host would, and checks what comes back. Used by server/tests/e2e_mcp.rs.

    mcp_client.py --url http://127.0.0.1:PORT/mcp --mode auto|legacy|2026-07-28|stdio
                  [--key KEY] [--bin AGENTDB] [--image PHOTO] [--scenario full|reader|nokey]

Exits non-zero (with the failing check) unless every check holds.
"""

import argparse
import asyncio
import base64
import json
import mimetypes
import os
import sys

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

TOOLS = {
    "list_collections", "search", "ingest", "remember", "recall",
    "list_workflows", "run_workflow", "get_workflow_run",
}


def check(cond, what, detail=""):
    if not cond:
        print(f"FAILED: {what}\n{detail}", file=sys.stderr)
        sys.exit(1)
    print(f"ok: {what}")


def client_for(a):
    mode = "auto" if a.mode == "stdio" else a.mode
    if a.mode == "stdio":
        env = dict(os.environ)
        env["AGENTDB_HTTP_URL"] = a.url
        if a.key:
            env["AGENTDB_API_KEY"] = a.key
        params = StdioServerParameters(command=a.bin, args=["mcp"], env=env)
        return Client(params, mode=mode, read_timeout_seconds=120)
    headers = {"authorization": f"Bearer {a.key}"} if a.key else {}
    transport = streamable_http_client(a.url, http_client=create_mcp_http_client(headers=headers))
    return Client(transport, mode=mode, read_timeout_seconds=120)


async def call(c, name, args):
    r = await c.call_tool(name, args)
    text = "\n".join(getattr(b, "text", "") for b in r.content)
    return r, text


async def full(a):
    async with client_for(a) as c:
        version = c.session.protocol_version
        want = "2025-11-25" if a.mode == "legacy" else "2026-07-28"
        check(version == want, f"negotiated protocol {want}", version)

        tools = await c.list_tools()
        names = {t.name for t in tools.tools}
        check(names == TOOLS, "tools/list names the eight tools", names)
        search_tool = next(t for t in tools.tools if t.name == "search")
        check(search_tool.input_schema["required"] == ["collection"], "search's schema requires a collection")
        check(search_tool.annotations.read_only_hint is True, "search is annotated read-only")

        r, text = await call(c, "list_collections", {})
        names = [x["name"] for x in r.structured_content["collections"]]
        check(not r.is_error and "docs" in names and "photos" in names, "list_collections shows docs and photos", text)

        note = f"The lighthouse keeper on Skellig rock lit the lamp at dusk ({a.mode}, {os.getpid()})."
        r, text = await call(c, "ingest", {"collection": "docs", "text": note, "source": f"lighthouse-{a.mode}.txt"})
        check(not r.is_error and r.structured_content["status"] == "ingested", "ingest of text", text)

        r, text = await call(c, "search", {"collection": "docs", "query": "who lights the lighthouse lamp", "top_k": 3})
        hits = r.structured_content["hits"]
        check(not r.is_error and hits and hits[0]["source"].startswith("lighthouse-"), "text search finds the note first", text)

        r, text = await call(c, "search", {"collection": "docs", "query": "ripe bananas"})
        fruit = r.structured_content["hits"][0]["source"]
        check(fruit.endswith("fruit.txt"), "a second text search finds fruit.txt", text)
        r, text = await call(c, "search", {"collection": "docs", "query": "fuel injector pistons",
                                           "filter": f"source = {json.dumps(fruit)}"})
        hits = r.structured_content["hits"] if not r.is_error else []
        check(hits and all(h["source"] == fruit for h in hits), "a filter restricts the hits", text)

        with open(a.image, "rb") as f:
            photo = base64.b64encode(f.read()).decode()
        r, text = await call(c, "search", {"collection": "photos", "media": photo, "media_type": mimetypes.guess_type(a.image)[0], "top_k": 3})
        hits = r.structured_content["hits"] if not r.is_error else []
        check(hits and hits[0]["source"].endswith(os.path.basename(a.image)),
              "an image query finds the same photo first", text)

        r, text = await call(c, "remember", {"text": f"the staging database password rotates every Monday ({a.mode}, {os.getpid()})"})
        check(not r.is_error, "remember", text)
        r, text = await call(c, "recall", {"query": "when does the staging password rotate"})
        check(not r.is_error and "Monday" in json.dumps(r.structured_content), "recall finds what was remembered", text)

        r, text = await call(c, "list_workflows", {})
        check(not r.is_error and any(w["name"] == "lookup" for w in r.structured_content["workflows"]),
              "list_workflows shows lookup", text)
        r, text = await call(c, "run_workflow", {"workflow": "lookup", "inputs": {"query": "ripe bananas"}, "wait_seconds": 60})
        run = r.structured_content or {}
        check(not r.is_error and run.get("state") == "succeeded", "run_workflow runs to success", text)
        hits = run["steps"][0]["output"]["hits"]
        check(hits and hits[0]["source"].endswith("fruit.txt"), "the run's search step found fruit.txt", json.dumps(run))
        r, text = await call(c, "get_workflow_run", {"run": run["run"]})
        check(not r.is_error and r.structured_content["state"] == "succeeded", "get_workflow_run", text)

        res = await c.list_resources()
        uris = {str(x.uri) for x in res.resources}
        check("agentdb://collections/docs" in uris, "resources/list has the docs collection", uris)
        templates = await c.list_resource_templates()
        check(templates.resource_templates[0].uri_template == "agentdb://collections/{name}", "a resource template")
        body = await c.read_resource("agentdb://collections/docs")
        info = json.loads(body.contents[0].text)
        check(info["name"] == "docs" and info["count"] >= 3, "resources/read describes docs", body.contents[0].text)
        try:
            await c.read_resource("agentdb://collections/nope")
            check(False, "reading a missing collection fails")
        except MCPError as e:
            check(e.code == -32002, "a missing resource is -32002", str(e))

        # Bad input: a tool error the model can read, never a crash.
        r, text = await call(c, "search", {"query": "x"})
        check(r.is_error and "'collection' is required" in text, "a missing argument is named", text)
        r, text = await call(c, "search", {"collection": "docs", "query": "x", "top_k": 1000})
        check(r.is_error and "top_k" in text, "an out-of-range top_k is named", text)
        r, text = await call(c, "search", {"collection": "nope", "query": "x"})
        check(r.is_error and "nope" in text, "a missing collection is named", text)
        r, text = await call(c, "search", {"collection": "photos", "media": "%%%", "media_type": "image/png"})
        check(r.is_error and "base64" in text, "bad base64 is named", text)
        r, text = await call(c, "ingest", {"collection": "docs", "path": "/etc/passwd"})
        check(r.is_error, "a path outside workflows.ingest_dirs is refused", text)
        try:
            await c.call_tool("drop_everything", {})
            check(False, "an unknown tool fails")
        except MCPError as e:
            check(e.code == -32602 and "drop_everything" in str(e), "an unknown tool is -32602", str(e))
        await c.send_ping()
        print("ok: ping")


async def reader(a):
    """A reader key: may search, may not write; sees only what it may read."""
    async with client_for(a) as c:
        r, text = await call(c, "search", {"collection": "docs", "query": "bananas"})
        check(not r.is_error and r.structured_content["hits"], "a reader may search", text)
        r, text = await call(c, "ingest", {"collection": "docs", "text": "not allowed"})
        check(r.is_error and "refused" in text, "a reader may not ingest", text)
        r, text = await call(c, "list_collections", {})
        names = [x["name"] for x in r.structured_content["collections"]]
        check(names == ["docs"], "a key scoped to docs lists only docs", names)
        r, text = await call(c, "search", {"collection": "photos", "query": "cat"})
        check(r.is_error and "refused" in text, "a key scoped to docs may not search photos", text)
        try:
            await c.read_resource("agentdb://collections/photos")
            check(False, "reading an unreadable collection fails")
        except MCPError as e:
            check(e.code == -32002, "an unreadable collection is not found", str(e))


async def nokey(a):
    try:
        async with client_for(a) as c:
            await c.list_tools()
        check(False, "connecting without a key fails")
    except Exception as e:  # the transport surfaces the 401
        check("401" in repr(e) or "nauthori" in repr(e) or "credentials" in repr(e),
              "connecting without a key is refused (401)", repr(e))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--mode", default="auto")
    p.add_argument("--key")
    p.add_argument("--bin")
    p.add_argument("--image")
    p.add_argument("--scenario", default="full")
    a = p.parse_args()
    asyncio.run({"full": full, "reader": reader, "nokey": nokey}[a.scenario](a))


if __name__ == "__main__":
    main()
