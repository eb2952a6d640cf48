"""Typed results (dataclasses). Vectors are numpy float32 arrays."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "Vector",
    "Space",
    "CollectionInfo",
    "Item",
    "UpsertResult",
    "ScrollPage",
    "Embeddings",
    "ListScore",
    "Hit",
    "SearchResult",
    "IngestResult",
    "IngestProgress",
    "IngestReport",
    "ModelInfo",
    "DamagedCollection",
    "ServerStatus",
    "Alert",
    "ApiKey",
    "CreatedKey",
    "CollectionPermissions",
    "Identity",
    "AgentSkill",
    "Agent",
    "Event",
    "Lagged",
    "TopicInfo",
    "Topics",
    "Queue",
    "QueueMessage",
    "StandingQuery",
    "Workflow",
    "WorkflowStep",
    "WorkflowRun",
    "ClusterNode",
    "ClusterReplica",
    "ClusterShard",
    "ClusterCollection",
    "ClusterStatus",
]

#: What a vector may be given as: a numpy array or any sequence of numbers.
Vector = Union[npt.ArrayLike, Sequence[float]]
Float32Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Space:
    """A vector space of a collection. ``metric`` is ``cosine``, ``ip`` or ``l2``;
    ``index`` a FAISS index-factory string ("" = the server's default, HNSW32)."""

    name: str = ""
    dim: int = 0
    metric: str = "cosine"
    index: str = ""
    encoder: str = ""
    #: Index kinds in use (results only), e.g. ``("HNSW32 (2 segments)",)``.
    index_kinds: Tuple[str, ...] = ()


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    spaces: Tuple[Space, ...]
    count: int
    unindexed: int
    segments: int
    deleted_rows: int
    disk_bytes: int
    last_lsn: int
    shards: int = 0
    replicas: int = 0
    keyword_language: str = ""
    keyword_searchable: Tuple[str, ...] = ()

    def space(self, name: str = "") -> Space:
        """The space called ``name`` ("" = the only one)."""
        if not name and len(self.spaces) == 1:
            return self.spaces[0]
        for s in self.spaces:
            if s.name == name:
                return s
        raise KeyError(name)


@dataclass
class Item:
    """An item to write or one read back. ``vectors`` maps space name -> vector ("" =
    the only space); ``vector`` is a shorthand for a single-space collection."""

    id: str = ""
    vector: Optional[Vector] = None
    payload: Dict[str, Any] = field(default_factory=dict)
    vectors: Dict[str, Vector] = field(default_factory=dict)
    #: Optional: space name ("" = the only space) -> the encoder that produced its
    #: vector (e.g. :attr:`Embeddings.encoder`); the server refuses a vector whose
    #: encoder is not the one its space is bound to.
    encoders: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vector is not None:
            self.vector = np.asarray(self.vector, dtype=np.float32)
        self.vectors = {k: np.asarray(v, dtype=np.float32) for k, v in self.vectors.items()}
        if self.vector is None and len(self.vectors) == 1:
            self.vector = next(iter(self.vectors.values()))


@dataclass(frozen=True)
class UpsertResult:
    ids: List[str]
    #: Cluster mode: pass to a later read for read-your-writes.
    consistency_token: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)


@dataclass(frozen=True)
class ScrollPage(Sequence[Item]):
    """One page of :meth:`Client.scroll`: ``items`` in id order, and ``next_after``, the
    id to pass as ``after`` for the next page ("" = this page reached the end). A
    sequence of :class:`Item`."""

    items: Tuple[Item, ...]
    next_after: str = ""

    @overload
    def __getitem__(self, i: int) -> Item: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Item]: ...
    def __getitem__(self, i: Union[int, slice]) -> Union[Item, Sequence[Item]]:
        return self.items[i]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    @property
    def ids(self) -> List[str]:
        return [i.id for i in self.items]

    @property
    def done(self) -> bool:
        """True when no page follows this one."""
        return not self.next_after


@dataclass(frozen=True, eq=False)
class Embeddings(Sequence[Float32Array]):
    """Texts embedded by the server (:meth:`Client.embed`): ``vectors`` is a float32
    array of shape (n, dim), one row per text in request order; ``encoder`` the id of
    the model that produced them (what the space is bound to). Behaves as that array
    for ``len``, indexing, iteration and ``np.asarray``; pass it as ``vectors=`` to
    :meth:`Client.upsert` and the encoder goes with it."""

    vectors: Float32Array
    encoder: str = ""

    @overload
    def __getitem__(self, i: int) -> Float32Array: ...
    @overload
    def __getitem__(self, i: slice) -> Float32Array: ...
    def __getitem__(self, i: Union[int, slice]) -> Float32Array:
        return self.vectors[i]

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    def __iter__(self) -> Iterator[Float32Array]:
        return iter(self.vectors)

    def __array__(self, dtype: Any = None, copy: Optional[bool] = None) -> np.ndarray:
        if dtype is None or np.dtype(dtype) == self.vectors.dtype:
            return self.vectors.copy() if copy else self.vectors
        return self.vectors.astype(dtype)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1]) if self.vectors.ndim == 2 else 0

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.vectors.shape)


