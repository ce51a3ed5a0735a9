"""`make certs` (tools/certs.py): a development CA and an identity per part, private keys,
kept on a second run, usable by a server and a client as they are."""

from __future__ import annotations

import ipaddress
import pathlib
import stat
import subprocess
import sys

import certs
import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shop_common.security import ClientCredentials, TlsSettings, server_credentials

ROOT = pathlib.Path(__file__).resolve().parents[2]
NAMES = ("ca", "user_svc", "order_svc", "gateway", "test_client")


def make_certs(cwd: pathlib.Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(ROOT / "tools" / "certs.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    cwd = tmp_path_factory.mktemp("make-certs")
    make_certs(cwd)
    return cwd / "certs"


def test_it_writes_a_ca_and_an_identity_per_part_with_private_keys(made: pathlib.Path) -> None:
    assert sorted(p.name for p in made.iterdir()) == sorted(
        [f"{n}.pem" for n in NAMES] + [f"{n}-key.pem" for n in NAMES]
    )
    for name in NAMES:
        assert stat.S_IMODE((made / f"{name}-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(made.stat().st_mode) == 0o700


@pytest.mark.parametrize("name", ["user_svc", "order_svc", "gateway", "test_client"])
def test_each_certificate_names_its_part_and_this_machine(made: pathlib.Path, name: str) -> None:
    cert = x509.load_pem_x509_certificate((made / f"{name}.pem").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.UniformResourceIdentifier) == [
        f"spiffe://shop.local/{name}"
    ]
    assert sans.get_values_for_type(x509.DNSName) == [name.replace("_", "-"), "localhost"]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    ca = x509.load_pem_x509_certificate((made / "ca.pem").read_bytes())
    cert.verify_directly_issued_by(ca)


def test_a_second_run_keeps_everything_and_force_replaces_it(tmp_path: pathlib.Path) -> None:
    make_certs(tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()}
    assert "is complete" in make_certs(tmp_path)
    assert {p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()} == before
    (tmp_path / "certs" / "gateway.pem").unlink()
    assert make_certs(tmp_path).split() == [
        "wrote",
        "certs/gateway.pem",
        "wrote",
        "certs/gateway-key.pem",
    ]
    assert (tmp_path / "certs" / "ca.pem").read_bytes() == before["ca.pem"]
    make_certs(tmp_path, "--force")
    after = {p.name: p.read_bytes() for p in (tmp_path / "certs").iterdir()}
    assert all(after[name] != before[name] for name in before)


def test_force_makes_an_existing_key_private_again(tmp_path: pathlib.Path) -> None:
    certs.make_certs(tmp_path, names=["gateway"])
    (tmp_path / "gateway-key.pem").chmod(0o644)
    certs.make_certs(tmp_path, names=["gateway"], force=True)
    assert stat.S_IMODE((tmp_path / "gateway-key.pem").stat().st_mode) == 0o600


def _settings(directory: pathlib.Path, name: str) -> TlsSettings:
    return TlsSettings(
        ca_file=directory / "ca.pem",
        cert_file=directory / f"{name}.pem",
        key_file=directory / f"{name}-key.pem",
    )


async def test_a_server_and_a_client_use_the_files_as_they_are(made: pathlib.Path) -> None:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # stubs lag
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port(
        "127.0.0.1:0", await server_credentials(_settings(made, "user_svc"))
    )
    await server.start()
    try:
        for name in ("order_svc", "gateway", "test_client"):
            credentials = await ClientCredentials(_settings(made, name)).load()
            for target in (f"localhost:{port}", f"127.0.0.1:{port}"):
                async with grpc.aio.secure_channel(target, credentials) as channel:
                    response = await health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5
                    )
                assert response.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(None)
