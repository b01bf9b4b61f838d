"""The only code that reads PARLEY_* variables: one frozen Settings, built once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

DEFAULT_DATA_PLANE_ID = "f79cbdae-4848-47ca-95e8-69588364d185"


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///./parley.db"
    host: str = "127.0.0.1"
    http_port: int = 8080
    api_addr: str = "127.0.0.1:50051"
    runner_addr: str = "127.0.0.1:50052"
    tooling_addr: str = "127.0.0.1:50053"
    store_addr: str = "127.0.0.1:50054"  # the store's internal listener (internal RPCs)
    metrics_port: int = 9464  # `parley serve` only; under `parley up` the gateway serves /metrics
    jwt_secret: str = ""
    default_data_plane_id: str = DEFAULT_DATA_PLANE_ID
    execution_clusters: frozenset[str] = field(default_factory=lambda: frozenset({"shared"}))
    docs_base_url: str = ""
    mcp_allow_private_networks: bool = False
    mcp_auth_allowlist: tuple[str, ...] = ("https://mcp.narrative.io/mcp",)
    max_body_bytes: int = 1 << 20
    runner_concurrency: int = 256  # runs one runner executes at once (a model wait holds no thread)
    runner_lease_seconds: int = 30  # renewed every third of it; a dead runner's runs resume after
    bedrock_max_attempts: int = 3  # botocore's standard retries: the only retry layer
    bedrock_connect_timeout_s: float = 5.0
    bedrock_read_timeout_s: float = 300.0  # a Converse call's whole generation

    @property
    def data_plane_ids(self) -> frozenset[str]:
        return frozenset({self.default_data_plane_id})

    @property
    def docs_url(self) -> str:
        return self.docs_base_url or f"http://{self.host}:{self.http_port}/docs"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)


def load_settings(
    *, embedded: bool, environ: dict[str, str] | None = None, require_secret: bool = True
) -> Settings:
    """Settings from the environment. `embedded` is `parley up`: it may generate a JWT secret
    (kept in ./.parley/) and allows MCP servers on private networks unless told otherwise.
    `require_secret=False` is for commands that sign and verify nothing (`parley migrate`,
    `parley health`): they neither need the secret nor write one."""
    env = os.environ if environ is None else environ
    secret = env.get("PARLEY_JWT_SECRET", "")
    if not secret and embedded and require_secret:
        secret = _embedded_secret()
    if not secret and require_secret:
        raise SystemExit("PARLEY_JWT_SECRET is required for `parley serve`")
    allowlist = env.get("PARLEY_MCP_AUTH_ALLOWLIST")
    return Settings(
        database_url=env.get("PARLEY_DATABASE_URL", Settings.database_url),
        host=env.get("PARLEY_HOST", Settings.host),
        http_port=int(env.get("PARLEY_HTTP_PORT", Settings.http_port)),
        api_addr=env.get("PARLEY_API_ADDR", Settings.api_addr),
        runner_addr=env.get("PARLEY_RUNNER_ADDR", Settings.runner_addr),
        tooling_addr=env.get("PARLEY_TOOLING_ADDR", Settings.tooling_addr),
        store_addr=env.get("PARLEY_STORE_ADDR", Settings.store_addr),
        metrics_port=int(env.get("PARLEY_METRICS_PORT", Settings.metrics_port)),
        jwt_secret=secret,
        default_data_plane_id=env.get("PARLEY_DEFAULT_DATA_PLANE_ID", DEFAULT_DATA_PLANE_ID),
        docs_base_url=env.get("PARLEY_DOCS_BASE_URL", "").rstrip("/"),
        mcp_allow_private_networks=_bool(
            env.get("PARLEY_MCP_ALLOW_PRIVATE_NETWORKS", "true" if embedded else "false")
        ),
        mcp_auth_allowlist=tuple(u.strip() for u in allowlist.split(",") if u.strip())
        if allowlist is not None
        else Settings.mcp_auth_allowlist,
        runner_concurrency=int(env.get("PARLEY_RUNNER_CONCURRENCY", Settings.runner_concurrency)),
        runner_lease_seconds=int(
            env.get("PARLEY_RUNNER_LEASE_SECONDS", Settings.runner_lease_seconds)
        ),
        bedrock_max_attempts=int(
            env.get("PARLEY_BEDROCK_MAX_ATTEMPTS", Settings.bedrock_max_attempts)
        ),
        bedrock_connect_timeout_s=float(
            env.get("PARLEY_BEDROCK_CONNECT_TIMEOUT_S", Settings.bedrock_connect_timeout_s)
        ),
        bedrock_read_timeout_s=float(
            env.get("PARLEY_BEDROCK_READ_TIMEOUT_S", Settings.bedrock_read_timeout_s)
        ),
    )


def _embedded_secret() -> str:
    """Generated once and kept in ./.parley/jwt_secret, so tokens survive restarts."""
    import secrets

    path = Path(".parley") / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value
