"""`make bench`'s rows of the browser protocols: the Lua literal a gRPC-Web body is sent as,
and the targets stated beside them (Connect JSON at most REST's gateway CPU for GetUser,
gRPC-Web binary below both)."""

from __future__ import annotations

import re

from benchmark.browser_rows import _lua_bytes
from benchmark.load import Run
from benchmark.scenarios import Scenario, round_order
from benchmark.targets import browser_targets


def _run(gateway_cpu_us: float) -> Run:
    return Run(1000.0, 1.0, 2.0, 1000, 0, {"gateway": gateway_cpu_us, "user_svc": 50.0})


def _lua_decode(literal: str) -> bytes:
    assert literal.startswith('"')
    assert literal.endswith('"')
    escapes = re.findall(r"\\(\d{3})", literal[1:-1])
    assert "".join(f"\\{e}" for e in escapes) == literal[1:-1]
    return bytes(int(e) for e in escapes)


def test_a_body_is_a_lua_literal_of_its_exact_bytes() -> None:
    # Digits after an escape would extend a short one (\1 then 2 is \12): three digits each.
    data = bytes(range(256)) + b'\x0012\n"\\'
    assert _lua_decode(_lua_bytes(data)) == data


def test_the_targets_are_met_when_connect_is_no_dearer_and_grpc_web_cheaper() -> None:
    medians = {
        "get_user_rest": _run(200.0),
        "get_user_connect": _run(190.0),
        "get_user_grpc_web": _run(150.0),
        "create_order_rest": _run(260.0),
        "create_order_connect": _run(250.0),
    }
    lines, figures = browser_targets(medians)
    assert figures["connect_json_at_most_rest"] is True
    assert figures["grpc_web_below_both"] is True
    assert figures["get_user_connect"] == {"gateway_cpu_us": 190.0, "rest_gateway_cpu_us": 200.0}
    assert "Connect JSON 190 µs, REST 200 µs" in lines[0]
    assert "not met" not in "\n".join(lines)


def test_a_dearer_protocol_is_reported_not_met() -> None:
    medians = {
        "get_user_rest": _run(200.0),
        "get_user_connect": _run(210.0),
        "get_user_grpc_web": _run(205.0),
        "create_order_rest": _run(260.0),
        "create_order_connect": _run(250.0),
    }
    lines, figures = browser_targets(medians)
    assert figures["connect_json_at_most_rest"] is False
    assert figures["grpc_web_below_both"] is False
    assert lines[0].count("**not met**") == 2


def test_without_the_gateway_rows_nothing_is_claimed() -> None:
    lines, figures = browser_targets({"get_user_rest": _run(200.0)})
    assert figures == {}
    assert "not measured" in lines[0]


def _scenario(key: str) -> Scenario:
    return Scenario(key, key, ("gateway",), lambda seconds: _run(0.0))


def test_the_compared_rows_take_turns_in_their_places_round_by_round() -> None:
    keys = [
        "echo",
        "get_user_rest",
        "get_user_connect",
        "get_user_grpc_web",
        "create_order_rest",
        "create_order_connect",
        "seed_post_order",
    ]
    rows = [_scenario(key) for key in keys]
    orders = [[s.key for s in round_order(rows, number)] for number in (1, 2, 3, 4)]
    assert orders[0] == keys
    assert orders[1][1:4] == ["get_user_connect", "get_user_grpc_web", "get_user_rest"]
    assert orders[2][1:4] == ["get_user_grpc_web", "get_user_rest", "get_user_connect"]
    assert orders[3] == [*keys[:4], "create_order_connect", "create_order_rest", "seed_post_order"]
    assert orders[1][4:6] == ["create_order_connect", "create_order_rest"]
    for order in orders:  # the other rows keep their places
        assert (order[0], order[-1]) == ("echo", "seed_post_order")


def test_rotating_leaves_rows_without_a_group_alone() -> None:
    rows = [_scenario(key) for key in ("echo", "get_user_grpc")]
    assert [s.key for s in round_order(rows, 2)] == ["echo", "get_user_grpc"]
