"""The `*_ADDR` settings a process dials: gRPC targets, read as grpc core reads them, and a
clear error at start, naming the variable, for one grpc could not use."""

from __future__ import annotations

import json
import re

import pytest

import gateway.config
import order_svc.config
from shop_common.process import BadTarget, ConfigError, Target, parse_target, target
from shop_common.security.channel import balanced

SETTINGS = ("ORDER_SVC_USER_SVC_ADDR", "GATEWAY_USER_SVC_ADDR", "GATEWAY_ORDER_SVC_ADDR")


def read(name: str, value: str) -> str:
    """`value` as the process that reads `name` keeps it."""
    if name.startswith("ORDER_SVC"):
        return order_svc.config.Settings.read({name: value}).user_svc_addr
    backends = gateway.config.Settings.from_env({name: value}).backends
    return backends["shop.user.v1.UserService" if "USER" in name else "shop.order.v1.OrderService"]


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("localhost:50051", Target("dns", ("localhost:50051",))),
        ("user_svc:50051", Target("dns", ("user_svc:50051",))),  # Compose's service names
        ("[::1]:50051", Target("dns", ("[::1]:50051",))),
        ("dns:///user-svc-grpc:50051", Target("dns", ("user-svc-grpc:50051",))),
        ("dns:///[::1]:50051", Target("dns", ("[::1]:50051",))),
        ("dns://10.0.0.10:53/users.internal:443", Target("dns", ("users.internal:443",))),
        ("dns://ns.internal/users.internal:443", Target("dns", ("users.internal:443",))),
        ("dns:localhost:50051", Target("dns", ("localhost:50051",))),
        (
            "ipv4:127.0.0.1:50051,127.0.0.1:50061",
            Target("ipv4", ("127.0.0.1:50051", "127.0.0.1:50061")),
        ),
        ("ipv4:///10.0.0.1:1", Target("ipv4", ("10.0.0.1:1",))),
        ("ipv6:[::1]:50051,[fe80::1]:65535", Target("ipv6", ("[::1]:50051", "[fe80::1]:65535"))),
        ("unix:/run/shop/user.sock", Target("unix", ("/run/shop/user.sock",))),
        ("unix:///run/shop/user.sock", Target("unix", ("/run/shop/user.sock",))),
        ("unix:relative.sock", Target("unix", ("relative.sock",))),
        ("unix-abstract:shop-user", Target("unix-abstract", ("shop-user",))),
    ],
)
def test_a_target_is_read_as_grpc_reads_it(value: str, parsed: Target) -> None:
    assert parse_target(value) == parsed


@pytest.mark.parametrize(
    ("value", "host"),
    [
        ("localhost:1", "localhost"),
        ("dns:///user-svc-grpc:50051", "user-svc-grpc"),
        ("dns:///[::1]:1", "::1"),
        ("ipv4:127.0.0.1:1,127.0.0.1:2", None),
        ("ipv6:[::1]:1", None),
        ("unix:/tmp/s", None),
    ],
)
def test_a_target_names_a_host_only_when_it_is_looked_up(value: str, host: str | None) -> None:
    """The host is what TLS would check without a name given: an address list has none."""
    assert parse_target(value).host == host


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("localhost", "no port"),
        ("50051", "no port"),
        (":50051", "not a host"),
        ("localhost:", "no port"),
        ("host:http", "1 to 65535"),
        ("host:0", "1 to 65535"),
        ("host:65536", "1 to 65535"),
        ("host:-1", "1 to 65535"),
        ("local host:1", "white space"),
        ("::1:50051", "IPv6 address is written"),
        ("[::1:50051", "IPv6 address is written"),
        ("[nope]:1", "not an IPv6 address"),
        ("http://users:80", "no 'http' scheme"),
        ("xds:///users", "no 'xds' scheme"),
        ("DNS:///users:1", "in lower case"),
        ("dns:///users", "no port"),
        ("dns:///", "not a host"),
        ("dns://bad host/users:1", "white space"),
        ("dns:///users:99999", "1 to 65535"),
        ("ipv4:127.0.0.1", "no port"),
        ("ipv4:127.0.0.1:1,", "empty address"),
        ("ipv4:127.0.0.1:1,localhost:2", "not an IPv4 address"),
        ("ipv4:::1:1", "not an IPv4 address"),
        ("ipv4:127.0.0.1:70000", "1 to 65535"),
        ("ipv4://authority/127.0.0.1:1", "no authority"),
        ("ipv6:::1:1", "[address]:port"),
        ("ipv6:[127.0.0.1]:1", "not an IPv6 address"),
        ("ipv6:[::1]", "no port"),
        ("unix:", "socket path"),
        ("unix://host/run/s", "no authority"),
        ("unix:/" + "x" * 107, "longer than 107 bytes"),
    ],
)
def test_a_target_grpc_could_not_use_is_refused(value: str, reason: str) -> None:
    with pytest.raises(BadTarget, match=re.escape(reason)):
        parse_target(value)


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize(
    "value",
    ["dns:///users.internal:443", "ipv4:127.0.0.1:50051,127.0.0.1:50061", "users.internal:443"],
)
def test_every_addr_setting_takes_a_target(name: str, value: str) -> None:
    assert read(name, f" {value} ") == value


@pytest.mark.parametrize("name", SETTINGS)
@pytest.mark.parametrize("value", ["users", "http://users:80", "ipv4:127.0.0.1:1,x:2", "h:0"])
def test_a_bad_target_stops_the_process_naming_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}=.* is not a gRPC target") as caught:
        read(name, value)
    assert repr(value) in str(caught.value)


def test_an_unset_target_is_the_default() -> None:
    assert target({}, "X_ADDR", "127.0.0.1:50051") == "127.0.0.1:50051"
    assert target({"X_ADDR": "  "}, "X_ADDR", "127.0.0.1:50051") == "127.0.0.1:50051"


def test_channels_go_round_robin_within_a_service_config_of_their_own() -> None:
    """The order service's channel has a retry policy in its service config: the policy is
    added to it, not put in its place."""
    retries = {"methodConfig": [{"name": [{"service": "s"}]}]}
    options = dict(balanced([("grpc.service_config", json.dumps(retries)), ("a", 1)]))
    assert json.loads(options["grpc.service_config"]) == {
        **retries,
        "loadBalancingConfig": [{"round_robin": {}}],
    }
    assert options["a"] == 1
    assert options["grpc.service_config_disable_resolution"] == 1
    assert json.loads(dict(balanced([]))["grpc.service_config"]) == {
        "loadBalancingConfig": [{"round_robin": {}}]
    }
    chosen: dict[str, object] = {"loadBalancingConfig": [{"pick_first": {}}]}
    options = dict(balanced([("grpc.service_config", json.dumps(chosen))]))
    assert json.loads(options["grpc.service_config"]) == chosen
