"""Path templates of `google.api.http` rules: parsed once, matched per request.

The grammar (google/api/http.proto):

    Template = "/" Segments [ Verb ] ;
    Segments = Segment { "/" Segment } ;
    Segment  = "*" | "**" | LITERAL | Variable ;
    Variable = "{" FieldPath [ "=" Segments ] "}" ;
    FieldPath = IDENT { "." IDENT } ;
    Verb     = ":" LITERAL ;

Matching works on the request path already split at "/" and percent-decoded per segment,
so this module knows nothing of HTTP; `routes.py` decides which pattern a request gets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import unquote

_KEEP_SLASH = re.compile(r"%2[fF]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LITERAL = re.compile(r"[A-Za-z0-9\-._~%!$&'()+,;=@]+\Z")


class TemplateError(ValueError):
    """A path template that does not follow the grammar."""


class Kind(IntEnum):
    """Segment kinds in order of specificity: a lower value is more specific."""

    LITERAL = 0
    ANY = 1  # `*`: exactly one non-empty segment
    DEEP = 2  # `**`: zero or more segments, only last


@dataclass(frozen=True, slots=True)
class Segment:
    kind: Kind
    literal: str = ""


@dataclass(frozen=True, slots=True)
class Variable:
    """A `{field.path=...}` capture: segments [start, end); end None runs to the last one."""

    field_path: tuple[str, ...]
    start: int
    end: int | None

    @property
    def name(self) -> str:
        return ".".join(self.field_path)


@dataclass(frozen=True, slots=True)
class Pattern:
    template: str
    segments: tuple[Segment, ...]
    variables: tuple[Variable, ...]
    verb: str

    @property
    def shape(self) -> tuple[tuple[Segment, ...], str]:
        """What the pattern matches, without the names of its variables."""
        return self.segments, self.verb

    @property
    def specificity(self) -> tuple[tuple[int, ...], int]:
        """Sort key: literal before `*` before `**`, segment by segment from the left."""
        return tuple(s.kind for s in self.segments), 0 if self.verb else 1

    def matches(self, parts: list[str]) -> bool:
        """Whether the decoded path segments `parts` (verb already removed) match."""
        segments = self.segments
        count = len(segments)
        if count and segments[-1].kind is Kind.DEEP:
            count -= 1
            if len(parts) < count:
                return False
        elif len(parts) != count:
            return False
        for i in range(count):
            segment = segments[i]
            if segment.kind is Kind.LITERAL:
                if parts[i] != segment.literal:
                    return False
            elif not parts[i]:
                return False
        return True

    def captures(self, parts: list[str], raw: list[str] | None = None) -> list[str]:
        """The value of each variable, in order, from a path that `matches`.

        `raw`: the same segments still percent-encoded, when the path had escapes. A
        variable of several segments is decoded from them except for `%2F`, which stays
        as it is (google/api/http.proto), so an encoded slash is not a separator."""
        values = []
        for v in self.variables:
            if raw is not None and (v.end is None or v.end - v.start > 1):
                kept = (_KEEP_SLASH.sub("%252F", p) for p in raw[v.start : v.end])
                values.append("/".join(unquote(p, errors="strict") for p in kept))
            else:
                values.append("/".join(parts[v.start : v.end]))
        return values


def parse(template: str) -> Pattern:
    """Parses a path template; raises `TemplateError` naming what is wrong."""
    if not template.startswith("/"):
        raise TemplateError(f"{template!r}: a path template starts with '/'")
    body, verb = _split_verb(template)
    parser = _Parser(template, body[1:])
    parser.segments_until("")
    segments = tuple(parser.segments)
    for i, segment in enumerate(segments):
        if segment.kind is Kind.DEEP and i != len(segments) - 1:
            raise TemplateError(f"{template!r}: '**' must be the last segment")
    names = [v.field_path for v in parser.variables]
    if len(set(names)) != len(names):
        raise TemplateError(f"{template!r}: a field is bound twice")
    return Pattern(template, segments, tuple(parser.variables), verb)


def _split_verb(template: str) -> tuple[str, str]:
    # The verb follows the last ':' outside braces (a variable's field path has none).
    depth = 0
    for i in range(len(template) - 1, -1, -1):
        char = template[i]
        if char == "}":
            depth += 1
        elif char == "{":
            depth -= 1
        elif char == "/" and depth == 0:
            break
        elif char == ":" and depth == 0:
            verb = template[i + 1 :]
            if not _LITERAL.match(verb):
                raise TemplateError(f"{template!r}: bad verb {verb!r}")
            return template[:i], verb
    return template, ""


class _Parser:
    def __init__(self, template: str, text: str) -> None:
        self.template = template
        self.text = text
        self.pos = 0
        self.segments: list[Segment] = []
        self.variables: list[Variable] = []
        self.in_variable = False

    def fail(self, what: str) -> TemplateError:
        return TemplateError(f"{self.template!r}: {what}")

    def segments_until(self, stop: str) -> None:
        while True:
            self.segment()
            if self.pos == len(self.text) or self.text[self.pos] == stop:
                return
            if self.text[self.pos] != "/":
                raise self.fail(f"unexpected {self.text[self.pos]!r}")
            self.pos += 1

    def segment(self) -> None:
        text = self.text
        if text.startswith("{", self.pos):
            self.variable()
            return
        end = self.pos
        while end < len(text) and text[end] not in "/{}=":
            end += 1
        word = text[self.pos : end]
        self.pos = end
        if word == "**":
            self.segments.append(Segment(Kind.DEEP))
        elif word == "*":
            self.segments.append(Segment(Kind.ANY))
        elif _LITERAL.match(word) and "*" not in word:
            self.segments.append(Segment(Kind.LITERAL, word))
        else:
            raise self.fail(f"bad segment {word!r}")

    def variable(self) -> None:
        if self.in_variable:
            raise self.fail("variables do not nest")
        close = self.text.find("}", self.pos)
        if close < 0:
            raise self.fail("'{' without '}'")
        inside = self.text[self.pos + 1 : close]
        field, equals, _ = inside.partition("=")
        path = tuple(field.split("."))
        if not all(_IDENT.match(part) for part in path):
            raise self.fail(f"bad field path {field!r}")
        start = len(self.segments)
        if equals:
            self.pos += 1 + len(field) + 1
            self.in_variable = True
            self.segments_until("}")
            self.in_variable = False
        else:
            self.pos = close
            self.segments.append(Segment(Kind.ANY))
        if not self.text.startswith("}", self.pos):
            raise self.fail("'{' without '}'")
        self.pos += 1
        deep = self.segments[-1].kind is Kind.DEEP
        self.variables.append(Variable(path, start, None if deep else len(self.segments)))
