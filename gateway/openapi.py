"""OpenAPI 3.1 for the transcoded routes, from the same rules and descriptors the codec uses.

Schemas mirror codec.py exactly: proto field names, `null` for unset fields with presence,
lowercase enum strings, union messages as `oneOf` with a discriminator, json_array messages as
arrays, well-known types as plain JSON. Proto comments become summaries and descriptions, and
`(agents.v1.rules)` the constraints, defaults and examples. A response carries every field, so a
response schema requires them all; a request requires what the rules say, so a message used both
ways gets a second, `…Input` schema. Streams are `text/event-stream`, one schema per event type.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from google.protobuf import descriptor

from gateway import codec, descriptors
from gateway.routes import MethodInfo
from services.common.contract import USER_CONTENT_KINDS

FD = descriptor.FieldDescriptor
Schema = dict[str, Any]
_PREFIX = "#/components/schemas/"
_CONTENT_BLOCK = "agents.v1.ContentBlock"
_NUMBER_TYPES = ("integer", "number")

_SCALARS: dict[int, Schema] = {
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
_WELL_KNOWN: dict[str, Schema] = {
    codec.TIMESTAMP: {"type": "string", "format": "date-time"},
    codec.STRUCT: {"type": "object"},
    codec.VALUE: {},
    codec.LIST_VALUE: {"type": "array"},
}

PROBLEM_SCHEMA: Schema = {
    "type": "object",
    "description": "RFC 7807 problem details; `type` links to the error's page under /docs/errors.",
    "additionalProperties": False,
    "required": ["type", "title", "status", "detail", "instance", "log_id"],
    "properties": {
        "type": {"type": "string", "format": "uri", "description": "The error's docs page."},
        "title": {"type": "string", "description": "A short summary of the error class."},
        "status": {
            "type": "integer",
            "minimum": 400,
            "maximum": 599,
            "description": "The HTTP status.",
        },
        "detail": {"type": "string", "description": "What went wrong with this request."},
        "instance": {"type": "string", "description": "The request path."},
        "log_id": {"type": "string", "description": "The request id (x-request-id), for support."},
    },
}
_REQUEST_ID_HEADER = {
    "x-request-id": {
        "description": "The request's id: the caller's `x-request-id` when it sent a valid one, "
        "else a new one; problems carry it as `log_id`.",
        "schema": {"type": "string"},
    }
}
# What each header an RPC declares in `response_headers` means, and the values it takes.
_RESPONSE_HEADERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Parley-Start-Outcome": (
        "`accepted` when this request started the run, `duplicate` when it replayed an earlier "
        "one (its client_op_id or run_id): the answer is that run.",
        ("accepted", "duplicate"),
    ),
}
_DESCRIPTION = (
    "Parley's Agent Conversations API: create a conversation, start runs on it, and read its "
    "messages and runs.\n\n"
    "Every call needs `Authorization: Bearer <JWT>` (reads: scope `agent_conversations:read`, "
    "writes: `agent_conversations:write`); another user's objects answer 404. JSON field names "
    "are the proto field names; an unset field is `null`. Errors are RFC 7807 "
    "`application/problem+json`; each `type` is a page of the error catalogue under "
    "[/docs/errors](/docs/errors)."
)


def _json(text: str) -> Any:
    return orjson.loads(text)


def _nullable(schema: Schema) -> Schema:
    if not schema:
        return schema  # any JSON value, null included
    if "$ref" in schema or "oneOf" in schema or "allOf" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    t = out["type"]
    out["type"] = [*t, "null"] if isinstance(t, list) else [t, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def _constrained(schema: Schema, rules: Any) -> Schema:
    """`schema` (one value, before nullability) with the constraints of a FieldRules."""
    out = dict(schema)
    if out.get("type") in _NUMBER_TYPES:
        for bound in ("minimum", "maximum"):
            if rules.HasField(bound):
                value = getattr(rules, bound)
                out[bound] = int(value) if out["type"] == "integer" else value
    if out.get("type") == "string":
        if rules.HasField("min_length"):
            out["minLength"] = rules.min_length
        if rules.pattern:
            out["pattern"] = rules.pattern
        if rules.format:
            out["format"] = rules.format
    return out


def _annotated(schema: Schema, rules: Any) -> Schema:
    """Default and example (they describe the field, nullable or not)."""
    if rules.default_value:
        schema = {**schema, "default": _json(rules.default_value)}
    if rules.example:
        schema = {**schema, "examples": [_json(rules.example)]}
    return schema


def _message_fields(desc: descriptor.Descriptor) -> list[descriptor.FieldDescriptor]:
    """The fields a message's JSON object has (a union's come from its members)."""
    if descriptors.union_discriminator(desc):
        members = codec.union_oneof(desc).fields
        return [f for member in members for f in descriptors.message_type(member).fields]
    return list(desc.fields)


def _reachable(roots: list[descriptor.Descriptor]) -> frozenset[str]:
    """Full names of the messages whose JSON appears under `roots` (roots included)."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        desc = stack.pop()
        if desc.full_name in seen or desc.full_name in _WELL_KNOWN:
            continue
        seen.add(desc.full_name)
        fields = list(desc.fields)
        if descriptors.union_discriminator(desc):
            fields += _message_fields(desc)
        stack.extend(descriptors.message_type(f) for f in fields if f.type == FD.TYPE_MESSAGE)
    return frozenset(seen)


