#!/usr/bin/env python3
"""The reference the A2A TCK numbers in docs/A2A.md are compared with: the TCK's own
`python-sut/tck_core_agent` (written for a development a2a-python checkout) ported to the
official SDK from the registry, a2a-sdk 1.3.0, served over JSON-RPC and gRPC with the
SDK's own request handler, task store and routes.

    python3 benches/tck/reference_agent.py   # prints `READY <http port> <grpc port>`

What it does with a message, like the TCK's agent: the task is submitted, after 0.5 s
working, after another 0.7 s it gets a `response` artifact echoing the text and
completes; cancel ends it. (benches/tck/run.sh starts it when TCK_SUT=reference.)
"""

import asyncio
import logging
import socket
import sys

import grpc
import uvicorn
from starlette.applications import Starlette

from a2a.helpers.proto_helpers import new_task, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.request_handlers.grpc_handler import GrpcHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import a2a_pb2_grpc
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill, TaskState


class TckCoreAgentExecutor(AgentExecutor):
    def __init__(self):
        self.running: set[str] = set()

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        query = context.get_user_input()
        task = context.current_task
        if task is None:
            history = [context.message] if context.message else []
            task = new_task(context.task_id, context.context_id, TaskState.TASK_STATE_SUBMITTED, history=history)
            await event_queue.enqueue_event(task)
        if task.status.state in (TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_CANCELED):
            return
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        self.running.add(context.task_id)
        try:
            await updater.submit()
            await asyncio.sleep(0.5)
            if context.task_id not in self.running:
                return
            await updater.start_work()
            await asyncio.sleep(0.5)
            if context.task_id not in self.running:
                return
            reply = f"Hello World! You said: '{query}'. Thanks for your message!"
            await asyncio.sleep(0.2)
            if context.task_id not in self.running:
                return
            await updater.add_artifact([new_text_part(reply)], name="response")
            await updater.complete(updater.new_agent_message([new_text_part(reply)]))
        finally:
            self.running.discard(context.task_id)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        self.running.discard(context.task_id)
        updater = TaskUpdater(event_queue, context.task_id, context.context_id)
        await updater.cancel()


def listen() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    return s, s.getsockname()[1]


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    sock, http_port = listen()
    grpc_server = grpc.aio.server()
    grpc_port = grpc_server.add_insecure_port("127.0.0.1:0")
    card = AgentCard(
        name="TCK Core Agent (a2a-sdk 1.3.0)",
        description="The A2A TCK's reference agent on the registry's a2a-sdk",
        version="1.0.0",
        supported_interfaces=[
            AgentInterface(url=f"http://localhost:{http_port}/", protocol_binding="JSONRPC", protocol_version="1.0"),
            AgentInterface(url=f"grpc://localhost:{grpc_port}", protocol_binding="GRPC", protocol_version="1.0"),
        ],
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text"],
        default_output_modes=["text"],
        skills=[
            AgentSkill(
                id="tck_core_agent",
                name="TCK Core Agent",
                description="Answers every message after a short piece of work",
                tags=["tck"],
                examples=["hello"],
            )
        ],
    )
    handler = DefaultRequestHandler(
        agent_executor=TckCoreAgentExecutor(), task_store=InMemoryTaskStore(), agent_card=card
    )
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), grpc_server)
    await grpc_server.start()
    routes = create_agent_card_routes(card) + create_jsonrpc_routes(handler, "/", enable_v0_3_compat=True)
    server = uvicorn.Server(
        uvicorn.Config(Starlette(routes=routes), log_level="warning", access_log=False, lifespan="off")
    )
    print(f"READY {http_port} {grpc_port}", flush=True)
    await server.serve(sockets=[sock])
    await grpc_server.stop(1)


if __name__ == "__main__":
    asyncio.run(main())