@dataclass(frozen=True)
class ListScore:
    """One ranked list's contribution to a fused hit (``explain=True``)."""

    list: str
    rank: int
    score: float
    contribution: float
    matched: Tuple[str, ...] = ()
    snippet: str = ""
    coverage: float = 0.0


@dataclass(frozen=True)
class Hit:
    id: str
    #: cosine / ip: similarity (higher is closer); l2: squared distance (lower is closer).
    score: float
    payload: Dict[str, Any]
    vector: Optional[Float32Array] = None
    source: str = ""
    modality: str = ""
    part: str = ""
    explain: Tuple[ListScore, ...] = ()


@dataclass(frozen=True)
class SearchResult(Sequence[Hit]):
    """The hits of one query, best first; a sequence of :class:`Hit`."""

    hits: Tuple[Hit, ...]

    @overload
    def __getitem__(self, i: int) -> Hit: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Hit]: ...
    def __getitem__(self, i: Union[int, slice]) -> Union[Hit, Sequence[Hit]]:
        return self.hits[i]

    def __len__(self) -> int:
        return len(self.hits)

    def __iter__(self) -> Iterator[Hit]:
        return iter(self.hits)

    @property
    def ids(self) -> List[str]:
        return [h.id for h in self.hits]

    @property
    def scores(self) -> Float32Array:
        return np.asarray([h.score for h in self.hits], dtype=np.float32)


@dataclass(frozen=True)
class IngestResult:
    source: str
    #: ``ingested``, ``skipped`` (same content already there) or ``failed``.
    status: str
    error: str = ""
    items: int = 0
    media_type: str = ""
    content_sha256: str = ""


@dataclass(frozen=True)
class IngestProgress:
    """Passed to an ingest's ``on_progress`` after each file's result."""

    done: int
    total: int
    result: IngestResult


@dataclass(frozen=True)
class IngestReport:
    results: List[IngestResult]
    seconds: float

    @property
    def ingested(self) -> int:
        return sum(1 for r in self.results if r.status == "ingested")

    @property
    def skipped(self) -> int:
        return sum(1 for r in self.results if r.status == "skipped")

    @property
    def failed(self) -> List[IngestResult]:
        return [r for r in self.results if r.status not in ("ingested", "skipped")]

    @property
    def items(self) -> int:
        return sum(r.items for r in self.results)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    modality: str
    dim: int
    sha256: str
    source: str
    encoder: str
    loaded: bool


@dataclass(frozen=True)
class DamagedCollection:
    name: str
    reason: str


@dataclass(frozen=True)
class ServerStatus:
    version: str
    uptime_seconds: float
    rss_bytes: int
    data_dir: str
    data_bytes: int
    disk_free_bytes: int
    disk_total_bytes: int
    collections: Tuple[CollectionInfo, ...]
    queries_per_second: float
    upserts_per_second: float
    growth_bytes_per_day: float
    days_until_disk_full: float
    device: str
    damaged: Tuple[DamagedCollection, ...] = ()


@dataclass(frozen=True)
class Alert:
    id: int
    signal: str
    state: str
    started_unix_ms: int
    resolved_unix_ms: int
    value: float
    baseline: float
    z: float


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: str
    collections: Tuple[str, ...]
    created_unix: int
    revoked: bool
    row_filter: str = ""


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    #: The secret, shown once: pass it as ``api_key=``.
    secret: str


@dataclass(frozen=True)
class CollectionPermissions:
    """What the caller may do with one collection (:meth:`Client.who_am_i`); ``admin``
    is creating and dropping it."""

    collection: str
    read: bool
    write: bool
    admin: bool


@dataclass(frozen=True)
class Identity:
    """Who the caller is and what it may do (:meth:`Client.who_am_i`). With
    authentication off the caller is ``local`` and may do everything. The server still
    checks every request: this is for showing only what the caller may use."""

    auth_enabled: bool
    #: ``key:<id>``, ``oidc:<sub>``, ``mtls:<name>``; ``local`` when authentication is off.
    id: str
    name: str
    #: reader, writer or admin.
    role: str
    #: The key's collection scope; empty = every collection.
    collections: Tuple[str, ...]
    #: The row-level policy ANDed into every read and write ("" = none).
    row_filter: str
    #: Server-wide admin: create any collection, manage keys, see every agent and run.
    can_admin: bool
    #: One entry per collection asked about, in request order.
    permissions: Tuple[CollectionPermissions, ...] = ()

    def permission(self, collection: str) -> CollectionPermissions:
        """The permissions on ``collection`` (it must have been asked about)."""
        for p in self.permissions:
            if p.collection == collection:
                return p
        raise KeyError(collection)


