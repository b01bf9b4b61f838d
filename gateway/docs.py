"""/docs: the API reference, Swagger UI rendering the gateway's own /openapi.json.

Every file comes from the gateway: Swagger UI's from gateway/docs_ui/vendor (the npm package
swagger-ui-dist, vendored unchanged by `make docs-assets`, see gateway/docs_vendor.py), the
page and its start-up script from gateway/docs_ui. A Content-Security-Policy keeps the page from
loading or sending anything elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent / "docs_ui"
ASSETS = "/docs/assets"
# Swagger UI sets inline styles; everything else is same-origin only.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    "": "text/plain; charset=utf-8",
}

PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Parley API reference</title>
<link rel="icon" type="image/png" href="{ASSETS}/favicon-32x32.png">
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script>
<script src="{ASSETS}/init.js"></script>
</body>
</html>
""".encode()


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def load_assets() -> dict[str, Asset]:
    """Every file /docs/assets/{name} serves, read once at start-up."""
    files = [p for p in (HERE / "vendor").iterdir() if p.name != "SOURCE.json"]
    files.append(HERE / "init.js")
    return {p.name: Asset(p.read_bytes(), _TYPES.get(p.suffix, _TYPES[""])) for p in files}
