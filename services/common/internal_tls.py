"""Optional TLS for the internal listeners (store, runner, tool router) and the channels to them.

On when PARLEY_INTERNAL_TLS_CERT, _KEY and _CA are all set (settings refuses a partial set).
Each process serves with its certificate and presents it when it dials: both sides verify the
other against the CA, so only holders of a certificate the CA signed connect (mutual TLS).
"""

from __future__ import annotations

from pathlib import Path

import grpc

from services.common.config import Settings
from services.common.grpc_server import CHANNEL_OPTIONS


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.internal_tls:
        return None
    return grpc.ssl_server_credentials(
        [(_read(settings.internal_tls_key), _read(settings.internal_tls_cert))],
        root_certificates=_read(settings.internal_tls_ca),
        require_client_auth=True,
    )


def channel_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """What a channel to an internal listener presents and trusts (None: plaintext)."""
    if not settings.internal_tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.internal_tls_ca),
        private_key=_read(settings.internal_tls_key),
        certificate_chain=_read(settings.internal_tls_cert),
    )


def channel(target: str, settings: Settings) -> grpc.aio.Channel:
    """A channel to an internal listener: TLS when configured, plaintext otherwise."""
    credentials = channel_credentials(settings)
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
