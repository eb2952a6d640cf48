"""The synchronous client."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import grpc

from . import _convert as ops
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
ProgressCallback = Callable[[IngestProgress], None]

__all__ = ["Client", "Subscription"]


class Subscription(Iterator[Union[Event, Lagged]]):
    """Events from ``Client.subscribe``: iterate it (blocking), ``close()`` it (or use it
    as a context manager) to stop. Yields :class:`Event` and, when the subscriber fell
    behind the server's ring, a :class:`Lagged` notice. A dropped connection is resumed
    from the last offset seen (under the client's retry policy)."""

    def __init__(self, client: "Client", topics: Sequence[str], from_offset: Optional[int]) -> None:
        self._client = client
        self._topics = topics
        self._next_offset = from_offset
        self._closed = False
        self._attempt = 0
        self._call: Any = None
        self._open()

    def _open(self) -> None:
        req = ops.subscribe_request(self._topics, self._next_offset)
        self._call = self._client._multicallable(ops.SUBSCRIBE_PATH)(req, metadata=self._client._settings.metadata)

    def __iter__(self) -> "Subscription":
        return self

    def __next__(self) -> Union[Event, Lagged]:
        while True:
            if self._closed:
                raise StopIteration
            try:
                msg = next(self._call)
            except StopIteration:
                self._closed = True
                raise
            except grpc.RpcError as e:
                if self._closed:
                    raise StopIteration from None
                err = from_rpc_error(e)
                self._attempt += 1
                delay = self._client._settings.retry.delay(err, self._attempt, True)
                if delay is None:
                    self._closed = True
                    raise err from e
                time.sleep(delay)
                self._open()
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

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Client:
    """A synchronous AgentDB client over gRPC.

    ``url``: ``HOST:PORT``, ``http://HOST:PORT`` or ``https://HOST:PORT`` (default: the
    ``AGENTDB_URL`` environment variable, else ``127.0.0.1:7720``). ``api_key`` (default
    ``AGENTDB_API_KEY``) or an OIDC ``token`` authenticate every call. TLS is on for
    ``https://`` or ``tls=True``; ``root_certificates`` (PEM bytes or a path; default
    ``AGENTDB_CA_CERT``) replaces the system roots, ``client_cert``/``client_key`` do
    mTLS. ``timeout`` is each attempt's deadline in seconds; ``retries`` is a
    :class:`RetryPolicy` or the number of retries (0 = none).
    """

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
            self._channel = grpc.secure_channel(s.target, s.credentials, options=list(s.options))
        else:
            self._channel = grpc.insecure_channel(s.target, options=list(s.options))
        self._stubs: Dict[str, Any] = {}
        self._lock = threading.Lock()

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
            with self._lock:
                mc = self._stubs.setdefault(path, multicallable(self._channel, path))
        return mc

    def _timeout(self, op: Op[Any]) -> Optional[float]:
        t = self._settings.timeout
        return None if t is None else max(t, op.min_timeout)

    def _call(self, op: Op[T]) -> T:
        mc = self._multicallable(op.path)
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = mc(op.request, timeout=self._timeout(op), metadata=self._settings.metadata)
            except grpc.RpcError as e:
                err = from_rpc_error(e)
                delay = self._settings.retry.delay(err, attempt, op.idempotent)
                if delay is None:
                    raise err from e
                time.sleep(delay)
                continue
            return op.parse(resp)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ streaming and polling

    def ingest(
        self,
        collection: str,
        paths: Union[IngestSource, Iterable[IngestSource]],
        *,
        on_progress: Optional[ProgressCallback] = None,
        timeout: Optional[float] = None,
    ) -> IngestReport:
        """Ingest files and folders (walked client-side, hidden entries skipped; each file's
        type is detected by the server from its bytes) or ``(source, bytes)`` pairs, over
        one streaming call. ``on_progress`` gets an :class:`IngestProgress` per file.
        Failures are reported, not raised; a call refused or cut off is retried with the
        files not yet answered (the server skips content it already has)."""
        started = time.monotonic()
        files, local = ops.walk(paths)  # type: ignore[arg-type]
        total = len(files) + len(local)
        results: List[IngestResult] = []

        def record(r: IngestResult) -> None:
            results.append(r)
            if on_progress is not None:
                on_progress(IngestProgress(len(results), total, r))

        for r in local:
            record(r)
        pending = files
        attempt = 0
        while pending:
            attempt += 1
            answered: set = set()
            failures: List[IngestResult] = []
            drained = 0
            try:
                stream = self._multicallable(ops.INGEST_PATH)(
                    ops.ingest_requests(collection, pending, failures),
                    metadata=self._settings.metadata,
                    timeout=timeout,
                )
                for resp in stream:
                    while drained < len(failures):
                        record(failures[drained])
                        answered.add(failures[drained].source)
                        drained += 1
                    r = ops.ingest_result(resp)
                    answered.add(r.source)
                    record(r)
            except grpc.RpcError as e:
                err = from_rpc_error(e)
                delay = self._settings.retry.delay(err, attempt, True)
                if delay is None:
                    raise err from e
                time.sleep(delay)
            for f in failures[drained:]:
                record(f)
                answered.add(f.source)
            pending = [f for f in pending if ops.source_of(f) not in answered]
        return IngestReport(results, time.monotonic() - started)

    def subscribe(
        self, topics: Union[str, Sequence[str]] = (), *, from_offset: Optional[int] = None
    ) -> Subscription:
        """Events on ``topics`` (all when empty) from ``from_offset`` (default: only new
        ones), as a blocking iterator; see :class:`Subscription`."""
        return Subscription(self, [topics] if isinstance(topics, str) else list(topics), from_offset)

    def wait_run(self, run_id: str, *, timeout: float = 60.0, poll_interval: float = 0.1) -> WorkflowRun:
        """Poll a workflow run until it succeeded, failed or was canceled."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.get_run(run_id)
            if run.done:
                return run
            if time.monotonic() >= deadline:
                raise AgentDBError(
                    f"workflow run {run_id} still {run.state} after {timeout}s", grpc.StatusCode.DEADLINE_EXCEEDED
                )
            time.sleep(poll_interval)

    def iter_items(
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
    ) -> Iterator[Item]:
        """Every item of ``collection`` matching ``filter`` (after ``after``), in id order,
        fetched lazily with :meth:`scroll`, ``page_size`` items per call."""
        while True:
            page = self.scroll(
                collection, filter, after=after, limit=page_size, with_payload=with_payload,
                with_vectors=with_vectors, consistency_token=consistency_token, allow_stale=allow_stale,
            )
            yield from page.items
            if page.done:
                return
            after = page.next_after

    # ------------------------------------------------------------ unary API (mirrored in _aio.py)
    # BEGIN UNARY API

    def create_collection(
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
        return self._call(ops.create_collection(
            name, dim, metric, index, spaces, multimodal, keyword, keyword_language, keyword_searchable, shards,
            replicas,
        ))

    def list_collections(self) -> List[CollectionInfo]:
        return self._call(ops.list_collections())

    def get_collection(self, name: str) -> CollectionInfo:
        return self._call(ops.get_collection(name))

    def drop_collection(self, name: str) -> None:
        return self._call(ops.drop_collection(name))

    def flush(self, collection: str, *, optimize: bool = False) -> CollectionInfo:
        """Seal buffered writes into indexed segments now (``optimize``: merge segments)."""
        return self._call(ops.flush(collection, optimize))

    def upsert(
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
        return self._call(ops.upsert(collection, items, ids, vectors, payloads, space, encoder))

    def embed(self, collection: str, texts: Union[str, Sequence[str]], *, space: str = "") -> Embeddings:
        """Embed ``texts`` (at most 1024, none empty) with the encoder bound to
        ``collection``'s ``space`` ("" = its text space): the vectors the server stores
        for ingested text and searches with for ``text=`` queries. Returns
        :class:`Embeddings` (a float32 (n, dim) array and the encoder id)."""
        return self._call(ops.embed(collection, texts, space))

    def get(
        self,
        collection: str,
        ids: Union[str, Sequence[str]],
        *,
        with_vectors: bool = False,
        consistency_token: str = "",
        allow_stale: bool = False,
    ) -> List[Item]:
        """The items found, in request order (missing ids are left out)."""
        return self._call(ops.get(collection, ids, with_vectors, consistency_token, allow_stale))

    def delete(
        self, collection: str, ids: Optional[Union[str, Sequence[str]]] = None, *, filter: Optional[str] = None
    ) -> int:
        """Delete by ids or by a filter expression; returns how many were deleted."""
        return self._call(ops.delete(collection, ids, filter))

    def count(
        self, collection: str, filter: str = "", *, consistency_token: str = "", allow_stale: bool = False
    ) -> int:
        return self._call(ops.count(collection, filter, consistency_token, allow_stale))

    def scroll(
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
        return self._call(ops.scroll(
            collection, filter, after, limit, with_payload, with_vectors, consistency_token, allow_stale
        ))

    def search(
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
        return self._call(ops.search(
            collection, vector, text=text, image=image, audio=audio, video=video, keyword=keyword, top_k=top_k,
            filter=filter, space=space, with_payload=with_payload, with_vectors=with_vectors, explain=explain,
            mode=mode, fusion=fusion, weights=weights, keyword_fields=keyword_fields, exact=exact, ef=ef,
            nprobe=nprobe, consistency_token=consistency_token, allow_stale=allow_stale,
        ))

    def search_batch(
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
        return self._call(ops.search_batch(
            collection, vectors, top_k, filter, space, with_payload, with_vectors, exact, ef, nprobe
        ))

    def list_models(self) -> List[ModelInfo]:
        return self._call(ops.list_models())

    def status(self) -> ServerStatus:
        return self._call(ops.status())

    def alerts(self) -> List[Alert]:
        return self._call(ops.alerts())

    def inject_fault(self, search_delay_ms: int) -> None:
        """Testing aid (needs debug.allow_fault_injection): delay every search."""
        return self._call(ops.inject_fault(search_delay_ms))

    def set_log_level(self, filter: str) -> str:
        """Change the server's log filter; returns the previous one (admin)."""
        return self._call(ops.set_log_level(filter))

    def create_key(
        self, name: str, role: str = "reader", *, collections: Sequence[str] = (), row_filter: str = ""
    ) -> CreatedKey:
        """Create an API key (admin); its secret is in the result, shown once."""
        return self._call(ops.create_key(name, role, collections, row_filter))

    def list_keys(self) -> List[ApiKey]:
        return self._call(ops.list_keys())

    def revoke_key(self, key_id: str) -> ApiKey:
        return self._call(ops.revoke_key(key_id))

    def who_am_i(self, collections: Union[str, Sequence[str]] = ()) -> Identity:
        """Who this client is (its key, token or certificate; ``local`` when the server
        has authentication off) and what it may do, server-wide and on each of
        ``collections`` (:attr:`Identity.permissions`, in that order)."""
        return self._call(ops.who_am_i(collections))

    def cluster_status(self) -> ClusterStatus:
        return self._call(ops.cluster_status_op())

    def drain_node(self, node: str, *, undo: bool = False) -> None:
        return self._call(ops.drain_node(node, undo))

    def register_agent(
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
        return self._call(ops.register_agent(
            name, description, version, skills, capabilities, endpoint, heartbeat_timeout_ms, memory_spaces, memory
        ))

    def list_agents(self, state: str = "") -> List[Agent]:
        return self._call(ops.list_agents(state))

    def get_agent(self, name: str) -> Agent:
        return self._call(ops.get_agent(name))

    def set_agent_state(self, name: str, state: str, *, reason: str = "") -> Agent:
        """active, suspended or retired; illegal transitions raise FailedPrecondition."""
        return self._call(ops.set_agent_state(name, state, reason))

    def heartbeat(self, name: str) -> Agent:
        return self._call(ops.heartbeat(name))

    def publish(self, topic: str, kind: str = "", *, subject: str = "", data: Any = None) -> int:
        """Publish one event (topics standing_query, workflow, alerts); returns its offset."""
        return self._call(ops.publish([{"topic": topic, "kind": kind, "subject": subject, "data": data}]))[0]

    def publish_many(self, events: Sequence[Mapping[str, Any]]) -> List[int]:
        """Publish events given as dicts (topic, kind, subject, data); returns their offsets."""
        return self._call(ops.publish(events))

    def topics(self) -> Topics:
        return self._call(ops.topics())

    def create_queue(
        self,
        name: str,
        *,
        max_attempts: Optional[int] = None,
        visibility_timeout_ms: int = 0,
        max_messages: int = 0,
    ) -> Queue:
        """Create a durable queue (``created`` is False when it existed with these settings;
        other settings raise AlreadyExists)."""
        return self._call(ops.create_queue(name, max_attempts, visibility_timeout_ms, max_messages))

    def send_message(self, queue: str, body: Any, *, attributes: Optional[Mapping[str, str]] = None) -> str:
        """Send ``body`` (bytes, str, or anything JSON-serialisable) to ``queue``; returns the id."""
        return self._call(ops.send_message(queue, body, attributes))

    def receive_messages(
        self, queue: str, *, max_messages: int = 1, visibility_timeout_ms: int = 0, wait_ms: int = 0
    ) -> List[QueueMessage]:
        """Receive up to ``max_messages``, long-polling up to ``wait_ms`` when none is ready."""
        return self._call(ops.receive_messages(queue, max_messages, visibility_timeout_ms, wait_ms))

    def ack_message(self, message: Union[QueueMessage, str], *, queue: str = "") -> None:
        """Acknowledge a received message (or a receipt, with ``queue=``)."""
        return self._call(ops.ack_message(queue, message))

    def queue_stats(self, name: str = "") -> List[Queue]:
        return self._call(ops.queue_stats(name))

    def create_standing_query(
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
        return self._call(ops.create_standing_query(agent, name, collection, text, vector, space, filter, threshold))

    def list_standing_queries(self, agent: str = "") -> List[StandingQuery]:
        return self._call(ops.list_standing_queries(agent))

    def delete_standing_query(self, query_id: str) -> StandingQuery:
        return self._call(ops.delete_standing_query(query_id))

    def apply_workflow(self, yaml: str) -> Workflow:
        """Validate and store a workflow definition (YAML) as a new version."""
        return self._call(ops.apply_workflow(yaml))

    def list_workflows(self) -> List[Workflow]:
        return self._call(ops.list_workflows())

    def get_workflow(self, name: str, *, version: int = 0) -> Workflow:
        return self._call(ops.get_workflow(name, version))

    def delete_workflow(self, name: str) -> None:
        return self._call(ops.delete_workflow(name))

    def run_workflow(
        self,
        name: str,
        inputs: Optional[Mapping[str, Any]] = None,
        *,
        version: int = 0,
        agent: str = "",
        priority: Optional[int] = None,
    ) -> WorkflowRun:
        """Start a run (``wait_run`` follows it to the end)."""
        return self._call(ops.run_workflow(name, inputs, version, agent, priority))

    def get_run(self, run_id: str) -> WorkflowRun:
        return self._call(ops.get_run(run_id))

    def list_runs(self, workflow: str = "", *, state: str = "", limit: int = 0) -> List[WorkflowRun]:
        return self._call(ops.list_runs(workflow, state, limit))

    def cancel_run(self, run_id: str) -> WorkflowRun:
        return self._call(ops.cancel_run(run_id))

    # END UNARY API
