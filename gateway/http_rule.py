"""`google.api.http` path templates, parsed once into compiled matchers (pure; fuzzed).

Grammar (google/api/http.proto):

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

`{id}` is `{id=*}`. `**` matches zero or more segments and must be the last segment.
Every parse failure is a ValueError naming the template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# RFC 3986 pchar minus ':' (reserved for the verb) and the template's own syntax characters.
_LITERAL = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=@]|%[0-9A-Fa-f]{2})+\Z")

STAR, DOUBLE_STAR = "*", "**"


@dataclass(frozen=True)
class Variable:
    """A field path bound to segments [start, end) of the template; end None means 'to the end'."""

    field_path: str
    start: int
    end: int | None


@dataclass(frozen=True)
class PathTemplate:
    """A compiled template: literal segments are compared, wildcard segments captured."""

    template: str
    segments: tuple[str, ...]  # literal text (unescaped), STAR or DOUBLE_STAR
    variables: tuple[Variable, ...]
    verb: str | None

    @property
    def literal_count(self) -> int:
        return sum(1 for s in self.segments if s not in (STAR, DOUBLE_STAR))

    @property
    def field_paths(self) -> tuple[str, ...]:
        return tuple(v.field_path for v in self.variables)

    def may_match_length(self, n: int) -> bool:
        """Whether a path of `n` segments could match (a verb rides on the last segment)."""
        if self.segments and self.segments[-1] == DOUBLE_STAR:
            return n >= len(self.segments) - 1
        return n == len(self.segments)

    def match(self, path_segments: list[str]) -> dict[str, str] | None:
        """Bindings for split, percent-decoded segments (verb still attached), or None."""
        segs = path_segments
        if self.verb is not None:
            if not segs:
                return None
            last, sep, verb = segs[-1].rpartition(":")
            if not sep or verb != self.verb:
                return None
            segs = [*segs[:-1], last]
        n, pattern = len(segs), self.segments
        has_rest = bool(pattern) and pattern[-1] == DOUBLE_STAR
        if has_rest:
            if n < len(pattern) - 1:
                return None
        elif n != len(pattern):
            return None
        for want, got in zip(pattern, segs, strict=False):
            if want == DOUBLE_STAR:
                break
            if want == STAR:
                if not got:
                    return None
            elif want != got:
                return None
        return {v.field_path: "/".join(segs[v.start : v.end]) for v in self.variables}

    def openapi_path(self) -> str:
        """The template as an OpenAPI path: variables become `{field.path}`."""
        out: list[str] = []
        i = 0
        by_start = {v.start: v for v in self.variables}
        while i < len(self.segments):
            var = by_start.get(i)
            if var is not None:
                out.append("{" + var.field_path + "}")
                i = len(self.segments) if var.end is None else var.end
            else:
                out.append(self.segments[i])
                i += 1
        path = "/" + "/".join(out)
        return path + (":" + self.verb if self.verb else "")


def split_path(raw_path: str) -> list[str] | None:
    """Split a request's raw path into percent-decoded segments; None when it is not absolute."""
    if not raw_path.startswith("/"):
        return None
    if raw_path == "/":
        return []
    return [unquote(s) for s in raw_path[1:].split("/")]


def parse(template: str) -> PathTemplate:
    """Parse a template; raises ValueError (only) when it is malformed."""
    if not template.startswith("/"):
        raise ValueError(f"path template {template!r} must start with '/'")
    body, verb = template[1:], None
    # The verb is a ':' after the last '/' that is outside braces.
    depth, colon = 0, -1
    for i, ch in enumerate(body):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "/" and depth == 0:
            colon = -1
        elif ch == ":" and depth == 0 and colon < 0:
            colon = i
    if colon >= 0:
        body, verb = body[:colon], body[colon + 1 :]
        if not _LITERAL.match(verb):
            raise ValueError(f"path template {template!r} has an invalid verb {verb!r}")
    parser = _Parser(template, body)
    segments, variables = parser.parse()
    return PathTemplate(template, tuple(segments), tuple(variables), verb)


class _Parser:
    def __init__(self, template: str, body: str) -> None:
        self.template, self.body, self.pos = template, body, 0
        self.segments: list[str] = []
        self.variables: list[Variable] = []

    def fail(self, why: str) -> ValueError:
        return ValueError(f"path template {self.template!r}: {why}")

    def parse(self) -> tuple[list[str], list[Variable]]:
        if self.body == "":
            return [], []
        self._segments(in_variable=False)
        if self.pos != len(self.body):
            raise self.fail(f"unexpected {self.body[self.pos]!r} at {self.pos + 1}")
        if DOUBLE_STAR in self.segments[:-1]:
            raise self.fail("'**' must be the last segment")
        seen: set[str] = set()
        for var in self.variables:
            if var.field_path in seen:
                raise self.fail(f"field {var.field_path!r} is bound twice")
            seen.add(var.field_path)
        return self.segments, self.variables

    def _segments(self, in_variable: bool) -> None:
        while True:
            self._segment(in_variable)
            if self.pos < len(self.body) and self.body[self.pos] == "/":
                self.pos += 1
                continue
            return

    def _segment(self, in_variable: bool) -> None:
        body = self.body
        if self.pos >= len(body):
            raise self.fail("empty segment")
        if body[self.pos] == "{":
            if in_variable:
                raise self.fail("variables cannot be nested")
            self._variable()
            return
        end = self.pos
        while end < len(body) and body[end] not in "/{}=":
            end += 1
        text = body[self.pos : end]
        if text in (STAR, DOUBLE_STAR):
            self.segments.append(text)
        elif text and _LITERAL.match(text):
            self.segments.append(unquote(text))
        else:
            raise self.fail(f"invalid segment {text!r}" if text else "empty segment")
        self.pos = end

    def _variable(self) -> None:
        body = self.body
        self.pos += 1  # '{'
        end = self.pos
        while end < len(body) and body[end] not in "=}":
            end += 1
        field_path = body[self.pos : end]
        if not field_path or not all(_IDENT.match(p) for p in field_path.split(".")):
            raise self.fail(f"invalid field path {field_path!r}")
        self.pos = end
        start = len(self.segments)
        if self.pos < len(body) and body[self.pos] == "=":
            self.pos += 1
            self._segments(in_variable=True)
        else:
            self.segments.append(STAR)
        if self.pos >= len(body) or body[self.pos] != "}":
            raise self.fail(f"variable {field_path!r} is not closed")
        self.pos += 1
        end_index: int | None = len(self.segments)
        if self.segments[-1] == DOUBLE_STAR:
            end_index = None
        self.variables.append(Variable(field_path, start, end_index))
