"""Path templates: parsing by the google.api.http grammar, and matching decoded segments."""

from __future__ import annotations

import pytest

from gateway.pattern import Kind, Segment, TemplateError, Variable, parse


def parts(path: str) -> list[str]:
    return path[1:].split("/")


def test_literals_and_a_single_segment_variable() -> None:
    pattern = parse("/v1/users/{id}")
    assert pattern.segments == (
        Segment(Kind.LITERAL, "v1"),
        Segment(Kind.LITERAL, "users"),
        Segment(Kind.ANY),
    )
    assert pattern.variables == (Variable(("id",), 2, 3),)
    assert pattern.verb == ""


def test_nested_field_path() -> None:
    assert parse("/v1/users/{user.id}").variables[0].field_path == ("user", "id")


def test_verb_after_a_variable_and_after_a_literal() -> None:
    cancel = parse("/v1/orders/{id}:cancel")
    assert cancel.verb == "cancel"
    assert cancel.segments[-1] == Segment(Kind.ANY)
    watch = parse("/v1/users:watch")
    assert watch.verb == "watch"
    assert watch.segments == (Segment(Kind.LITERAL, "v1"), Segment(Kind.LITERAL, "users"))


def test_variable_with_a_multi_segment_pattern() -> None:
    pattern = parse("/v1/{name=shelves/*/books/*}")
    assert [s.kind for s in pattern.segments] == [Kind.LITERAL, *[Kind.LITERAL, Kind.ANY] * 2]
    assert pattern.variables == (Variable(("name",), 1, 5),)
    assert pattern.captures(parts("/v1/shelves/s1/books/b2")) == ["shelves/s1/books/b2"]


def test_deep_wildcard_matches_zero_or_more_segments() -> None:
    pattern = parse("/v1/{path=**}")
    assert pattern.variables == (Variable(("path",), 1, None),)
    assert pattern.matches(parts("/v1/a/b/c"))
    assert pattern.captures(parts("/v1/a/b/c")) == ["a/b/c"]
    assert pattern.matches(["v1"])
    assert pattern.captures(["v1"]) == [""]
    assert not pattern.matches(parts("/v2/a"))


def test_anonymous_wildcards() -> None:
    pattern = parse("/v1/*/items/**")
    assert pattern.variables == ()
    assert pattern.matches(parts("/v1/x/items"))
    assert pattern.matches(parts("/v1/x/items/y/z"))
    assert not pattern.matches(parts("/v1/x/other"))


def test_single_wildcard_needs_a_non_empty_segment() -> None:
    pattern = parse("/v1/users/{id}")
    assert pattern.matches(parts("/v1/users/abc"))
    assert not pattern.matches(parts("/v1/users/"))
    assert not pattern.matches(parts("/v1/users"))
    assert not pattern.matches(parts("/v1/users/a/b"))
    assert not pattern.matches(parts("/v1/people/abc"))


def test_captures_in_order() -> None:
    pattern = parse("/v1/{a}/x/{b.c}")
    assert pattern.captures(parts("/v1/one/x/two")) == ["one", "two"]


def test_specificity_orders_literal_before_single_before_deep() -> None:
    templates = ["/v1/{x=**}", "/v1/things/{x}", "/v1/things/special", "/v1/*/special"]
    ordered = sorted((parse(t) for t in templates), key=lambda p: p.specificity)
    assert [p.template for p in ordered] == [
        "/v1/things/special",
        "/v1/things/{x}",
        "/v1/*/special",
        "/v1/{x=**}",
    ]


def test_shape_ignores_variable_names() -> None:
    assert parse("/v1/users/{id}").shape == parse("/v1/users/{user.id}").shape
    assert parse("/v1/users/{id}").shape != parse("/v1/users/{id}:run").shape


@pytest.mark.parametrize(
    "template",
    [
        "v1/users",
        "/",
        "/v1/**/x",
        "/v1/{a={b}}",
        "/v1/{a",
        "/v1/{a.}",
        "/v1/{1a}",
        "/v1/{a}/{a}",
        "/v1/users:",
        "/v1/us*rs",
        "/v1//users",
    ],
)
def test_invalid_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        parse(template)
