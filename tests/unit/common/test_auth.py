from __future__ import annotations

import jwt
import pytest

from services.common.auth import READ_SCOPE, WRITE_SCOPE, mint_token, verify_authorization
from services.common.errors import ParleyError

SECRET = "unit-secret-0123456789abcdef0123456789"


def _code(call) -> str:
    with pytest.raises(ParleyError) as info:
        call()
    return info.value.entry.code


def test_round_trip() -> None:
    token = mint_token(SECRET, company_id=7, user_id=9)
    principal = verify_authorization(SECRET, f"Bearer {token}", WRITE_SCOPE)
    assert (principal.company_id, principal.user_id) == (7, 9)
    assert READ_SCOPE in principal.scopes


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "Bearer not.a.jwt"])
def test_missing_or_malformed_is_unauthenticated(header: str | None) -> None:
    assert _code(lambda: verify_authorization(SECRET, header, READ_SCOPE)) == "Unauthenticated"


def test_wrong_secret_expired_and_bad_claims_are_unauthenticated() -> None:
    other = mint_token("other-secret-0123456789abcdef012345", 1, 1)
    expired = mint_token(SECRET, 1, 1, ttl_seconds=-10)
    stringly = jwt.encode(
        {"company_id": "1", "user_id": 1, "scope": READ_SCOPE, "exp": 2**31},
        SECRET,
        algorithm="HS256",
    )
    for token in (other, expired, stringly):
        header = f"Bearer {token}"
        assert (
            _code(lambda h=header: verify_authorization(SECRET, h, READ_SCOPE)) == "Unauthenticated"
        )


def test_missing_scope_is_permission_denied() -> None:
    token = mint_token(SECRET, 1, 1, scope=READ_SCOPE)
    verify_authorization(SECRET, f"Bearer {token}", READ_SCOPE)
    assert (
        _code(lambda: verify_authorization(SECRET, f"Bearer {token}", WRITE_SCOPE))
        == "PermissionDenied"
    )


def test_a_token_verified_once_is_refused_once_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Verified tokens are remembered, but their expiry is checked on every use."""
    import time

    token = mint_token(SECRET, 3, 4, ttl_seconds=60)
    assert verify_authorization(SECRET, f"Bearer {token}", READ_SCOPE).user_id == 4
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    assert _code(lambda: verify_authorization(SECRET, f"Bearer {token}", READ_SCOPE)) == (
        "Unauthenticated"
    )


def test_a_token_minted_for_an_mcp_server_is_not_an_api_token() -> None:
    from services.common.auth import MCP_SCOPE, mint_mcp_token

    token = mint_mcp_token(SECRET, 7, 9, "https://mcp.example/mcp")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="https://mcp.example/mcp")
    assert claims["scope"] == MCP_SCOPE and claims["exp"] - claims["iat"] <= 60
    assert token != mint_mcp_token(SECRET, 7, 9, "https://mcp.example/mcp")  # unique (jti)
    with pytest.raises(ParleyError) as refused:
        verify_authorization(SECRET, f"Bearer {token}", READ_SCOPE)
    assert refused.value.entry.code == "Unauthenticated"
    assert "not a Parley API token" in str(refused.value)
    # Either mark alone is enough: an audience, or the mcp:invoke scope.
    scoped = mint_token(SECRET, 7, 9, scope=f"{MCP_SCOPE} {READ_SCOPE}")
    audienced = jwt.encode(
        {"company_id": 7, "user_id": 9, "scope": READ_SCOPE, "aud": "x", "exp": 2**40},
        SECRET,
        algorithm="HS256",
    )
    for other in (scoped, audienced):
        assert _code(lambda t=other: verify_authorization(SECRET, f"Bearer {t}", READ_SCOPE)) == (
            "Unauthenticated"
        )
