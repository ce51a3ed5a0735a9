"""`make certs`: a development CA and a certificate for every part, under `certs/`.

Each part's certificate names it as `spiffe://shop.local/<part>` (a URI SAN: the identity the
services read from the peer), as the DNS name `<part>` with hyphens (`user-svc`: what a client
dials in a cluster, so that hostname verification pins the server), and as `localhost`,
`127.0.0.1` and `::1` (what clients dial on one machine); it serves and it calls (both extended
key usages). Keys are ECDSA P-256, written
0600. Files that exist are kept (and the CA on disk issues what is missing) unless `--force`.

The minting functions are the tests' too: their own CAs, expired certificates, a certificate
from another CA or with another identity (tests put `tools/` on their path: `import certs`).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import pathlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shop_common.process import private_dir, private_file

TRUST_DOMAIN = "shop.local"
PARTS = ("user_svc", "order_svc", "gateway")
TEST_CLIENT = "test_client"
CA_NAME = "ca"
CA_DAYS = 3650
LEAF_DAYS = 825
LOCAL_DNS = ("localhost",)
LOCAL_IPS = ("127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class Identity:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def spiffe_id(name: str, trust_domain: str = TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/{name}"


def dns_name(name: str) -> str:
    """`user-svc` for `user_svc`: underscores have no place in a host name."""
    return name.replace("_", "-")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_authority(
    common_name: str = "shop development CA",
    *,
    not_before: datetime.datetime | None = None,
    days: int = CA_DAYS,
) -> Identity:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - datetime.timedelta(minutes=5)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return Identity(cert, key)


def issue(
    authority: Identity,
    name: str,
    *,
    uri: str | None = None,
    dns: Sequence[str] | None = None,
    ips: Sequence[str] = LOCAL_IPS,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Identity:
    """A leaf certificate for `name`, signed by `authority`: its identity is the URI SAN
    `uri` (`spiffe://shop.local/<name>` by default), for serving and for calling; its DNS
    names `dns` (by default `name` with hyphens, and `localhost`)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - datetime.timedelta(minutes=5)
    end = not_after or start + datetime.timedelta(days=LEAF_DAYS)
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri or spiffe_id(name))]
    hosts = (dns_name(name), *LOCAL_DNS) if dns is None else dns
    names += [x509.DNSName(host) for host in hosts]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    issuer_ski = authority.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(authority.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski.value),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return Identity(cert, key)


@dataclass(frozen=True, slots=True)
class Files:
    """Where one identity's certificate and key are written."""

    cert: pathlib.Path
    key: pathlib.Path

    @classmethod
    def of(cls, directory: pathlib.Path, name: str) -> Files:
        return cls(directory / f"{name}.pem", directory / f"{name}-key.pem")

    def exist(self) -> bool:
        return self.cert.exists() and self.key.exists()

    def write(self, identity: Identity) -> None:
        """The key first and 0600 from its creation; the certificate world-readable."""
        private_file(self.key)
        self.key.write_bytes(identity.key_pem)
        self.cert.write_bytes(identity.cert_pem)

    def read(self) -> Identity:
        cert = x509.load_pem_x509_certificate(self.cert.read_bytes())
        key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{self.key} is not an ECDSA key")
        return Identity(cert, key)


def make_certs(
    directory: pathlib.Path,
    *,
    names: Sequence[str] = (*PARTS, TEST_CLIENT),
    force: bool = False,
) -> list[pathlib.Path]:
    """Writes the CA (`ca.pem`, `ca-key.pem`) and `<name>.pem`, `<name>-key.pem` for each
    name into `directory`; returns the files written (none when all exist, unless `force`)."""
    private_dir(directory)
    written: list[pathlib.Path] = []
    ca_files = Files.of(directory, CA_NAME)
    if force or not ca_files.exist():
        authority = new_authority()
        ca_files.write(authority)
        written += [ca_files.cert, ca_files.key]
        force = True  # a new CA: every certificate is issued again
    else:
        authority = ca_files.read()
    for name in names:
        files = Files.of(directory, name)
        if force or not files.exist():
            files.write(issue(authority, name))
            written += [files.cert, files.key]
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("certs"))
    parser.add_argument("--force", action="store_true", help="replace files that exist")
    args = parser.parse_args(argv)
    written = make_certs(args.out, force=args.force)
    if written:
        for path in written:
            print(f"wrote {path}")
    else:
        print(f"{args.out}/ is complete; --force replaces it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
