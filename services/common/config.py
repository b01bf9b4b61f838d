"""The only code that reads PARLEY_* variables: one frozen Settings, built once per process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.common import addresses
from services.common import catalogue as catalogue_file
from services.common.catalogue import Catalogue, CatalogueError
from services.common.logs import FORMATS, LEVELS

DEFAULT_DATA_PLANE_ID = "f79cbdae-4848-47ca-95e8-69588364d185"  # the packaged catalogue's
KEPT_DIR = Path(".parley")  # `parley up` keeps its generated secrets here (cwd)
MAX_RUNNER_NAME = 100  # a runner id (name/incarnation) is a lease owner: 128 characters at most


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite+aiosqlite:///./parley.db"
    host: str = "127.0.0.1"
    http_port: int = 8080
    api_addr: str = "127.0.0.1:50051"
    runner_addr: str = "127.0.0.1:50052"
    tooling_addr: str = "127.0.0.1:50053"
    store_addr: str = "127.0.0.1:50054"  # the api's internal StoreService listener
    metrics_port: int = 9464  # `parley serve` only; under `parley up` the gateway serves /metrics
    jwt_secret: str = ""
    internal_secret: str = ""  # signs internal credentials; never the JWT secret
    internal_tls_cert: str = ""  # PEM files; TLS on internal listeners when all three are set
    internal_tls_key: str = ""
    internal_tls_ca: str = ""
    # data planes, execution clusters and models (PARLEY_CATALOGUE, else the packaged one)
    catalogue: Catalogue = field(default_factory=catalogue_file.packaged)
    runner_clusters: tuple[str, ...] = ()  # `parley serve runner --cluster`: () serves every one
    docs_base_url: str = ""
    mcp_allow_private_networks: bool = False
    mcp_auth_allowlist: tuple[str, ...] = ()
    max_body_bytes: int = 1 << 20
    # Runs one runner executes at once are bounded by memory (runner/capacity.py): as many as fit
    # in runner_memory_mb of resident memory (0: 3/4 of what the process may use: its cgroup's
    # limit, else the machine's), at most runner_concurrency when set (0: no count; a model wait
    # holds no thread, so a run in flight costs memory only).
    runner_concurrency: int = 0
    runner_memory_mb: int = 0
    runner_lease_seconds: int = 30  # renewed every third of it; a dead runner's runs resume after
    runner_name: str = ""  # stable across restarts; "": this host and the runner's listening port
    runner_renew_batch: int = 1_000  # run ids per RenewLeases call (bind-parameter limits)
    bedrock_max_attempts: int = 3  # botocore's standard retries: the only retry layer
    bedrock_connect_timeout_s: float = 5.0
    bedrock_read_timeout_s: float = 300.0  # a Converse call's whole generation
    chat_max_attempts: int = 3  # cortex/openai clusters: attempts of a retryable failure, in all
    chat_connect_timeout_s: float = 5.0
    chat_read_timeout_s: float = 300.0  # between two reads of an answer
    fake_model: bool = False  # every run answered by the built-in echo model, never Bedrock
    cors_origins: tuple[str, ...] = ()  # browser origins the gateway answers cross-origin
    in_process: bool = True  # calls between services sharing a process skip gRPC's wire
    log_level: str = "info"  # PARLEY_LOG_LEVEL: logs.LEVELS
    log_format: str = "text"  # PARLEY_LOG_FORMAT: text | json
    access_log: bool = False  # PARLEY_ACCESS_LOG: one line per HTTP request the gateway answers
    api_wait_s: float = 15.0  # PARLEY_API_WAIT_S: how long a starting gateway waits for the API

    @property
    def internal_tls(self) -> bool:
        return bool(self.internal_tls_cert and self.internal_tls_key and self.internal_tls_ca)

    @property
    def default_data_plane_id(self) -> str:
        return self.catalogue.default_data_plane_id

    @property
    def docs_url(self) -> str:
        return self.docs_base_url or f"http://{self.host}:{self.http_port}/docs"

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def load_settings(
    *, embedded: bool, environ: dict[str, str] | None = None, require_secrets: bool = True
) -> Settings:
    """Settings from the environment. `embedded` is `parley up`: it may generate the JWT and
    internal secrets (kept in ./.parley/) and allows MCP servers on private networks unless told
    otherwise. `require_secrets=False` is for commands that serve nothing: `parley job` (which
    signs with the internal secret it finds), `parley migrate` and `parley health` (which sign
    nothing); they read the secrets they find, generate none and require none."""
    env = os.environ if environ is None else environ
    generate = embedded and require_secrets
    secret = env.get("PARLEY_JWT_SECRET", "") or _kept_secret("jwt_secret", generate)
    internal = (
        env.get("PARLEY_INTERNAL_SECRET", "")
        or _secret_file(env.get("PARLEY_INTERNAL_SECRET_FILE", ""))
        or _kept_secret("internal_secret", generate)
    )
    missing = [
        name
        for name, value in (("PARLEY_JWT_SECRET", secret), ("PARLEY_INTERNAL_SECRET", internal))
        if not value
    ]
    if missing and require_secrets:
        raise SystemExit(f"{' and '.join(missing)} required for `parley serve`")
    if internal and internal == secret:
        raise SystemExit("PARLEY_INTERNAL_SECRET must differ from PARLEY_JWT_SECRET")
    tls = [env.get(f"PARLEY_INTERNAL_TLS_{part}", "") for part in ("CERT", "KEY", "CA")]
    if any(tls) and not all(tls):
        raise SystemExit(
            "internal TLS needs all of PARLEY_INTERNAL_TLS_CERT, PARLEY_INTERNAL_TLS_KEY and "
            "PARLEY_INTERNAL_TLS_CA (or none of them)"
        )
    allowlist = env.get("PARLEY_MCP_AUTH_ALLOWLIST", "")
    runner_name = env.get("PARLEY_RUNNER_NAME", "").strip()
    if "/" in runner_name or len(runner_name) > MAX_RUNNER_NAME:
        raise SystemExit(
            f"PARLEY_RUNNER_NAME: at most {MAX_RUNNER_NAME} characters, and no '/' (it ends the "
            "name in runner ids)"
        )
    for variable in addresses.SETTINGS.values():
        if variable in env:
            try:
                addresses.parse(env[variable], variable)
            except ValueError as exc:
                raise SystemExit(str(exc)) from None
    try:
        catalogue = catalogue_file.load(
            env.get("PARLEY_CATALOGUE", ""),
            default_data_plane_id=env.get("PARLEY_DEFAULT_DATA_PLANE_ID", DEFAULT_DATA_PLANE_ID),
        )
    except CatalogueError as exc:
        raise SystemExit(f"PARLEY_CATALOGUE: {exc}") from None
    return Settings(
        database_url=env.get("PARLEY_DATABASE_URL", Settings.database_url),
        host=env.get("PARLEY_HOST", Settings.host),
        http_port=_int(env, "PARLEY_HTTP_PORT", Settings.http_port),
        api_addr=env.get("PARLEY_API_ADDR", Settings.api_addr),
        runner_addr=env.get("PARLEY_RUNNER_ADDR", Settings.runner_addr),
        tooling_addr=env.get("PARLEY_TOOLING_ADDR", Settings.tooling_addr),
        store_addr=env.get("PARLEY_STORE_ADDR", Settings.store_addr),
        metrics_port=_int(env, "PARLEY_METRICS_PORT", Settings.metrics_port),
        jwt_secret=secret,
        internal_secret=internal,
        internal_tls_cert=tls[0],
        internal_tls_key=tls[1],
        internal_tls_ca=tls[2],
        catalogue=catalogue,
        docs_base_url=env.get("PARLEY_DOCS_BASE_URL", "").rstrip("/"),
        mcp_allow_private_networks=_flag(
            env, "PARLEY_MCP_ALLOW_PRIVATE_NETWORKS", "true" if embedded else "false"
        ),
        mcp_auth_allowlist=tuple(u.strip() for u in allowlist.split(",") if u.strip()),
        runner_concurrency=_int(
            env, "PARLEY_RUNNER_CONCURRENCY", Settings.runner_concurrency, minimum=0
        ),
        runner_memory_mb=_int(env, "PARLEY_RUNNER_MEMORY_MB", Settings.runner_memory_mb),
        runner_lease_seconds=_int(
            env, "PARLEY_RUNNER_LEASE_SECONDS", Settings.runner_lease_seconds, minimum=1
        ),
        runner_name=runner_name,
        bedrock_max_attempts=_int(
            env, "PARLEY_BEDROCK_MAX_ATTEMPTS", Settings.bedrock_max_attempts, minimum=1
        ),
        bedrock_connect_timeout_s=_float(
            env, "PARLEY_BEDROCK_CONNECT_TIMEOUT_S", Settings.bedrock_connect_timeout_s
        ),
        bedrock_read_timeout_s=_float(
            env, "PARLEY_BEDROCK_READ_TIMEOUT_S", Settings.bedrock_read_timeout_s
        ),
        chat_max_attempts=_int(
            env, "PARLEY_CHAT_MAX_ATTEMPTS", Settings.chat_max_attempts, minimum=1
        ),
        chat_connect_timeout_s=_float(
            env, "PARLEY_CHAT_CONNECT_TIMEOUT_S", Settings.chat_connect_timeout_s
        ),
        chat_read_timeout_s=_float(env, "PARLEY_CHAT_READ_TIMEOUT_S", Settings.chat_read_timeout_s),
        fake_model=_flag(env, "PARLEY_FAKE_MODEL", "false"),
        cors_origins=_list(env.get("PARLEY_CORS_ORIGINS", "")),
        in_process=_flag(env, "PARLEY_IN_PROCESS", "true"),
        log_level=_choice(env, "PARLEY_LOG_LEVEL", Settings.log_level, tuple(LEVELS)),
        log_format=_choice(env, "PARLEY_LOG_FORMAT", Settings.log_format, FORMATS),
        access_log=_flag(env, "PARLEY_ACCESS_LOG", "false"),
        api_wait_s=_float(env, "PARLEY_API_WAIT_S", Settings.api_wait_s),
    )


def log_options(environ: Mapping[str, str]) -> tuple[str, str]:
    """PARLEY_LOG_LEVEL and PARLEY_LOG_FORMAT, checked: read before the rest of the settings, so
    that the lines about a bad setting are already in the chosen format."""
    return (
        _choice(environ, "PARLEY_LOG_LEVEL", Settings.log_level, tuple(LEVELS)),
        _choice(environ, "PARLEY_LOG_FORMAT", Settings.log_format, FORMATS),
    )


# --- typed values: a bad one stops the process with one line naming its variable ------------
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: not a whole number") from None
    if value < minimum:
        raise SystemExit(f"{name}={raw!r}: must be at least {minimum}")
    if name.endswith("_PORT") and value > 65535:
        raise SystemExit(f"{name}={raw!r}: not a TCP port (0-65535)")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise SystemExit(f"{name}={raw!r}: not a number") from None
    if not value > 0:
        raise SystemExit(f"{name}={raw!r}: must be a positive number of seconds")
    return value


def _flag(env: Mapping[str, str], name: str, default: str) -> bool:
    raw = env.get(name, default).strip().lower()
    if raw not in _TRUE | _FALSE:
        raise SystemExit(f"{name}={raw!r}: not a boolean (true or false)")
    return raw in _TRUE


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, default).strip().lower() or default
    if raw not in choices:
        raise SystemExit(f"{name}={raw!r}: choose one of {', '.join(choices)}")
    return raw


def _list(value: str) -> tuple[str, ...]:
    """A comma-separated setting: items stripped, empty ones (and trailing slashes) dropped."""
    return tuple(item.strip().rstrip("/") for item in value.split(",") if item.strip())


def _kept_secret(name: str, generate: bool) -> str:
    """./.parley/<name>: generated once when `generate` (so tokens survive restarts), else read
    when it exists."""
    import secrets

    path = KEPT_DIR / name
    if path.exists():
        return path.read_text().strip()
    if not generate:
        return ""
    path.parent.mkdir(exist_ok=True)
    value = secrets.token_urlsafe(32)
    path.write_text(value)
    path.chmod(0o600)
    return value


def _secret_file(path: str) -> str:
    """A secret kept in a file (PARLEY_INTERNAL_SECRET_FILE: a Docker secret, a shared volume)."""
    if not path:
        return ""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise SystemExit(
            f"cannot read PARLEY_INTERNAL_SECRET_FILE {path}: {exc.strerror}"
        ) from None
