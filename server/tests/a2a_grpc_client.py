#!/usr/bin/env python3
"""A2A gRPC binding check of AgentDB with the official Python SDK (a2a-sdk[grpc]).

Usage: a2a_grpc_client.py GRPC_ADDR COLLECTION EXPECTED_SOURCE QUERY [API_KEY]

Run by server/tests/e2e_a2a.rs against a real server (its gRPC listener, HOST:PORT)
whose COLLECTION holds two text files; QUERY must rank EXPECTED_SOURCE first. Drives
`lf.a2a.v1.A2AService` through the SDK's client with the gRPC transport: search
(blocking SendMessage), remember + recall, get task, list tasks, cancel of a waiting
(input-required) task and of a finished one (TaskNotCancelableError), an unknown task
(TaskNotFoundError), push-notification configs, SendStreamingMessage (task, working,
artifact, completed), SubscribeToTask of a finished task, GetExtendedAgentCard. Prints
"A2A GRPC OK" and exits 0 when all matched; exits 1 with what differed otherwise, 3
when the SDK or grpcio is missing. Last line on success: "TASK <id>" (a completed
search task, for the caller's checks).
"""

import asyncio
import sys
import uuid

try:
    import grpc
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.client import ClientCallContext
    from a2a.client.errors import A2AClientError
    from a2a.types import a2a_pb2 as pb
    from a2a.utils.errors import (
        ExtendedAgentCardNotConfiguredError,
        TaskNotCancelableError,
        TaskNotFoundError,
    )
    from google.protobuf import json_format, struct_pb2
except ImportError as e:  # The Rust test turns this exit code into a clear failure.
    print(f"a2a-sdk[grpc] is not importable: {e} (pip install 'a2a-sdk[grpc]==1.3.0')", file=sys.stderr)
    sys.exit(3)


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def data_part(d):
    v = struct_pb2.Value()
    json_format.ParseDict(d, v)
    return pb.Part(data=v)


def message(*parts):
    return pb.Message(message_id=str(uuid.uuid4()), role=pb.ROLE_USER, parts=list(parts))


def artifact_data(task):
    for a in task.artifacts:
        for p in a.parts:
            if p.HasField("data"):
                return json_format.MessageToDict(p.data)
    fail(f"task {task.id} has no data artifact: {task}")


def state(task):
    return pb.TaskState.Name(task.status.state)


