"""The document's paths: each route's template as an OpenAPI path (`{id}`; a variable with
segments of its own is one parameter with the `pattern` of what it captures), with its
path parameters named so that the document is valid OpenAPI 3.1.

OpenAPI tells templated paths apart by their shape alone: `/v1/users/{id}` and
`/v1/users/{user.id}` are one path, and may not both be written. Tools fill a template from
the names, so a name is a plain identifier. The rule:

- a variable is named by the last part of the field path it binds (`{user.id}` → `{id}`),
  its whole path with `_` for `.` where that would name two variables of one template
  alike (`{parent.id}/x/{id}` → `{parent_id}`, `{id}`); a bare `*` or `**` is
  `_wildcard1`, `_wildcard2`...;
- every route whose path has the same shape (its variables' names aside) takes the names
  of the first of them, so the shape is written once, as one path.

Only the document's names change: the parameters say which request field each binds, and
the gateway matches and binds requests by the templates as written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from gateway.pattern import Kind, Pattern, Segment, Variable
from gateway.routes import Route

_REGEX_SPECIALS = frozenset("\\.^$*+?()[]{}|")
_PARAMETER = re.compile(r"\{[^}]*\}")


@dataclass(frozen=True, slots=True)
class Wildcard:
    """A path parameter: a template variable, or a bare `*`/`**` (variable None)."""

    name: str
    variable: Variable | None
    pattern: str | None
    """The regex of what a multi-segment capture matches; None: one segment, any text."""


def shape_of(path: str) -> str:
    """An OpenAPI path without its parameters' names (`/v1/users/{}`): two paths of one
    shape are the same path to OpenAPI."""
    return _PARAMETER.sub("{}", path)


def openapi_path(pattern: Pattern) -> tuple[str, list[Wildcard]]:
    """The template as an OpenAPI path, and its parameters in order, named by the rule
    above for a template on its own."""
    layout, wildcards = _layout(pattern)
    return _write(layout, [w.name for w in wildcards], pattern.verb), wildcards


def openapi_paths(routes: Iterable[Route]) -> dict[Route, tuple[str, list[Wildcard]]]:
    """Each route's OpenAPI path and parameters, the routes of one shape under one path."""
    located: dict[Route, tuple[str, list[Wildcard]]] = {}
    first: dict[str, list[str]] = {}  # shape → the names of its first route
    for route in routes:
        layout, wildcards = _layout(route.pattern)
        own = [w.name for w in wildcards]
        names = first.setdefault(shape_of(_write(layout, own, route.pattern.verb)), own)
        wildcards = [replace(w, name=name) for w, name in zip(wildcards, names, strict=True)]
        located[route] = _write(layout, names, route.pattern.verb), wildcards
    return located


def _layout(pattern: Pattern) -> tuple[list[str | None], list[Wildcard]]:
    """The path's literal segments, None where a parameter goes, and the parameters."""
    starts = {variable.start: variable for variable in pattern.variables}
    segments = pattern.segments
    found: list[tuple[Variable | None, str | None]] = []
    layout: list[str | None] = []
    i = 0
    while i < len(segments):
        variable = starts.get(i)
        if variable is not None:
            end = len(segments) if variable.end is None else variable.end
            inner = segments[i:end]
            single = len(inner) == 1 and inner[0].kind is Kind.ANY
            found.append((variable, None if single else _regex(inner)))
            layout.append(None)
            i = end
            continue
        segment = segments[i]
        if segment.kind is Kind.LITERAL:
            layout.append(segment.literal)
        else:  # a bare wildcard: the request must have it, no field takes it
            found.append((None, _regex((segment,))))
            layout.append(None)
        i += 1
    names = _names([variable for variable, _ in found])
    wildcards = [
        Wildcard(name, variable, regex)
        for name, (variable, regex) in zip(names, found, strict=True)
    ]
    return layout, wildcards


def _names(variables: Sequence[Variable | None]) -> list[str]:
    short = [
        f"_wildcard{sum(v is None for v in variables[: i + 1])}"
        if variable is None
        else variable.field_path[-1]
        for i, variable in enumerate(variables)
    ]
    twice = Counter(short)
    names = [
        "_".join(variable.field_path) if variable is not None and twice[name] > 1 else name
        for name, variable in zip(short, variables, strict=True)
    ]
    taken: set[str] = set()
    unique = []
    for name in names:  # `a_b` beside `a.b`: numbered
        chosen, count = name, 1
        while chosen in taken:
            count += 1
            chosen = f"{name}{count}"
        taken.add(chosen)
        unique.append(chosen)
    return unique


def _write(layout: Sequence[str | None], names: Sequence[str], verb: str) -> str:
    given = iter(names)
    parts = [part if part is not None else "{" + next(given) + "}" for part in layout]
    return "/" + "/".join(parts) + (f":{verb}" if verb else "")


def _regex(segments: Sequence[Segment]) -> str:
    """An ECMA-262 regex of the captured text: segments joined by `/`."""
    out = ""
    for i, segment in enumerate(segments):
        if segment.kind is Kind.DEEP:  # zero or more segments, always last
            out += ".*" if i == 0 else "(/.*)?"
            continue
        if segment.kind is Kind.ANY:
            piece = "[^/]+"
        else:
            piece = "".join(f"\\{c}" if c in _REGEX_SPECIALS else c for c in segment.literal)
        out += piece if i == 0 else f"/{piece}"
    return f"^{out}$"
