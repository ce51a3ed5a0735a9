"""`make image`: the container image `shop:dev`, built with podman (else docker); and
`make image-check`: what can be proved about the built image without running a container.

Where pip finds packages inside the build is this machine's business: the build gets the
index settings pip itself uses here (`pip config list` and the `PIP_*` variables: index URLs,
find-links, the CA bundle, constraints) as build arguments, and the local files they name (a
`file://` index, a CA bundle) are mounted read-only into the build (podman only: `docker
build` mounts nothing; give it an HTTP index and a base that trusts it instead).

The check reads the image itself (`podman image mount`, as root): its configuration
(user, stop signal, ports, labels, volume, entrypoint), its files (no compilers, no pip,
no pip cache, /data owned by the service user, nothing added to the base but /app, /data and
the user's passwd and group lines), and then runs the processes from the image's root with
`chroot` as the image's unprivileged uid, the root read-only, /data a fresh directory and
/tmp a tmpfs (as a read-only-root pod mounts them): the defaults refuse development identity
off loopback; then they migrate, serve on 0.0.0.0, answer through the gateway, on the
health-only and admin ports, stop cleanly on SIGTERM, and have written under /data only.
`podman run` is not used: it fails in this sandbox (the OCI runtime cannot set rlimits), and
what it adds (namespaces, cgroups, the runtime's mounts) is the runtime's, not the image's.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

ROOT = pathlib.Path(__file__).resolve().parent.parent
TAG = "shop:dev"
# The settings that say where packages come from and how they are trusted (a proxy's CA):
# pip's config key → its variable. Files and local folders they name are mounted.
PIP_KEYS = {
    "index-url": "PIP_INDEX_URL",
    "extra-index-url": "PIP_EXTRA_INDEX_URL",
    "find-links": "PIP_FIND_LINKS",
    "trusted-host": "PIP_TRUSTED_HOST",
    "cert": "PIP_CERT",
    "constraint": "PIP_CONSTRAINT",
}
_CONFIG_LINE = re.compile(r"^(?P<scope>[^.]*)\.(?P<key>[a-z-]+)='(?P<value>.*)'$")
UID = 10001
COMPILERS = ("gcc", "cc", "c++", "g++", "clang", "ld", "as", "make", "cpp")


def engine() -> str:
    for name in ("podman", "docker"):
        if shutil.which(name):
            return name
    raise SystemExit("make image: neither podman nor docker is on PATH")


def pip_settings(config_list: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The index settings pip uses here, as `PIP_*` variables: from `pip config list`'s
    output (later scopes win, as in pip), the environment winning over every file."""
    found: dict[str, str] = {}
    for line in config_list.splitlines():
        match = _CONFIG_LINE.match(line.strip())
        if match and match["key"] in PIP_KEYS and match["scope"] != ":env:":
            found[PIP_KEYS[match["key"]]] = match["value"]
    for variable in PIP_KEYS.values():
        if environ.get(variable):
            found[variable] = environ[variable]
    return found


def local_paths(settings: Mapping[str, str]) -> list[str]:
    """The local files and folders the settings name: an index, wheels, a CA bundle."""
    paths = []
    for value in settings.values():
        for item in value.split():
            path = item.removeprefix("file://").rstrip("/")
            # A PEP 503 index's pages link to its files beside it (`simple/../files`).
            if path.endswith("/simple"):
                path = path.removesuffix("/simple")
            if path.startswith("/") and os.path.exists(path) and path not in paths:
                paths.append(path)
    return paths


def build_command(
    tool: str, settings: Mapping[str, str], base: str | None, extra: Sequence[str]
) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    command = [tool, "build", "--file", "Dockerfile", "--tag", TAG]
    labels = {
        "VERSION": project["version"],
        "REVISION": _git("rev-parse", "HEAD") or "unknown",
        "CREATED": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SOURCE": _git("remote", "get-url", "origin") or "unknown",
    }
    for name, value in {**labels, **settings}.items():
        command += ["--build-arg", f"{name}={value}"]
    if base:
        command += ["--build-arg", f"BASE_IMAGE={base}"]
    paths = local_paths(settings)
    if paths and tool != "podman":
        raise SystemExit(
            f"make image: pip reads a local index here ({', '.join(paths)}), which "
            f"`{tool} build` cannot mount: set PIP_INDEX_URL to an HTTP index, or use podman"
        )
    for path in paths:
        command += ["--volume", f"{path}:{path}:ro"]
    return [*command, *extra, str(ROOT)]


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else ""