@dataclass(frozen=True)
class AgentSkill:
    id: str
    name: str = ""
    description: str = ""
    tags: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Agent:
    name: str
    description: str
    version: str
    skills: Tuple[AgentSkill, ...]
    capabilities: Tuple[str, ...]
    endpoint: str
    #: registered, active, suspended or retired.
    state: str
    healthy: bool
    registered_unix_ms: int
    updated_unix_ms: int
    last_heartbeat_unix_ms: int
    heartbeat_timeout_ms: int
    memory_collection: str
    #: Set by ``register_agent`` only: False when an existing agent's card was updated.
    created: Optional[bool] = None


@dataclass(frozen=True)
class Event:
    offset: int
    topic: str
    kind: str
    subject: str
    data: Any
    unix_ms: int


@dataclass(frozen=True)
class Lagged:
    """Events were evicted before the subscriber read them; delivery goes on from
    ``first_available_offset``."""

    requested_offset: int
    first_available_offset: int


@dataclass(frozen=True)
class TopicInfo:
    name: str
    retained: int
    first_offset: int
    last_offset: int
    client_publishable: bool


@dataclass(frozen=True)
class Topics:
    topics: Tuple[TopicInfo, ...]
    next_offset: int
    ring_capacity: int


@dataclass(frozen=True)
class Queue:
    name: str
    max_attempts: int
    visibility_timeout_ms: int
    max_messages: int
    messages: int
    ready: int
    in_flight: int
    dead_letter_queue: str
    oldest_sent_unix_ms: int
    created_unix_ms: int
    #: Set by ``create_queue`` only: False when the queue already existed.
    created: Optional[bool] = None


@dataclass(frozen=True)
class QueueMessage:
    id: str
    body: bytes
    attributes: Mapping[str, str]
    #: 1 on the first delivery.
    attempt: int
    #: Pass to ``ack``.
    receipt: str
    sent_unix_ms: int
    invisible_until_unix_ms: int
    queue: str = ""

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class StandingQuery:
    id: str
    agent: str
    name: str
    collection: str
    space: str
    metric: str
    text: str
    filter: str
    threshold: float
    dim: int
    created_unix_ms: int


@dataclass(frozen=True)
class Workflow:
    name: str
    version: int
    description: str
    yaml: str
    sha256: str
    applied_unix_ms: int
    applied_by: str
    triggers: Tuple[str, ...]
    steps: Tuple[str, ...]
    versions: int
    #: Set by ``apply_workflow`` only: False when the YAML equals the latest version's.
    changed: Optional[bool] = None


@dataclass(frozen=True)
class WorkflowStep:
    id: str
    kind: str
    #: pending, running, retrying, succeeded, failed, skipped or canceled.
    state: str
    attempts: int
    error: str
    attempt_errors: Tuple[str, ...]
    output: Any
    started_unix_ms: int
    finished_unix_ms: int
    next_attempt_unix_ms: int


TERMINAL_RUN_STATES = frozenset({"succeeded", "failed", "canceled"})


@dataclass(frozen=True)
class WorkflowRun:
    id: str
    workflow: str
    version: int
    #: queued, running, succeeded, failed or canceled.
    state: str
    agent: str
    priority: int
    inputs: Any
    trigger: Any
    principal: str
    steps: Tuple[WorkflowStep, ...]
    error: str
    created_unix_ms: int
    started_unix_ms: int
    finished_unix_ms: int

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_RUN_STATES

    def step(self, step_id: str) -> WorkflowStep:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)


@dataclass(frozen=True)
class ClusterNode:
    id: str
    addr: str
    alive: bool
    replicas: int
    draining: bool


@dataclass(frozen=True)
class ClusterReplica:
    node: str
    applied: int
    alive: bool


@dataclass(frozen=True)
class ClusterShard:
    shard: int
    last_seq: int
    replicas: Tuple[ClusterReplica, ...]


@dataclass(frozen=True)
class ClusterCollection:
    name: str
    shards: int
    replicas: int
    stream_replicas: int
    shard_status: Tuple[ClusterShard, ...]


@dataclass(frozen=True)
class ClusterStatus:
    enabled: bool
    node_id: str
    leader: str
    connected: bool
    nodes: Tuple[ClusterNode, ...]
    collections: Tuple[ClusterCollection, ...]
