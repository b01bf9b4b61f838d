"""/console: the web console, plain JavaScript modules and CSS from gateway/console_ui (no build
step, nothing vendored). The page talks only to this gateway's own REST API, with the token the
user signs in with (kept in sessionStorage); a Content-Security-Policy keeps it from loading or
sending anything elsewhere."""

from __future__ import annotations

from pathlib import Path

from gateway.docs import Asset

HERE = Path(__file__).resolve().parent / "console_ui"
ASSETS = "/console/assets"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def page() -> bytes:
    return (HERE / "index.html").read_bytes()


def load_assets() -> dict[str, Asset]:
    """Every file /console/assets/{name} serves, read once at start-up."""
    return {
        p.name: Asset(p.read_bytes(), _TYPES[p.suffix])
        for p in sorted(HERE.iterdir())
        if p.suffix in _TYPES
    }
