"""schema.normalize: the spec's conversions, and properties that hold for any input schema."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from services.tooling.schema import OUTPUT_KEYWORDS, normalize


def walk(schema: Any) -> list[dict[str, Any]]:
    """Every subschema of an output schema."""
    if not isinstance(schema, dict):
        return []
    found = [schema]
    for sub in schema.get("properties", {}).values():
        found += walk(sub)
    for sub in schema.get("anyOf", []):
        found += walk(sub)
    found += walk(schema.get("items"))
    return found


def assert_accepted(out: dict[str, Any]) -> None:
    Draft202012Validator.check_schema(out)
    for sub in walk(out):
        assert set(sub) <= OUTPUT_KEYWORDS, set(sub) - OUTPUT_KEYWORDS
        if sub.get("type") == "object" or "properties" in sub:
            assert sub["additionalProperties"] is False
    text = json.dumps(out)
    for banned in ('"oneOf"', '"$ref"', '"format"', '"pattern"', '"$defs"'):
        assert banned not in text


def test_one_of_becomes_any_of() -> None:
    out = normalize(
        {
            "type": "object",
            "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "integer"}]}},
        }
    )
    assert out["properties"]["v"] == {"anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_non_recursive_ref_is_inlined_and_defs_dropped() -> None:
    out = normalize(
        {
            "type": "object",
            "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}}},
            "properties": {
                "a": {"$ref": "#/$defs/Point"},
                "b": {"$ref": "#/$defs/Point", "description": "B"},
            },
        }
    )
    point = {
        "type": "object",
        "properties": {"x": {"type": "number"}},
        "additionalProperties": False,
    }
    assert out == {
        "type": "object",
        "properties": {"a": point, "b": {**point, "description": "B"}},
        "additionalProperties": False,
    }


def test_recursive_ref_becomes_empty_schema() -> None:
    out = normalize(
        {
            "type": "object",
            "definitions": {
                "N": {"type": "object", "properties": {"next": {"$ref": "#/definitions/N"}}}
            },
            "properties": {"head": {"$ref": "#/definitions/N"}, "self": {"$ref": "#"}},
        }
    )
    assert out["properties"]["head"]["properties"]["next"] == {}
    assert out["properties"]["self"] == {}
    assert_accepted(out)


def test_unresolvable_ref_becomes_empty_schema() -> None:
    out = normalize(
        {
            "type": "object",
            "properties": {"a": {"$ref": "https://x.test/s.json"}, "b": {"$ref": "#/nope"}},
        }
    )
    assert out["properties"] == {"a": {}, "b": {}}


def test_validators_are_lifted_into_the_description() -> None:
    out = normalize(
        {
            "type": "object",
            "properties": {
                "when": {
                    "type": "string",
                    "format": "date-time",
                    "description": "Start",
                    "pattern": "^a",
                },
                "n": {
                    "type": "integer",
                    "exclusiveMinimum": 0,
                    "multipleOf": 5,
                    "minimum": 1,
                    "maximum": 9,
                },
            },
        }
    )
    assert out["properties"]["when"] == {
        "type": "string",
        "description": "Start (format: date-time; pattern: ^a)",
    }
    assert out["properties"]["n"] == {
        "type": "integer",
        "description": "exclusiveMinimum: 0; multipleOf: 5; minimum: 1; maximum: 9",
    }


def test_additional_properties_forced_false_everywhere() -> None:
    out = normalize(
        {
            "type": "object",
            "additionalProperties": True,
            "properties": {"m": {"type": "object", "additionalProperties": {"type": "string"}}},
        }
    )
    assert out["additionalProperties"] is False
    assert out["properties"]["m"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    } or out["properties"]["m"] == {"type": "object", "additionalProperties": False}


def test_root_is_always_an_object() -> None:
    assert normalize({}) == {"type": "object", "properties": {}, "additionalProperties": False}
    assert normalize("nonsense") == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }


def test_tuple_items_and_all_of() -> None:
    out = normalize(
        {
            "type": "object",
            "properties": {
                "pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]}
            },
            "allOf": [{"properties": {"x": {"type": "string"}}, "required": ["x"]}],
        }
    )
    assert out["properties"]["pair"]["items"] == {
        "anyOf": [{"type": "string"}, {"type": "integer"}]
    }
    assert out["properties"]["x"] == {"type": "string"} and out["required"] == ["x"]
    assert_accepted(out)


# --- properties -----------------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c", "Node", "Point"])
_leaf = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["string", "integer", "number", "boolean", "null"])},
        optional={
            "format": st.sampled_from(["date-time", "email", "uri"]),
            "pattern": st.text(max_size=5),
            "minimum": st.integers(-5, 5),
            "exclusiveMaximum": st.integers(-5, 5),
            "multipleOf": st.integers(1, 5),
            "minLength": st.integers(0, 5),
            "description": st.text(max_size=10),
            "enum": st.lists(st.integers(), min_size=1, max_size=3),
            "default": st.integers(),
        },
    ),
    st.builds(lambda n: {"$ref": f"#/$defs/{n}"}, _names),
    st.builds(lambda n: {"$ref": f"#/definitions/{n}"}, _names),
    st.just({"$ref": "#"}),
    st.booleans(),
    st.just({}),
)


def _extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(
            lambda props, req, extra: {
                "type": "object",
                "properties": props,
                "required": req,
                **extra,
            },
            st.dictionaries(_names, children, max_size=3),
            st.lists(_names, max_size=3),
            st.fixed_dictionaries(
                {}, optional={"additionalProperties": st.one_of(st.booleans(), children)}
            ),
        ),
        st.builds(lambda xs: {"oneOf": xs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda xs: {"anyOf": xs}, st.lists(children, max_size=3)),
        st.builds(lambda xs: {"allOf": xs}, st.lists(children, max_size=2)),
        st.builds(lambda x: {"type": "array", "items": x}, children),
        st.builds(lambda xs: {"type": "array", "items": xs}, st.lists(children, max_size=2)),
        st.builds(lambda x: {"not": x}, children),
    )


_schema = st.recursive(_leaf, _extend, max_leaves=12)
_document = st.builds(
    lambda root, defs, legacy: {
        **(root if isinstance(root, dict) else {}),
        "$defs": defs,
        "definitions": legacy,
    },
    _schema,
    st.dictionaries(_names, _schema, max_size=3),
    st.dictionaries(_names, _schema, max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(_document)
def test_any_schema_becomes_an_accepted_one(document: dict[str, Any]) -> None:
    out = normalize(document)
    assert_accepted(out)
    assert out.get("type") == "object" or "anyOf" in out


@settings(max_examples=100, deadline=None)
@given(_document)
def test_normalize_is_idempotent(document: dict[str, Any]) -> None:
    once = normalize(document)
    assert normalize(once) == once
