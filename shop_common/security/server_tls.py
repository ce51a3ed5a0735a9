"""TLS server credentials that follow their files: grpc asks before every handshake whether
the certificate changed, and a changed one serves new connections without a restart
(connections open keep theirs)."""

from __future__ import annotations

import asyncio
import logging

import grpc

from shop_common.security.certificate_files import CertificateFiles, Pem
from shop_common.security.tls_settings import TlsSettings

log = logging.getLogger(__name__)


async def server_credentials(settings: TlsSettings) -> grpc.ServerCredentials:
    """Credentials for `server.add_secure_port`: the files are read now (off the event loop;
    OSError or ValueError if unusable), then again whenever they change. Clients must present a
    certificate from the CA when `settings.require_client_cert`."""
    files = CertificateFiles(settings)
    first = await asyncio.to_thread(files.read)
    return grpc.dynamic_ssl_server_credentials(
        _configuration(first),
        _Fetcher(files),  # type: ignore[arg-type]  # grpc-stubs: it may return None
        require_client_authentication=settings.require_client_cert,
    )


def _configuration(pem: Pem) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(pem.key, pem.cert)], pem.ca)


class _Fetcher:
    """Called by grpc, on its own threads, before each handshake: None keeps the
    configuration in use. Unusable files keep it too, with one warning per failure."""

    def __init__(self, files: CertificateFiles) -> None:
        self._files = files
        self._warned = ""

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        if not self._files.changed():
            return None
        try:
            pem = self._files.read()
        except Exception as error:  # nothing may escape into grpc's handshake
            if str(error) != self._warned:
                self._warned = str(error)
                log.warning("TLS certificate not reloaded, the old one serves on: %s", error)
            return None
        self._warned = ""
        log.info("TLS certificate reloaded")
        return _configuration(pem)
