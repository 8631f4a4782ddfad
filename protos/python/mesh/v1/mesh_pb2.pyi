from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATE_UNSPECIFIED: _ClassVar[NodeState]
    NODE_STATE_UP: _ClassVar[NodeState]
    NODE_STATE_SUSPECT: _ClassVar[NodeState]
    NODE_STATE_DOWN: _ClassVar[NodeState]
    NODE_STATE_REFUSED: _ClassVar[NodeState]
    NODE_STATE_DRAINING: _ClassVar[NodeState]
    NODE_STATE_UNTRUSTED: _ClassVar[NodeState]
    NODE_STATE_FOREIGN: _ClassVar[NodeState]
    NODE_STATE_REVOKED: _ClassVar[NodeState]
NODE_STATE_UNSPECIFIED: NodeState
NODE_STATE_UP: NodeState
NODE_STATE_SUSPECT: NodeState
NODE_STATE_DOWN: NodeState
NODE_STATE_REFUSED: NodeState
NODE_STATE_DRAINING: NodeState
NODE_STATE_UNTRUSTED: NodeState
NODE_STATE_FOREIGN: NodeState
NODE_STATE_REVOKED: NodeState

class JoinRequest(_message.Message):
    __slots__ = ("invite_id", "secret", "csr_pem")
    INVITE_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    invite_id: str
    secret: str
    csr_pem: bytes
    def __init__(self, invite_id: _Optional[str] = ..., secret: _Optional[str] = ..., csr_pem: _Optional[bytes] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_pem", "policy", "issuer_node_id", "issuer_mesh_port")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    ISSUER_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUER_MESH_PORT_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    ca_pem: bytes
    policy: SignedPolicy
    issuer_node_id: str
    issuer_mesh_port: int
    def __init__(self, certificate_pem: _Optional[bytes] = ..., ca_pem: _Optional[bytes] = ..., policy: _Optional[_Union[SignedPolicy, _Mapping]] = ..., issuer_node_id: _Optional[str] = ..., issuer_mesh_port: _Optional[int] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate_pem",)
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    def __init__(self, certificate_pem: _Optional[bytes] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SignedPolicy(_message.Message):
    __slots__ = ("version", "signed")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SIGNED_FIELD_NUMBER: _ClassVar[int]
    version: int
    signed: bytes
    def __init__(self, version: _Optional[int] = ..., signed: _Optional[bytes] = ...) -> None: ...

class OfferPolicyResponse(_message.Message):
    __slots__ = ("accepted", "version")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    version: int
    def __init__(self, accepted: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Accelerator(_message.Message):
    __slots__ = ("kind", "name", "memory_bytes")
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    kind: str
    name: str
    memory_bytes: int
    def __init__(self, kind: _Optional[str] = ..., name: _Optional[str] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class Hardware(_message.Message):
    __slots__ = ("os", "arch", "cpu_count", "memory_bytes", "accelerators")
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    ACCELERATORS_FIELD_NUMBER: _ClassVar[int]
    os: str
    arch: str
    cpu_count: int
    memory_bytes: int
    accelerators: _containers.RepeatedCompositeFieldContainer[Accelerator]
    def __init__(self, os: _Optional[str] = ..., arch: _Optional[str] = ..., cpu_count: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., accelerators: _Optional[_Iterable[_Union[Accelerator, _Mapping]]] = ...) -> None: ...

class Throughput(_message.Message):
    __slots__ = ("unit", "value", "samples")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    unit: str
    value: float
    samples: int
    def __init__(self, unit: _Optional[str] = ..., value: _Optional[float] = ..., samples: _Optional[int] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "is_default", "source", "devices", "throughput", "engine", "task", "languages")
    NAME_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    name: str
    is_default: bool
    source: str
    devices: _containers.RepeatedScalarFieldContainer[str]
    throughput: Throughput
    engine: str
    task: str
    languages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., is_default: _Optional[bool] = ..., source: _Optional[str] = ..., devices: _Optional[_Iterable[str]] = ..., throughput: _Optional[_Union[Throughput, _Mapping]] = ..., engine: _Optional[str] = ..., task: _Optional[str] = ..., languages: _Optional[_Iterable[str]] = ...) -> None: ...

class ServiceInfo(_message.Message):
    __slots__ = ("name", "grpc_service", "slots", "max_queue", "models")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRPC_SERVICE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    grpc_service: str
    slots: int
    max_queue: int
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, name: _Optional[str] = ..., grpc_service: _Optional[str] = ..., slots: _Optional[int] = ..., max_queue: _Optional[int] = ..., models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("node_id", "version", "api_version", "hardware", "services", "metrics_port", "draining", "mesh_id", "client_port")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    METRICS_PORT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    MESH_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_PORT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    version: str
    api_version: str
    hardware: Hardware
    services: _containers.RepeatedCompositeFieldContainer[ServiceInfo]
    metrics_port: int
    draining: bool
    mesh_id: str
    client_port: int
    def __init__(self, node_id: _Optional[str] = ..., version: _Optional[str] = ..., api_version: _Optional[str] = ..., hardware: _Optional[_Union[Hardware, _Mapping]] = ..., services: _Optional[_Iterable[_Union[ServiceInfo, _Mapping]]] = ..., metrics_port: _Optional[int] = ..., draining: _Optional[bool] = ..., mesh_id: _Optional[str] = ..., client_port: _Optional[int] = ...) -> None: ...

class WatchLoadRequest(_message.Message):
    __slots__ = ("heartbeat_ms",)
    HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    heartbeat_ms: int
    def __init__(self, heartbeat_ms: _Optional[int] = ...) -> None: ...

class ModelLoad(_message.Message):
    __slots__ = ("model", "in_flight", "queued", "throughput")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    model: str
    in_flight: int
    queued: int
    throughput: Throughput
    def __init__(self, model: _Optional[str] = ..., in_flight: _Optional[int] = ..., queued: _Optional[int] = ..., throughput: _Optional[_Union[Throughput, _Mapping]] = ...) -> None: ...

class ServiceLoad(_message.Message):
    __slots__ = ("service", "slots", "in_flight", "queued", "max_queue", "free_slots", "open_streams", "models")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_FIELD_NUMBER: _ClassVar[int]
    FREE_SLOTS_FIELD_NUMBER: _ClassVar[int]
    OPEN_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    service: str
    slots: int
    in_flight: int
    queued: int
    max_queue: int
    free_slots: int
    open_streams: int
    models: _containers.RepeatedCompositeFieldContainer[ModelLoad]
    def __init__(self, service: _Optional[str] = ..., slots: _Optional[int] = ..., in_flight: _Optional[int] = ..., queued: _Optional[int] = ..., max_queue: _Optional[int] = ..., free_slots: _Optional[int] = ..., open_streams: _Optional[int] = ..., models: _Optional[_Iterable[_Union[ModelLoad, _Mapping]]] = ...) -> None: ...

class LoadReport(_message.Message):
    __slots__ = ("node_id", "sequence", "unix_ms", "services", "draining", "policy_version")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    sequence: int
    unix_ms: int
    services: _containers.RepeatedCompositeFieldContainer[ServiceLoad]
    draining: bool
    policy_version: int
    def __init__(self, node_id: _Optional[str] = ..., sequence: _Optional[int] = ..., unix_ms: _Optional[int] = ..., services: _Optional[_Iterable[_Union[ServiceLoad, _Mapping]]] = ..., draining: _Optional[bool] = ..., policy_version: _Optional[int] = ...) -> None: ...

class NodeEntry(_message.Message):
    __slots__ = ("node_id", "address", "state", "state_reason", "discovered_by", "description", "last_load", "router_in_flight")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    DISCOVERED_BY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LAST_LOAD_FIELD_NUMBER: _ClassVar[int]
    ROUTER_IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    address: str
    state: NodeState
    state_reason: str
    discovered_by: str
    description: DescribeResponse
    last_load: LoadReport
    router_in_flight: int
    def __init__(self, node_id: _Optional[str] = ..., address: _Optional[str] = ..., state: _Optional[_Union[NodeState, str]] = ..., state_reason: _Optional[str] = ..., discovered_by: _Optional[str] = ..., description: _Optional[_Union[DescribeResponse, _Mapping]] = ..., last_load: _Optional[_Union[LoadReport, _Mapping]] = ..., router_in_flight: _Optional[int] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("service", "include_down")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DOWN_FIELD_NUMBER: _ClassVar[int]
    service: str
    include_down: bool
    def __init__(self, service: _Optional[str] = ..., include_down: _Optional[bool] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("router_id", "nodes")
    ROUTER_ID_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    router_id: str
    nodes: _containers.RepeatedCompositeFieldContainer[NodeEntry]
    def __init__(self, router_id: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[NodeEntry, _Mapping]]] = ...) -> None: ...