class _Schemas:
    """Component schemas, built once per (message, direction) and referenced by name."""

    def __init__(self, comments: dict[str, str], outputs: frozenset[str]) -> None:
        self.comments = comments
        self.outputs = outputs  # messages that appear in responses
        self.components: dict[str, Any] = {"Problem": PROBLEM_SCHEMA}
        self._names: dict[tuple[str, bool], str] = {}

    def name_of(self, desc: descriptor.Descriptor, inbound: bool = False) -> str:
        full = desc.full_name
        name = full.split(".", 2)[-1] if full.startswith("agents.v1.") else full
        return f"{name}Input" if inbound and full in self.outputs else name

    def describe(self, schema: Schema, full_name: str) -> Schema:
        text = self.comments.get(full_name)
        return {**schema, "description": text} if text else schema

    def ref(self, desc: descriptor.Descriptor, inbound: bool) -> Schema:
        if desc.full_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[desc.full_name])
        key = (desc.full_name, inbound)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = self.name_of(desc, inbound)
            self.components[name] = {}  # placeholder: messages may be recursive
            self.components[name] = self.describe(self.message(desc, inbound), desc.full_name)
        return {"$ref": _PREFIX + name}

    def message(
        self, desc: descriptor.Descriptor, inbound: bool, exclude: frozenset[str] = frozenset()
    ) -> Schema:
        if descriptors.union_discriminator(desc):
            return self._union(desc, inbound)
        if descriptors.json_array(desc):
            field = codec.array_field(desc)
            return {"type": "array", "items": self.item(field, inbound)}
        fields = [f for f in desc.fields if f.name not in exclude]
        return self._object(fields, inbound)

    def _object(
        self, fields: list[descriptor.FieldDescriptor], inbound: bool, head: Schema | None = None
    ) -> Schema:
        properties = {**(head or {}), **{f.name: self.field(f, inbound) for f in fields}}
        if inbound:
            required = [*(head or {}), *(f.name for f in fields if _rules(f).required)]
        else:  # every field is sent, but an omit_empty one while it is empty
            omitted = {f.name for f in fields if descriptors.omit_empty(f)}
            required = [name for name in properties if name not in omitted]
        schema: Schema = {"type": "object", "additionalProperties": False}
        if required:
            schema["required"] = required
        schema["properties"] = properties
        return schema

    def _union(self, desc: descriptor.Descriptor, inbound: bool) -> Schema:
        key = descriptors.union_discriminator(desc)
        mapping: dict[str, str] = {}
        variants = codec.union_oneof(desc).fields
        if inbound and desc.full_name == _CONTENT_BLOCK:  # a caller sends only these kinds
            variants = [f for f in variants if f.name in USER_CONTENT_KINDS]
        for f in variants:
            variant = f"{self.name_of(desc, inbound)}.{f.name}"
            tag = {key: {"type": "string", "const": f.name, "description": f"Always `{f.name}`."}}
            member = self._object(list(descriptors.message_type(f).fields), inbound, head=tag)
            self.components[variant] = self.describe(member, f.full_name)
            mapping[f.name] = _PREFIX + variant
        return {
            "oneOf": [{"$ref": r} for r in mapping.values()],
            "discriminator": {"propertyName": key, "mapping": mapping},
        }

    def element(self, field: descriptor.FieldDescriptor, inbound: bool) -> Schema:
        """The schema of one value of `field` (ignoring repetition and presence)."""
        if field.type == FD.TYPE_MESSAGE:
            return self.ref(descriptors.message_type(field), inbound)
        if field.type == FD.TYPE_ENUM:
            names = codec.enum_names(descriptors.enum_type(field))[1]
            return {"type": "string", "enum": list(names)}
        schema = dict(_SCALARS[field.type])
        owner = field.containing_type
        if field.name == "type" and owner is not None and descriptors.event_types(owner):
            schema["enum"] = [e.name for e in descriptors.event_types(owner)]
        return _constrained(schema, _rules(field))

    def item(self, field: descriptor.FieldDescriptor, inbound: bool) -> Schema:
        """One element of a repeated field, with the rules this field adds to its fields."""
        schema = self.element(field, inbound)
        extra = _rules(field).element_fields
        if not extra or field.type != FD.TYPE_MESSAGE:
            return schema
        sub = descriptors.message_type(field).fields_by_name
        properties = {
            name: self.describe(
                _annotated(_constrained(self.element(sub[name], inbound), rules), rules),
                sub[name].full_name,
            )
            for name, rules in sorted(extra.items())
        }
        narrowing: Schema = {"properties": properties}
        required = [name for name, rules in sorted(extra.items()) if rules.required]
        if inbound and required:
            narrowing["required"] = required
        return {"allOf": [schema, narrowing]}

    def field(self, field: descriptor.FieldDescriptor, inbound: bool) -> Schema:
        if codec.is_map(field):
            value = descriptors.message_type(field).fields_by_name["value"]
            schema: Schema = {
                "type": "object",
                "additionalProperties": self.element(value, inbound),
            }
        elif field.is_repeated:
            schema = {"type": "array", "items": self.item(field, inbound)}
        else:
            schema = self.element(field, inbound)
        # The codec reads null as unset, for any field; a required field may not be unset.
        # It writes null only for an unset field with presence.
        if not _rules(field).required if inbound else field.has_presence and not field.is_repeated:
            schema = _nullable(schema)
        return self.describe(_annotated(schema, _rules(field)), field.full_name)

    def body(self, desc: descriptor.Descriptor, exclude: frozenset[str]) -> Schema:
        """The body of a `body: "*"` rule: the request message minus its path-bound fields."""
        if not exclude:
            return self.ref(desc, inbound=True)
        name = f"{self.name_of(desc)}Body"
        if name not in self.components:
            self.components[name] = self.describe(self.message(desc, True, exclude), desc.full_name)
        return {"$ref": _PREFIX + name}

    def events(self, desc: descriptor.Descriptor) -> Schema:
        """A stream of `desc` as Server-Sent Events: one schema per event type, each event's
        `data` the JSON of one message of that type, plus the `error` event that ends a stream
        that failed after it started (gateway/sse.py)."""
        base = self.ref(desc, inbound=False)
        types = descriptors.event_types(desc)
        specific = {f for t in types for f in t.fields}
        variants: list[Schema] = []
        for event in types:
            properties: Schema = {
                "type": {"const": event.name, "description": f"Always `{event.name}`."}
            }
            for name in sorted(specific):
                field = desc.fields_by_name[name]
                if name in event.fields:
                    properties[name] = self.describe(self.element(field, False), field.full_name)
                else:
                    properties[name] = {"type": "null", "description": "Not set on this event."}
            component = f"{self.name_of(desc)}.{event.name}"
            self.components[component] = {
                "description": event.description,
                "allOf": [base, {"properties": properties}],
            }
            variants.append(_sse_event(event.name, event.description, component, with_id=True))
        if not variants:
            variants.append(_sse_event(None, "One streamed message.", self.name_of(desc), True))
        variants.append(
            _sse_event(
                "error", "The stream failed after it started: the problem, then the end.", "Problem"
            )
        )
        return {"oneOf": variants}


