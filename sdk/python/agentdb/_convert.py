"""Request builders and response parsers shared by the sync and asyncio clients.

Every unary client method is ``return self._call(ops.<name>(...))`` (``await``-ed in the
asyncio client): an :class:`Op` names the RPC, carries the request message, whether the
call is idempotent (retried on any transient failure) and the parser of its response.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypeVar,
    Union,
)

import numpy as np
from google.protobuf.message import Message

from ._proto import agentdb_pb2 as pb
from ._proto import orchestration_pb2 as opb
from ._types import (
    Agent,
    AgentSkill,
    Alert,
    ApiKey,
    ClusterCollection,
    ClusterNode,
    ClusterReplica,
    ClusterShard,
    ClusterStatus,
    CollectionInfo,
    CollectionPermissions,
    CreatedKey,
    DamagedCollection,
    Embeddings,
    Event,
    Hit,
    Identity,
    IngestResult,
    Item,
    Lagged,
    ListScore,
    ModelInfo,
    Queue,
    QueueMessage,
    ScrollPage,
    SearchResult,
    ServerStatus,
    Space,
    StandingQuery,
    TopicInfo,
    Topics,
    UpsertResult,
    Vector,
    Workflow,
    WorkflowRun,
    WorkflowStep,
)

T = TypeVar("T")
PathLike = Union[str, "os.PathLike[str]"]
#: Query media: raw bytes, or a path to read them from.
Media = Union[bytes, bytearray, memoryview, PathLike]


@dataclass(frozen=True)
class Op(Generic[T]):
    service: str
    method: str
    request: Message
    parse: Callable[[Any], T]
    idempotent: bool
    #: A lower bound for this call's deadline (a long poll waits on the server).
    min_timeout: float = 0.0

    @property
    def path(self) -> str:
        return f"/agentdb.v1.{self.service}/{self.method}"


def _op(
    service: str, method: str, request: Message, parse: Callable[[Any], T], idempotent: bool, min_timeout: float = 0.0
) -> Op[T]:
    return Op(service, method, request, parse, idempotent, min_timeout)


def _none(_: Any) -> None:
    return None


# ---------------------------------------------------------------- small helpers

_METRICS = {
    "": pb.METRIC_UNSPECIFIED,
    "cosine": pb.METRIC_COSINE,
    "ip": pb.METRIC_INNER_PRODUCT,
    "inner_product": pb.METRIC_INNER_PRODUCT,
    "dot": pb.METRIC_INNER_PRODUCT,
    "l2": pb.METRIC_L2,
    "euclidean": pb.METRIC_L2,
}
_METRIC_NAMES = {
    pb.METRIC_UNSPECIFIED: "cosine",
    pb.METRIC_COSINE: "cosine",
    pb.METRIC_INNER_PRODUCT: "ip",
    pb.METRIC_L2: "l2",
}
_MODES = {
    None: pb.RETRIEVAL_DEFAULT,
    "": pb.RETRIEVAL_DEFAULT,
    "default": pb.RETRIEVAL_DEFAULT,
    "dense": pb.RETRIEVAL_DENSE,
    "keyword": pb.RETRIEVAL_KEYWORD,
    "hybrid": pb.RETRIEVAL_HYBRID,
}
_FUSIONS = {
    None: pb.FUSION_UNSPECIFIED,
    "": pb.FUSION_UNSPECIFIED,
    "calibrated": pb.FUSION_CALIBRATED,
    "weighted": pb.FUSION_WEIGHTED,
    "rrf": pb.FUSION_RRF,
}


def _choice(table: Mapping[Any, int], value: Any, what: str) -> int:
    key = value.lower() if isinstance(value, str) else value
    if key not in table:
        names = sorted(k for k in table if isinstance(k, str) and k)
        raise ValueError(f"unknown {what} {value!r}; expected one of {names}")
    return table[key]


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


def loads(text: str, empty: Any = None) -> Any:
    if not text:
        return empty
    return json.loads(text)


def to_float32(v: Vector) -> np.ndarray:
    arr = np.asarray(v, dtype=np.float32)
    if arr.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional, got shape {arr.shape}")
    return arr


def packed(arr: np.ndarray) -> bytes:
    """A float32 array as the wire's `Vector.packed` (little-endian float32): one copy,
    where `values=arr.tolist()` builds a Python float per element (about 30x slower)."""
    return np.asarray(arr, dtype="<f4").tobytes()


def vector_pb(v: Vector, encoder: str = "") -> pb.Vector:
    return pb.Vector(packed=packed(to_float32(v)), encoder=encoder)


def vector_np(v: pb.Vector) -> np.ndarray:
    return np.fromiter(v.values, dtype=np.float32, count=len(v.values))


def read_media(m: Optional[Media]) -> bytes:
    if m is None:
        return b""
    if isinstance(m, (bytes, bytearray, memoryview)):
        return bytes(m)
    return Path(m).read_bytes()


# ---------------------------------------------------------------- parsers

def space(s: pb.SpaceInfo) -> Space:
    spec = s.spec
    return Space(
        name=spec.name,
        dim=spec.dim,
        metric=_METRIC_NAMES.get(spec.metric, "cosine"),
        index=spec.index,
        encoder=spec.encoder,
        index_kinds=tuple(s.index_kinds),
    )


def collection(c: pb.CollectionInfo) -> CollectionInfo:
    return CollectionInfo(
        name=c.name,
        spaces=tuple(space(s) for s in c.spaces),
        count=c.count,
        unindexed=c.unindexed,
        segments=c.segments,
        deleted_rows=c.deleted_rows,
        disk_bytes=c.disk_bytes,
        last_lsn=c.last_lsn,
        shards=c.shards,
        replicas=c.replicas,
        keyword_language=c.keyword_language,
        keyword_searchable=tuple(c.keyword_searchable),
    )


def item(i: pb.Item) -> Item:
    return Item(
        id=i.id,
        payload=loads(i.payload_json, {}),
        vectors={name: vector_np(v) for name, v in i.vectors.items()},
        encoders={name: v.encoder for name, v in i.vectors.items() if v.encoder},
    )


def list_score(e: pb.ListScore) -> ListScore:
    return ListScore(
        list=e.list,
        rank=e.rank,
        score=float(e.score),
        contribution=float(e.contribution),
        matched=tuple(e.matched),
        snippet=e.snippet,
        coverage=float(e.coverage),
    )


_new_object = object.__new__


def hit(h: pb.Hit) -> Hit:
    # The hot path of every search (k hits per call; benches/sdk measures it against raw
    # gRPC). Hit is a frozen dataclass whose generated __init__ pays one
    # object.__setattr__ per field (about a microsecond per hit); filling the instance
    # dict directly makes the same object (equal, hashable, picklable: Hit has no slots,
    # no __post_init__). Fields the query did not ask for (vector, explain) cost nothing.
    pj = h.payload_json
    out = _new_object(Hit)
    out.__dict__.update(
        id=h.id,
        score=h.score,  # upb returns a Python float already
        # "{}" (an item without payload) is most hits of a vector-only collection;
        # json.loads costs a microsecond each.
        payload=json.loads(pj) if pj and pj != "{}" else {},
        vector=vector_np(h.vector) if h.HasField("vector") and h.vector.values else None,
        source=h.source,
        modality=h.modality,
        part=h.part,
        explain=tuple([list_score(e) for e in h.explain]) if h.explain else (),
    )
    return out


def hits(hs: Iterable[pb.Hit]) -> SearchResult:
    return SearchResult(tuple([hit(h) for h in hs]))


def ingest_result(r: pb.IngestResult) -> IngestResult:
    return IngestResult(
        source=r.source,
        status=r.status,
        error=r.error,
        items=r.items,
        media_type=r.media_type,
        content_sha256=r.content_sha256,
    )


def api_key(k: pb.ApiKeyInfo) -> ApiKey:
    return ApiKey(
        id=k.id,
        name=k.name,
        role=k.role,
        collections=tuple(k.collections),
        created_unix=k.created_unix,
        revoked=k.revoked,
        row_filter=k.row_filter,
    )


def agent(a: opb.AgentInfo, created: Optional[bool] = None) -> Agent:
    c = a.card
    return Agent(
        name=c.name,
        description=c.description,
        version=c.version,
        skills=tuple(AgentSkill(s.id, s.name, s.description, tuple(s.tags)) for s in c.skills),
        capabilities=tuple(c.capabilities),
        endpoint=c.endpoint,
        state=a.state,
        healthy=a.healthy,
        registered_unix_ms=a.registered_unix_ms,
        updated_unix_ms=a.updated_unix_ms,
        last_heartbeat_unix_ms=a.last_heartbeat_unix_ms,
        heartbeat_timeout_ms=a.heartbeat_timeout_ms,
        memory_collection=a.memory_collection,
        created=created,
    )


def event(e: opb.Event) -> Event:
    try:
        data = loads(e.data_json)
    except ValueError:
        data = e.data_json
    return Event(e.offset, e.topic, e.kind, e.subject, data, e.unix_ms)


def subscribe_response(r: opb.SubscribeResponse) -> Union[Event, Lagged, None]:
    which = r.WhichOneof("msg")
    if which == "event":
        return event(r.event)
    if which == "lagged":
        return Lagged(r.lagged.requested_offset, r.lagged.first_available_offset)
    return None


def queue(q: opb.QueueStats, created: Optional[bool] = None) -> Queue:
    return Queue(
        name=q.name,
        max_attempts=q.max_attempts,
        visibility_timeout_ms=q.visibility_timeout_ms,
        max_messages=q.max_messages,
        messages=q.messages,
        ready=q.ready,
        in_flight=q.in_flight,
        dead_letter_queue=q.dead_letter_queue,
        oldest_sent_unix_ms=q.oldest_sent_unix_ms,
        created_unix_ms=q.created_unix_ms,
        created=created,
    )


def queue_message(m: opb.QueueMessage, queue_name: str) -> QueueMessage:
    return QueueMessage(
        id=m.id,
        body=bytes(m.body),
        attributes=dict(m.attributes),
        attempt=m.attempt,
        receipt=m.receipt,
        sent_unix_ms=m.sent_unix_ms,
        invisible_until_unix_ms=m.invisible_until_unix_ms,
        queue=queue_name,
    )


def standing_query(q: opb.StandingQuery) -> StandingQuery:
    return StandingQuery(
        id=q.id,
        agent=q.agent,
        name=q.name,
        collection=q.collection,
        space=q.space,
        metric=q.metric,
        text=q.text,
        filter=q.filter,
        threshold=float(q.threshold),
        dim=q.dim,
        created_unix_ms=q.created_unix_ms,
    )


def workflow(w: opb.WorkflowInfo, changed: Optional[bool] = None) -> Workflow:
    return Workflow(
        name=w.name,
        version=w.version,
        description=w.description,
        yaml=w.yaml,
        sha256=w.sha256,
        applied_unix_ms=w.applied_unix_ms,
        applied_by=w.applied_by,
        triggers=tuple(w.triggers),
        steps=tuple(w.steps),
        versions=w.versions,
        changed=changed,
    )


def _lenient_json(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        return text


def workflow_run(r: opb.WorkflowRun) -> WorkflowRun:
    return WorkflowRun(
        id=r.id,
        workflow=r.workflow,
        version=r.version,
        state=r.state,
        agent=r.agent,
        priority=r.priority,
        inputs=_lenient_json(r.inputs_json),
        trigger=_lenient_json(r.trigger_json),
        principal=r.principal,
        steps=tuple(
            WorkflowStep(
                id=s.id,
                kind=s.kind,
                state=s.state,
                attempts=s.attempts,
                error=s.error,
                attempt_errors=tuple(s.attempt_errors),
                output=_lenient_json(s.output_json),
                started_unix_ms=s.started_unix_ms,
                finished_unix_ms=s.finished_unix_ms,
                next_attempt_unix_ms=s.next_attempt_unix_ms,
            )
            for s in r.steps
        ),
        error=r.error,
        created_unix_ms=r.created_unix_ms,
        started_unix_ms=r.started_unix_ms,
        finished_unix_ms=r.finished_unix_ms,
    )


def server_status(s: pb.StatusResponse) -> ServerStatus:
    return ServerStatus(
        version=s.version,
        uptime_seconds=s.uptime_seconds,
        rss_bytes=s.rss_bytes,
        data_dir=s.data_dir,
        data_bytes=s.data_bytes,
        disk_free_bytes=s.disk_free_bytes,
        disk_total_bytes=s.disk_total_bytes,
        collections=tuple(collection(c) for c in s.collections),
        queries_per_second=s.queries_per_second,
        upserts_per_second=s.upserts_per_second,
        growth_bytes_per_day=s.growth_bytes_per_day,
        days_until_disk_full=s.days_until_disk_full,
        device=s.device,
        damaged=tuple(DamagedCollection(d.name, d.reason) for d in s.damaged),
    )


def cluster_status(s: pb.ClusterStatusResponse) -> ClusterStatus:
    return ClusterStatus(
        enabled=s.enabled,
        node_id=s.node_id,
        leader=s.leader,
        connected=s.connected,
        nodes=tuple(ClusterNode(n.id, n.addr, n.alive, n.replicas, n.draining) for n in s.nodes),
        collections=tuple(
            ClusterCollection(
                c.name,
                c.shards,
                c.replicas,
                c.stream_replicas,
                tuple(
                    ClusterShard(
                        sh.shard,
                        sh.last_seq,
                        tuple(ClusterReplica(r.node, r.applied, r.alive) for r in sh.replicas),
                    )
                    for sh in c.shard_status
                ),
            )
            for c in s.collections
        ),
    )


# ---------------------------------------------------------------- collections

SpaceArg = Union[Space, Mapping[str, Any]]


def _space_spec(s: SpaceArg) -> pb.SpaceSpec:
    if isinstance(s, Mapping):
        s = Space(**s)
    return pb.SpaceSpec(
        name=s.name,
        dim=int(s.dim),
        metric=_choice(_METRICS, s.metric, "metric"),
        index=s.index,
        encoder=s.encoder,
    )


def create_collection(
    name: str,
    dim: Optional[int],
    metric: str,
    index: str,
    spaces: Optional[Sequence[SpaceArg]],
    multimodal: bool,
    keyword: bool,
    keyword_language: str,
    keyword_searchable: Sequence[str],
    shards: int,
    replicas: int,
) -> Op[CollectionInfo]:
    specs = [_space_spec(s) for s in spaces or ()]
    if dim is not None:
        specs.insert(0, _space_spec(Space(name="", dim=dim, metric=metric, index=index)))
    if not specs and not multimodal:
        raise ValueError("give dim=, spaces=[...] or multimodal=True")
    req = pb.CreateCollectionRequest(
        name=name,
        spaces=specs,
        multimodal=multimodal,
        keyword=pb.KeywordOptions(
            disabled=not keyword, language=keyword_language, searchable=list(keyword_searchable)
        ),
        shards=shards,
        replicas=replicas,
    )
    return _op("Collections", "Create", req, lambda r: collection(r.info), False)


def list_collections() -> Op[List[CollectionInfo]]:
    return _op(
        "Collections", "List", pb.ListCollectionsRequest(), lambda r: [collection(c) for c in r.collections], True
    )


def get_collection(name: str) -> Op[CollectionInfo]:
    return _op("Collections", "Describe", pb.DescribeCollectionRequest(name=name), lambda r: collection(r.info), True)


def drop_collection(name: str) -> Op[None]:
    return _op("Collections", "Drop", pb.DropCollectionRequest(name=name), _none, False)


def flush(name: str, optimize: bool) -> Op[CollectionInfo]:
    return _op(
        "Collections", "Flush", pb.FlushRequest(collection=name, optimize=optimize), lambda r: collection(r.info), True
    )


# ---------------------------------------------------------------- items

ItemArg = Union[Item, Mapping[str, Any]]


def _item_pb(it: ItemArg) -> pb.Item:
    if isinstance(it, Mapping):
        unknown = set(it) - {"id", "vector", "vectors", "payload", "encoders"}
        if unknown:
            raise ValueError(f"unknown item keys {sorted(unknown)}; use id, vector, vectors, payload, encoders")
        it = Item(
            id=str(it.get("id") or ""),
            vector=it.get("vector"),
            payload=dict(it.get("payload") or {}),
            vectors=dict(it.get("vectors") or {}),
            encoders=dict(it.get("encoders") or {}),
        )
    msg = pb.Item(id=it.id, payload_json=dumps(it.payload) if it.payload else "")
    vectors = dict(it.vectors)
    if it.vector is not None and not vectors:
        vectors[""] = it.vector
    encoders = it.encoders or {}
    unknown = set(encoders) - set(vectors)
    if unknown:
        raise ValueError(f"encoders for spaces without a vector: {sorted(unknown)}")
    for name, v in vectors.items():
        msg.vectors[name].CopyFrom(vector_pb(v, encoders.get(name, "")))
    return msg


def upsert(
    collection_name: str,
    items: Optional[Iterable[ItemArg]],
    ids: Optional[Sequence[str]],
    vectors: Optional[Vector],
    payloads: Optional[Sequence[Optional[Mapping[str, Any]]]],
    space_name: str,
    encoder: str = "",
) -> Op[UpsertResult]:
    msgs = [_item_pb(i) for i in items or ()]
    if isinstance(vectors, Embeddings):
        if encoder and vectors.encoder and encoder != vectors.encoder:
            raise ValueError(f"encoder={encoder!r} but the embeddings come from {vectors.encoder!r}")
        encoder = encoder or vectors.encoder
        vectors = vectors.vectors
    if vectors is not None:
        mat = np.asarray(vectors, dtype=np.float32)
        if mat.ndim == 1:
            mat = mat[None, :]
        if mat.ndim != 2:
            raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {mat.shape}")
        n = mat.shape[0]
        if ids is not None and len(ids) != n:
            raise ValueError(f"{len(ids)} ids for {n} vectors")
        if payloads is not None and len(payloads) != n:
            raise ValueError(f"{len(payloads)} payloads for {n} vectors")
        for k in range(n):
            payload = payloads[k] if payloads is not None else None
            m = pb.Item(id=ids[k] if ids is not None else "", payload_json=dumps(payload) if payload else "")
            v = m.vectors[space_name]
            v.packed = packed(mat[k])
            if encoder:
                v.encoder = encoder
            msgs.append(m)
    elif ids is not None or payloads is not None or encoder:
        raise ValueError("ids=, payloads= and encoder= go with vectors=; or pass items=[...]")
    # Items with ids are idempotent to replay; generated ids are not.
    idempotent = all(m.id for m in msgs)
    req = pb.UpsertRequest(collection=collection_name, items=msgs)
    return _op(
        "Items", "Upsert", req, lambda r: UpsertResult(list(r.ids), r.consistency_token), idempotent
    )


#: The most texts one Embed call takes.
MAX_EMBED_TEXTS = 1024


def embeddings(r: pb.EmbedResponse) -> Embeddings:
    if not r.vectors:
        return Embeddings(np.zeros((0, 0), dtype=np.float32), "")
    mat = np.array([v.values for v in r.vectors], dtype=np.float32)
    return Embeddings(mat, r.vectors[0].encoder)


def embed(collection_name: str, texts: Union[str, Sequence[str]], space_name: str) -> Op[Embeddings]:
    if isinstance(texts, str):
        texts = [texts]
    req = pb.EmbedRequest(collection=collection_name, space=space_name, texts=list(texts))
    return _op("Items", "Embed", req, embeddings, True)


def get(
    collection_name: str, ids: Union[str, Sequence[str]], with_vectors: bool, consistency_token: str, allow_stale: bool
) -> Op[List[Item]]:
    req = pb.GetRequest(
        collection=collection_name,
        ids=[ids] if isinstance(ids, str) else list(ids),
        with_vectors=with_vectors,
        consistency_token=consistency_token,
        allow_stale=allow_stale,
    )
    return _op("Items", "Get", req, lambda r: [item(i) for i in r.items], True)


def delete(collection_name: str, ids: Optional[Union[str, Sequence[str]]], filter: Optional[str]) -> Op[int]:
    if (ids is None) == (filter is None):
        raise ValueError("delete takes ids= or filter= (exactly one)")
    req = pb.DeleteRequest(
        collection=collection_name,
        ids=([ids] if isinstance(ids, str) else list(ids)) if ids is not None else [],
        filter=filter or "",
    )
    return _op("Items", "Delete", req, lambda r: int(r.deleted), ids is not None)


def count(collection_name: str, filter: str, consistency_token: str, allow_stale: bool) -> Op[int]:
    req = pb.CountRequest(
        collection=collection_name, filter=filter, consistency_token=consistency_token, allow_stale=allow_stale
    )
    return _op("Items", "Count", req, lambda r: int(r.count), True)


def scroll(
    collection_name: str,
    filter: str,
    after: str,
    limit: int,
    with_payload: bool,
    with_vectors: bool,
    consistency_token: str,
    allow_stale: bool,
) -> Op[ScrollPage]:
    if limit < 1:
        # 0 would silently mean the server's default page size.
        raise ValueError(f"limit must be at least 1, got {limit}")
    req = pb.ScrollRequest(
        collection=collection_name,
        filter=filter,
        after=after,
        limit=limit,
        with_payload=with_payload,
        with_vectors=with_vectors,
        consistency_token=consistency_token,
        allow_stale=allow_stale,
    )
    return _op(
        "Items", "Scroll", req, lambda r: ScrollPage(tuple([item(i) for i in r.items]), r.next_after), True
    )


def search(
    collection_name: str,
    vector: Optional[Vector],
    *,
    text: Optional[str],
    image: Optional[Media],
    audio: Optional[Media],
    video: Optional[Media],
    keyword: Optional[str],
    top_k: int,
    filter: str,
    space: str,
    with_payload: bool,
    with_vectors: bool,
    explain: bool,
    mode: Optional[str],
    fusion: Optional[str],
    weights: Optional[Mapping[str, float]],
    keyword_fields: Optional[Mapping[str, float]],
    exact: bool,
    ef: int,
    nprobe: int,
    consistency_token: str,
    allow_stale: bool,
) -> Op[SearchResult]:
    if vector is None and not any(x is not None for x in (text, image, audio, video, keyword)):
        raise ValueError("search needs a vector, text=, image=, audio=, video= or keyword=")
    # Only the fields that differ from their defaults: passing all twenty (empty maps, a
    # zero params message, ...) costs more than building the rest of the request.
    kw: Dict[str, Any] = {"collection": collection_name, "top_k": top_k, "with_payload": with_payload}
    if space:
        kw["space"] = space
    if filter:
        kw["filter"] = filter
    if with_vectors:
        kw["with_vectors"] = True
    if nprobe or exact or ef:
        kw["params"] = pb.SearchParams(nprobe=nprobe, exact=exact, ef=ef)
    if text:
        kw["text"] = text
    if image is not None:
        kw["image"] = read_media(image)
    if audio is not None:
        kw["audio"] = read_media(audio)
    if video is not None:
        kw["video"] = read_media(video)
    if explain:
        kw["explain"] = True
    if fusion is not None:
        kw["fusion"] = _choice(_FUSIONS, fusion, "fusion")
    if weights:
        kw["weights"] = dict(weights)
    if mode is not None:
        kw["mode"] = _choice(_MODES, mode, "mode")
    if keyword:
        kw["keyword_query"] = keyword
    if keyword_fields:
        kw["keyword_fields"] = dict(keyword_fields)
    if consistency_token:
        kw["consistency_token"] = consistency_token
    if allow_stale:
        kw["allow_stale"] = True
    if vector is not None:
        kw["vector"] = vector_pb(vector)
    req = pb.SearchRequest(**kw)
    return _op("Items", "Search", req, lambda r: hits(r.hits), True)


def search_batch(
    collection_name: str,
    vectors: Vector,
    top_k: int,
    filter: str,
    space: str,
    with_payload: bool,
    with_vectors: bool,
    exact: bool,
    ef: int,
    nprobe: int,
) -> Op[List[SearchResult]]:
    mat = np.asarray(vectors, dtype=np.float32)
    if mat.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {mat.shape}")
    req = pb.SearchBatchRequest(
        collection=collection_name,
        space=space,
        vectors=[pb.Vector(packed=packed(row)) for row in mat],
        top_k=top_k,
        filter=filter,
        with_payload=with_payload,
        with_vectors=with_vectors,
        params=pb.SearchParams(nprobe=nprobe, exact=exact, ef=ef),
    )
    return _op("Items", "SearchBatch", req, lambda r: [hits(res.hits) for res in r.results], True)


# ---------------------------------------------------------------- ingest

#: Files bigger than this fail locally without being sent (the server's ingest limit).
MAX_INGEST_FILE = 32 << 20

IngestSource = Union[PathLike, Tuple[str, bytes]]


def walk(sources: Iterable[IngestSource]) -> Tuple[List[Union[Path, Tuple[str, bytes]]], List[IngestResult]]:
    """Files under ``sources`` (folders walked in sorted order, hidden entries skipped)
    plus ``(source, content)`` pairs as given; and local failures."""
    out: List[Union[Path, Tuple[str, bytes]]] = []
    failed: List[IngestResult] = []

    def visit(p: Path) -> None:
        try:
            if p.is_dir():
                for child in sorted(p.iterdir()):
                    if not child.name.startswith("."):
                        visit(child)
            elif p.is_file():
                out.append(p)
            elif not p.exists():
                failed.append(IngestResult(str(p), "failed", f"{p}: no such file or directory"))
        except OSError as e:
            failed.append(IngestResult(str(p), "failed", str(e)))

    if isinstance(sources, (str, os.PathLike)) or (
        isinstance(sources, tuple) and len(sources) == 2 and isinstance(sources[1], (bytes, bytearray))
    ):
        sources = [sources]  # type: ignore[list-item]
    for s in sources:
        if isinstance(s, tuple):
            out.append((str(s[0]), bytes(s[1])))
        else:
            visit(Path(s))
    return out, failed


def ingest_requests(
    collection_name: str,
    files: Sequence[Union[Path, Tuple[str, bytes]]],
    local_failures: List[IngestResult],
) -> Iterator[pb.IngestRequest]:
    """One request per file, read lazily; unreadable or too big files are appended to
    ``local_failures`` instead of being sent."""
    for f in files:
        if isinstance(f, tuple):
            source, content = f
        else:
            source = str(f)
            try:
                size = f.stat().st_size
                if size > MAX_INGEST_FILE:
                    local_failures.append(
                        IngestResult(source, "failed", f"file is {size} bytes; the ingest limit is {MAX_INGEST_FILE}")
                    )
                    continue
                content = f.read_bytes()
            except OSError as e:
                local_failures.append(IngestResult(source, "failed", str(e)))
                continue
        yield pb.IngestRequest(collection=collection_name, source=source, content=content)


def source_of(f: Union[Path, Tuple[str, bytes]]) -> str:
    return f[0] if isinstance(f, tuple) else str(f)


# ---------------------------------------------------------------- models / server / security

def list_models() -> Op[List[ModelInfo]]:
    return _op(
        "Models",
        "List",
        pb.ListModelsRequest(),
        lambda r: [
            ModelInfo(m.name, m.version, m.modality, m.dim, m.sha256, m.source, m.encoder, m.loaded) for m in r.models
        ],
        True,
    )


def status() -> Op[ServerStatus]:
    return _op("Server", "Status", pb.StatusRequest(), server_status, True)


def alerts() -> Op[List[Alert]]:
    return _op(
        "Server",
        "Alerts",
        pb.AlertsRequest(),
        lambda r: [
            Alert(a.id, a.signal, a.state, a.started_unix_ms, a.resolved_unix_ms, a.value, a.baseline, a.z)
            for a in r.alerts
        ],
        True,
    )


def inject_fault(search_delay_ms: int) -> Op[None]:
    return _op("Server", "InjectFault", pb.InjectFaultRequest(search_delay_ms=search_delay_ms), _none, True)


def set_log_level(filter: str) -> Op[str]:
    return _op("Server", "SetLogLevel", pb.SetLogLevelRequest(filter=filter), lambda r: r.previous, True)


def create_key(name: str, role: str, collections: Sequence[str], row_filter: str) -> Op[CreatedKey]:
    req = pb.CreateKeyRequest(name=name, role=role, collections=list(collections), row_filter=row_filter)
    return _op("Security", "CreateKey", req, lambda r: CreatedKey(api_key(r.key), r.secret), False)


def list_keys() -> Op[List[ApiKey]]:
    return _op("Security", "ListKeys", pb.ListKeysRequest(), lambda r: [api_key(k) for k in r.keys], True)


def revoke_key(key_id: str) -> Op[ApiKey]:
    return _op("Security", "RevokeKey", pb.RevokeKeyRequest(id=key_id), lambda r: api_key(r.key), True)


def identity(r: pb.WhoAmIResponse) -> Identity:
    return Identity(
        auth_enabled=r.auth_enabled,
        id=r.id,
        name=r.name,
        role=r.role,
        collections=tuple(r.collections),
        row_filter=r.row_filter,
        can_admin=r.can_admin,
        permissions=tuple(
            CollectionPermissions(p.collection, p.read, p.write, p.admin) for p in r.permissions
        ),
    )


def who_am_i(collections: Union[str, Sequence[str]]) -> Op[Identity]:
    req = pb.WhoAmIRequest(collections=[collections] if isinstance(collections, str) else list(collections))
    return _op("Security", "WhoAmI", req, identity, True)


def cluster_status_op() -> Op[ClusterStatus]:
    return _op("Cluster", "Status", pb.ClusterStatusRequest(), cluster_status, True)


def drain_node(node: str, undo: bool) -> Op[None]:
    return _op("Cluster", "Drain", pb.ClusterDrainRequest(node=node, undo=undo), _none, True)


# ---------------------------------------------------------------- agents

SkillArg = Union[AgentSkill, Mapping[str, Any], str]


def _skill_pb(s: SkillArg) -> opb.AgentSkill:
    if isinstance(s, str):
        return opb.AgentSkill(id=s, name=s)
    if isinstance(s, Mapping):
        return opb.AgentSkill(
            id=s.get("id", ""), name=s.get("name", ""), description=s.get("description", ""), tags=s.get("tags", ())
        )
    return opb.AgentSkill(id=s.id, name=s.name, description=s.description, tags=list(s.tags))


def register_agent(
    name: str,
    description: str,
    version: str,
    skills: Sequence[SkillArg],
    capabilities: Sequence[str],
    endpoint: str,
    heartbeat_timeout_ms: int,
    memory_spaces: Optional[Sequence[SpaceArg]],
    memory: bool,
) -> Op[Agent]:
    req = opb.RegisterAgentRequest(
        card=opb.AgentCard(
            name=name,
            description=description,
            version=version,
            skills=[_skill_pb(s) for s in skills],
            capabilities=list(capabilities),
            endpoint=endpoint,
        ),
        heartbeat_timeout_ms=heartbeat_timeout_ms,
        memory_spaces=[_space_spec(s) for s in memory_spaces or ()],
        no_memory=not memory,
    )
    return _op("Agents", "Register", req, lambda r: agent(r.agent, r.created), True)


def list_agents(state: str) -> Op[List[Agent]]:
    return _op("Agents", "List", opb.ListAgentsRequest(state=state), lambda r: [agent(a) for a in r.agents], True)


def get_agent(name: str) -> Op[Agent]:
    return _op("Agents", "Get", opb.GetAgentRequest(name=name), lambda r: agent(r.agent), True)


def set_agent_state(name: str, state: str, reason: str) -> Op[Agent]:
    req = opb.SetAgentStateRequest(name=name, state=state, reason=reason)
    return _op("Agents", "SetState", req, lambda r: agent(r.agent), False)


def heartbeat(name: str) -> Op[Agent]:
    return _op("Agents", "Heartbeat", opb.AgentHeartbeatRequest(name=name), lambda r: agent(r.agent), True)


# ---------------------------------------------------------------- events

def publish(events: Sequence[Mapping[str, Any]]) -> Op[List[int]]:
    msgs = []
    for e in events:
        data = e.get("data")
        msgs.append(
            opb.PublishEvent(
                topic=e["topic"],
                kind=e.get("kind", ""),
                subject=e.get("subject", ""),
                data_json=data if isinstance(data, str) else dumps(data if data is not None else {}),
            )
        )
    return _op("Events", "Publish", opb.PublishRequest(events=msgs), lambda r: [int(o) for o in r.offsets], False)


def topics() -> Op[Topics]:
    return _op(
        "Events",
        "Topics",
        opb.TopicsRequest(),
        lambda r: Topics(
            tuple(TopicInfo(t.name, t.retained, t.first_offset, t.last_offset, t.client_publishable) for t in r.topics),
            r.next_offset,
            r.ring_capacity,
        ),
        True,
    )


def subscribe_request(topics_: Union[str, Sequence[str]], from_offset: Optional[int]) -> opb.SubscribeRequest:
    req = opb.SubscribeRequest(topics=[topics_] if isinstance(topics_, str) else list(topics_))
    if from_offset is not None:
        req.from_offset = from_offset
    return req


SUBSCRIBE_PATH = "/agentdb.v1.Events/Subscribe"
INGEST_PATH = "/agentdb.v1.Items/Ingest"


# ---------------------------------------------------------------- queues

def create_queue(name: str, max_attempts: Optional[int], visibility_timeout_ms: int, max_messages: int) -> Op[Queue]:
    req = opb.CreateQueueRequest(name=name, visibility_timeout_ms=visibility_timeout_ms, max_messages=max_messages)
    if max_attempts is not None:
        req.max_attempts = max_attempts
    return _op("Queues", "Create", req, lambda r: queue(r.queue, r.created), True)


def _body(body: Union[bytes, str, Any]) -> bytes:
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode("utf-8")
    return dumps(body).encode("utf-8")


def send_message(queue_name: str, body: Any, attributes: Optional[Mapping[str, str]]) -> Op[str]:
    req = opb.SendMessageRequest(queue=queue_name, body=_body(body), attributes=dict(attributes or {}))
    return _op("Queues", "Send", req, lambda r: r.id, False)


def receive_messages(
    queue_name: str, max_messages: int, visibility_timeout_ms: int, wait_ms: int
) -> Op[List[QueueMessage]]:
    req = opb.ReceiveMessagesRequest(
        queue=queue_name, max_messages=max_messages, visibility_timeout_ms=visibility_timeout_ms, wait_ms=wait_ms
    )
    # Not idempotent: a lost response leaves messages in flight until their timeout.
    return _op(
        "Queues",
        "Receive",
        req,
        lambda r: [queue_message(m, queue_name) for m in r.messages],
        False,
        min_timeout=wait_ms / 1000.0 + 5.0,
    )


def ack_message(queue_name: str, receipt: Union[str, QueueMessage]) -> Op[None]:
    if isinstance(receipt, QueueMessage):
        queue_name = queue_name or receipt.queue
        receipt = receipt.receipt
    return _op("Queues", "Ack", opb.AckMessageRequest(queue=queue_name, receipt=receipt), _none, True)


def queue_stats(name: str) -> Op[List[Queue]]:
    return _op("Queues", "Stats", opb.QueueStatsRequest(name=name), lambda r: [queue(q) for q in r.queues], True)


# ---------------------------------------------------------------- standing queries

def create_standing_query(
    agent_name: str,
    name: str,
    collection_name: str,
    text: Optional[str],
    vector: Optional[Vector],
    space_name: str,
    filter: str,
    threshold: float,
) -> Op[StandingQuery]:
    if (text is None) == (vector is None):
        raise ValueError("a standing query takes text= or vector= (exactly one)")
    req = opb.CreateStandingQueryRequest(
        agent=agent_name, name=name, collection=collection_name, space=space_name, filter=filter, threshold=threshold
    )
    if text is not None:
        req.text = text
    else:
        req.vector.CopyFrom(vector_pb(vector))  # type: ignore[arg-type]
    return _op("StandingQueries", "Create", req, lambda r: standing_query(r.query), False)


def list_standing_queries(agent_name: str) -> Op[List[StandingQuery]]:
    return _op(
        "StandingQueries",
        "List",
        opb.ListStandingQueriesRequest(agent=agent_name),
        lambda r: [standing_query(q) for q in r.queries],
        True,
    )


def delete_standing_query(query_id: str) -> Op[StandingQuery]:
    return _op(
        "StandingQueries",
        "Delete",
        opb.DeleteStandingQueryRequest(id=query_id),
        lambda r: standing_query(r.query),
        False,
    )


# ---------------------------------------------------------------- workflows

def apply_workflow(yaml: str) -> Op[Workflow]:
    return _op(
        "Workflows", "Apply", opb.ApplyWorkflowRequest(yaml=yaml), lambda r: workflow(r.workflow, r.changed), True
    )


def list_workflows() -> Op[List[Workflow]]:
    return _op(
        "Workflows", "List", opb.ListWorkflowsRequest(), lambda r: [workflow(w) for w in r.workflows], True
    )


def get_workflow(name: str, version: int) -> Op[Workflow]:
    return _op(
        "Workflows", "Get", opb.GetWorkflowRequest(name=name, version=version), lambda r: workflow(r.workflow), True
    )


def delete_workflow(name: str) -> Op[None]:
    return _op("Workflows", "Delete", opb.DeleteWorkflowRequest(name=name), _none, False)


def run_workflow(
    name: str, inputs: Optional[Mapping[str, Any]], version: int, agent_name: str, priority: Optional[int]
) -> Op[WorkflowRun]:
    req = opb.RunWorkflowRequest(
        name=name, version=version, inputs_json=dumps(inputs) if inputs else "", agent=agent_name
    )
    if priority is not None:
        req.priority = priority
    return _op("Workflows", "Run", req, lambda r: workflow_run(r.run), False)


def get_run(run_id: str) -> Op[WorkflowRun]:
    return _op("Workflows", "GetRun", opb.GetWorkflowRunRequest(id=run_id), lambda r: workflow_run(r.run), True)


def list_runs(workflow_name: str, state: str, limit: int) -> Op[List[WorkflowRun]]:
    req = opb.ListWorkflowRunsRequest(workflow=workflow_name, state=state, limit=limit)
    return _op("Workflows", "ListRuns", req, lambda r: [workflow_run(x) for x in r.runs], True)


def cancel_run(run_id: str) -> Op[WorkflowRun]:
    return _op(
        "Workflows", "Cancel", opb.CancelWorkflowRunRequest(id=run_id), lambda r: workflow_run(r.run), True
    )
