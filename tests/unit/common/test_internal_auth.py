"""Internal credentials: minted once per process, checked against the role table."""

from __future__ import annotations

import jwt
import pytest

from services.common import internal_auth
from services.common.auth import mint_token
from services.common.errors import ParleyError
from services.common.internal_auth import InternalCredential, Role, authorize

SECRET = "internal-unit-secret-0123456789abcdef"
CLAIM = "/agents.v1.StoreService/ClaimRun"
JOB = "/agents.v1.StoreService/GetInferenceJob"


def _code(authorization: str | None, method: str = CLAIM, secret: str = SECRET) -> str:
    with pytest.raises(ParleyError) as refused:
        authorize(secret, method, authorization)
    return refused.value.entry.code


def test_a_credential_is_minted_once_not_per_call() -> None:
    credential = InternalCredential(SECRET, Role.RUNNER)
    first = credential.metadata()
    assert credential.metadata() is first
    ((key, value),) = first
    claims = jwt.decode(
        value.removeprefix("Bearer "), SECRET, algorithms=["HS256"], audience="parley-internal"
    )
    assert key == "authorization" and claims["role"] == "runner"
    assert claims["exp"] - claims["iat"] == internal_auth.TOKEN_TTL_SECONDS
    assert authorize(SECRET, CLAIM, value) is Role.RUNNER


def test_no_bad_or_foreign_tokens_are_unauthenticated() -> None:
    runner = InternalCredential(SECRET, Role.RUNNER).metadata()[0][1]
    for authorization in (None, "", "Bearer", "Basic x", "Bearer garbage"):
        assert _code(authorization) == "InternalCredentialRequired"
    assert _code(f"Bearer {mint_token(SECRET, 1, 1)}") == "InternalCredentialRequired"  # no aud
    assert _code(runner, secret="another-secret-0123456789abcdef0") == "InternalCredentialRequired"
    assert _code(runner, secret="") == "InternalCredentialRequired"  # a server without a secret


def test_roles_follow_the_table_and_unknown_methods_are_closed() -> None:
    operator = InternalCredential(SECRET, Role.OPERATOR).metadata()[0][1]
    runner = InternalCredential(SECRET, Role.RUNNER).metadata()[0][1]
    gateway = InternalCredential(SECRET, Role.GATEWAY).metadata()[0][1]
    assert authorize(SECRET, JOB, operator) is Role.OPERATOR
    assert _code(runner, JOB) == "InternalRoleNotAllowed"
    assert _code(operator, CLAIM) == "InternalRoleNotAllowed"
    assert _code(gateway, CLAIM) == "InternalRoleNotAllowed"
    assert _code(runner, "/agents.v1.StoreService/SomethingNew") == "InternalRoleNotAllowed"


def test_which_methods_are_internal() -> None:
    assert internal_auth.is_internal(CLAIM)
    assert internal_auth.is_internal("/agents.v1.ToolRouterService/CallTool")
    assert not internal_auth.is_internal("/agents.v1.ConversationService/StartRun")
    assert not internal_auth.is_internal("/grpc.health.v1.Health/Check")
