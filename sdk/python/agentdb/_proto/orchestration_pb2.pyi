from . import agentdb_pb2 as _agentdb_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentSkill(_message.Message):
    __slots__ = ("id", "name", "description", "tags")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    description: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentCard(_message.Message):
    __slots__ = ("name", "description", "version", "skills", "capabilities", "endpoint")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SKILLS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    version: str
    skills: _containers.RepeatedCompositeFieldContainer[AgentSkill]
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    endpoint: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., version: _Optional[str] = ..., skills: _Optional[_Iterable[_Union[AgentSkill, _Mapping]]] = ..., capabilities: _Optional[_Iterable[str]] = ..., endpoint: _Optional[str] = ...) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("card", "state", "healthy", "registered_unix_ms", "updated_unix_ms", "last_heartbeat_unix_ms", "heartbeat_timeout_ms", "memory_collection")
    CARD_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    card: AgentCard
    state: str
    healthy: bool
    registered_unix_ms: int
    updated_unix_ms: int
    last_heartbeat_unix_ms: int
    heartbeat_timeout_ms: int
    memory_collection: str
    def __init__(self, card: _Optional[_Union[AgentCard, _Mapping]] = ..., state: _Optional[str] = ..., healthy: _Optional[bool] = ..., registered_unix_ms: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ..., last_heartbeat_unix_ms: _Optional[int] = ..., heartbeat_timeout_ms: _Optional[int] = ..., memory_collection: _Optional[str] = ...) -> None: ...

class RegisterAgentRequest(_message.Message):
    __slots__ = ("card", "heartbeat_timeout_ms", "memory_spaces", "no_memory")
    CARD_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_SPACES_FIELD_NUMBER: _ClassVar[int]
    NO_MEMORY_FIELD_NUMBER: _ClassVar[int]
    card: AgentCard
    heartbeat_timeout_ms: int
    memory_spaces: _containers.RepeatedCompositeFieldContainer[_agentdb_pb2.SpaceSpec]
    no_memory: bool
    def __init__(self, card: _Optional[_Union[AgentCard, _Mapping]] = ..., heartbeat_timeout_ms: _Optional[int] = ..., memory_spaces: _Optional[_Iterable[_Union[_agentdb_pb2.SpaceSpec, _Mapping]]] = ..., no_memory: _Optional[bool] = ...) -> None: ...

class RegisterAgentResponse(_message.Message):
    __slots__ = ("agent", "created")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    agent: AgentInfo
    created: bool
    def __init__(self, agent: _Optional[_Union[AgentInfo, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentInfo]
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentInfo, _Mapping]]] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetAgentResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: AgentInfo
    def __init__(self, agent: _Optional[_Union[AgentInfo, _Mapping]] = ...) -> None: ...