async def main():
    addr, collection, expected, query = sys.argv[1:5]
    key = sys.argv[5] if len(sys.argv) > 5 else None
    ctx = ClientCallContext(service_parameters={"authorization": f"Bearer {key}"}) if key else None
    # The SDK picks the transport from the card's interfaces: one gRPC interface.
    card = pb.AgentCard(
        name="agentdb",
        description="AgentDB over gRPC",
        version="1",
        supported_interfaces=[pb.AgentInterface(url=addr, protocol_binding="GRPC", protocol_version="1.0")],
        # extended_agent_card: so that the SDK asks for it (AgentDB has none: an error).
        capabilities=pb.AgentCapabilities(streaming=True, push_notifications=True, extended_agent_card=True),
    )

    def config(streaming):
        return ClientConfig(
            streaming=streaming,
            supported_protocol_bindings=["GRPC"],
            grpc_channel_factory=lambda url: grpc.aio.insecure_channel(url),
        )

    blocking = ClientFactory(config(False)).create(card)
    streaming = ClientFactory(config(True)).create(card)

    async def send(client, msg, configuration=None):
        req = pb.SendMessageRequest(message=msg)
        if configuration is not None:
            req.configuration.CopyFrom(configuration)
        events = [ev async for ev in client.send_message(req, context=ctx)]
        return events

    async def final_task(msg):
        events = await send(blocking, msg)
        if len(events) != 1 or events[0].WhichOneof("payload") != "task":
            fail(f"blocking send: expected one task, got {events}")
        return events[0].task

    # 1. Search with a data part (blocking).
    task = await final_task(message(data_part({"skill": "search", "collection": collection, "text": query, "top_k": 2})))
    if task.status.state != pb.TASK_STATE_COMPLETED:
        fail(f"search: {state(task)} {task.status.message}")
    hits = artifact_data(task)["hits"]
    if not hits or not hits[0]["source"].endswith(expected):
        fail(f"search: expected {expected} first, got {hits}")
    search_id = task.id
    print(f"search: {hits[0]['source']} score {hits[0]['score']:.3f}")

    # 2. Remember + recall.
    fact = f"The gRPC gateway certificate expires on day {uuid.uuid4().hex[:6]}"
    task = await final_task(message(pb.Part(text=f"remember: {fact}")))
    if task.status.state != pb.TASK_STATE_COMPLETED:
        fail(f"remember: {state(task)} {task.status.message}")
    task = await final_task(message(pb.Part(text="when does the gRPC gateway certificate expire?")))
    if task.status.state != pb.TASK_STATE_COMPLETED:
        fail(f"recall: {state(task)} {task.status.message}")
    hits = artifact_data(task)["hits"]
    if fact not in [h.get("text", "").strip() for h in hits]:
        fail(f"recall: expected {fact!r}, got {hits}")
    recall_id = task.id
    print(f"remember/recall: {fact!r}")

    # 3. Get task (with history_length), list tasks.
    got = await blocking.get_task(pb.GetTaskRequest(id=search_id), context=ctx)
    if got.id != search_id or got.status.state != pb.TASK_STATE_COMPLETED or not got.artifacts or not got.history:
        fail(f"get task: {got}")
    got = await blocking.get_task(pb.GetTaskRequest(id=search_id, history_length=1), context=ctx)
    if len(got.history) != 1:
        fail(f"get task history_length=1: {len(got.history)} messages")
    listed = await blocking.list_tasks(pb.ListTasksRequest(status=pb.TASK_STATE_COMPLETED), context=ctx)
    ids = [t.id for t in listed.tasks]
    if search_id not in ids or recall_id not in ids or ids[0] != recall_id or listed.total_size < 3:
        fail(f"list tasks: {ids} total {listed.total_size}")
    page = await blocking.list_tasks(pb.ListTasksRequest(page_size=1), context=ctx)
    if len(page.tasks) != 1 or not page.next_page_token:
        fail(f"list tasks page: {page}")
    print(f"list tasks: {listed.total_size} completed")

    # 4. A waiting task (search without a collection): push configs, then cancel it.
    task = await final_task(message(data_part({"skill": "search", "text": query})))
    if task.status.state != pb.TASK_STATE_INPUT_REQUIRED:
        fail(f"missing collection: {state(task)}")
    hook = "http://127.0.0.1:9/hook"
    made = await blocking.create_task_push_notification_config(
        pb.TaskPushNotificationConfig(task_id=task.id, id="g", url=hook, token="tok"), context=ctx)
    if (made.id, made.url, made.token, made.task_id) != ("g", hook, "tok", task.id):
        fail(f"create push config: {made}")
    got = await blocking.get_task_push_notification_config(
        pb.GetTaskPushNotificationConfigRequest(task_id=task.id, id="g"), context=ctx)
    if got.url != hook:
        fail(f"get push config: {got}")
    listed = await blocking.list_task_push_notification_configs(
        pb.ListTaskPushNotificationConfigsRequest(task_id=task.id), context=ctx)
    if [c.id for c in listed.configs] != ["g"]:
        fail(f"list push configs: {listed}")
    await blocking.delete_task_push_notification_config(
        pb.DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="g"), context=ctx)
    listed = await blocking.list_task_push_notification_configs(
        pb.ListTaskPushNotificationConfigsRequest(task_id=task.id), context=ctx)
    if listed.configs:
        fail(f"push configs after delete: {listed}")
    print("push configs: create/get/list/delete")
    canceled = await blocking.cancel_task(pb.CancelTaskRequest(id=task.id), context=ctx)
    if canceled.status.state != pb.TASK_STATE_CANCELED:
        fail(f"cancel of a waiting task: {state(canceled)}")
    print(f"cancel: {task.id} {state(canceled)}")

    # 5. Typed errors from the status details.
    for what, call, want in [
        ("cancel finished", blocking.cancel_task(pb.CancelTaskRequest(id=search_id), context=ctx), TaskNotCancelableError),
        ("unknown task", blocking.get_task(pb.GetTaskRequest(id="nope"), context=ctx), TaskNotFoundError),
        ("extended card", blocking.get_extended_agent_card(pb.GetExtendedAgentCardRequest(), context=ctx),
         ExtendedAgentCardNotConfiguredError),
    ]:
        try:
            await call
            fail(f"{what}: succeeded")
        except want as e:
            print(f"{what}: {type(e).__name__} ({e})")
        except A2AClientError as e:
            fail(f"{what}: expected {want.__name__}, got {type(e).__name__}: {e}")

    # 6. Streaming: the task, status updates (working, then completed) and the artifact.
    events = await send(streaming, message(data_part({"skill": "search", "collection": collection, "text": query})))
    kinds = []
    for ev in events:
        kind = ev.WhichOneof("payload")
        if kind == "status_update":
            kind = f"status:{pb.TaskState.Name(ev.status_update.status.state)}"
        kinds.append(kind)
    print(f"stream events: {kinds}")
    if kinds[0] != "task" or "artifact_update" not in kinds or "status:TASK_STATE_WORKING" not in kinds:
        fail(f"stream events {kinds}")
    if kinds[-1] != "status:TASK_STATE_COMPLETED":
        fail(f"stream does not end completed: {kinds}")
    streamed_id = events[0].task.id
    art = next(ev.artifact_update for ev in events if ev.WhichOneof("payload") == "artifact_update")
    if art.task_id != streamed_id or not art.artifact.parts:
        fail(f"artifact update: {art}")
    got = await blocking.get_task(pb.GetTaskRequest(id=streamed_id), context=ctx)
    if got.status.state != pb.TASK_STATE_COMPLETED:
        fail(f"streamed task ends {state(got)}")

    # 7. Subscribing to a finished task yields the task and ends.
    subs = [ev async for ev in streaming.subscribe(pb.SubscribeToTaskRequest(id=streamed_id), context=ctx)]
    if len(subs) != 1 or subs[0].task.status.state != pb.TASK_STATE_COMPLETED:
        fail(f"subscribe to a finished task: {subs}")
    print("subscribe: finished task")
    print("A2A GRPC OK")
    print(f"TASK {search_id}")


if __name__ == "__main__":
    asyncio.run(main())
