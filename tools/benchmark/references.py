"""The references measured beside the system: the bare grpc.aio echo and the seed design
(from `../shared/bench`, copied to the temp dir), and our gateway beside the naive one over
one trivial backend (`reference_gateway`)."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from benchmark.calls import check_http
from benchmark.errors import BenchError
from benchmark.processes import Proc, free_port, sh
from benchmark.reference_gateway import PATH as REF_PATH
from benchmark.session import Session
from benchmark.settings import REF_ORDER_ID, REPO, SHARED, TOOLS, USERS


@dataclass(frozen=True)
class Echo:
    dir: Path
    port: int

    @property
    def frame(self) -> Path:
        """The request h2load sends; the echo's reply is the same message."""
        return self.dir / "echo_hello.bin"


@dataclass(frozen=True)
class Seed:
    refs: Path
    """The copy of `../shared/bench`: wrk runs from there with its `lua/post_order.lua`."""
    order_port: int


def _refs(session: Session) -> Path:
    return session.tmp / "bench"


def start_echo(session: Session) -> Echo:
    """Copies the references, generates the echo's stubs and starts the echo server."""
    refs, py = _refs(session), sys.executable
    shutil.copytree(SHARED, refs)
    echo = refs / "echo"
    site = sh([py, "-c", "import site; print(site.getsitepackages()[0])"]).stdout.strip()
    protoc = f"-m grpc_tools.protoc -I. -I{site} --python_out=. --grpc_python_out=. echo.proto"
    sh([py, *protoc.split()], cwd=echo)
    sh([py, "make_frame.py", "echo_hello.bin", "hello"], cwd=echo)
    port = free_port()
    proc = session.start("echo", [py, "echo_aio_server.py", str(port)], echo, {})
    proc.wait_for("listening on")
    session.roots["echo"] = proc.popen.pid
    return Echo(echo, port)


def start_reference_gateways(session: Session) -> dict[str, str]:
    """Our gateway and the naive one over one trivial backend; each one's base URL. Both must
    answer the same JSON."""
    module = [sys.executable, "-m", "benchmark.reference_gateway"]
    port = free_port()
    backend = session.start("ref_backend", [*module, "backend", str(port)], TOOLS, {})
    backend.wait_for("listening on")
    address, ours_port, naive_port = f"127.0.0.1:{port}", free_port(), free_port()
    env = {"GATEWAY_LISTEN": f"127.0.0.1:{ours_port}"}
    env |= {"GATEWAY_USER_SVC_ADDR": address, "GATEWAY_ORDER_SVC_ADDR": address}
    ours = session.start("ref_gateway", [sys.executable, "-m", "gateway"], REPO, env)
    naive_argv = [*module, "naive", str(naive_port), address]
    naive = session.start("naive_gateway", naive_argv, TOOLS, {})
    ours.wait_for("gateway listening on")
    naive.wait_for("listening on")
    urls = {
        "ref_gateway": f"http://127.0.0.1:{ours_port}",
        "naive_gateway": f"http://127.0.0.1:{naive_port}",
    }
    path = REF_PATH.format(id=REF_ORDER_ID)
    (session.tmp / "get_order.lua").write_text(f'wrk.method = "GET"\nwrk.path = "{path}"\n')
    replies = {}
    for name, url in urls.items():
        reply = session.http.get(url + path)
        if reply.status_code != 200:
            raise BenchError(f"{name} answered {reply.status_code}: {reply.text}")
        replies[name] = reply.json()
    if replies["ref_gateway"] != replies["naive_gateway"]:
        raise BenchError(f"the two gateways answered differently: {replies}")
    session.roots |= {
        "ref_backend": backend.popen.pid,
        "ref_gateway": ours.popen.pid,
        "naive_gateway": naive.popen.pid,
    }
    return urls


def make_seed_venv(session: Session) -> Proc:
    """Starts making a venv for the seed design; `start_seed` waits for it."""
    venv, python = shlex.quote(str(session.tmp / "venv")), shlex.quote(sys.executable)
    script = f"{python} -m venv {venv} && {venv}/bin/pip install -q flask gunicorn requests"
    return session.start("seed_venv", ["/bin/sh", "-c", script], session.tmp, {})


def start_seed(session: Session, making_venv: Proc) -> Seed:
    """The seed design's two Flask services under gunicorn, seeded with users."""
    making_venv.finish()
    refs, venv = _refs(session), session.tmp / "venv"
    (refs / "data").mkdir(exist_ok=True)
    seed_user, seed_order = free_port(), free_port()
    user_url = f"http://127.0.0.1:{seed_user}"
    envs = {  # as in the README, on free ports
        "user": {"USER_DB": "../data/users.db"},
        "order": {"ORDER_DB": "../data/orders.db", "USER_SERVICE_URL": user_url},
    }
    for service, port in (("user", seed_user), ("order", seed_order)):
        app = f"{service}_service:app"
        argv = f"{venv}/bin/gunicorn -w 2 -k sync -b 127.0.0.1:{port} {app}".split()
        proc = session.start(f"seed_{service}", argv, refs / "seed_flask", envs[service])
        proc.wait_for(r"Listening at")
        session.roots[f"seed_{service}"] = proc.popen.pid
    print(f"seeding {USERS} users into the seed design", flush=True)
    for i in range(1, USERS + 1):
        body = json.dumps({"name": f"u{i}", "email": f"u{i}@x"})
        check_http(session.http, "POST", f"{user_url}/user", body)
    return Seed(refs, seed_order)
