#!/usr/bin/env python3
"""A2A conformance check of AgentDB with the official Python SDK (a2a-sdk) as the client.

Usage: a2a_client.py BASE_URL COLLECTION EXPECTED_SOURCE QUERY [API_KEY]

Run by server/tests/e2e_a2a.rs against a real server whose COLLECTION holds two text
files; QUERY must rank EXPECTED_SOURCE first. Exits non-zero on any mismatch, printing
what differed. Checks: the card (card resolver), search with a data part (blocking
send), remember + recall round trip, a streaming send (status updates, artifact, final
completed state), get task, cancel of a finished task (the spec's not-cancelable error).
With A2A_PUSH_URL set in the environment: push-notification config create / get / list /
delete through the SDK on an input-required task (token "sdk-token"; the caller checks
that its receiver got the completed task).
"""

import asyncio
import os
import sys
import uuid

try:
    import httpx
    from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
    from a2a.client.errors import A2AClientError
    from a2a.types import a2a_pb2 as pb
    from a2a.utils.errors import TaskNotCancelableError
    from google.protobuf import json_format, struct_pb2
except ImportError as e:  # The Rust test turns this exit code into a clear failure.
    print(f"a2a-sdk is not importable: {e} (install it: pip install a2a-sdk==1.3.0)", file=sys.stderr)
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
    """The data part of the task's first artifact, as a dict."""
    for a in task.artifacts:
        for p in a.parts:
            if p.HasField("data"):
                return json_format.MessageToDict(p.data)
    fail(f"task {task.id} has no data artifact: {task}")


async def final_task(client, msg, streaming):
    """Send `msg`; return (final task, [event kinds])."""
    kinds, task = [], None
    async for ev in client.send_message(pb.SendMessageRequest(message=msg)):
        kind = ev.WhichOneof("payload")
        kinds.append(kind)
        if kind == "task":
            task = ev.task
        elif kind == "status_update":
            kinds[-1] = f"status:{pb.TaskState.Name(ev.status_update.status.state)}"
        elif kind == "message":
            fail(f"expected a task, got a message: {ev.message}")
    if task is None:
        fail(f"no task in the response (events {kinds})")
    if streaming:
        # The stream's first event is the task; its state is then moved by the updates.
        task = await client.get_task(pb.GetTaskRequest(id=task.id))
    return task, kinds


