from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]
    METRIC_INNER_PRODUCT: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]

class RetrievalMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RETRIEVAL_DEFAULT: _ClassVar[RetrievalMode]
    RETRIEVAL_DENSE: _ClassVar[RetrievalMode]
    RETRIEVAL_KEYWORD: _ClassVar[RetrievalMode]
    RETRIEVAL_HYBRID: _ClassVar[RetrievalMode]

class Fusion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_UNSPECIFIED: _ClassVar[Fusion]
    FUSION_WEIGHTED: _ClassVar[Fusion]
    FUSION_CALIBRATED: _ClassVar[Fusion]
    FUSION_RRF: _ClassVar[Fusion]
METRIC_UNSPECIFIED: Metric
METRIC_COSINE: Metric
METRIC_INNER_PRODUCT: Metric
METRIC_L2: Metric
RETRIEVAL_DEFAULT: RetrievalMode
RETRIEVAL_DENSE: RetrievalMode
RETRIEVAL_KEYWORD: RetrievalMode
RETRIEVAL_HYBRID: RetrievalMode
FUSION_UNSPECIFIED: Fusion
FUSION_WEIGHTED: Fusion
FUSION_CALIBRATED: Fusion
FUSION_RRF: Fusion

class SpaceSpec(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "encoder")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: Metric
    index: str
    encoder: str
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., index: _Optional[str] = ..., encoder: _Optional[str] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "spaces", "multimodal", "keyword", "shards", "replicas")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPACES_FIELD_NUMBER: _ClassVar[int]
    MULTIMODAL_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    name: str
    spaces: _containers.RepeatedCompositeFieldContainer[SpaceSpec]
    multimodal: bool
    keyword: KeywordOptions
    shards: int
    replicas: int
    def __init__(self, name: _Optional[str] = ..., spaces: _Optional[_Iterable[_Union[SpaceSpec, _Mapping]]] = ..., multimodal: _Optional[bool] = ..., keyword: _Optional[_Union[KeywordOptions, _Mapping]] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ...) -> None: ...

