"""The incident codes runners and providers report on a failed run (`error.type`), those the
internal surface refuses a call with, and the API's refusals of what the catalogue or a model's
input limits do not allow, as names the type checker and linters see. Each is a row of
errors.toml, checked when this module is imported, so a typo fails at start-up and in `make test`
(tests/unit/common/test_error_catalogue.py also scans the source for uncatalogued literal codes)."""

from __future__ import annotations

from typing import Final

from services.common.errors import CATALOGUE

# The agent loop (services/runner/loop.py, executor.py).
AGENT_LOOP_CANCELLED: Final = "AgentLoopCancelled"
AGENT_LOOP_RUNNER_LOST: Final = "AgentLoopRunnerLost"
AGENT_LOOP_MAX_ITERATIONS_EXCEEDED: Final = "AgentLoopMaxIterationsExceeded"
AGENT_LOOP_SCHEMA_DECODE_FAILED: Final = "AgentLoopSchemaDecodeFailed"
AGENT_LOOP_UNKNOWN_TOOL_ALIAS: Final = "AgentLoopUnknownToolAlias"
AGENT_LOOP_INVALID_EFFECTIVE_CONFIG: Final = "AgentLoopInvalidEffectiveConfig"
# Tool discovery (services/tooling/discovery.py, and the runner when the router fails).
MCP_DISCOVERY_FAILED: Final = "McpDiscoveryFailed"
# Model providers (services/runner/providers/).
MODEL_INVOCATION_FAILED: Final = "ModelInvocationFailed"
MODEL_THROTTLED: Final = "ModelThrottled"
MODEL_TIMEOUT: Final = "ModelTimeout"
# The API's refusals of what the catalogue does not allow (services/api/validation.py).
MODEL_NOT_AVAILABLE_ON_CLUSTER: Final = "ModelNotAvailableOnCluster"
UNSUPPORTED_CONTENT: Final = "UnsupportedContent"
CONTENT_TOO_LARGE: Final = "ContentTooLarge"
# The store's answer to a runner that no longer holds a run's lease.
LEASE_LOST: Final = "LeaseLost"
# The internal surface's refusals (services/common/internal_auth.py): no valid internal
# credential (UNAUTHENTICATED), or a role the method does not allow (PERMISSION_DENIED).
INTERNAL_CREDENTIAL_REQUIRED: Final = "InternalCredentialRequired"
INTERNAL_ROLE_NOT_ALLOWED: Final = "InternalRoleNotAllowed"

ALL: Final = frozenset(
    {
        AGENT_LOOP_CANCELLED,
        AGENT_LOOP_RUNNER_LOST,
        AGENT_LOOP_MAX_ITERATIONS_EXCEEDED,
        AGENT_LOOP_SCHEMA_DECODE_FAILED,
        AGENT_LOOP_UNKNOWN_TOOL_ALIAS,
        AGENT_LOOP_INVALID_EFFECTIVE_CONFIG,
        MCP_DISCOVERY_FAILED,
        MODEL_INVOCATION_FAILED,
        MODEL_THROTTLED,
        MODEL_TIMEOUT,
        MODEL_NOT_AVAILABLE_ON_CLUSTER,
        UNSUPPORTED_CONTENT,
        CONTENT_TOO_LARGE,
        LEASE_LOST,
        INTERNAL_CREDENTIAL_REQUIRED,
        INTERNAL_ROLE_NOT_ALLOWED,
    }
)

_uncatalogued = sorted(ALL - CATALOGUE.keys())
if _uncatalogued:
    raise RuntimeError(f"incident codes missing from errors.toml: {', '.join(_uncatalogued)}")