def _rules(field: descriptor.FieldDescriptor) -> Any:
    return descriptors.field_rules(field)


def _sse_event(
    event: str | None, description: str, component: str, with_id: bool = False
) -> Schema:
    properties: Schema = {}
    required = ["data"]
    if event is not None:
        properties["event"] = {"const": event}
        required.append("event")
    if with_id:
        properties["id"] = {"type": "string", "pattern": "^[0-9]+$", "description": "Its seq."}
        required.append("id")
    properties["data"] = {
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": {"$ref": _PREFIX + component},
    }
    return {
        "type": "object",
        "description": description,
        "required": required,
        "properties": properties,
    }


def _query_parameters(
    schemas: _Schemas,
    desc: descriptor.Descriptor,
    prefix: str,
    bound: frozenset[str],
    depth: int = 0,
) -> list[Schema]:
    out: list[Schema] = []
    for f in desc.fields:
        name = prefix + f.name
        if name in bound or codec.is_map(f):
            continue
        sub = descriptors.message_type(f) if f.type == FD.TYPE_MESSAGE else None
        if sub is not None and sub.full_name != codec.TIMESTAMP:
            if f.is_repeated or depth >= 3 or sub.full_name in _WELL_KNOWN:
                continue
            if descriptors.union_discriminator(sub) or descriptors.json_array(sub):
                continue
            out.extend(_query_parameters(schemas, sub, name + ".", bound, depth + 1))
            continue
        element = _annotated(schemas.element(f, True), _rules(f))
        schema = {"type": "array", "items": element} if f.is_repeated else element
        param: Schema = {"name": name, "in": "query", "required": _rules(f).required}
        text = schemas.comments.get(f.full_name)
        if text:
            param["description"] = text
        param["schema"] = schema
        if f.is_repeated:
            param.update(style="form", explode=True)
        out.append(param)
    return out


