"""compose.yaml, proved without Docker (there is no engine here to run it on).

Against the Compose specification's JSON schema (check-jsonschema's vendored copy, offline),
and against the project: the image and the commands it runs, every variable of our services
read by the process it is given to (their settings read from exactly that environment, with
each name they look at recorded), the ports they listen on as the health checks, Prometheus
and the other parts dial them, the files mounted (in the repository, or written by `make
certs` and `tools/issuer.py keys`), the certificates naming the hosts dialed, the Prometheus
config (promtool, the jobs the rules select on), Grafana's provisioning, the collector's
receiver; the health probe and certs-init run for real.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pathlib
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator, Mapping
from types import ModuleType
from typing import Any

import certs
import issuer
import opentelemetry.sdk.environment_variables as otel_sdk_env
import psycopg
import pytest
import yaml
from cryptography import x509

import order_svc.config
import user_svc.app
from gateway.config import Settings as GatewaySettings
from shop_common.serving import ServiceSettings, probe
from tests.security.system import (
    Issuer,
    Pki,
    recording_user_svc,
    running_gateway,
    running_order_svc,
    running_user_svc,
)

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DEPLOY = ROOT / "deploy" / "compose"
IMAGE = "shop:dev"
PROCESSES = ("user_svc", "order_svc", "gateway")
"""The image's commands: the processes it runs (`docker run shop:dev <process>`)."""
SERVICES = {"user-svc": "user_svc", "order-svc": "order_svc", "gateway": "gateway"}
"""compose service → the process it runs: the part's name with hyphens, as its certificate
names it."""


def _load_certs_init() -> ModuleType:
    """deploy/compose/certs_init.py: a script mounted into the container, not a package."""
    spec = importlib.util.spec_from_file_location("certs_init", DEPLOY / "certs_init.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


certs_init = _load_certs_init()

_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+)(:-([^}]*))?\}")


def _interpolate(value: str) -> str:
    """What Compose makes of `${NAME:-default}` with NAME unset; a variable without a default
    is a mistake here (Compose would put an empty string, with a warning)."""

    def default(match: re.Match[str]) -> str:
        assert match.group(2), f"{match.group(0)} has no default: `docker compose up` alone fails"
        return match.group(3)

    return _VARIABLE.sub(default, value)


def _load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


COMPOSE_DATA = _load()
ALL = COMPOSE_DATA["services"]


