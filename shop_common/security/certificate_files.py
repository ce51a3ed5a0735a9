"""A TLS identity's three PEM files, read together and checked, and whether they changed.

Blocking (a stat, small reads): called from grpc's own threads or through
`asyncio.to_thread`. A pair caught half-written (a key that is not the certificate's) is
refused and read again at the next look."""

from __future__ import annotations

import os
import pathlib
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shop_common.security.tls_settings import TlsSettings

_Version = tuple[int, int, int]  # mtime_ns, size, inode


@dataclass(frozen=True, slots=True)
class Pem:
    ca: bytes
    cert: bytes
    key: bytes


class CertificateFiles:
    """The CA, certificate and key files of `settings`."""

    def __init__(self, settings: TlsSettings) -> None:
        self._paths = (settings.ca_file, settings.cert_file, settings.key_file)
        self._read_versions: tuple[_Version, ...] | None = None
        self._lock = threading.Lock()

    def changed(self) -> bool:
        """Whether a file differs from what `read` last returned (True before any read, and
        while a file is missing)."""
        try:
            return self._versions() != self._read_versions
        except OSError:
            return True

    def read(self) -> Pem:
        """The three files, checked: ValueError (or OSError) when they are not a CA, a
        certificate and its key."""
        with self._lock:
            versions = self._versions()  # before reading: a later change is seen next time
            ca, cert, key = (path.read_bytes() for path in self._paths)
            _check(ca, cert, key, self._paths)
            self._read_versions = versions
            return Pem(ca=ca, cert=cert, key=key)

    def _versions(self) -> tuple[_Version, ...]:
        return tuple(_version(path) for path in self._paths)


def _version(path: pathlib.Path) -> _Version:
    stat = os.stat(path)
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _check(ca: bytes, cert: bytes, key: bytes, paths: tuple[pathlib.Path, ...]) -> None:
    ca_path, cert_path, key_path = paths
    try:
        x509.load_pem_x509_certificates(ca)
    except ValueError:
        raise ValueError(f"{ca_path} holds no PEM certificate") from None
    try:
        leaf = x509.load_pem_x509_certificates(cert)[0]
    except ValueError:
        raise ValueError(f"{cert_path} holds no PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{key_path} holds no unencrypted PEM private key") from None
    mine = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if mine != theirs:
        raise ValueError(f"{key_path} is not the key of {cert_path}")