def build(base: str | None, extra: Sequence[str]) -> int:
    tool = engine()
    config = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    command = build_command(tool, pip_settings(config, os.environ), base, extra)
    print("+", shlex.join(command), flush=True)
    started = time.monotonic()
    code = subprocess.call(command, cwd=ROOT)
    print(f"image build: exit {code} after {time.monotonic() - started:.0f} s")
    return code


# --- a base where no registry is reachable --------------------------------------------------

DEBIAN_BASE = "localhost/debian-python:3.11"


def debian_base(tag: str) -> int:
    """A Debian bookworm root with Python 3.11 (Debian's 3.11.2) and its venv module, made by
    mmdebstrap from this machine's apt sources and imported as `tag`: the base the image
    can be built on where python:3.11-slim cannot be pulled (needs root)."""
    if not (shutil.which("mmdebstrap") and shutil.which("podman")):
        print("make image-base: needs mmdebstrap and podman (apt-get install)", file=sys.stderr)
        return 2
    sources = pathlib.Path("/etc/apt/sources.list.d/debian.sources")
    if not sources.exists():
        sources = pathlib.Path("/etc/apt/sources.list")
    with tempfile.TemporaryDirectory(prefix="shop-base-") as work:
        tarball = pathlib.Path(work) / "root.tar"
        command = [
            "mmdebstrap", "--variant=minbase",
            "--include=python3,python3-venv,python3-pip,ca-certificates",
            # A snapshot mirror's Release files are old on purpose.
            "--aptopt=Acquire::Check-Valid-Until \"false\"",
            "--aptopt=Acquire::Check-Date \"false\"",
            "--dpkgopt=path-exclude=/usr/share/doc/*",
            "--dpkgopt=path-exclude=/usr/share/man/*",
            "--dpkgopt=path-exclude=/usr/share/locale/*",
            "bookworm", str(tarball), "-",
        ]  # fmt: skip
        print("+", shlex.join(command), "<", sources, flush=True)
        started = time.monotonic()
        with sources.open("rb") as stdin:
            if subprocess.call(command, stdin=stdin):
                return 1
        print(f"root filesystem: {time.monotonic() - started:.0f} s, "
              f"{tarball.stat().st_size / 1e6:.0f} MB")  # fmt: skip
        return subprocess.call(
            ["podman", "import", "--change", 'CMD ["/usr/bin/python3"]', str(tarball), tag]
        )


# --- the check ---------------------------------------------------------------------------


class Failed(Exception):
    pass


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise Failed(what)
    print(f"ok: {what}")


def check(tag: str) -> int:
    if not shutil.which("podman"):
        print("image check: needs podman (it mounts the image's root)", file=sys.stderr)
        return 2
    inspect = json.loads(_out("podman", "image", "inspect", tag))[0]
    root = pathlib.Path(_out("podman", "image", "mount", tag).strip())
    try:
        check_config(inspect)
        check_files(root)
        check_added(tag, inspect)
        env = _image_env(inspect)
        check_processes(root, env)
    except Failed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    finally:
        subprocess.run(["podman", "image", "unmount", tag], capture_output=True, check=False)
    print(f"image size: {int(inspect['Size']) / 1e6:.1f} MB")
    return 0


