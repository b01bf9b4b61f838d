"""Bearer tokens: HS256 JWTs with company_id, user_id, scope and exp. Never logs a token.

Tokens minted for allow-listed MCP servers carry `aud` = the server's URL and only the scope
`mcp:invoke`; the API refuses any token with an audience or that scope (an MCP server that got
one cannot call Parley with it)."""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import dataclass
from typing import TypeGuard

import jwt

from services.common.errors import ParleyError

READ_SCOPE = "agent_conversations:read"
WRITE_SCOPE = "agent_conversations:write"
DEFAULT_SCOPE = f"{READ_SCOPE} {WRITE_SCOPE}"
MCP_SCOPE = "mcp:invoke"
MCP_TOKEN_TTL_SECONDS = 60


@dataclass(frozen=True)
class Principal:
    company_id: int
    user_id: int
    scopes: frozenset[str]


def mint_token(
    secret: str, company_id: int, user_id: int, scope: str = DEFAULT_SCOPE, ttl_seconds: int = 86400
) -> str:
    claims = {
        "company_id": company_id,
        "user_id": user_id,
        "scope": scope,
        "exp": int(time.time()) + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def mint_mcp_token(
    secret: str,
    company_id: int,
    user_id: int,
    audience: str,
    ttl_seconds: int = MCP_TOKEN_TTL_SECONDS,
) -> str:
    """A token for one MCP discovery or call on the caller's behalf: that server only (`aud`),
    `mcp:invoke` only, short-lived, unique (`jti`)."""
    now = int(time.time())
    claims = {
        "company_id": company_id,
        "user_id": user_id,
        "scope": MCP_SCOPE,
        "aud": audience,
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def verify_authorization(secret: str, authorization: str | None, needed_scope: str) -> Principal:
    """The principal behind an `Authorization: Bearer …` value, or 401/403 as ParleyError."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ParleyError(
            "Unauthenticated", "missing bearer token: send `Authorization: Bearer <token>`"
        )
    principal, expires_at = _verified(secret, token.strip())
    if time.time() >= expires_at:
        raise ParleyError("Unauthenticated", "the bearer token has expired")
    if needed_scope not in principal.scopes:
        raise ParleyError("PermissionDenied", f"this call needs the `{needed_scope}` scope")
    return principal


@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str) -> tuple[Principal, float]:
    """A token's signature and claims, checked once per token (a client sends the same token
    with every request; decoding it is ~5 % of a request's CPU). Expiry is checked by the
    caller on every use; failures are not cached (they raise)."""
    try:
        claims = jwt.decode(
            token.strip(),
            secret,
            algorithms=["HS256"],
            options={"require": ["exp", "company_id", "user_id"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise ParleyError("Unauthenticated", "the bearer token has expired") from None
    except jwt.InvalidTokenError:
        raise ParleyError("Unauthenticated", "the bearer token is invalid") from None
    scope = claims.get("scope", "")
    scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
    if "aud" in claims or MCP_SCOPE in scopes:
        raise ParleyError(
            "Unauthenticated",
            "the bearer token has an audience or the mcp:invoke scope: it was minted for an "
            "MCP server and is not a Parley API token",
        )
    company_id, user_id = claims.get("company_id"), claims.get("user_id")
    if not _is_id(company_id) or not _is_id(user_id):
        raise ParleyError(
            "Unauthenticated", "the bearer token's company_id/user_id are not integers"
        )
    return Principal(company_id, user_id, scopes), float(claims["exp"])


def _is_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
