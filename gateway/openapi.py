"""OpenAPI 3.1 for the transcoded routes, from the same rules and descriptors the codec uses.

Schemas mirror codec.py exactly: proto field names, `null` for unset fields with presence,
lowercase enum strings, union messages as `oneOf` with a discriminator, json_array messages as
arrays, well-known types as plain JSON. Proto comments become descriptions when reflection
kept them.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor

from gateway import codec, descriptors
from gateway.routes import MethodInfo

FD = descriptor.FieldDescriptor
_PREFIX = "#/components/schemas/"

_SCALARS: dict[int, dict[str, Any]] = {
    FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    FD.TYPE_INT64: {"type": "integer", "format": "int64"},
    FD.TYPE_SINT64: {"type": "integer", "format": "int64"},
    FD.TYPE_SFIXED64: {"type": "integer", "format": "int64"},
    FD.TYPE_UINT64: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_FIXED64: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FD.TYPE_UINT32: {"type": "integer", "format": "int32", "minimum": 0},
    FD.TYPE_FIXED32: {"type": "integer", "format": "int32", "minimum": 0},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "contentEncoding": "base64"},
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    codec.TIMESTAMP: {"type": "string", "format": "date-time"},
    codec.STRUCT: {"type": "object"},
    codec.VALUE: {},
    codec.LIST_VALUE: {"type": "array"},
}

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 7807 problem details.",
    "required": ["type", "title", "status", "detail", "instance", "log_id"],
    "properties": {
        "type": {"type": "string", "description": "Docs page of this error class."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The request path."},
        "log_id": {"type": "string", "description": "The request id, for support."},
    },
}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if not schema:
        return schema  # any JSON value, null included
    if "$ref" in schema or "oneOf" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    t = out["type"]
    out["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


class _Schemas:
    def __init__(self, comments: dict[str, str]) -> None:
        self.comments = comments
        self.components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
        self._names: dict[Any, str] = {}

    def name_of(self, desc: descriptor.Descriptor) -> str:
        full = desc.full_name
        return full.split(".", 2)[-1] if full.startswith("agents.v1.") else full

    def _describe(self, schema: dict[str, Any], full_name: str) -> dict[str, Any]:
        text = self.comments.get(full_name)
        if text:
            schema = {**schema, "description": text}
        return schema

    def ref(self, desc: descriptor.Descriptor) -> dict[str, Any]:
        if desc.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[desc.full_name])
        name = self._names.get(desc)
        if name is None:
            name = self._names[desc] = self.name_of(desc)
            self.components[name] = {}  # placeholder: messages may be recursive
            self.components[name] = self._describe(self.message(desc), desc.full_name)
        return {"$ref": _PREFIX + name}

    def message(
        self, desc: descriptor.Descriptor, exclude: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        if descriptors.union_discriminator(desc):
            return self._union(desc)
        if descriptors.json_array(desc):
            return {"type": "array", "items": self.element(codec.array_field(desc))}
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {f.name: self.field(f) for f in desc.fields if f.name not in exclude},
        }

    def _union(self, desc: descriptor.Descriptor) -> dict[str, Any]:
        key = descriptors.union_discriminator(desc)
        mapping: dict[str, str] = {}
        for f in codec.union_oneof(desc).fields:
            variant = f"{self.name_of(desc)}.{f.name}"
            member = self.message(f.message_type)
            properties = {key: {"type": "string", "const": f.name}, **member.get("properties", {})}
            self.components[variant] = self._describe(
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": [key],
                    "properties": properties,
                },
                f.full_name,
            )
            mapping[f.name] = _PREFIX + variant
        return {
            "oneOf": [{"$ref": r} for r in mapping.values()],
            "discriminator": {"propertyName": key, "mapping": mapping},
        }

    def element(self, field: descriptor.FieldDescriptor) -> dict[str, Any]:
        """The schema of one value of `field` (ignoring repetition and presence)."""
        if field.type == FD.TYPE_MESSAGE:
            return self.ref(field.message_type)
        if field.type == FD.TYPE_ENUM:
            names = codec.enum_names(field.enum_type)[1]
            return {"type": "string", "enum": list(names)}
        return dict(_SCALARS[field.type])

    def field(self, field: descriptor.FieldDescriptor) -> dict[str, Any]:
        if codec.is_map(field):
            value = field.message_type.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self.element(value)}
        elif field.is_repeated:
            schema = {"type": "array", "items": self.element(field)}
        else:
            schema = self.element(field)
            if field.has_presence:
                schema = _nullable(schema)
        return self._describe(schema, field.full_name)

    def body(self, desc: descriptor.Descriptor, exclude: frozenset[str]) -> dict[str, Any]:
        """The body of a `body: "*"` rule: the request message minus its path-bound fields."""
        if not exclude:
            return self.ref(desc)
        name = f"{self.name_of(desc)}Body"
        if name not in self.components:
            self.components[name] = self._describe(self.message(desc, exclude), desc.full_name)
        return {"$ref": _PREFIX + name}


def _query_parameters(
    schemas: _Schemas,
    desc: descriptor.Descriptor,
    prefix: str,
    bound: frozenset[str],
    depth: int = 0,
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in desc.fields:
        name = prefix + f.name
        if name in bound or codec.is_map(f):
            continue
        if f.type == FD.TYPE_MESSAGE and f.message_type.full_name != codec.TIMESTAMP:
            if f.is_repeated or depth >= 3 or f.message_type.full_name in _WELL_KNOWN:
                continue
            sub = f.message_type
            if descriptors.union_discriminator(sub) or descriptors.json_array(sub):
                continue
            out.extend(_query_parameters(schemas, f.message_type, name + ".", bound, depth + 1))
            continue
        element = schemas.element(f)
        schema = {"type": "array", "items": element} if f.is_repeated else element
        param: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": schema}
        if f.is_repeated:
            param.update(style="form", explode=True)
        text = schemas.comments.get(f.full_name)
        if text:
            param["description"] = text
        out.append(param)
    return out


def build(
    methods: list[MethodInfo],
    comments: dict[str, str] | None = None,
    *,
    title: str = "Parley Agent Conversations API",
    version: str = "v1",
) -> dict[str, Any]:
    schemas = _Schemas(comments or {})
    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    for info in methods:
        method, binding = info.method, info.binding
        input_desc = method.input_type
        path_fields = binding.template.field_paths
        parameters: list[dict[str, Any]] = []
        for fp in path_fields:
            chain = codec.resolve_param(input_desc, fp)
            param_schema = schemas.element(chain[-1]) if chain else {"type": "string"}
            param: dict[str, Any] = {
                "name": fp,
                "in": "path",
                "required": True,
                "schema": param_schema,
            }
            if chain and schemas.comments.get(chain[-1].full_name):
                param["description"] = schemas.comments[chain[-1].full_name]
            parameters.append(param)
        operation: dict[str, Any] = {
            "operationId": _unique(method.name, seen_ids),
            "tags": [method.containing_service.name],
        }
        text = schemas.comments.get(method.full_name)
        if text:
            operation["summary"] = text.split(". ")[0].rstrip(".")
            operation["description"] = text
        if binding.body == "*":
            tops = frozenset(fp.split(".")[0] for fp in path_fields)
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas.body(input_desc, tops)}},
            }
        else:
            bound = frozenset([*path_fields, *([binding.body] if binding.body else [])])
            parameters.extend(_query_parameters(schemas, input_desc, "", bound))
            if binding.body:
                body_field = input_desc.fields_by_name[binding.body]
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schemas.field(body_field)}},
                }
        if parameters:
            operation["parameters"] = parameters
        if binding.response_body:
            reply = schemas.field(method.output_type.fields_by_name[binding.response_body])
        else:
            reply = schemas.ref(method.output_type)
        ok = {"description": "Success.", "content": {"application/json": {"schema": reply}}}
        if method.server_streaming:  # gateway/sse.py: one `data:` JSON per streamed message
            ok = {
                "description": "Server-Sent Events: each event's `data` is one JSON "
                "message of this schema and its `id` the message's seq.",
                "content": {"text/event-stream": {"schema": {"type": "string"}, "x-item": reply}},
            }
        responses: dict[str, Any] = {str(info.success_status): ok}
        if info.success_status != 200:
            responses["200"] = {
                **ok,
                "description": "Success, when the server answers 200 "
                "instead (e.g. an idempotent replay).",
            }
        responses["default"] = {
            "description": "An error (RFC 7807).",
            "content": {"application/problem+json": {"schema": {"$ref": _PREFIX + "Problem"}}},
        }
        operation["responses"] = responses
        path_item = paths.setdefault(binding.template.openapi_path(), {})
        path_item[binding.http_method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearerAuth": []}],
    }


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 1
    while candidate in seen:
        n += 1
        candidate = f"{name}{n}"
    seen.add(candidate)
    return candidate
