"""Tool input schemas, normalised for the model providers (the spec's "Tools" section).

`normalize(schema)` is pure and never rejects: `oneOf` becomes `anyOf`; a non-recursive `$ref`
into the document is inlined, a recursive (or unresolvable) one becomes `{}`; every object schema
gets `additionalProperties: false`; validators the providers do not take (`format`, `pattern`,
range validators such as `minimum` or `multipleOf`, …) are lifted into the schema's
`description` and removed; `$defs`/`definitions` are dropped. The output uses only
`TOOL_SCHEMA_KEYWORDS` (services/common/contract.py) and is always a valid Draft 2020-12
schema. Tools are offered with `strict: false`: each server validates its own arguments at call
time.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from services.common.contract import TOOL_SCHEMA_KEYWORDS

# The accepted subset (kept once well-formed); anything else is lifted or dropped.
OUTPUT_KEYWORDS = TOOL_SCHEMA_KEYWORDS
_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
_COUNT_BOUNDS = ("minLength", "maxLength", "minItems", "maxItems")
# Identifiers and annotations that mean nothing to the model: dropped without a note.
_DROPPED = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$dynamicAnchor",
        "$comment",
        "$defs",
        "definitions",
        "$vocabulary",
        "readOnly",
        "writeOnly",
    }
)
_MAX_NOTE = 200  # characters of one lifted value
_BUDGET = 5_000  # schema nodes one normalisation may produce before further $refs become {}


def normalize(schema: Any) -> dict[str, Any]:
    """The provider-ready form of a tool's `inputSchema` (root always `type: object`)."""
    if not isinstance(schema, dict):
        schema = {}
    state = _State(schema)
    out = state.walk(schema, ("#",))
    if not isinstance(out, dict):
        out = {}
    if "anyOf" not in out and out.get("type", "object") != "object":
        # Tool arguments are always an object; a root of another type says nothing usable.
        out = {k: v for k, v in out.items() if k in ("title", "description")}
    if "type" not in out and "anyOf" not in out:
        out["type"] = "object"
    if _is_object(out):
        out.setdefault("properties", {})
        out["additionalProperties"] = False
    return out


def _is_object(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return (
        kind == "object"
        or (isinstance(kind, list) and "object" in kind)
        or ("properties" in schema)
    )


def _note_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _MAX_NOTE else text[: _MAX_NOTE - 1] + "…"


class _State:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.nodes = 0

    def resolve(self, ref: str) -> Any:
        """The subschema a local JSON-pointer `$ref` names, or None."""
        if ref == "#":
            return self.root
        if not ref.startswith("#/"):
            return None
        node: Any = self.root
        for raw in ref[2:].split("/"):
            part = unquote(raw).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        return node

    def walk(self, schema: Any, stack: tuple[str, ...]) -> Any:
        """One (sub)schema. `stack` holds the $refs being inlined, to spot recursion."""
        self.nodes += 1
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, dict):
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            target = self.resolve(ref)
            if ref in stack or target is None or self.nodes > _BUDGET:
                inlined: Any = {}  # recursive or unresolvable: break it
            else:
                inlined = self.walk(target, (*stack, ref))
            if not siblings:
                return inlined
            own = self.walk(siblings, stack)
            if isinstance(inlined, bool) or not isinstance(own, dict):
                return own if inlined is True else inlined
            merged = {**inlined, **own}
            if _is_object(merged):
                merged["additionalProperties"] = False
            return merged
        return self._walk_dict(schema, stack)

    def _walk_dict(self, schema: dict[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        notes: list[str] = []
        choices: list[Any] = []
        for key, value in schema.items():
            if key in _DROPPED or key == "$ref":
                continue
            if key in ("oneOf", "anyOf"):
                if isinstance(value, list):
                    choices.extend(self.walk(v, stack) for v in value)
            elif key == "allOf":
                if isinstance(value, list):
                    for part in value:
                        self._merge_into(out, self.walk(part, stack))
            elif key == "properties":
                if isinstance(value, dict):
                    props = out.setdefault("properties", {})
                    for name, sub in value.items():
                        if sub is False:
                            continue  # a property that may never appear: leave it out
                        props[str(name)] = self.walk(sub, stack)
            elif key == "required":
                if isinstance(value, list):
                    names = [v for v in value if isinstance(v, str)]
                    out["required"] = list(dict.fromkeys([*out.get("required", []), *names]))
            elif key in ("items", "prefixItems"):
                self._items(out, key, value, stack)
            elif key == "type":
                kind = self._type(value)
                if kind is not None:
                    out["type"] = kind
            elif key in ("title", "description"):
                if isinstance(value, str):
                    out[key] = value
            elif key == "enum":
                if isinstance(value, list) and value:
                    out["enum"] = value
            elif key == "const":
                out["const"] = value
            elif key == "additionalProperties":
                continue  # forced to false on objects below
            elif key in _COUNT_BOUNDS:
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    out[key] = value
                else:
                    notes.append(f"{key}: {_note_value(value)}")
            elif _is_scalar_or_scalars(value):
                notes.append(f"{key}: {_note_value(value)}")  # format, pattern, ranges, default…
            # anything else (not, if/then/else, patternProperties, …) has no equivalent: dropped
        if choices:
            out["anyOf"] = choices
        if notes:
            lifted = "; ".join(notes)
            described = out.get("description", "")
            out["description"] = f"{described} ({lifted})" if described else lifted
        if _is_object(out):
            if "type" not in out and "anyOf" not in out:
                out["type"] = "object"
            out["additionalProperties"] = False
        return out

    def _items(self, out: dict[str, Any], key: str, value: Any, stack: tuple[str, ...]) -> None:
        """`items` is one schema in 2020-12; tuple forms (`items: [...]`, `prefixItems`) become
        an `anyOf` of their members."""
        if isinstance(value, list):
            members = [self.walk(v, stack) for v in value]
            if not members:
                return
            previous = out.get("items")
            if isinstance(previous, dict) and "anyOf" in previous and len(previous) == 1:
                members = [*previous["anyOf"], *members]
            elif previous is not None and previous is not True:
                members = [previous, *members]
            out["items"] = {"anyOf": members}
        elif key == "items" and isinstance(value, dict | bool):
            walked = self.walk(value, stack)
            previous = out.get("items")
            if isinstance(previous, dict) and "anyOf" in previous and len(previous) == 1:
                out["items"] = {"anyOf": [*previous["anyOf"], walked]}
            else:
                out["items"] = walked

    @staticmethod
    def _type(value: Any) -> str | list[str] | None:
        if isinstance(value, str):
            return value if value in _TYPES else None
        if isinstance(value, list):
            kinds = list(dict.fromkeys(v for v in value if isinstance(v, str) and v in _TYPES))
            return kinds or None
        return None

    @staticmethod
    def _merge_into(out: dict[str, Any], part: Any) -> None:
        """allOf: properties and required are unioned; any other keyword, first wins."""
        if not isinstance(part, dict):
            return
        for key, value in part.items():
            if key == "properties":
                out.setdefault("properties", {}).update(
                    {k: v for k, v in value.items() if k not in out.get("properties", {})}
                )
            elif key == "required":
                out["required"] = list(dict.fromkeys([*out.get("required", []), *value]))
            elif key == "description" and "description" in out:
                out["description"] = f"{out['description']} {value}"
            else:
                out.setdefault(key, value)


def _is_scalar_or_scalars(value: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value)
    )