class KeywordOptions(_message.Message):
    __slots__ = ("disabled", "language", "searchable")
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SEARCHABLE_FIELD_NUMBER: _ClassVar[int]
    disabled: bool
    language: str
    searchable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, disabled: _Optional[bool] = ..., language: _Optional[str] = ..., searchable: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: CollectionInfo
    def __init__(self, info: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DescribeCollectionResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: CollectionInfo
    def __init__(self, info: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SpaceInfo(_message.Message):
    __slots__ = ("spec", "index_kinds")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    INDEX_KINDS_FIELD_NUMBER: _ClassVar[int]
    spec: SpaceSpec
    index_kinds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, spec: _Optional[_Union[SpaceSpec, _Mapping]] = ..., index_kinds: _Optional[_Iterable[str]] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "spaces", "count", "unindexed", "segments", "deleted_rows", "disk_bytes", "last_lsn", "shards", "replicas", "keyword_language", "keyword_searchable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPACES_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    UNINDEXED_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    DELETED_ROWS_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_LSN_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_SEARCHABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    spaces: _containers.RepeatedCompositeFieldContainer[SpaceInfo]
    count: int
    unindexed: int
    segments: int
    deleted_rows: int
    disk_bytes: int
    last_lsn: int
    shards: int
    replicas: int
    keyword_language: str
    keyword_searchable: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., spaces: _Optional[_Iterable[_Union[SpaceInfo, _Mapping]]] = ..., count: _Optional[int] = ..., unindexed: _Optional[int] = ..., segments: _Optional[int] = ..., deleted_rows: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., last_lsn: _Optional[int] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ..., keyword_language: _Optional[str] = ..., keyword_searchable: _Optional[_Iterable[str]] = ...) -> None: ...

class FlushRequest(_message.Message):
    __slots__ = ("collection", "optimize")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    optimize: bool
    def __init__(self, collection: _Optional[str] = ..., optimize: _Optional[bool] = ...) -> None: ...

class FlushResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: CollectionInfo
    def __init__(self, info: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values", "encoder", "packed")
    VALUES_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    encoder: str
    packed: bytes
    def __init__(self, values: _Optional[_Iterable[float]] = ..., encoder: _Optional[str] = ..., packed: _Optional[bytes] = ...) -> None: ...

class Item(_message.Message):
    __slots__ = ("id", "vectors", "payload_json")
    class VectorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Vector
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Vector, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    vectors: _containers.MessageMap[str, Vector]
    payload_json: str
    def __init__(self, id: _Optional[str] = ..., vectors: _Optional[_Mapping[str, Vector]] = ..., payload_json: _Optional[str] = ...) -> None: ...

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "items")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, collection: _Optional[str] = ..., items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("ids", "consistency_token")
    IDS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    consistency_token: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., consistency_token: _Optional[str] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vectors", "consistency_token", "allow_stale")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALLOW_STALE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    with_vectors: bool
    consistency_token: str
    allow_stale: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., with_vectors: _Optional[bool] = ..., consistency_token: _Optional[str] = ..., allow_stale: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: str
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., filter: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "consistency_token")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    consistency_token: str
    def __init__(self, deleted: _Optional[int] = ..., consistency_token: _Optional[str] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter", "consistency_token", "allow_stale")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALLOW_STALE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: str
    consistency_token: str
    allow_stale: bool
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[str] = ..., consistency_token: _Optional[str] = ..., allow_stale: _Optional[bool] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("nprobe", "exact", "ef")
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    nprobe: int
    exact: bool
    ef: int
    def __init__(self, nprobe: _Optional[int] = ..., exact: _Optional[bool] = ..., ef: _Optional[int] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "space", "vector", "top_k", "filter", "with_payload", "with_vectors", "params", "text", "image", "explain", "fusion", "weights", "audio", "video", "mode", "keyword_query", "keyword_fields", "consistency_token", "allow_stale")
    class WeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class KeywordFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_QUERY_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELDS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALLOW_STALE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    space: str
    vector: Vector
    top_k: int
    filter: str
    with_payload: bool
    with_vectors: bool
    params: SearchParams
    text: str
    image: bytes
    explain: bool
    fusion: Fusion
    weights: _containers.ScalarMap[str, float]
    audio: bytes
    video: bytes
    mode: RetrievalMode
    keyword_query: str
    keyword_fields: _containers.ScalarMap[str, float]
    consistency_token: str
    allow_stale: bool
    def __init__(self, collection: _Optional[str] = ..., space: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., top_k: _Optional[int] = ..., filter: _Optional[str] = ..., with_payload: _Optional[bool] = ..., with_vectors: _Optional[bool] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., text: _Optional[str] = ..., image: _Optional[bytes] = ..., explain: _Optional[bool] = ..., fusion: _Optional[_Union[Fusion, str]] = ..., weights: _Optional[_Mapping[str, float]] = ..., audio: _Optional[bytes] = ..., video: _Optional[bytes] = ..., mode: _Optional[_Union[RetrievalMode, str]] = ..., keyword_query: _Optional[str] = ..., keyword_fields: _Optional[_Mapping[str, float]] = ..., consistency_token: _Optional[str] = ..., allow_stale: _Optional[bool] = ...) -> None: ...

class ListScore(_message.Message):
    __slots__ = ("list", "rank", "score", "matched", "snippet", "contribution", "coverage")
    LIST_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    SNIPPET_FIELD_NUMBER: _ClassVar[int]
    CONTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    list: str
    rank: int
    score: float
    matched: _containers.RepeatedScalarFieldContainer[str]
    snippet: str
    contribution: float
    coverage: float
    def __init__(self, list: _Optional[str] = ..., rank: _Optional[int] = ..., score: _Optional[float] = ..., matched: _Optional[_Iterable[str]] = ..., snippet: _Optional[str] = ..., contribution: _Optional[float] = ..., coverage: _Optional[float] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "payload_json", "vector", "source", "modality", "part", "explain")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    payload_json: str
    vector: Vector
    source: str
    modality: str
    part: str
    explain: _containers.RepeatedCompositeFieldContainer[ListScore]
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., payload_json: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., source: _Optional[str] = ..., modality: _Optional[str] = ..., part: _Optional[str] = ..., explain: _Optional[_Iterable[_Union[ListScore, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ...) -> None: ...

class SearchBatchRequest(_message.Message):
    __slots__ = ("collection", "space", "vectors", "top_k", "filter", "with_payload", "with_vectors", "params")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    space: str
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    top_k: int
    filter: str
    with_payload: bool
    with_vectors: bool
    params: SearchParams
    def __init__(self, collection: _Optional[str] = ..., space: _Optional[str] = ..., vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., top_k: _Optional[int] = ..., filter: _Optional[str] = ..., with_payload: _Optional[bool] = ..., with_vectors: _Optional[bool] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ...) -> None: ...

class SearchResults(_message.Message):
    __slots__ = ("hits",)
    HITS_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ...) -> None: ...

class SearchBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SearchResults]
    def __init__(self, results: _Optional[_Iterable[_Union[SearchResults, _Mapping]]] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "filter", "after", "limit", "with_payload", "with_vectors", "consistency_token", "allow_stale")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALLOW_STALE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: str
    after: str
    limit: int
    with_payload: bool
    with_vectors: bool
    consistency_token: str
    allow_stale: bool
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., with_payload: _Optional[bool] = ..., with_vectors: _Optional[bool] = ..., consistency_token: _Optional[str] = ..., allow_stale: _Optional[bool] = ...) -> None: ...