def _environment(service: str) -> dict[str, str]:
    env = ALL[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment as a mapping"
    return {name: _interpolate(str(value)) for name, value in env.items()}


class _Recording(Mapping[str, str]):
    """An environment that notes every name looked up in it."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def _settings(process: str, env: Mapping[str, str]) -> Any:
    if process == "user_svc":
        return user_svc.app.settings(env)
    if process == "order_svc":
        return order_svc.config.Settings.read(env)
    return GatewaySettings.from_env(env)


def _port(hostport: str) -> int:
    return int(hostport.rpartition(":")[2])


def _bind_mounts(service: str) -> list[tuple[str, str]]:
    """(source, target) of each bind mount (a source starting `./`)."""
    found = []
    for volume in ALL[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            found.append((source, target))
    return found


# --- the Compose specification ---------------------------------------------------------------


def _check_jsonschema(path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    tool = pathlib.Path(sys.executable).parent / "check-jsonschema"
    # Offline: any attempt to reach the network goes to a closed port and fails.
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    return subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_compose_yaml_follows_the_compose_specification() -> None:
    done = _check_jsonschema(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_refuses_a_wrong_compose_file(tmp_path: pathlib.Path) -> None:
    # `replicas` belongs under `deploy:` (a service has no key of that name).
    wrong = COMPOSE_DATA | {"services": {**ALL, "user-svc": {**ALL["user-svc"], "replicas": 2}}}
    path = tmp_path / "compose.yaml"
    path.write_text(yaml.safe_dump(wrong))
    done = _check_jsonschema(path)
    assert done.returncode != 0
    assert "replicas" in done.stdout + done.stderr


# --- the image and its commands ----------------------------------------------------------------


def test_our_services_run_the_image_with_a_process_name_each() -> None:
    for service, process in SERVICES.items():
        spec = ALL[service]
        assert spec["image"] == IMAGE
        assert spec["command"] == [process], service
        assert spec["build"]["context"] == "."
        assert not spec["user"].startswith("0:"), f"{service} runs as root"
        assert spec["read_only"] is True
    assert ALL["certs-init"]["image"] == IMAGE


def test_the_image_is_what_the_project_builds() -> None:
    dockerfile = ROOT / ALL["user-svc"]["build"]["dockerfile"]
    if not dockerfile.exists():
        pytest.skip(f"{dockerfile.name} is not in this tree yet (the image's own branch)")
    makefile = (ROOT / "Makefile").read_text()
    assert IMAGE in makefile, "make image builds shop:dev"
    text = dockerfile.read_text()
    # The user certs-init hands the keys to is the image's own.
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "the image names its user"
    assert users[-1] == ALL["user-svc"]["user"]
    exposed = {int(p) for line in re.findall(r"^EXPOSE\s+(.+)$", text, re.M) for p in line.split()}
    for service in SERVICES:
        declared = {int(p) for p in ALL[service].get("expose", [])}
        published = {int(p.rsplit(":", 1)[1]) for p in ALL[service].get("ports", [])}
        assert declared | published <= exposed, service


def test_the_image_runs_each_command_as_a_module() -> None:
    # The image's command is the process name; each is `python -m <name>` in the image.
    for process in PROCESSES:
        assert importlib.util.find_spec(f"{process}.__main__") is not None, process


def test_other_images_are_pinned() -> None:
    for name, spec in ALL.items():
        if spec["image"] == IMAGE:
            continue
        image, _, tag = spec["image"].rpartition(":")
        assert image, name
        assert tag not in ("", "latest"), f"{name}: {spec['image']} pinned to a version"
    assert ALL["postgres"]["image"] == "postgres:15"


# --- environment, ports -------------------------------------------------------------------------


@pytest.mark.parametrize(("service", "process"), SERVICES.items())
def test_every_variable_is_one_the_process_reads(service: str, process: str) -> None:
    env = _environment(service)
    recording = _Recording(env)
    _settings(process, recording)  # and they are usable: no ConfigError
    # The OpenTelemetry SDK reads its own variables (sampler, insecure, …) from the
    # environment itself: its registry of names is the SDK's environment_variables module.
    sdk = {name for name in dir(otel_sdk_env) if name.startswith("OTEL_")}
    unread = sorted(set(env) - recording.read - sdk)
    assert unread == [], f"{service} sets variables {process} never reads"


@pytest.mark.parametrize(("service", "process"), SERVICES.items())
def test_jwt_mode_with_mutual_tls(service: str, process: str) -> None:
    settings = _settings(process, _environment(service))
    common = settings if process == "gateway" else settings.common
    security = common.security
    assert security.verifies_tokens
    assert security.tls is not None
    assert security.tls.require_client_cert
    assert str(security.tls.cert_file) == f"/certs/{process}.pem"
    assert str(security.tls.key_file) == f"/certs/{process}-key.pem"


def test_the_services_listen_where_they_are_dialed() -> None:
    users = _settings("user_svc", _environment("user-svc"))
    orders = _settings("order_svc", _environment("order-svc"))
    gateway = _settings("gateway", _environment("gateway"))
    assert isinstance(users, ServiceSettings)
    assert isinstance(orders, order_svc.config.Settings)
    # Everyone on the container's network, each port declared.
    for name, settings, listens in (
        ("user-svc", users, (users.listen, users.health_listen, users.admin_listen)),
        ("order-svc", orders, (orders.listen, orders.health_listen, orders.admin_listen)),
    ):
        assert all(x and x.startswith("0.0.0.0:") for x in listens), name
        ports = sorted(_port(x) for x in listens if x)
        assert sorted(int(p) for p in ALL[name]["expose"]) == ports
        assert settings.database_url.startswith("postgresql://")
    # The ports of the image (Dockerfile's EXPOSE; the plan's numbers).
    assert (_port(users.listen), users.health_listen, users.admin_listen) == (
        50051,
        "0.0.0.0:8081",
        "0.0.0.0:9091",
    )
    assert (_port(orders.listen), orders.health_listen, orders.admin_listen) == (
        50052,
        "0.0.0.0:8082",
        "0.0.0.0:9092",
    )
    # Clients dial every replica by the compose service's name, round_robin over Docker's DNS.
    assert orders.user_svc_addr == f"dns:///user-svc:{_port(users.listen)}"
    env = _environment("gateway")
    assert env["GATEWAY_USER_SVC_ADDR"] == f"dns:///user-svc:{_port(users.listen)}"
    assert env["GATEWAY_ORDER_SVC_ADDR"] == f"dns:///order-svc:{_port(orders.listen)}"
    # The gateway: published on its listen port, its admin port declared.
    assert gateway.listen == "0.0.0.0:8080"
    assert ALL["gateway"]["ports"] == [f"8080:{_port(gateway.listen)}"]
    assert [int(p) for p in ALL["gateway"]["expose"]] == [_port(gateway.admin_listen)]


def test_the_health_checks_dial_the_health_ports() -> None:
    for service, process in SERVICES.items():
        test = ALL[service]["healthcheck"]["test"]
        settings = _settings(process, _environment(service))
        if process == "gateway":
            code = test[-1]
            compile(code, "healthcheck", "exec")
            assert f"https://localhost:{_port(settings.listen)}/healthz" in code
            assert "cafile='/certs/ca.pem'" in code
            assert settings.tls_cert_file is not None  # HTTPS, hence the CA
        else:
            # The plaintext health-only port: no certificate, no token needed.
            assert test == [
                "CMD",
                "python",
                "-m",
                "shop_common.serving.probe",
                f"127.0.0.1:{_port(settings.health_listen)}",
            ]


def test_replicas_share_a_database_and_a_page_token_key() -> None:
    for service in ("user-svc", "order-svc"):
        assert ALL[service]["deploy"]["replicas"] == 2
        key = _environment(service)["SHOP_PAGE_TOKEN_KEY"]
        assert len(bytes.fromhex(key)) >= 16
    assert "replicas" not in ALL["gateway"].get("deploy", {})  # one host port 8080
    keys = {_environment(s)["SHOP_PAGE_TOKEN_KEY"] for s in ("user-svc", "order-svc")}
    assert len(keys) == 2  # each service its own


def test_each_service_owns_its_database() -> None:
    init = (DEPLOY / "postgres" / "initdb.sh").read_text()
    postgres = _environment("postgres")
    for service, process in (("user-svc", "user_svc"), ("order-svc", "order_svc")):
        url = urllib.parse.urlsplit(_environment(service)[f"{process.upper()}_DATABASE_URL"])
        assert (url.hostname, url.port, url.username, url.path) == (
            "postgres",
            5432,
            process,
            f"/{process}",
        )
        assert f"CREATE ROLE {process} LOGIN" in init
        assert f"CREATE DATABASE {process} OWNER {process};" in init
        assert url.password == postgres[f"{process.upper()}_DB_PASSWORD"]
    assert ALL["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert os.access(DEPLOY / "postgres" / "initdb.sh", os.X_OK)


# --- start order, volumes -----------------------------------------------------------------------


def test_start_order_waits_on_health() -> None:
    for service in (*SERVICES, "postgres"):
        assert "healthcheck" in ALL[service], service
    for name, spec in ALL.items():
        for other, how in spec.get("depends_on", {}).items():
            assert other in ALL, f"{name} depends on unknown {other}"
            condition = how["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in ALL[other], f"{name} waits for {other}'s health"
            elif condition == "service_completed_successfully":
                assert ALL[other]["restart"] == "no"
    assert ALL["order-svc"]["depends_on"]["user-svc"]["condition"] == "service_healthy"
    for service in SERVICES:
        assert ALL[service]["depends_on"]["certs-init"]["condition"] == (
            "service_completed_successfully"
        )
        assert ALL[service]["restart"] == "unless-stopped"
        assert "otel-collector" not in ALL[service].get("depends_on", {})


def test_named_volumes_are_declared_and_used() -> None:
    declared = set(COMPOSE_DATA["volumes"])
    used = set()
    for spec in ALL.values():
        for volume in spec.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("./", "/")):
                used.add(source)
    assert used == declared


# --- files mounted, certificates ----------------------------------------------------------------


@pytest.fixture(scope="module")
def made_certs(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """What `make certs` and `tools/issuer.py keys` write: ./certs of compose.yaml."""
    directory = tmp_path_factory.mktemp("certs")
    certs.make_certs(directory)
    issuer.keys(directory)
    return directory


def test_every_mounted_file_is_in_the_repository_or_made_by_make_certs(
    made_certs: pathlib.Path,
) -> None:
    for name, _spec in ALL.items():
        for source, _ in _bind_mounts(name):
            if source == "./certs":
                continue  # made by `make certs` (below)
            assert (ROOT / source).exists(), f"{name} mounts {source}"
    assert ("./certs", "/in") in _bind_mounts("certs-init")
    for process in PROCESSES:
        for file in certs_init.files_of(process):
            assert (made_certs / file).is_file(), f"make certs writes no {file}"


@pytest.mark.parametrize(("service", "process"), SERVICES.items())
def test_each_part_mounts_its_own_certificates(service: str, process: str) -> None:
    volume = f"certs-{service}"
    assert f"{volume}:/certs:ro" in ALL[service]["volumes"]
    assert f"{volume}:/out/{process}" in ALL["certs-init"]["volumes"]
    named = {v for k, v in _environment(service).items() if v.startswith("/certs/")}
    assert named <= {f"/certs/{f}" for f in certs_init.files_of(process)}
    owner = ALL["certs-init"]["command"][ALL["certs-init"]["command"].index("--owner") + 1]
    assert owner == ALL[service]["user"]


def test_the_certificates_name_the_hosts_dialed(made_certs: pathlib.Path) -> None:
    """Clients check the server's certificate by the part's name (`*_TLS_NAME`, `user-svc` by
    default), which is also the compose service they dial; the gateway's HTTPS, localhost."""
    for service, process in SERVICES.items():
        cert = certs.Files.of(made_certs, process).read().cert
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
        assert service in dns, f"{process}'s certificate names {dns}"
        assert "localhost" in dns
    assert "ORDER_SVC_USER_SVC_TLS_NAME" not in _environment("order-svc")  # default: user-svc


def test_certs_init_gives_each_part_its_own_copy(
    made_certs: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    out = tmp_path / "out"
    written = certs_init.copy_all(made_certs, out, os.getuid(), os.getgid())
    assert len(written) == 4 * len(PROCESSES)
    for process in PROCESSES:
        directory = out / process
        assert sorted(p.name for p in directory.iterdir()) == sorted(certs_init.files_of(process))
        key = directory / f"{process}-key.pem"
        assert stat.S_IMODE(key.stat().st_mode) == 0o400
        assert key.read_bytes() == (made_certs / f"{process}-key.pem").read_bytes()
        assert stat.S_IMODE((directory / "ca.pem").stat().st_mode) == 0o444
        others = {p for p in PROCESSES if p != process}
        assert not any((directory / f"{o}-key.pem").exists() for o in others), (
            "a part sees no other part's key"
        )
    # Run again (every `up`): replaced in place.
    for process in PROCESSES:
        (out / process).chmod(0o700)
    certs_init.copy_all(made_certs, out, os.getuid(), os.getgid())


def test_certs_init_says_what_to_run_when_files_are_missing(tmp_path: pathlib.Path) -> None:
    certs.make_certs(tmp_path / "in")  # no jwks.json: tools/issuer.py keys not run
    with pytest.raises(SystemExit, match=r"jwks\.json.*tools/issuer\.py keys"):
        certs_init.copy_all(tmp_path / "in", tmp_path / "out", os.getuid(), os.getgid())


# --- the health probe, for real ------------------------------------------------------------------


async def _probe(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shop_common.serving.probe",
        *args,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    _, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, err.decode()


async def test_the_probe_reads_the_health_only_port(tmp_path: pathlib.Path) -> None:
    pki, jwt_issuer = Pki(tmp_path / "pki"), Issuer(tmp_path / "jwks.json")
    async with recording_user_svc(
        jwt_issuer.security(pki.tls("user_svc")), health_listen="127.0.0.1:0"
    ) as (users, _):
        assert users.health_port
        target = f"127.0.0.1:{users.health_port}"
        assert await _probe(target) == (0, "")
        assert await _probe(target, "shop.user.v1.UserService") == (0, "")
        code, err = await _probe(target, "no.such.Service")
        assert code == 1
        assert "NOT_FOUND" in err
        # The mutual-TLS port does not answer a plaintext probe.
        code, err = await _probe(f"127.0.0.1:{users.port}")
        assert code == 1
        assert "no answer" in err
        await users.health.enter_graceful_shutdown()
        code, err = await _probe(target)
        assert (code, err.strip()) == (1, f"{target}: NOT_SERVING")
    assert await _probe("127.0.0.1:1", "x", "y") == (
        2,
        "usage: python -m shop_common.serving.probe HOST:PORT [SERVICE]\n",
    )


def test_the_probe_check_names_the_reason_without_a_server() -> None:
    assert probe.check("127.0.0.1:1", timeout=0.5).startswith("no answer")


# --- Prometheus, Grafana, traces ------------------------------------------------------------------


def _prometheus() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_prometheus_scrapes_every_replica_of_each_part() -> None:
    jobs = {job["job_name"]: job for job in _prometheus()["scrape_configs"]}
    assert set(jobs) == set(PROCESSES)
    for service, process in SERVICES.items():
        (sd,) = jobs[process]["dns_sd_configs"]
        assert sd["names"] == [service]
        assert sd["type"] == "A"
        settings = _settings(process, _environment(service))
        assert sd["port"] == _port(settings.admin_listen)


def test_prometheus_jobs_are_the_ones_the_rules_and_dashboard_select() -> None:
    monitoring = ROOT / "deploy" / "monitoring"
    rules = (monitoring / "prometheus" / "rules.yml").read_text()
    selected = {job for found in re.findall(r'job=~?"([^"]+)"', rules) for job in found.split("|")}
    jobs = {job["job_name"] for job in _prometheus()["scrape_configs"]}
    assert selected == jobs  # TargetDown names all three
    # The dashboard's job picker offers whatever jobs `up` has.
    assert "label_values(up, job)" in (monitoring / "grafana" / "shop.json").read_text()
    assert _prometheus()["rule_files"] == ["rules.yml"]
    mounts = dict(_bind_mounts("prometheus"))
    assert mounts["./deploy/monitoring/prometheus/rules.yml"] == "/etc/prometheus/rules.yml"
    assert mounts["./deploy/compose/prometheus.yml"] == "/etc/prometheus/prometheus.yml"


def _as_mounted(service: str, root: pathlib.Path) -> None:
    """The service's bind mounts laid out under `root` as the container sees them."""
    for source, target in _bind_mounts(service):
        path = root / target.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / source).is_dir():
            shutil.copytree(ROOT / source, path)
        else:
            shutil.copyfile(ROOT / source, path)


def test_promtool_accepts_the_compose_prometheus_config(tmp_path: pathlib.Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    _as_mounted("prometheus", tmp_path)
    done = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "etc/prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout + done.stderr


def test_grafana_is_provisioned_with_compose_prometheus_and_the_dashboard() -> None:
    mounts = dict(_bind_mounts("grafana"))
    sources = yaml.safe_load((DEPLOY / "grafana" / "datasources" / "prometheus.yml").read_text())
    (source,) = sources["datasources"]
    url = urllib.parse.urlsplit(source["url"])
    assert url.hostname in ALL
    assert url.hostname == "prometheus"
    assert f"{url.port}:{url.port}" in ALL["prometheus"]["ports"]
    # The same data source as `make run`'s, where it is: the dashboard works with either.
    original = yaml.safe_load(
        (ROOT / "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert (source["name"], source["uid"]) == (original["name"], original["uid"])
    assert mounts["./deploy/compose/grafana/datasources"] == (
        "/etc/grafana/provisioning/datasources"
    )
    providers = yaml.safe_load(
        (ROOT / "deploy/monitoring/grafana/provisioning/dashboards/shop.yml").read_text()
    )["providers"]
    dashboard_dir = providers[0]["options"]["path"]
    assert mounts["./deploy/monitoring/grafana/shop.json"] == f"{dashboard_dir}/shop.json"
    assert mounts["./deploy/monitoring/grafana/provisioning/dashboards"] == (
        "/etc/grafana/provisioning/dashboards"
    )


def test_the_collector_receives_what_the_services_send() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    endpoints = {_environment(s)["OTEL_EXPORTER_OTLP_ENDPOINT"] for s in SERVICES}
    (endpoint,) = endpoints
    url = urllib.parse.urlsplit(endpoint)
    assert url.hostname == "otel-collector"
    assert url.hostname in ALL
    grpc_receiver = config["receivers"]["otlp"]["protocols"]["grpc"]
    assert _port(grpc_receiver["endpoint"]) == url.port
    assert str(url.port) in ALL["otel-collector"]["expose"]
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    assert set(traces["exporters"]) <= set(config["exporters"])
    assert set(traces["processors"]) <= set(config["processors"])
    jaeger = urllib.parse.urlsplit("//" + config["exporters"]["otlp/jaeger"]["endpoint"])
    assert jaeger.hostname == "jaeger"
    assert str(jaeger.port) in ALL["jaeger"]["expose"]
    mounts = dict(_bind_mounts("otel-collector"))
    assert ALL["otel-collector"]["command"] == [
        f"--config={mounts['./deploy/compose/otel-collector.yaml']}"
    ]
    for service in SERVICES:  # plaintext OTLP inside the compose network
        assert _environment(service)["OTEL_EXPORTER_OTLP_INSECURE"] == "true"


# --- PostgreSQL's init script, on a PostgreSQL 15 of its own ------------------------------------


def _postgres_bin() -> pathlib.Path | None:
    found = sorted(pathlib.Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def fresh_postgres() -> Iterator[tuple[int, dict[str, str]]]:
    """An empty PostgreSQL cluster on loopback, as the postgres image has when it runs
    /docker-entrypoint-initdb.d/ (password authentication over TCP); the init script run in
    it with compose.yaml's environment. Yields the port and that environment."""
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server binaries are not installed (Debian: postgresql)")
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: initdb cannot run")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    work = pathlib.Path(tempfile.mkdtemp(prefix="compose-pg-"))
    if as_postgres:
        shutil.chown(work, "postgres", "postgres")
    port = _free_port()
    env = {
        **os.environ,
        **_environment("postgres"),
        "POSTGRES_USER": "postgres",  # the image's default
        "PGHOST": str(work),
        "PGPORT": str(port),
    }
    data = work / "data"

    def run(*command: str, script: bytes | None = None) -> None:
        subprocess.run(
            [*as_postgres, *command],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
            input=script,
        )

    try:
        run(str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust")
        (data / "pg_hba.conf").write_text(
            "local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n"
        )
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(work / "log"),
            "-w",
            "-o",
            f"-p {port} -k {work} -c listen_addresses=127.0.0.1",
            "start",
        )
        try:
            # On its standard input: the postgres user may not read the checkout (a clone
            # under a 0700 directory, as CI's is).
            run("sh", "-s", script=(DEPLOY / "postgres" / "initdb.sh").read_bytes())
            yield port, _environment("postgres")
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_each_service_migrates_its_own_database_and_reaches_no_other(
    fresh_postgres: tuple[int, dict[str, str]], tmp_path: pathlib.Path
) -> None:
    port, _ = fresh_postgres
    urls = {}
    for service, process in (("user-svc", "user_svc"), ("order-svc", "order_svc")):
        name = f"{process.upper()}_DATABASE_URL"
        url = _environment(service)[name].replace("@postgres:5432/", f"@127.0.0.1:{port}/")
        urls[process] = url
        done = subprocess.run(
            [sys.executable, "-m", process, "migrate"],
            env={**os.environ, name: url, "SHOP_DATA_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr
        assert "applied migrations [" in done.stdout
    # user_svc's role may not even connect to order_svc's database (nor the reverse).
    for process, other in (("user_svc", "order_svc"), ("order_svc", "user_svc")):
        stranger = urls[process].rsplit("/", 1)[0] + f"/{other}"
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(stranger, connect_timeout=10).close()


async def _gateway_healthcheck(port: int, ca: pathlib.Path) -> int:
    """compose.yaml's gateway health check, its port and CA file where this test has them."""
    command = ALL["gateway"]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    code = command[3].replace("localhost:8080", f"localhost:{port}")
    code = code.replace("/certs/ca.pem", str(ca))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stderr=asyncio.subprocess.DEVNULL
    )
    return await process.wait()


async def test_the_gateway_health_check_follows_the_backends(tmp_path: pathlib.Path) -> None:
    pki, jwt_issuer = Pki(tmp_path / "pki"), Issuer(tmp_path / "jwks.json")
    gateway_files = certs.Files.of(pki.root, "gateway")
    async with (
        running_user_svc(tmp_path, jwt_issuer.security(pki.tls("user_svc"))) as users,
        running_order_svc(
            tmp_path, jwt_issuer.security(pki.tls("order_svc")), users.port
        ) as orders,
        running_gateway(
            jwt_issuer.security(pki.tls("gateway")),
            users.port,
            orders.port,
            tls_cert_file=gateway_files.cert,
            tls_key_file=gateway_files.key,
        ) as gateway,
    ):
        port = int(gateway.url.rsplit(":", 1)[1].rstrip("/"))
        assert await _gateway_healthcheck(port, pki.root / "ca.pem") == 0
        other = Pki(tmp_path / "other")  # HTTPS checked against the CA, not just any
        assert await _gateway_healthcheck(port, other.root / "ca.pem") != 0
        await users.health.enter_graceful_shutdown()
        assert await _gateway_healthcheck(port, pki.root / "ca.pem") != 0
