#!/usr/bin/env python3
"""A real A2A agent, built on the official A2A Python SDK (a2a-sdk 1.3.0), that the
tests of AgentDB's A2A client (server/src/a2a_client.rs) and the workflow end-to-end
tests call.

    python3 server/tests/a2a_agent.py --port N [--host 127.0.0.1] [--state-dir DIR]

It serves the agent card at /.well-known/agent-card.json and JSON-RPC (protocol 1.0,
and 0.3 on the same endpoint) at /, and prints one line `READY <port>` to stdout once
it listens. What it does depends on the text of the incoming message:

    echo <anything>    completes with an artifact: text `echo: <anything>` and data
                       {"echo": "<anything>", "attempt": n} (n counts calls with that
                       same text; persisted in --state-dir)
    sleep <secs>       stays working that long, then completes (honours cancel)
    crash              the process exits at once (exit status 3), mid-request
    flaky <k> <tag>    exits like `crash` on the first k calls with that tag (count
                       persisted in --state-dir), then completes `ok after <k> failures`
    fail <reason>      the task ends TASK_STATE_FAILED; the status message has the reason
    ask                the task ends TASK_STATE_INPUT_REQUIRED

Any data part received is echoed back in the completion's data part under "received".
Needs `a2a-sdk[http-server]==1.3.0` and `uvicorn` (see .ci/setup.sh).
"""

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import tempfile

try:
    import uvicorn
    from google.protobuf.json_format import MessageToDict
    from starlette.applications import Starlette

    from a2a.helpers.proto_helpers import new_data_part, new_task, new_text_part
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
    from a2a.types.a2a_pb2 import (
        AgentCapabilities,
        AgentCard,
        AgentInterface,
        AgentSkill,
        TaskState,
    )
except ImportError as e:  # pragma: no cover - reported to the test that started us
    print(
        f"a2a_agent.py: missing dependency ({e}); run .ci/setup.sh "
        "(needs a2a-sdk[http-server]==1.3.0 and uvicorn)",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(2)


class Counters:
    """Call counters kept in a JSON file, so they survive a crash and restart."""

    def __init__(self, state_dir: str | None):
        self.path = os.path.join(state_dir, "a2a_agent_counts.json") if state_dir else None
        self.mem: dict[str, int] = {}

    def _load(self) -> dict[str, int]:
        if not self.path:
            return self.mem
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def bump(self, key: str) -> int:
        counts = self._load()
        n = int(counts.get(key, 0)) + 1
        counts[key] = n
        if self.path:
            # Written and synced before a possible os._exit, replaced atomically.
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(self.path))
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(counts, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        else:
            self.mem = counts
        return n


class TestAgentExecutor(AgentExecutor):
    def __init__(self, counters: Counters):
        self.counters = counters

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input().strip()
        received = [
            MessageToDict(p)["data"]
            for p in (context.message.parts if context.message else [])
            if p.HasField("data")
        ]
        words = text.split()
        cmd = words[0].lower() if words else ""
        rest = text[len(words[0]):].strip() if words else ""

        if cmd == "crash":
            os._exit(3)
        if cmd == "flaky":
            k = int(words[1]) if len(words) > 1 and words[1].isdigit() else 1
            tag = words[2] if len(words) > 2 else ""
            if self.counters.bump(f"flaky:{tag}") <= k:
                os._exit(3)

        # A task-shaped interaction: the Task first (with return_immediately the client
        # gets it back at once), then status updates and artifacts.
        history = [context.message] if context.message else []
        await event_queue.enqueue_event(
            context.current_task
            or new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED, history=history)
        )
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.start_work()

        def msg(s: str):
            return updater.new_agent_message([new_text_part(s)])

        def extra(d: dict) -> dict:
            if received:
                d["received"] = received[0] if len(received) == 1 else received
            return d

        if cmd == "echo":
            n = self.counters.bump(f"echo:{text}")
            await updater.add_artifact(
                [
                    new_text_part(f"echo: {rest}"),
                    new_data_part(extra({"echo": rest, "attempt": n})),
                ],
                name="echo",
            )
            await updater.complete()
        elif cmd == "sleep":
            try:
                secs = float(words[1]) if len(words) > 1 else 1.0
            except ValueError:
                secs = 1.0
            await asyncio.sleep(secs)  # cancel() cancels this coroutine
            await updater.add_artifact(
                [new_text_part(f"slept {words[1] if len(words) > 1 else '1'}s"), new_data_part(extra({"slept": secs}))],
                name="sleep",
            )
            await updater.complete()
        elif cmd == "flaky":
            k = words[1] if len(words) > 1 else "1"
            await updater.add_artifact(
                [new_text_part(f"ok after {k} failures"), new_data_part(extra({"failures": int(k)}))],
                name="flaky",
            )
            await updater.complete()
        elif cmd == "fail":
            await updater.failed(msg(f"failed as asked: {rest or 'no reason given'}"))
        elif cmd == "ask":
            await updater.requires_input(msg("which collection should I use? (reply with its name)"))
        else:
            await updater.reject(msg(f"unknown command {cmd!r}; try echo, sleep, crash, flaky, fail or ask"))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel(updater.new_agent_message([new_text_part("canceled by the client")]))


def build_app(host: str, port: int, state_dir: str | None) -> Starlette:
    card = AgentCard(
        name="AgentDB test agent",
        description="Echo, sleep, crash, flaky, fail and ask: a scripted agent for AgentDB's tests.",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"http://{host}:{port}/", protocol_binding="JSONRPC", protocol_version="1.0")
        ],
        capabilities=AgentCapabilities(streaming=False, push_notifications=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(
                id="script",
                name="Scripted behaviour",
                description="echo <text> | sleep <secs> | crash | flaky <k> <tag> | fail <reason> | ask",
                tags=["test"],
                examples=["echo hello", "sleep 5", "fail out of coffee"],
            )
        ],
    )
    handler = DefaultRequestHandler(
        agent_executor=TestAgentExecutor(Counters(state_dir)),
        task_store=InMemoryTaskStore(),
        agent_card=card,
    )
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True)
    return Starlette(routes=routes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--state-dir", default=None)
    args = ap.parse_args()
    if args.state_dir:
        os.makedirs(args.state_dir, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    # Bind and listen before announcing READY, so a client connecting right after the
    # line is queued in the backlog rather than refused.
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]

    app = build_app(args.host, port, args.state_dir)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    print(f"READY {port}", flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
