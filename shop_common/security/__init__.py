"""Security: who a caller is, proven. Bearer tokens (JWT) verified against the issuer's keys
(`jwt_settings`, `jwks`, `tokens`); TLS with client certificates between the parts
(`tls_settings`, `server_tls`, `client_tls`) and the calling service named by its certificate
(`peer`); channels that follow their certificate files (`channel`) and a service's own token
(`token_file`, `call_token`); the process's mode, `dev` or `jwt` (`settings`). Keys and
certificates are read off the event loop."""

from shop_common.security.call_token import service_token_interceptors
from shop_common.security.channel import RenewingChannel, open_channel
from shop_common.security.client_tls import ClientCredentials
from shop_common.security.jwks import JwksError, SigningKeys
from shop_common.security.jwt_settings import JwtSettings
from shop_common.security.peer import peer_service, service_name, spiffe_id
from shop_common.security.server_tls import server_credentials
from shop_common.security.settings import AuthMode, SecuritySettings, is_loopback
from shop_common.security.tls_settings import TlsSettings
from shop_common.security.token_file import TokenFile
from shop_common.security.tokens import Claims, TokenVerifier

__all__ = [
    "AuthMode",
    "Claims",
    "ClientCredentials",
    "JwksError",
    "JwtSettings",
    "RenewingChannel",
    "SecuritySettings",
    "SigningKeys",
    "TlsSettings",
    "TokenFile",
    "TokenVerifier",
    "is_loopback",
    "open_channel",
    "peer_service",
    "server_credentials",
    "service_name",
    "service_token_interceptors",
    "spiffe_id",
]
