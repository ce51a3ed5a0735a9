"""`make image`: the container image `shop:dev`, built with podman (else docker); and
`make image-check`: what can be proved about the built image without running a container.

Where pip finds packages inside the build is this machine's business: the build gets the
index settings pip itself uses here (`pip config list` and the `PIP_*` variables: index URLs,
find-links, the CA bundle, constraints) as build arguments, and the local files they name (a
`file://` index, a CA bundle) are mounted read-only into the build (podman only: `docker
build` mounts nothing; give it an HTTP index and a base that trusts it instead).

The check reads the image itself (`podman image mount`, as root): its configuration
(user, stop signal, ports, labels, volume, entrypoint), its files (no compilers, no pip,
no pip cache, /data owned by the service user), and then runs the processes from the image's
root with `chroot` as the image's unprivileged uid, on loopback ports, the root filesystem
read-only and only /data writable: they migrate, serve and answer. `podman run` is not used:
where it works, the check still proves the image; where it does not (a sandbox that cannot
set rlimits), this is what can be proved.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
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


def check_processes(root: pathlib.Path, image_env: Mapping[str, str]) -> None:
    """Runs the image's processes from its root, as its uid, with /data a fresh writable
    directory and nothing else writable (the image mount is read-only)."""
    # TODO filled below
    raise Failed("not implemented")


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="build shop:dev")
    make.add_argument("--base", help="the base image (BASE_IMAGE; python:3.11-slim)")
    make.add_argument("extra", nargs="*", help="more arguments for `podman/docker build`")
    verify = commands.add_parser("check", help="prove what can be proved of the built image")
    verify.add_argument("--tag", default=TAG)
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(args.base, args.extra)
    return check(args.tag)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
