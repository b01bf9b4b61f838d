"""Internal credentials: who may call the RPCs Parley's own processes call one another with.

A calling process (runner, api, an operator's `parley job`) mints a short-lived HS256 JWT with
PARLEY_INTERNAL_SECRET (never the user secret), audience `parley-internal` and its `role`, keeps
it, and re-mints it before it expires. The gRPC server interceptor checks it on every call of a
service that is not public, against `PERMISSIONS`; a method missing from the table is refused to
everyone, so a new internal RPC is closed until a role is given it.
"""

from __future__ import annotations

import functools
import time
from enum import StrEnum

import jwt

from services.common.errors import ParleyError
from services.common.incidents import INTERNAL_CREDENTIAL_REQUIRED, INTERNAL_ROLE_NOT_ALLOWED

AUDIENCE = "parley-internal"
TOKEN_TTL_SECONDS = 300
LEEWAY_SECONDS = 30  # clock skew tolerated between Parley's hosts (iat, exp)
AUTHORIZATION_KEY = "authorization"
PUBLIC_SERVICES = frozenset({"agents.v1.ConversationService"})


class Role(StrEnum):
    API = "api"
    RUNNER = "runner"
    OPERATOR = "operator"  # `parley job`: reads what runs recorded
    GATEWAY = "gateway"  # calls only the public service: no internal method lists it


_RUNNER = frozenset({Role.RUNNER})

# Full method name -> the roles that may call it.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "/agents.v1.StoreService/ClaimRun": _RUNNER,
    "/agents.v1.StoreService/RenewLeases": _RUNNER,
    "/agents.v1.StoreService/ReleaseLeases": _RUNNER,
    "/agents.v1.StoreService/CommitRun": _RUNNER,
    "/agents.v1.StoreService/WatchWork": _RUNNER,
    "/agents.v1.StoreService/AppendLiveTurn": _RUNNER,
    "/agents.v1.StoreService/AppendRunEvents": _RUNNER,
    "/agents.v1.StoreService/SetGeneratedName": _RUNNER,
    "/agents.v1.StoreService/GetInferenceJob": frozenset({Role.OPERATOR}),
    "/agents.v1.RunnerService/NotifyRunsQueued": frozenset({Role.API, Role.OPERATOR}),
    "/agents.v1.ToolRouterService/DiscoverTools": _RUNNER,
    "/agents.v1.ToolRouterService/CallTool": _RUNNER,
}


def is_internal(method: str) -> bool:
    """Whether a full method name (`/pkg.Service/Method`) is one of Parley's internal RPCs."""
    service = method[1:].rpartition("/")[0]
    return service.startswith("agents.") and service not in PUBLIC_SERVICES


def roles_for(method: str) -> frozenset[Role]:
    return PERMISSIONS.get(method, frozenset())


def mint_internal_token(secret: str, role: Role, ttl_seconds: int = TOKEN_TTL_SECONDS) -> str:
    now = int(time.time())
    claims = {"aud": AUDIENCE, "role": str(role), "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm="HS256")


class InternalCredential:
    """A process's internal token as call metadata: minted once, re-minted when half its life
    has passed, so a call costs a clock read, not a signature."""

    def __init__(self, secret: str, role: Role, ttl_seconds: int = TOKEN_TTL_SECONDS) -> None:
        if not secret:
            raise ValueError("an internal credential needs PARLEY_INTERNAL_SECRET")
        self._secret, self._role, self._ttl = secret, role, ttl_seconds
        self._renew_at = 0.0
        self._metadata: tuple[tuple[str, str], ...] = ()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        now = time.monotonic()
        if now >= self._renew_at:
            token = mint_internal_token(self._secret, self._role, self._ttl)
            self._metadata = ((AUTHORIZATION_KEY, f"Bearer {token}"),)
            self._renew_at = now + self._ttl / 2
        return self._metadata


def authorize(secret: str, method: str, authorization: str | None) -> Role:
    """The caller's role when it may call `method`; else InternalCredentialRequired (no valid
    internal token: UNAUTHENTICATED) or InternalRoleNotAllowed (PERMISSION_DENIED)."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ParleyError(
            INTERNAL_CREDENTIAL_REQUIRED,
            f"{method} is internal: it needs an internal credential, and the call carried none",
        )
    role, expires_at = _verified(secret, token.strip())
    if time.time() >= expires_at + LEEWAY_SECONDS:
        raise ParleyError(INTERNAL_CREDENTIAL_REQUIRED, "the internal credential has expired")
    if role not in roles_for(method):
        raise ParleyError(
            INTERNAL_ROLE_NOT_ALLOWED, f"the role `{role}` may not call {method}", role=str(role)
        )
    return role


@functools.lru_cache(maxsize=256)
def _verified(secret: str, token: str) -> tuple[Role, float]:
    """A token's signature and claims, checked once per token (a caller sends the same one for
    minutes); failures raise, so they are not cached. Expiry is checked on every use."""
    if not secret:
        raise ParleyError(
            INTERNAL_CREDENTIAL_REQUIRED,
            "this server has no PARLEY_INTERNAL_SECRET: it refuses every internal call",
        )
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=AUDIENCE,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "aud", "role"]},
        )
    except jwt.ExpiredSignatureError:
        raise ParleyError(
            INTERNAL_CREDENTIAL_REQUIRED, "the internal credential has expired"
        ) from None
    except jwt.InvalidTokenError:
        raise ParleyError(
            INTERNAL_CREDENTIAL_REQUIRED,
            "the bearer token is not an internal credential (a user's token never is)",
        ) from None
    try:
        role = Role(claims["role"])
    except ValueError:
        raise ParleyError(
            INTERNAL_CREDENTIAL_REQUIRED, "the internal credential names no known role"
        ) from None
    return role, float(claims["exp"])
