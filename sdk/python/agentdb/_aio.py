"""The asyncio client (grpc.aio): the same methods as :class:`agentdb.Client`, awaitable."""

from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import grpc
import grpc.aio

from . import _convert as ops
from ._client import ProgressCallback
from ._convert import IngestSource, ItemArg, Media, Op, SkillArg, SpaceArg
from ._errors import AgentDBError, from_rpc_error
from ._retry import RetryPolicy
from ._transport import PemArg, RetriesArg, Settings, multicallable, settings
from ._types import (
    Agent,
    Alert,
    ApiKey,
    ClusterStatus,
    CollectionInfo,
    CreatedKey,
    Embeddings,
    Event,
    Identity,
    IngestProgress,
    IngestReport,
    IngestResult,
    Item,
    Lagged,
    ModelInfo,
    Queue,
    QueueMessage,
    ScrollPage,
    SearchResult,
    ServerStatus,
    StandingQuery,
    Topics,
    UpsertResult,
    Vector,
    Workflow,
    WorkflowRun,
)

T = TypeVar("T")

__all__ = ["AsyncClient", "AsyncSubscription"]


class AsyncSubscription(AsyncIterator[Union[Event, Lagged]]):
    """Events from ``AsyncClient.subscribe``: ``async for`` over it; ``close()`` (or
    ``async with``) stops it. A dropped connection is resumed from the last offset seen."""

    def __init__(self, client: "AsyncClient", topics: Sequence[str], from_offset: Optional[int]) -> None:
        self._client = client
        self._topics = topics
        self._next_offset = from_offset
        self._closed = False
        self._attempt = 0
        self._call: Any = None
        self._it: Any = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass  # no loop yet: opened by the first __anext__
        else:
            self._open()  # subscribe now, so no event published after this call is missed

    def _open(self) -> None:
        req = ops.subscribe_request(self._topics, self._next_offset)
        self._call = self._client._multicallable(ops.SUBSCRIBE_PATH)(req, metadata=self._client._settings.metadata)
        self._it = self._call.__aiter__()

    def __aiter__(self) -> "AsyncSubscription":
        return self

    async def __anext__(self) -> Union[Event, Lagged]:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._call is None:
                self._open()
            try:
                msg = await self._it.__anext__()
            except StopAsyncIteration:
                self._closed = True
                raise
            except asyncio.CancelledError:
                self.close()
                raise
            except grpc.RpcError as e:
                if self._closed:
                    raise StopAsyncIteration from None
                err = from_rpc_error(e)
                self._attempt += 1
                delay = self._client._settings.retry.delay(err, self._attempt, True)
                if delay is None:
                    self._closed = True
                    raise err from e
                await asyncio.sleep(delay)
                self._call = None
                continue
            self._attempt = 0
            out = ops.subscribe_response(msg)
            if isinstance(out, Event):
                self._next_offset = out.offset + 1
            elif isinstance(out, Lagged):
                self._next_offset = out.first_available_offset
            if out is not None:
                return out

    def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()

    async def __aenter__(self) -> "AsyncSubscription":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient:
    """An asyncio AgentDB client over ``grpc.aio``; the arguments are those of
    :class:`agentdb.Client`. Create it inside a running event loop; ``await
    client.close()`` (or ``async with``) when done."""

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        api_key: Optional[str] = None,
        token: Optional[str] = None,
        tls: Optional[bool] = None,
        root_certificates: PemArg = None,
        client_cert: PemArg = None,
        client_key: PemArg = None,
        server_name: Optional[str] = None,
        timeout: Optional[float] = 30.0,
        retries: RetriesArg = None,
        metadata: Optional[Mapping[str, str]] = None,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        self._settings: Settings = settings(
            url, api_key, token, tls, root_certificates, client_cert, client_key, server_name, timeout, retries,
            metadata, options,
        )
        s = self._settings
        if s.credentials is not None:
            self._channel = grpc.aio.secure_channel(s.target, s.credentials, options=list(s.options))
        else:
            self._channel = grpc.aio.insecure_channel(s.target, options=list(s.options))
        self._stubs: Dict[str, Any] = {}

    # ------------------------------------------------------------ plumbing

    @property
    def target(self) -> str:
        return self._settings.target

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._settings.retry

    def _multicallable(self, path: str) -> Any:
        mc = self._stubs.get(path)
        if mc is None:
            mc = self._stubs[path] = multicallable(self._channel, path)
        return mc

    def _timeout(self, op: Op[Any]) -> Optional[float]:
        t = self._settings.timeout
        return None if t is None else max(t, op.min_timeout)

    async def _call(self, op: Op[T]) -> T:
        mc = self._multicallable(op.path)
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await mc(op.request, timeout=self._timeout(op), metadata=self._settings.metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e)
                delay = self._settings.retry.delay(err, attempt, op.idempotent)
                if delay is None:
                    raise err from e
                await asyncio.sleep(delay)
                continue
            return op.parse(resp)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------ streaming and polling

    async def ingest(
        self,
        collection: str,
        paths: Union[IngestSource, Iterable[IngestSource]],
        *,
        on_progress: Optional[ProgressCallback] = None,
        timeout: Optional[float] = None,
    ) -> IngestReport:
        """See :meth:`agentdb.Client.ingest`. ``on_progress`` may be a plain function or a
        coroutine function."""
        started = time.monotonic()
        files, local = ops.walk(paths)  # type: ignore[arg-type]
        total = len(files) + len(local)
        results: List[IngestResult] = []

        async def record(r: IngestResult) -> None:
            results.append(r)
            if on_progress is not None:
                out = on_progress(IngestProgress(len(results), total, r))
                if asyncio.iscoroutine(out):
                    await out

        for r in local:
            await record(r)
        pending = files
        attempt = 0
        while pending:
            attempt += 1
            answered: set = set()
            failures: List[IngestResult] = []
            drained = 0
            try:
                call = self._multicallable(ops.INGEST_PATH)(
                    ops.ingest_requests(collection, pending, failures),
                    metadata=self._settings.metadata,
                    timeout=timeout,
                )
                async for resp in call:
                    while drained < len(failures):
                        await record(failures[drained])
                        answered.add(failures[drained].source)
                        drained += 1
                    r = ops.ingest_result(resp)
                    answered.add(r.source)
                    await record(r)
            except grpc.RpcError as e:
                err = from_rpc_error(e)
                delay = self._settings.retry.delay(err, attempt, True)
                if delay is None:
                    raise err from e
                await asyncio.sleep(delay)
            for f in failures[drained:]:
                await record(f)
                answered.add(f.source)
            pending = [f for f in pending if ops.source_of(f) not in answered]
        return IngestReport(results, time.monotonic() - started)

    def subscribe(
        self, topics: Union[str, Sequence[str]] = (), *, from_offset: Optional[int] = None
    ) -> AsyncSubscription:
        """Events on ``topics`` (all when empty) from ``from_offset`` (default: only new
        ones), as an async iterator; see :class:`AsyncSubscription`."""
        return AsyncSubscription(self, [topics] if isinstance(topics, str) else list(topics), from_offset)

    async def wait_run(self, run_id: str, *, timeout: float = 60.0, poll_interval: float = 0.1) -> WorkflowRun:
        """Poll a workflow run until it succeeded, failed or was canceled."""
        deadline = time.monotonic() + timeout
        while True:
            run = await self.get_run(run_id)
            if run.done:
                return run
            if time.monotonic() >= deadline:
                raise AgentDBError(
                    f"workflow run {run_id} still {run.state} after {timeout}s", grpc.StatusCode.DEADLINE_EXCEEDED
                )
            await asyncio.sleep(poll_interval)

    async def iter_items(
        self,
        collection: str,
        filter: str = "",
        *,
        after: str = "",
        page_size: int = 100,
        with_payload: bool = True,
        with_vectors: bool = False,
        consistency_token: str = "",
        allow_stale: bool = False,
    ) -> AsyncIterator[Item]:
        """Every item of ``collection`` matching ``filter`` (after ``after``), in id order,
        fetched lazily with :meth:`scroll`, ``page_size`` items per call: ``async for``
        over it."""
        while True:
            page = await self.scroll(
                collection, filter, after=after, limit=page_size, with_payload=with_payload,
                with_vectors=with_vectors, consistency_token=consistency_token, allow_stale=allow_stale,
            )
            for it in page.items:
                yield it
            if page.done:
                return
            after = page.next_after

    # ------------------------------------------------------------ unary API (mirrors _client.py)
    # BEGIN UNARY API

    async def create_collection(
        self,
        name: str,
        dim: Optional[int] = None,
        *,
        metric: str = "cosine",
        index: str = "",
        spaces: Optional[Sequence[SpaceArg]] = None,
        multimodal: bool = False,
        keyword: bool = True,
        keyword_language: str = "",
        keyword_searchable: Sequence[str] = (),
        shards: int = 0,
        replicas: int = 0,
    ) -> CollectionInfo:
        """Create a collection: one space of ``dim`` (``metric`` cosine/ip/l2, FAISS
        ``index``), named ``spaces``, and/or ``multimodal=True`` for the installed
        encoders' spaces (text, image, ...: ingest and search by text/image/audio)."""
        return await self._call(ops.create_collection(
            name, dim, metric, index, spaces, multimodal, keyword, keyword_language, keyword_searchable, shards,
            replicas,
        ))

    async def list_collections(self) -> List[CollectionInfo]:
        return await self._call(ops.list_collections())

    async def get_collection(self, name: str) -> CollectionInfo:
        return await self._call(ops.get_collection(name))

    async def drop_collection(self, name: str) -> None:
        return await self._call(ops.drop_collection(name))

    async def flush(self, collection: str, *, optimize: bool = False) -> CollectionInfo:
        """Seal buffered writes into indexed segments now (``optimize``: merge segments)."""
        return await self._call(ops.flush(collection, optimize))

    async def upsert(
        self,
        collection: str,
        items: Optional[Iterable[ItemArg]] = None,
        *,
        ids: Optional[Sequence[str]] = None,
        vectors: Optional[Vector] = None,
        payloads: Optional[Sequence[Optional[Mapping[str, Any]]]] = None,
        space: str = "",
        encoder: str = "",
    ) -> UpsertResult:
        """Insert or replace items: ``items`` as :class:`Item` or dicts (``id``,
        ``vector`` or ``vectors``, ``payload``, ``encoders``), or columns: ``vectors``
        (an (n, dim) array, or :class:`Embeddings` from :meth:`embed`) with optional
        ``ids`` and ``payloads``. Empty ids are generated. ``encoder`` (taken from
        :class:`Embeddings` when not given) names the model of the column vectors: the
        server refuses them when ``space`` is bound to another."""
        return await self._call(ops.upsert(collection, items, ids, vectors, payloads, space, encoder))

    async def embed(self, collection: str, texts: Union[str, Sequence[str]], *, space: str = "") -> Embeddings:
        """Embed ``texts`` (at most 1024, none empty) with the encoder bound to
        ``collection``'s ``space`` ("" = its text space): the vectors the server stores
        for ingested text and searches with for ``text=`` queries. Returns
        :class:`Embeddings` (a float32 (n, dim) array and the encoder id)."""
        return await self._call(ops.embed(collection, texts, space))

    async def get(
        self,
        collection: str,
        ids: Union[str, Sequence[str]],
        *,
        with_vectors: bool = False,
        consistency_token: str = "",
        allow_stale: bool = False,
    ) -> List[Item]:
        """The items found, in request order (missing ids are left out)."""
        return await self._call(ops.get(collection, ids, with_vectors, consistency_token, allow_stale))

    async def delete(
        self, collection: str, ids: Optional[Union[str, Sequence[str]]] = None, *, filter: Optional[str] = None
    ) -> int:
        """Delete by ids or by a filter expression; returns how many were deleted."""
        return await self._call(ops.delete(collection, ids, filter))

    async def count(
        self, collection: str, filter: str = "", *, consistency_token: str = "", allow_stale: bool = False
    ) -> int:
        return await self._call(ops.count(collection, filter, consistency_token, allow_stale))

    async def scroll(
        self,
        collection: str,
        filter: str = "",
        *,
        after: str = "",
        limit: int = 100,
        with_payload: bool = True,
        with_vectors: bool = False,
        consistency_token: str = "",
        allow_stale: bool = False,
    ) -> ScrollPage:
        """One page of ``collection``'s items in id order: those matching ``filter``
        (within the caller's row policy) whose id comes after ``after`` ("" = from the
        first), at most ``limit`` (the server allows up to 1000). Pass the page's
        ``next_after`` as ``after`` for the next page; it is "" after the last.
        ``with_payload=False`` returns ids (and vectors) only. :meth:`iter_items` walks
        every page."""
        return await self._call(ops.scroll(
            collection, filter, after, limit, with_payload, with_vectors, consistency_token, allow_stale
        ))

    async def search(
        self,
        collection: str,
        vector: Optional[Vector] = None,
        *,
        text: Optional[str] = None,
        image: Optional[Media] = None,
        audio: Optional[Media] = None,
        video: Optional[Media] = None,
        keyword: Optional[str] = None,
        top_k: int = 10,
        filter: str = "",
        space: str = "",
        with_payload: bool = True,
        with_vectors: bool = False,
        explain: bool = False,
        mode: Optional[str] = None,
        fusion: Optional[str] = None,
        weights: Optional[Mapping[str, float]] = None,
        keyword_fields: Optional[Mapping[str, float]] = None,
        exact: bool = False,
        ef: int = 0,
        nprobe: int = 0,
        consistency_token: str = "",
        allow_stale: bool = False,
    ) -> SearchResult:
        """Search by ``vector``, or cross-modally by ``text``, ``image``, ``audio`` or
        ``video`` (bytes or a path), and/or a BM25 ``keyword`` query. ``mode``: dense,
        keyword or hybrid; ``fusion``: calibrated, weighted or rrf; ``explain`` fills each
        hit's per-list scores."""
        return await self._call(ops.search(
            collection, vector, text=text, image=image, audio=audio, video=video, keyword=keyword, top_k=top_k,
            filter=filter, space=space, with_payload=with_payload, with_vectors=with_vectors, explain=explain,
            mode=mode, fusion=fusion, weights=weights, keyword_fields=keyword_fields, exact=exact, ef=ef,
            nprobe=nprobe, consistency_token=consistency_token, allow_stale=allow_stale,
        ))

    async def search_batch(
        self,
        collection: str,
        vectors: Vector,
        *,
        top_k: int = 10,
        filter: str = "",
        space: str = "",
        with_payload: bool = True,
        with_vectors: bool = False,
        exact: bool = False,
        ef: int = 0,
        nprobe: int = 0,
    ) -> List[SearchResult]:
        """One :class:`SearchResult` per row of ``vectors`` (an (n, dim) array)."""
        return await self._call(ops.search_batch(
            collection, vectors, top_k, filter, space, with_payload, with_vectors, exact, ef, nprobe
        ))

    async def list_models(self) -> List[ModelInfo]:
        return await self._call(ops.list_models())

    async def status(self) -> ServerStatus:
        return await self._call(ops.status())

    async def alerts(self) -> List[Alert]:
        return await self._call(ops.alerts())

    async def inject_fault(self, search_delay_ms: int) -> None:
        """Testing aid (needs debug.allow_fault_injection): delay every search."""
        return await self._call(ops.inject_fault(search_delay_ms))

    async def set_log_level(self, filter: str) -> str:
        """Change the server's log filter; returns the previous one (admin)."""
        return await self._call(ops.set_log_level(filter))

    async def create_key(
        self, name: str, role: str = "reader", *, collections: Sequence[str] = (), row_filter: str = ""
    ) -> CreatedKey:
        """Create an API key (admin); its secret is in the result, shown once."""
        return await self._call(ops.create_key(name, role, collections, row_filter))

    async def list_keys(self) -> List[ApiKey]:
        return await self._call(ops.list_keys())

    async def revoke_key(self, key_id: str) -> ApiKey:
        return await self._call(ops.revoke_key(key_id))

    async def who_am_i(self, collections: Union[str, Sequence[str]] = ()) -> Identity:
        """Who this client is (its key, token or certificate; ``local`` when the server
        has authentication off) and what it may do, server-wide and on each of
        ``collections`` (:attr:`Identity.permissions`, in that order)."""
        return await self._call(ops.who_am_i(collections))

    async def cluster_status(self) -> ClusterStatus:
        return await self._call(ops.cluster_status_op())

    async def drain_node(self, node: str, *, undo: bool = False) -> None:
        return await self._call(ops.drain_node(node, undo))

    async def register_agent(
        self,
        name: str,
        *,
        description: str = "",
        version: str = "",
        skills: Sequence[SkillArg] = (),
        capabilities: Sequence[str] = (),
        endpoint: str = "",
        heartbeat_timeout_ms: int = 0,
        memory_spaces: Optional[Sequence[SpaceArg]] = None,
        memory: bool = True,
    ) -> Agent:
        """Register an agent (or update its card); ``memory=False``: no memory collection."""
        return await self._call(ops.register_agent(
            name, description, version, skills, capabilities, endpoint, heartbeat_timeout_ms, memory_spaces, memory
        ))

    async def list_agents(self, state: str = "") -> List[Agent]:
        return await self._call(ops.list_agents(state))

    async def get_agent(self, name: str) -> Agent:
        return await self._call(ops.get_agent(name))

    async def set_agent_state(self, name: str, state: str, *, reason: str = "") -> Agent:
        """active, suspended or retired; illegal transitions raise FailedPrecondition."""
        return await self._call(ops.set_agent_state(name, state, reason))

    async def heartbeat(self, name: str) -> Agent:
        return await self._call(ops.heartbeat(name))

    async def publish(self, topic: str, kind: str = "", *, subject: str = "", data: Any = None) -> int:
        """Publish one event (topics standing_query, workflow, alerts); returns its offset."""
        return (await self._call(ops.publish([{"topic": topic, "kind": kind, "subject": subject, "data": data}])))[0]

    async def publish_many(self, events: Sequence[Mapping[str, Any]]) -> List[int]:
        """Publish events given as dicts (topic, kind, subject, data); returns their offsets."""
        return await self._call(ops.publish(events))

    async def topics(self) -> Topics:
        return await self._call(ops.topics())

    async def create_queue(
        self,
        name: str,
        *,
        max_attempts: Optional[int] = None,
        visibility_timeout_ms: int = 0,
        max_messages: int = 0,
    ) -> Queue:
        """Create a durable queue (``created`` is False when it existed with these settings;
        other settings raise AlreadyExists)."""
        return await self._call(ops.create_queue(name, max_attempts, visibility_timeout_ms, max_messages))

    async def send_message(self, queue: str, body: Any, *, attributes: Optional[Mapping[str, str]] = None) -> str:
        """Send ``body`` (bytes, str, or anything JSON-serialisable) to ``queue``; returns the id."""
        return await self._call(ops.send_message(queue, body, attributes))

    async def receive_messages(
        self, queue: str, *, max_messages: int = 1, visibility_timeout_ms: int = 0, wait_ms: int = 0
    ) -> List[QueueMessage]:
        """Receive up to ``max_messages``, long-polling up to ``wait_ms`` when none is ready."""
        return await self._call(ops.receive_messages(queue, max_messages, visibility_timeout_ms, wait_ms))

    async def ack_message(self, message: Union[QueueMessage, str], *, queue: str = "") -> None:
        """Acknowledge a received message (or a receipt, with ``queue=``)."""
        return await self._call(ops.ack_message(queue, message))

    async def queue_stats(self, name: str = "") -> List[Queue]:
        return await self._call(ops.queue_stats(name))

    async def create_standing_query(
        self,
        agent: str,
        name: str,
        collection: str,
        *,
        text: Optional[str] = None,
        vector: Optional[Vector] = None,
        space: str = "",
        filter: str = "",
        threshold: float = 0.0,
    ) -> StandingQuery:
        """Emit a ``standing_query`` event for every write to ``collection`` matching the query."""
        return await self._call(ops.create_standing_query(agent, name, collection, text, vector, space, filter, threshold))

    async def list_standing_queries(self, agent: str = "") -> List[StandingQuery]:
        return await self._call(ops.list_standing_queries(agent))

    async def delete_standing_query(self, query_id: str) -> StandingQuery:
        return await self._call(ops.delete_standing_query(query_id))

    async def apply_workflow(self, yaml: str) -> Workflow:
        """Validate and store a workflow definition (YAML) as a new version."""
        return await self._call(ops.apply_workflow(yaml))

    async def list_workflows(self) -> List[Workflow]:
        return await self._call(ops.list_workflows())

    async def get_workflow(self, name: str, *, version: int = 0) -> Workflow:
        return await self._call(ops.get_workflow(name, version))

    async def delete_workflow(self, name: str) -> None:
        return await self._call(ops.delete_workflow(name))

    async def run_workflow(
        self,
        name: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: int = 0,
        agent: str = "",
        priority: Optional[int] = None,
    ) -> WorkflowRun:
        """Start a run (``wait_run`` follows it to the end)."""
        return await self._call(ops.run_workflow(name, inputs, version, agent, priority))

    async def get_run(self, run_id: str) -> WorkflowRun:
        return await self._call(ops.get_run(run_id))

    async def list_runs(self, workflow: str = "", *, state: str = "", limit: int = 0) -> List[WorkflowRun]:
        return await self._call(ops.list_runs(workflow, state, limit))

    async def cancel_run(self, run_id: str) -> WorkflowRun:
        return await self._call(ops.cancel_run(run_id))

    # END UNARY API