class SetAgentStateRequest(_message.Message):
    __slots__ = ("name", "state", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SetAgentStateResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: AgentInfo
    def __init__(self, agent: _Optional[_Union[AgentInfo, _Mapping]] = ...) -> None: ...

class AgentHeartbeatRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class AgentHeartbeatResponse(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: AgentInfo
    def __init__(self, agent: _Optional[_Union[AgentInfo, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("offset", "topic", "kind", "subject", "data_json", "unix_ms")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    offset: int
    topic: str
    kind: str
    subject: str
    data_json: str
    unix_ms: int
    def __init__(self, offset: _Optional[int] = ..., topic: _Optional[str] = ..., kind: _Optional[str] = ..., subject: _Optional[str] = ..., data_json: _Optional[str] = ..., unix_ms: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("topics", "from_offset")
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    FROM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedScalarFieldContainer[str]
    from_offset: int
    def __init__(self, topics: _Optional[_Iterable[str]] = ..., from_offset: _Optional[int] = ...) -> None: ...

class Lagged(_message.Message):
    __slots__ = ("requested_offset", "first_available_offset")
    REQUESTED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    FIRST_AVAILABLE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    requested_offset: int
    first_available_offset: int
    def __init__(self, requested_offset: _Optional[int] = ..., first_available_offset: _Optional[int] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "lagged")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    LAGGED_FIELD_NUMBER: _ClassVar[int]
    event: Event
    lagged: Lagged
    def __init__(self, event: _Optional[_Union[Event, _Mapping]] = ..., lagged: _Optional[_Union[Lagged, _Mapping]] = ...) -> None: ...

class PublishEvent(_message.Message):
    __slots__ = ("topic", "kind", "subject", "data_json")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    topic: str
    kind: str
    subject: str
    data_json: str
    def __init__(self, topic: _Optional[str] = ..., kind: _Optional[str] = ..., subject: _Optional[str] = ..., data_json: _Optional[str] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[PublishEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[PublishEvent, _Mapping]]] = ...) -> None: ...

class PublishResponse(_message.Message):
    __slots__ = ("offsets",)
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    offsets: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, offsets: _Optional[_Iterable[int]] = ...) -> None: ...

class TopicsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TopicInfo(_message.Message):
    __slots__ = ("name", "retained", "first_offset", "last_offset", "client_publishable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RETAINED_FIELD_NUMBER: _ClassVar[int]
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PUBLISHABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    retained: int
    first_offset: int
    last_offset: int
    client_publishable: bool
    def __init__(self, name: _Optional[str] = ..., retained: _Optional[int] = ..., first_offset: _Optional[int] = ..., last_offset: _Optional[int] = ..., client_publishable: _Optional[bool] = ...) -> None: ...

class TopicsResponse(_message.Message):
    __slots__ = ("topics", "next_offset", "ring_capacity")
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    RING_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedCompositeFieldContainer[TopicInfo]
    next_offset: int
    ring_capacity: int
    def __init__(self, topics: _Optional[_Iterable[_Union[TopicInfo, _Mapping]]] = ..., next_offset: _Optional[int] = ..., ring_capacity: _Optional[int] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("name", "max_attempts", "visibility_timeout_ms", "max_messages", "messages", "ready", "in_flight", "dead_letter_queue", "oldest_sent_unix_ms", "created_unix_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DEAD_LETTER_QUEUE_FIELD_NUMBER: _ClassVar[int]
    OLDEST_SENT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
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
    def __init__(self, name: _Optional[str] = ..., max_attempts: _Optional[int] = ..., visibility_timeout_ms: _Optional[int] = ..., max_messages: _Optional[int] = ..., messages: _Optional[int] = ..., ready: _Optional[int] = ..., in_flight: _Optional[int] = ..., dead_letter_queue: _Optional[str] = ..., oldest_sent_unix_ms: _Optional[int] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class CreateQueueRequest(_message.Message):
    __slots__ = ("name", "max_attempts", "visibility_timeout_ms", "max_messages")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    max_attempts: int
    visibility_timeout_ms: int
    max_messages: int
    def __init__(self, name: _Optional[str] = ..., max_attempts: _Optional[int] = ..., visibility_timeout_ms: _Optional[int] = ..., max_messages: _Optional[int] = ...) -> None: ...

class CreateQueueResponse(_message.Message):
    __slots__ = ("queue", "created")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    queue: QueueStats
    created: bool
    def __init__(self, queue: _Optional[_Union[QueueStats, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class SendMessageRequest(_message.Message):
    __slots__ = ("queue", "body", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    queue: str
    body: bytes
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, queue: _Optional[str] = ..., body: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ReceiveMessagesRequest(_message.Message):
    __slots__ = ("queue", "max_messages", "visibility_timeout_ms", "wait_ms")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGES_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    queue: str
    max_messages: int
    visibility_timeout_ms: int
    wait_ms: int
    def __init__(self, queue: _Optional[str] = ..., max_messages: _Optional[int] = ..., visibility_timeout_ms: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class QueueMessage(_message.Message):
    __slots__ = ("id", "body", "attributes", "attempt", "receipt", "sent_unix_ms", "invisible_until_unix_ms")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    SENT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    INVISIBLE_UNTIL_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    body: bytes
    attributes: _containers.ScalarMap[str, str]
    attempt: int
    receipt: str
    sent_unix_ms: int
    invisible_until_unix_ms: int
    def __init__(self, id: _Optional[str] = ..., body: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, str]] = ..., attempt: _Optional[int] = ..., receipt: _Optional[str] = ..., sent_unix_ms: _Optional[int] = ..., invisible_until_unix_ms: _Optional[int] = ...) -> None: ...

class ReceiveMessagesResponse(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[QueueMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[QueueMessage, _Mapping]]] = ...) -> None: ...

class AckMessageRequest(_message.Message):
    __slots__ = ("queue", "receipt")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_FIELD_NUMBER: _ClassVar[int]
    queue: str
    receipt: str
    def __init__(self, queue: _Optional[str] = ..., receipt: _Optional[str] = ...) -> None: ...

class AckMessageResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class QueueStatsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class QueueStatsResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueStats]
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueStats, _Mapping]]] = ...) -> None: ...

class StandingQuery(_message.Message):
    __slots__ = ("id", "agent", "name", "collection", "space", "metric", "text", "filter", "threshold", "dim", "created_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
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
    def __init__(self, id: _Optional[str] = ..., agent: _Optional[str] = ..., name: _Optional[str] = ..., collection: _Optional[str] = ..., space: _Optional[str] = ..., metric: _Optional[str] = ..., text: _Optional[str] = ..., filter: _Optional[str] = ..., threshold: _Optional[float] = ..., dim: _Optional[int] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class CreateStandingQueryRequest(_message.Message):
    __slots__ = ("agent", "name", "collection", "space", "text", "vector", "filter", "threshold")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SPACE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    agent: str
    name: str
    collection: str
    space: str
    text: str
    vector: _agentdb_pb2.Vector
    filter: str
    threshold: float
    def __init__(self, agent: _Optional[str] = ..., name: _Optional[str] = ..., collection: _Optional[str] = ..., space: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[_Union[_agentdb_pb2.Vector, _Mapping]] = ..., filter: _Optional[str] = ..., threshold: _Optional[float] = ...) -> None: ...

class CreateStandingQueryResponse(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: StandingQuery
    def __init__(self, query: _Optional[_Union[StandingQuery, _Mapping]] = ...) -> None: ...

class ListStandingQueriesRequest(_message.Message):
    __slots__ = ("agent",)
    AGENT_FIELD_NUMBER: _ClassVar[int]
    agent: str
    def __init__(self, agent: _Optional[str] = ...) -> None: ...

class ListStandingQueriesResponse(_message.Message):
    __slots__ = ("queries", "dropped_evaluations")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_EVALUATIONS_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedCompositeFieldContainer[StandingQuery]
    dropped_evaluations: int
    def __init__(self, queries: _Optional[_Iterable[_Union[StandingQuery, _Mapping]]] = ..., dropped_evaluations: _Optional[int] = ...) -> None: ...

class DeleteStandingQueryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteStandingQueryResponse(_message.Message):
    __slots__ = ("query",)
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query: StandingQuery
    def __init__(self, query: _Optional[_Union[StandingQuery, _Mapping]] = ...) -> None: ...

class WorkflowInfo(_message.Message):
    __slots__ = ("name", "version", "description", "yaml", "sha256", "applied_unix_ms", "applied_by", "triggers", "steps", "versions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    YAML_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    APPLIED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_BY_FIELD_NUMBER: _ClassVar[int]
    TRIGGERS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    description: str
    yaml: str
    sha256: str
    applied_unix_ms: int
    applied_by: str
    triggers: _containers.RepeatedScalarFieldContainer[str]
    steps: _containers.RepeatedScalarFieldContainer[str]
    versions: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., description: _Optional[str] = ..., yaml: _Optional[str] = ..., sha256: _Optional[str] = ..., applied_unix_ms: _Optional[int] = ..., applied_by: _Optional[str] = ..., triggers: _Optional[_Iterable[str]] = ..., steps: _Optional[_Iterable[str]] = ..., versions: _Optional[int] = ...) -> None: ...

class WorkflowStepRun(_message.Message):
    __slots__ = ("id", "kind", "state", "attempts", "error", "attempt_errors", "output_json", "started_unix_ms", "finished_unix_ms", "next_attempt_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_ERRORS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    state: str
    attempts: int
    error: str
    attempt_errors: _containers.RepeatedScalarFieldContainer[str]
    output_json: str
    started_unix_ms: int
    finished_unix_ms: int
    next_attempt_unix_ms: int
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ..., attempt_errors: _Optional[_Iterable[str]] = ..., output_json: _Optional[str] = ..., started_unix_ms: _Optional[int] = ..., finished_unix_ms: _Optional[int] = ..., next_attempt_unix_ms: _Optional[int] = ...) -> None: ...

class WorkflowRun(_message.Message):
    __slots__ = ("id", "workflow", "version", "state", "agent", "priority", "inputs_json", "trigger_json", "principal", "steps", "error", "created_unix_ms", "started_unix_ms", "finished_unix_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_JSON_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow: str
    version: int
    state: str
    agent: str
    priority: int
    inputs_json: str
    trigger_json: str
    principal: str
    steps: _containers.RepeatedCompositeFieldContainer[WorkflowStepRun]
    error: str
    created_unix_ms: int
    started_unix_ms: int
    finished_unix_ms: int
    def __init__(self, id: _Optional[str] = ..., workflow: _Optional[str] = ..., version: _Optional[int] = ..., state: _Optional[str] = ..., agent: _Optional[str] = ..., priority: _Optional[int] = ..., inputs_json: _Optional[str] = ..., trigger_json: _Optional[str] = ..., principal: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[WorkflowStepRun, _Mapping]]] = ..., error: _Optional[str] = ..., created_unix_ms: _Optional[int] = ..., started_unix_ms: _Optional[int] = ..., finished_unix_ms: _Optional[int] = ...) -> None: ...

class ApplyWorkflowRequest(_message.Message):
    __slots__ = ("yaml",)
    YAML_FIELD_NUMBER: _ClassVar[int]
    yaml: str
    def __init__(self, yaml: _Optional[str] = ...) -> None: ...

class ApplyWorkflowResponse(_message.Message):
    __slots__ = ("workflow", "changed")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    workflow: WorkflowInfo
    changed: bool
    def __init__(self, workflow: _Optional[_Union[WorkflowInfo, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkflowsResponse(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[WorkflowInfo]
    def __init__(self, workflows: _Optional[_Iterable[_Union[WorkflowInfo, _Mapping]]] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetWorkflowResponse(_message.Message):
    __slots__ = ("workflow",)
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    workflow: WorkflowInfo
    def __init__(self, workflow: _Optional[_Union[WorkflowInfo, _Mapping]] = ...) -> None: ...

class DeleteWorkflowRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteWorkflowResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RunWorkflowRequest(_message.Message):
    __slots__ = ("name", "version", "inputs_json", "agent", "priority")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    inputs_json: str
    agent: str
    priority: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., inputs_json: _Optional[str] = ..., agent: _Optional[str] = ..., priority: _Optional[int] = ...) -> None: ...

class RunWorkflowResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: WorkflowRun
    def __init__(self, run: _Optional[_Union[WorkflowRun, _Mapping]] = ...) -> None: ...

class GetWorkflowRunRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetWorkflowRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: WorkflowRun
    def __init__(self, run: _Optional[_Union[WorkflowRun, _Mapping]] = ...) -> None: ...

class ListWorkflowRunsRequest(_message.Message):
    __slots__ = ("workflow", "state", "limit")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    state: str
    limit: int
    def __init__(self, workflow: _Optional[str] = ..., state: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListWorkflowRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[WorkflowRun]
    def __init__(self, runs: _Optional[_Iterable[_Union[WorkflowRun, _Mapping]]] = ...) -> None: ...

class CancelWorkflowRunRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelWorkflowRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: WorkflowRun
    def __init__(self, run: _Optional[_Union[WorkflowRun, _Mapping]] = ...) -> None: ...
