"""Path templates: parsing, matching, and a fuzz test that only ValueError ever escapes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.http_rule import DOUBLE_STAR, STAR, parse, split_path


def test_plain_variable_binds_one_segment() -> None:
    t = parse("/agents/conversations/{id}/messages")
    assert t.segments == ("agents", "conversations", STAR, "messages")
    assert t.field_paths == ("id",)
    assert t.match(["agents", "conversations", "c1", "messages"]) == {"id": "c1"}
    assert t.match(["agents", "conversations", "c1"]) is None
    assert t.match(["agents", "conversations", "", "messages"]) is None
    assert t.match(["agents", "runs", "c1", "messages"]) is None


def test_variable_with_segments_and_double_star() -> None:
    t = parse("/v1/{name=shelves/*/books/*}")
    assert t.match(["v1", "shelves", "s1", "books", "b2"]) == {"name": "shelves/s1/books/b2"}
    assert t.match(["v1", "shelves", "s1", "books"]) is None
    rest = parse("/files/{path=**}")
    assert rest.match(["files", "a", "b", "c"]) == {"path": "a/b/c"}
    assert rest.match(["files"]) == {"path": ""}
    assert parse("/a/**").segments == ("a", DOUBLE_STAR)


def test_nested_field_path_and_verb() -> None:
    t = parse("/agents/runs/{run.id}:cancel")
    assert t.verb == "cancel"
    assert t.match(["agents", "runs", "r1:cancel"]) == {"run.id": "r1"}
    assert t.match(["agents", "runs", "r1"]) is None
    assert t.openapi_path() == "/agents/runs/{run.id}:cancel"


def test_openapi_path_of_a_multi_segment_variable() -> None:
    assert parse("/v1/{name=shelves/*}/x").openapi_path() == "/v1/{name}/x"


def test_literals_are_percent_decoded_and_paths_split() -> None:
    assert parse("/a%20b").segments == ("a b",)
    assert split_path("/agents/runs/a%2Fb") == ["agents", "runs", "a/b"]
    assert split_path("/") == []
    assert split_path("agents") is None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "agents",
        "/",
        "/a/",
        "//a",
        "/{id",
        "/{}",
        "/{1x}",
        "/{a.}",
        "/{a}/{a}",
        "/{a={b}}",
        "/**/x",
        "/{p=**}/x",
        "/a/*x",
        "/a:",
        "/a:b:c",
        "/a}",
        "/{a=b=c}",
    ],
)
def test_malformed_templates_raise_value_error(bad: str) -> None:
    if bad == "/":
        assert parse(bad).segments == ()
        return
    with pytest.raises(ValueError):
        parse(bad)


_ALPHABET = st.sampled_from(list("/{}*=.:_-aZ09%~ ") + ["**", "{id}", "{a=*}", "agents"])


@settings(max_examples=600, deadline=None)
@given(st.lists(_ALPHABET, max_size=14).map("".join))
def test_fuzz_parser_only_raises_value_error(text: str) -> None:
    for candidate in (text, "/" + text):
        try:
            t = parse(candidate)
        except ValueError:
            continue
        # Whatever parses must match its own shape without crashing.
        t.match(["x"] * len(t.segments))
        t.openapi_path()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_fuzz_arbitrary_text(text: str) -> None:
    try:
        parse(text)
    except ValueError:
        pass
