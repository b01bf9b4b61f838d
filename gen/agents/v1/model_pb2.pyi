from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Model(_message.Message):
    __slots__ = ("id", "providers", "price", "execution_clusters")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDERS_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    id: str
    providers: _containers.RepeatedScalarFieldContainer[str]
    price: ModelPrice
    execution_clusters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., providers: _Optional[_Iterable[str]] = ..., price: _Optional[_Union[ModelPrice, _Mapping]] = ..., execution_clusters: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelPrice(_message.Message):
    __slots__ = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok", "as_of")
    INPUT_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    CACHE_WRITE_PER_MTOK_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float
    cache_write_per_mtok: float
    as_of: str
    def __init__(self, input_per_mtok: _Optional[float] = ..., output_per_mtok: _Optional[float] = ..., cache_read_per_mtok: _Optional[float] = ..., cache_write_per_mtok: _Optional[float] = ..., as_of: _Optional[str] = ...) -> None: ...