class ScrollResponse(_message.Message):
    __slots__ = ("items", "next_after")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Item]
    next_after: str
    def __init__(self, items: _Optional[_Iterable[_Union[Item, _Mapping]]] = ..., next_after: _Optional[str] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("collection", "space", "texts")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    space: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., space: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("vectors",)
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    def __init__(self, vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("collection", "source", "content")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    source: str
    content: bytes
    def __init__(self, collection: _Optional[str] = ..., source: _Optional[str] = ..., content: _Optional[bytes] = ...) -> None: ...

class IngestResult(_message.Message):
    __slots__ = ("source", "status", "error", "items", "media_type", "content_sha256")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    source: str
    status: str
    error: str
    items: int
    media_type: str
    content_sha256: str
    def __init__(self, source: _Optional[str] = ..., status: _Optional[str] = ..., error: _Optional[str] = ..., items: _Optional[int] = ..., media_type: _Optional[str] = ..., content_sha256: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "modality", "dim", "sha256", "source", "encoder", "loaded")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    modality: str
    dim: int
    sha256: str
    source: str
    encoder: str
    loaded: bool
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., modality: _Optional[str] = ..., dim: _Optional[int] = ..., sha256: _Optional[str] = ..., source: _Optional[str] = ..., encoder: _Optional[str] = ..., loaded: _Optional[bool] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("version", "uptime_seconds", "rss_bytes", "data_dir", "data_bytes", "disk_free_bytes", "disk_total_bytes", "collections", "queries_per_second", "upserts_per_second", "growth_bytes_per_day", "days_until_disk_full", "device", "damaged")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    DATA_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_FREE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    QUERIES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    UPSERTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    GROWTH_BYTES_PER_DAY_FIELD_NUMBER: _ClassVar[int]
    DAYS_UNTIL_DISK_FULL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    version: str
    uptime_seconds: float
    rss_bytes: int
    data_dir: str
    data_bytes: int
    disk_free_bytes: int
    disk_total_bytes: int
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    queries_per_second: float
    upserts_per_second: float
    growth_bytes_per_day: float
    days_until_disk_full: float
    device: str
    damaged: _containers.RepeatedCompositeFieldContainer[DamagedCollection]
    def __init__(self, version: _Optional[str] = ..., uptime_seconds: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., data_dir: _Optional[str] = ..., data_bytes: _Optional[int] = ..., disk_free_bytes: _Optional[int] = ..., disk_total_bytes: _Optional[int] = ..., collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ..., queries_per_second: _Optional[float] = ..., upserts_per_second: _Optional[float] = ..., growth_bytes_per_day: _Optional[float] = ..., days_until_disk_full: _Optional[float] = ..., device: _Optional[str] = ..., damaged: _Optional[_Iterable[_Union[DamagedCollection, _Mapping]]] = ...) -> None: ...

class DamagedCollection(_message.Message):
    __slots__ = ("name", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SetLogLevelRequest(_message.Message):
    __slots__ = ("filter",)
    FILTER_FIELD_NUMBER: _ClassVar[int]
    filter: str
    def __init__(self, filter: _Optional[str] = ...) -> None: ...

class SetLogLevelResponse(_message.Message):
    __slots__ = ("previous",)
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    previous: str
    def __init__(self, previous: _Optional[str] = ...) -> None: ...

class AlertInfo(_message.Message):
    __slots__ = ("id", "signal", "state", "started_unix_ms", "resolved_unix_ms", "value", "baseline", "z")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    id: int
    signal: str
    state: str
    started_unix_ms: int
    resolved_unix_ms: int
    value: float
    baseline: float
    z: float
    def __init__(self, id: _Optional[int] = ..., signal: _Optional[str] = ..., state: _Optional[str] = ..., started_unix_ms: _Optional[int] = ..., resolved_unix_ms: _Optional[int] = ..., value: _Optional[float] = ..., baseline: _Optional[float] = ..., z: _Optional[float] = ...) -> None: ...

class AlertsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AlertsResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[AlertInfo]
    def __init__(self, alerts: _Optional[_Iterable[_Union[AlertInfo, _Mapping]]] = ...) -> None: ...

class InjectFaultRequest(_message.Message):
    __slots__ = ("search_delay_ms",)
    SEARCH_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    search_delay_ms: int
    def __init__(self, search_delay_ms: _Optional[int] = ...) -> None: ...

class InjectFaultResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ApiKeyInfo(_message.Message):
    __slots__ = ("id", "name", "role", "collections", "created_unix", "revoked", "row_filter")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    ROW_FILTER_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    role: str
    collections: _containers.RepeatedScalarFieldContainer[str]
    created_unix: int
    revoked: bool
    row_filter: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[str] = ..., collections: _Optional[_Iterable[str]] = ..., created_unix: _Optional[int] = ..., revoked: _Optional[bool] = ..., row_filter: _Optional[str] = ...) -> None: ...

class CreateKeyRequest(_message.Message):
    __slots__ = ("name", "role", "collections", "row_filter")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    ROW_FILTER_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    collections: _containers.RepeatedScalarFieldContainer[str]
    row_filter: str
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., collections: _Optional[_Iterable[str]] = ..., row_filter: _Optional[str] = ...) -> None: ...

class CreateKeyResponse(_message.Message):
    __slots__ = ("key", "secret")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    key: ApiKeyInfo
    secret: str
    def __init__(self, key: _Optional[_Union[ApiKeyInfo, _Mapping]] = ..., secret: _Optional[str] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKeyInfo]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKeyInfo, _Mapping]]] = ...) -> None: ...

class RevokeKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RevokeKeyResponse(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: ApiKeyInfo
    def __init__(self, key: _Optional[_Union[ApiKeyInfo, _Mapping]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collections: _Optional[_Iterable[str]] = ...) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("auth_enabled", "id", "name", "role", "collections", "row_filter", "can_admin", "permissions")
    AUTH_ENABLED_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    ROW_FILTER_FIELD_NUMBER: _ClassVar[int]
    CAN_ADMIN_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    auth_enabled: bool
    id: str
    name: str
    role: str
    collections: _containers.RepeatedScalarFieldContainer[str]
    row_filter: str
    can_admin: bool
    permissions: _containers.RepeatedCompositeFieldContainer[CollectionPermissions]
    def __init__(self, auth_enabled: _Optional[bool] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[str] = ..., collections: _Optional[_Iterable[str]] = ..., row_filter: _Optional[str] = ..., can_admin: _Optional[bool] = ..., permissions: _Optional[_Iterable[_Union[CollectionPermissions, _Mapping]]] = ...) -> None: ...

class CollectionPermissions(_message.Message):
    __slots__ = ("collection", "read", "write", "admin")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    read: bool
    write: bool
    admin: bool
    def __init__(self, collection: _Optional[str] = ..., read: _Optional[bool] = ..., write: _Optional[bool] = ..., admin: _Optional[bool] = ...) -> None: ...

class ClusterDrainRequest(_message.Message):
    __slots__ = ("node", "undo")
    NODE_FIELD_NUMBER: _ClassVar[int]
    UNDO_FIELD_NUMBER: _ClassVar[int]
    node: str
    undo: bool
    def __init__(self, node: _Optional[str] = ..., undo: _Optional[bool] = ...) -> None: ...

class ClusterDrainResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterStatusResponse(_message.Message):
    __slots__ = ("enabled", "node_id", "leader", "connected", "nodes", "collections")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    node_id: str
    leader: str
    connected: bool
    nodes: _containers.RepeatedCompositeFieldContainer[ClusterNode]
    collections: _containers.RepeatedCompositeFieldContainer[ClusterCollection]
    def __init__(self, enabled: _Optional[bool] = ..., node_id: _Optional[str] = ..., leader: _Optional[str] = ..., connected: _Optional[bool] = ..., nodes: _Optional[_Iterable[_Union[ClusterNode, _Mapping]]] = ..., collections: _Optional[_Iterable[_Union[ClusterCollection, _Mapping]]] = ...) -> None: ...

class ClusterNode(_message.Message):
    __slots__ = ("id", "addr", "alive", "replicas", "draining")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDR_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    id: str
    addr: str
    alive: bool
    replicas: int
    draining: bool
    def __init__(self, id: _Optional[str] = ..., addr: _Optional[str] = ..., alive: _Optional[bool] = ..., replicas: _Optional[int] = ..., draining: _Optional[bool] = ...) -> None: ...

class ClusterCollection(_message.Message):
    __slots__ = ("name", "shards", "replicas", "stream_replicas", "shard_status")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    STREAM_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    SHARD_STATUS_FIELD_NUMBER: _ClassVar[int]
    name: str
    shards: int
    replicas: int
    stream_replicas: int
    shard_status: _containers.RepeatedCompositeFieldContainer[ClusterShard]
    def __init__(self, name: _Optional[str] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ..., stream_replicas: _Optional[int] = ..., shard_status: _Optional[_Iterable[_Union[ClusterShard, _Mapping]]] = ...) -> None: ...

class ClusterShard(_message.Message):
    __slots__ = ("shard", "last_seq", "replicas", "first_seq", "snapshot_seq")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEQ_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_SEQ_FIELD_NUMBER: _ClassVar[int]
    shard: int
    last_seq: int
    replicas: _containers.RepeatedCompositeFieldContainer[ClusterReplica]
    first_seq: int
    snapshot_seq: int
    def __init__(self, shard: _Optional[int] = ..., last_seq: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[ClusterReplica, _Mapping]]] = ..., first_seq: _Optional[int] = ..., snapshot_seq: _Optional[int] = ...) -> None: ...

class ClusterReplica(_message.Message):
    __slots__ = ("node", "applied", "alive")
    NODE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    node: str
    applied: int
    alive: bool
    def __init__(self, node: _Optional[str] = ..., applied: _Optional[int] = ..., alive: _Optional[bool] = ...) -> None: ...