def _examples(method: descriptor.MethodDescriptor) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for example in descriptors.examples(method):
        key = re.sub(r"[^A-Za-z0-9]+", "-", example.summary).strip("-").lower()
        out[key] = {
            "summary": example.summary,
            "description": example.description,
            "value": _json(example.body),
        }
    return out


def _summary(text: str) -> str:
    return text.split(". ")[0].split(": ")[0].rstrip(".")


def build(
    methods: list[MethodInfo],
    comments: dict[str, str] | None = None,
    *,
    title: str = "Parley Agent Conversations API",
    version: str = "v1",
) -> Schema:
    comments = comments or {}
    outputs = _reachable([m.method.output_type for m in methods])
    schemas = _Schemas(comments, outputs)
    paths: dict[str, dict[str, Any]] = {}
    seen_ids: set[str] = set()
    operations: list[tuple[MethodInfo, Schema]] = []
    for info in methods:
        method, binding = info.method, info.binding
        input_desc = method.input_type
        path_fields = binding.template.field_paths
        parameters: list[Schema] = []
        for fp in path_fields:
            chain = codec.resolve_param(input_desc, fp)
            param: Schema = {"name": fp, "in": "path", "required": True}
            if chain and comments.get(chain[-1].full_name):
                param["description"] = comments[chain[-1].full_name]
            param["schema"] = schemas.element(chain[-1], True) if chain else {"type": "string"}
            parameters.append(param)
        operation: Schema = {
            "operationId": _unique(method.name, seen_ids),
            "tags": [method.containing_service.name],
        }
        text = comments.get(method.full_name)
        if text:
            operation["summary"] = _summary(text)
            operation["description"] = text
        if binding.body == "*":
            tops = frozenset(fp.split(".")[0] for fp in path_fields)
            media: Schema = {"schema": schemas.body(input_desc, tops)}
            examples = _examples(method)
            if examples:
                media["examples"] = examples
            operation["requestBody"] = {"required": True, "content": {"application/json": media}}
        else:
            bound = frozenset([*path_fields, *([binding.body] if binding.body else [])])
            parameters.extend(_query_parameters(schemas, input_desc, "", bound))
            if binding.body:
                body_field = input_desc.fields_by_name[binding.body]
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schemas.field(body_field, True)}},
                }
        if parameters:
            operation["parameters"] = parameters
        operation["responses"] = _responses(schemas, info)
        path_item = paths.setdefault(binding.template.openapi_path(), {})
        path_item[binding.http_method.lower()] = operation
        operations.append((info, operation))
    _link(operations)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": _DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": schemas.components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
        "security": [{"bearerAuth": []}],
    }


