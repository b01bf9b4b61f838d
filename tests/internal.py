"""Internal credentials for tests that call internal RPCs themselves, as a runner, the api or an
operator would: a channel whose every call carries that role's credential."""

from __future__ import annotations

from typing import Any

import grpc

from services.common.internal_auth import InternalCredential, Role

INTERNAL_SECRET = "internal-test-secret-0123456789abcdef0123"


class _Credential:
    def __init__(self, credential: InternalCredential) -> None:
        self._credential = credential

    def _details(self, details: Any) -> Any:
        metadata = [*(details.metadata or ()), *self._credential.metadata()]
        return details._replace(metadata=metadata)


# grpc.aio files an interceptor under the first kind it implements only: one class per kind.
class _UnaryUnary(_Credential, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_Credential, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


def internal_channel(
    target: str, role: Role, secret: str = INTERNAL_SECRET, **kwargs: Any
) -> grpc.aio.Channel:
    """A plaintext channel to `target` whose calls carry `role`'s internal credential."""
    credential = InternalCredential(secret, role)
    interceptors = [_UnaryUnary(credential), _UnaryStream(credential)]
    return grpc.aio.insecure_channel(target, interceptors=interceptors, **kwargs)