async def main():
    base, collection, expected, query = sys.argv[1:5]
    key = sys.argv[5] if len(sys.argv) > 5 else None
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(headers=headers, timeout=120) as http:
        card = await A2ACardResolver(http, base).get_agent_card()
        skills = sorted(s.id for s in card.skills)
        if skills != ["ingest", "recall", "remember", "search", "workflow"]:
            fail(f"card skills {skills}")
        if not card.capabilities.streaming:
            fail("card: streaming should be true")
        if not card.capabilities.push_notifications:
            fail("card: pushNotifications should be true")
        if not card.supported_interfaces or not card.supported_interfaces[0].url.endswith("/a2a"):
            fail(f"card interfaces {card.supported_interfaces}")
        print(f"card: {card.name} {card.version}, skills {skills}, url {card.supported_interfaces[0].url}")

        blocking = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
        streaming = ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)

        # 1. Search with a data part.
        msg = message(data_part({"skill": "search", "collection": collection, "text": query, "top_k": 2}))
        task, _ = await final_task(blocking, msg, False)
        if task.status.state != pb.TASK_STATE_COMPLETED:
            fail(f"search task state {pb.TaskState.Name(task.status.state)}: {task.status.message}")
        hits = artifact_data(task)["hits"]
        if not hits or not hits[0]["source"].endswith(expected):
            fail(f"search: expected {expected} first, got {hits}")
        for field in ("source", "modality", "part", "score"):
            if field not in hits[0]:
                fail(f"search hit lacks {field}: {hits[0]}")
        texts = [p.text for a in task.artifacts for p in a.parts if p.text]
        if not texts or expected not in texts[0]:
            fail(f"search: the text summary does not name {expected}: {texts}")
        print(f"search: {hits[0]['source']} score {hits[0]['score']:.3f}")
        search_id = task.id

        # 2. Search without a collection: input-required, then answered in the same task.
        msg = message(data_part({"skill": "search", "text": query}))
        task, _ = await final_task(blocking, msg, False)
        if task.status.state != pb.TASK_STATE_INPUT_REQUIRED:
            fail(f"missing collection: state {pb.TaskState.Name(task.status.state)}")
        push_url = os.environ.get("A2A_PUSH_URL")
        if push_url:
            # Push notifications through the SDK: set on the waiting task, read back.
            cfg = pb.TaskPushNotificationConfig(task_id=task.id, id="sdk", url=push_url, token="sdk-token")
            made = await blocking.create_task_push_notification_config(cfg)
            if made.id != "sdk" or made.url != push_url or made.token != "sdk-token" or made.task_id != task.id:
                fail(f"create push config: {made}")
            got = await blocking.get_task_push_notification_config(
                pb.GetTaskPushNotificationConfigRequest(task_id=task.id, id="sdk"))
            if got.url != push_url:
                fail(f"get push config: {got}")
            listed = await blocking.list_task_push_notification_configs(
                pb.ListTaskPushNotificationConfigsRequest(task_id=task.id))
            if [c.id for c in listed.configs] != ["sdk"]:
                fail(f"list push configs: {listed}")
            print(f"push config: {made.id} -> {made.url}")
        follow = message(data_part({"collection": collection}))
        follow.task_id, follow.context_id = task.id, task.context_id
        task2, _ = await final_task(blocking, follow, False)
        if task2.id != task.id or task2.status.state != pb.TASK_STATE_COMPLETED:
            fail(f"input-required continuation: {task2.id} {pb.TaskState.Name(task2.status.state)}")
        print("input-required: continued to completed")
        if push_url:
            await blocking.delete_task_push_notification_config(
                pb.DeleteTaskPushNotificationConfigRequest(task_id=task.id, id="sdk"))
            listed = await blocking.list_task_push_notification_configs(
                pb.ListTaskPushNotificationConfigsRequest(task_id=task.id))
            if listed.configs:
                fail(f"push configs after delete: {listed}")
            print("push config: deleted")

        # 3. Remember + recall (plain text conventions).
        fact = f"The staging cluster password rotates every {uuid.uuid4().hex[:6]} Tuesday"
        task, _ = await final_task(blocking, message(pb.Part(text=f"remember: {fact}")), False)
        if task.status.state != pb.TASK_STATE_COMPLETED:
            fail(f"remember: {pb.TaskState.Name(task.status.state)} {task.status.message}")
        task, _ = await final_task(blocking, message(pb.Part(text="when does the staging password rotate?")), False)
        if task.status.state != pb.TASK_STATE_COMPLETED:
            fail(f"recall: {pb.TaskState.Name(task.status.state)} {task.status.message}")
        hits = artifact_data(task)["hits"]
        if not hits or hits[0].get("text", "").strip() != fact:
            fail(f"recall: expected {fact!r}, got {hits}")
        print(f"remember/recall: {hits[0]['text']!r} from {artifact_data(task)['collection']}")

        # 4. Streaming: status updates (working, then completed) and the artifact.
        msg = message(data_part({"skill": "search", "collection": collection, "text": query}))
        task, kinds = await final_task(streaming, msg, True)
        print(f"stream events: {kinds}")
        if kinds[0] != "task" or "artifact_update" not in kinds:
            fail(f"stream events {kinds}")
        if "status:TASK_STATE_WORKING" not in kinds or kinds[-1] != "status:TASK_STATE_COMPLETED":
            fail(f"stream status updates {kinds}")
        if task.status.state != pb.TASK_STATE_COMPLETED:
            fail(f"streamed task ends {pb.TaskState.Name(task.status.state)}")

        # 5. Get task, and cancel of a finished one.
        got = await blocking.get_task(pb.GetTaskRequest(id=search_id))
        if got.id != search_id or got.status.state != pb.TASK_STATE_COMPLETED or not got.history:
            fail(f"get task: {got}")
        try:
            await blocking.cancel_task(pb.CancelTaskRequest(id=search_id))
            fail("cancel of a completed task succeeded")
        except TaskNotCancelableError as e:
            print(f"cancel finished task: TaskNotCancelableError ({e})")
        except A2AClientError as e:
            fail(f"cancel: expected TaskNotCancelableError, got {type(e).__name__}: {e}")
    print("A2A OK")


if __name__ == "__main__":
    asyncio.run(main())
