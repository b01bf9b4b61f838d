from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
SUCCESS_STATUS_FIELD_NUMBER: _ClassVar[int]
success_status: _descriptor.FieldDescriptor
MAX_BODY_BYTES_FIELD_NUMBER: _ClassVar[int]
max_body_bytes: _descriptor.FieldDescriptor
OMIT_EMPTY_FIELD_NUMBER: _ClassVar[int]
omit_empty: _descriptor.FieldDescriptor
UNION_DISCRIMINATOR_FIELD_NUMBER: _ClassVar[int]
union_discriminator: _descriptor.FieldDescriptor
RETIRED_FIELDS_FIELD_NUMBER: _ClassVar[int]
retired_fields: _descriptor.FieldDescriptor
JSON_ARRAY_FIELD_NUMBER: _ClassVar[int]
json_array: _descriptor.FieldDescriptor

class RetiredField(_message.Message):
    __slots__ = ("name", "replacement", "reason")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    name: str
    replacement: str
    reason: str
    def __init__(self, name: _Optional[str] = ..., replacement: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...
