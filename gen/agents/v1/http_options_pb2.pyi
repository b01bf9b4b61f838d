from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor
SUCCESS_STATUS_FIELD_NUMBER: _ClassVar[int]
success_status: _descriptor.FieldDescriptor
UNION_DISCRIMINATOR_FIELD_NUMBER: _ClassVar[int]
union_discriminator: _descriptor.FieldDescriptor
RETIRED_FIELDS_FIELD_NUMBER: _ClassVar[int]
retired_fields: _descriptor.FieldDescriptor
JSON_ARRAY_FIELD_NUMBER: _ClassVar[int]
json_array: _descriptor.FieldDescriptor
RULES_FIELD_NUMBER: _ClassVar[int]
rules: _descriptor.FieldDescriptor
OMIT_EMPTY_FIELD_NUMBER: _ClassVar[int]
omit_empty: _descriptor.FieldDescriptor
EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
event_types: _descriptor.FieldDescriptor
EXAMPLES_FIELD_NUMBER: _ClassVar[int]
examples: _descriptor.FieldDescriptor
MAX_BODY_BYTES_FIELD_NUMBER: _ClassVar[int]
max_body_bytes: _descriptor.FieldDescriptor
RESPONSE_HEADERS_FIELD_NUMBER: _ClassVar[int]
response_headers: _descriptor.FieldDescriptor

class RetiredField(_message.Message):
    __slots__ = ("name", "replacement", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    replacement: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., replacement: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class FieldRules(_message.Message):
    __slots__ = ("required", "minimum", "maximum", "min_length", "pattern", "format", "example", "default_value", "element_fields", "resource")
    class ElementFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FieldRules
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FieldRules, _Mapping]] = ...) -> None: ...
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_FIELD_NUMBER: _ClassVar[int]
    MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PATTERN_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_FIELDS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    required: bool
    minimum: float
    maximum: float
    min_length: int
    pattern: str
    format: str
    example: str
    default_value: str
    element_fields: _containers.MessageMap[str, FieldRules]
    resource: str
    def __init__(self, required: _Optional[bool] = ..., minimum: _Optional[float] = ..., maximum: _Optional[float] = ..., min_length: _Optional[int] = ..., pattern: _Optional[str] = ..., format: _Optional[str] = ..., example: _Optional[str] = ..., default_value: _Optional[str] = ..., element_fields: _Optional[_Mapping[str, FieldRules]] = ..., resource: _Optional[str] = ...) -> None: ...

class StreamEventType(_message.Message):
    __slots__ = ("name", "description", "fields", "terminal")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    TERMINAL_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    terminal: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., terminal: _Optional[bool] = ...) -> None: ...

class HttpExample(_message.Message):
    __slots__ = ("summary", "description", "body")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    summary: str
    description: str
    body: str
    def __init__(self, summary: _Optional[str] = ..., description: _Optional[str] = ..., body: _Optional[str] = ...) -> None: ...
