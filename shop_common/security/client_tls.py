"""TLS channel credentials for a client with its own certificate (mutual TLS).

grpc cannot swap a channel's certificate: a client asks `changed()` now and then (every few
seconds, say) and, when it is true, builds a new channel from `load()` and closes the old
one once its calls are done."""

from __future__ import annotations

import asyncio

import grpc

from shop_common.security.certificate_files import CertificateFiles
from shop_common.security.tls_settings import TlsSettings


class ClientCredentials:
    """The channel credentials of one identity, and whether its files changed since."""

    def __init__(self, settings: TlsSettings) -> None:
        self._files = CertificateFiles(settings)

    async def load(self) -> grpc.ChannelCredentials:
        """Reads the files (off the event loop; OSError or ValueError if unusable: files caught
        half-written, say; keep the channel in use then, and try again later)."""
        pem = await asyncio.to_thread(self._files.read)
        return grpc.ssl_channel_credentials(
            root_certificates=pem.ca, private_key=pem.key, certificate_chain=pem.cert
        )

    async def changed(self) -> bool:
        """Whether a file changed since the last `load`."""
        return await asyncio.to_thread(self._files.changed)