def _out(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def _image_env(inspect: Mapping[str, object]) -> dict[str, str]:
    config = inspect["Config"]
    assert isinstance(config, dict)
    return dict(item.split("=", 1) for item in config.get("Env") or [])


def check_config(inspect: Mapping[str, object]) -> None:
    config = inspect["Config"]
    assert isinstance(config, dict)
    _expect(config.get("User") == f"{UID}:{UID}", f"runs as {UID}:{UID}, not root")
    _expect(config.get("StopSignal") == "SIGTERM", "stop signal SIGTERM")
    _expect(config.get("Entrypoint") == ["/app/entrypoint.sh"], "entrypoint /app/entrypoint.sh")
    _expect("/data" in (config.get("Volumes") or {}), "/data a volume")
    ports = sorted(int(port.split("/")[0]) for port in config.get("ExposedPorts") or {})
    _expect(ports == sorted(EXPECTED_PORTS), f"exposes {ports}")
    labels = config.get("Labels") or {}
    oci = {k for k in labels if k.startswith("org.opencontainers.image.")}
    _expect(
        {"org.opencontainers.image.title", "org.opencontainers.image.revision"} <= oci,
        f"OCI labels {sorted(oci)}",
    )


EXPECTED_PORTS = (50051, 8081, 9091, 50052, 8082, 9092, 8080, 9093)


def check_files(root: pathlib.Path) -> None:
    found = [
        f"/{directory}/{name}"
        for directory in ("usr/bin", "usr/local/bin", "bin")
        for name in COMPILERS
        if (root / directory / name).exists()
    ]
    _expect(not found, f"no compiler or build tool ({', '.join(COMPILERS)})")
    _expect(not (root / "app/.venv/bin/pip").exists(), "no pip in the venv")
    site = next((root / "app/.venv/lib").glob("python3*/site-packages"))
    _expect(not (site / "setuptools").exists(), "no setuptools in the venv")
    console = [name for name in ("index.html", "console.js", "console.css", "favicon.svg")
               if not (site / "gateway/console_assets" / name).is_file()]  # fmt: skip
    _expect(not console, "the console's files shipped with the gateway (package data)")
    dev = [name for name in ("pytest", "mypy", "ruff", "grpc_tools", "hypothesis")
           if (site / name).exists()]  # fmt: skip
    _expect(not dev, "nothing of the dev extra (pytest, mypy, ruff, grpc_tools, hypothesis)")
    caches = [str(p) for p in (root / "root/.cache/pip", root / "tmp/pip-cache") if p.exists()]
    caches += [str(p) for p in (root / "app").rglob("*") if p.name in {".cache", "wheels"}]
    _expect(not caches, "no pip cache")
    data = (root / "data").stat()
    _expect(
        (data.st_uid, data.st_gid, data.st_mode & 0o777) == (UID, UID, 0o700),
        f"/data owned by {UID}, 0700",
    )
    _expect(
        not list((root / "src").glob("*")) if (root / "src").exists() else True,
        "no build sources in the image",
    )


def check_added(tag: str, inspect: Mapping[str, object]) -> None:
    """What the image changes in its base: the venv and entrypoint, /data, the user's lines."""
    config = inspect["Config"]
    assert isinstance(config, dict)
    base = (config.get("Labels") or {}).get("org.opencontainers.image.base.name", "")
    if not base or subprocess.run(["podman", "image", "exists", base], check=False).returncode:
        print(f"skipped: the base image {base!r} is not here to compare with")
        return
    changed = {
        line.split(maxsplit=1)[1]
        for line in _out("podman", "image", "diff", tag, base).splitlines()
        if line.strip() and not line.split(maxsplit=1)[1].startswith("/app/")
    }
    expected = {"/etc", "/etc/group", "/etc/passwd", "/app", "/data"}
    _expect(changed == expected, f"adds to {base} only {sorted(changed)}")


def check_processes(root: pathlib.Path, image_env: Mapping[str, str]) -> None:
    """Runs the image's processes from its root, as its uid, each in a mount namespace of
    its own where /data is a fresh directory, /tmp a tmpfs, and the rest the image's
    read-only mount: the only places a container with a read-only root could write."""
    mounts = pathlib.Path("/proc/mounts").read_text().splitlines()
    options = next(line.split()[3] for line in mounts if line.split()[1] == str(root))
    _expect("ro" in options.split(","), "the image's root is mounted read-only here")
    with tempfile.TemporaryDirectory(prefix="shop-image-data-") as data:
        os.chown(data, UID, UID)
        os.chmod(data, 0o700)
        jail = Jail(root, pathlib.Path(data), image_env)

        refused = jail.run("user_svc")
        _expect(
            refused.returncode == 2 and "SHOP_AUTH=jwt" in refused.stderr,
            "with the image's defaults alone, dev identity refuses 0.0.0.0 (exit 2, names "
            "SHOP_AUTH=jwt)",
        )
        wrong = jail.run("sh")
        _expect(wrong.returncode == 64, "any other command than the three names: exit 64")

        ports = free_ports(8)
        jail.env.update(
            SHOP_AUTH_DEV_ANY_ADDRESS="true",
            USER_SVC_LISTEN=f"0.0.0.0:{ports[0]}",
            USER_SVC_HEALTH_LISTEN=f"0.0.0.0:{ports[1]}",
            USER_SVC_ADMIN_LISTEN=f"0.0.0.0:{ports[2]}",
            ORDER_SVC_LISTEN=f"0.0.0.0:{ports[3]}",
            ORDER_SVC_HEALTH_LISTEN=f"0.0.0.0:{ports[4]}",
            ORDER_SVC_ADMIN_LISTEN=f"0.0.0.0:{ports[5]}",
            GATEWAY_LISTEN=f"0.0.0.0:{ports[6]}",
            GATEWAY_ADMIN_LISTEN=f"0.0.0.0:{ports[7]}",
            ORDER_SVC_USER_SVC_ADDR=f"127.0.0.1:{ports[0]}",
            GATEWAY_USER_SVC_ADDR=f"127.0.0.1:{ports[0]}",
            GATEWAY_ORDER_SVC_ADDR=f"127.0.0.1:{ports[3]}",
        )
        for name in ("user_svc", "order_svc"):
            done = jail.run(name, "migrate")
            if done.returncode:
                print(done.stderr, file=sys.stderr)
            _expect(done.returncode == 0, f"{name} migrate: exit 0")

        processes = [jail.start(name) for name in ("user_svc", "order_svc", "gateway")]
        try:
            gateway = f"http://127.0.0.1:{ports[6]}"
            _wait_http(f"{gateway}/healthz", processes)
            created = _http(
                "POST", f"{gateway}/v1/users", {"email": "img@example.com", "displayName": "Image"}
            )
            read = _http("GET", f"{gateway}/v1/users/{created['id']}")
            _expect(read["email"] == "img@example.com", "a user created and read via the gateway")
            for port in (ports[1], ports[4]):
                _expect(_grpc_health(port) == "SERVING", f"health-only port {port}: SERVING")
            for port in (ports[2], ports[5], ports[7]):
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
                _expect(body.status == 200, f"admin port {port}: /metrics")
        finally:
            # Callers first, as a rollout would: what is stopped then has nothing to call.
            codes = [_stop(process) for process in reversed(processes)]
        _expect(codes == [0, 0, 0], f"SIGTERM: each stopped cleanly (exit codes {codes})")
        written = sorted(
            (str(path.relative_to(data)), path.stat().st_uid)
            for path in pathlib.Path(data).rglob("*")
        )
        _expect(
            bool(written) and all(uid == UID for _, uid in written),
            f"written under /data only, as {UID}: {[name for name, _ in written]}",
        )


class Jail:
    """The image's root entered with `chroot` as its uid, in a private mount namespace."""

    def __init__(self, root: pathlib.Path, data: pathlib.Path, env: Mapping[str, str]) -> None:
        self.root, self.data, self.env = root, data, dict(env)

    def command(self, *args: str) -> list[str]:
        """`unshare` gives the mounts a namespace that ends with the process (no fork: one pid
        from unshare to the service, so a signal sent to it reaches the service); inside, /data
        is bound, /tmp a tmpfs, /proc and /dev as a runtime gives them; then `chroot` as
        the image's uid execs the entrypoint with `args`."""
        script = (
            'data="$1"; root="$2"; shift 2; '
            'mount --bind "$data" "$root/data" '
            '&& mount -t tmpfs -o mode=1777 tmpfs "$root/tmp" '
            '&& mount -t proc proc "$root/proc" '
            '&& mount --rbind /dev "$root/dev" '
            f'&& exec chroot --userspec={UID}:{UID} "$root" /app/entrypoint.sh "$@"'
        )
        return ["unshare", "--mount", "--", "sh", "-c", script, "jail",
                str(self.data), str(self.root), *args]  # fmt: skip

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command(*args), env=self.env, start_new_session=True)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_http(url: str, processes: Sequence[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if any(process.poll() is not None for process in processes):
            raise Failed(f"a process exited: {[process.poll() for process in processes]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    print(f"ok: {url} answers")
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.5)
    raise Failed(f"{url} did not answer within 90 s")


def _http(method: str, url: str, body: object = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        result = json.loads(response.read())
    assert isinstance(result, dict)
    return result


def _grpc_health(port: int) -> str:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _stop(process: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, as `docker stop` sends it (the pid is the service's: every step execs); its
    exit code."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="build shop:dev")
    make.add_argument("--base", help="the base image (BASE_IMAGE; python:3.11-slim)")
    make.add_argument("extra", nargs="*", help="more arguments for `podman/docker build`")
    base = commands.add_parser("base", help=f"make {DEBIAN_BASE} with mmdebstrap")
    base.add_argument("--tag", default=DEBIAN_BASE)
    verify = commands.add_parser("check", help="prove what can be proved of the built image")
    verify.add_argument("--tag", default=TAG)
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.base, args.extra)
    if args.command == "base":
        return debian_base(args.tag)
    return check(args.tag)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