def _responses(schemas: _Schemas, info: MethodInfo) -> Schema:
    method, binding = info.method, info.binding
    if method.server_streaming:  # gateway/sse.py
        ok: Schema = {
            "description": "Server-Sent Events: each event is named after its `type`, its `id` is "
            "its seq (send it back as Last-Event-ID to resume), its `data` the event's JSON. "
            "The stream ends after a terminal event.",
            "headers": _REQUEST_ID_HEADER,
            "content": {"text/event-stream": {"schema": schemas.events(method.output_type)}},
        }
    else:
        if binding.response_body:
            field = method.output_type.fields_by_name[binding.response_body]
            reply = schemas.field(field, False)
        else:
            reply = schemas.ref(method.output_type, inbound=False)
        headers = dict(_REQUEST_ID_HEADER)
        for name in descriptors.response_headers(method):
            description, values = _RESPONSE_HEADERS.get(name, ("Set by the server.", ()))
            schema: Schema = {"type": "string"}
            if values:
                schema["enum"] = list(values)
            headers[name] = {"description": description, "schema": schema}
        ok = {
            "description": "Success.",
            "headers": headers,
            "content": {"application/json": {"schema": reply}},
        }
    responses: Schema = {str(info.success_status): ok}
    if info.success_status != 200:
        responses["200"] = {
            **ok,
            "description": "Success, when the server answers 200 instead (e.g. an idempotent "
            "replay).",
        }
    responses["default"] = {
        "description": "An error (RFC 7807).",
        "headers": _REQUEST_ID_HEADER,
        "content": {"application/problem+json": {"schema": {"$ref": _PREFIX + "Problem"}}},
    }
    return responses


def _link(operations: list[tuple[MethodInfo, Schema]]) -> None:
    """OpenAPI links from each answer that carries a resource's id to the operations taking it,
    by `(agents.v1.rules).resource` on their path fields."""
    takers: dict[str, list[tuple[str, str]]] = {}  # resource -> (operationId, path field)
    for info, operation in operations:
        for name in info.binding.template.field_paths:
            chain = codec.resolve_param(info.method.input_type, name)
            resource = _rules(chain[-1]).resource if chain else ""
            if resource:
                takers.setdefault(resource, []).append((operation["operationId"], name))
    for info, operation in operations:
        reply = info.method.output_type
        if info.method.server_streaming or info.binding.response_body:
            continue
        carried = {reply.full_name: "id"} if "id" in reply.fields_by_name else {}
        for field in reply.fields:
            if _rules(field).resource:
                carried.setdefault(_rules(field).resource, field.name)
        links: Schema = {}
        for resource, field_name in carried.items():
            for target, param in takers.get(resource, []):
                links[target] = {
                    "operationId": target,
                    "parameters": {param: f"$response.body#/{field_name}"},
                }
        if links:
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    response["links"] = links


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 1
    while candidate in seen:
        n += 1
        candidate = f"{name}{n}"
    seen.add(candidate)
    return candidate
