"""The vendored Swagger UI is exactly what SOURCE.json records (make docs-assets wrote both;
make docs-assets-check compares them with the npm package itself), and /docs serves only it."""

from __future__ import annotations

import json

from gateway import docs, docs_vendor


def test_vendored_files_match_their_manifest() -> None:
    manifest = json.loads(docs_vendor.MANIFEST.read_text())
    assert manifest["package"] == docs_vendor.PACKAGE == "swagger-ui-dist"
    assert manifest["version"] == docs_vendor.VERSION
    assert manifest["integrity"].startswith("sha512-")
    on_disk = {p.name for p in docs_vendor.VENDOR.iterdir()} - {"SOURCE.json"}
    assert on_disk == set(manifest["files"]) == set(docs_vendor.FILES)
    for name, digest in manifest["files"].items():
        assert docs_vendor.sha256((docs_vendor.VENDOR / name).read_bytes()) == digest, name


def test_the_page_loads_only_its_own_assets() -> None:
    assets = docs.load_assets()
    assert set(assets) == {*docs_vendor.FILES, "init.js"}
    page = docs.PAGE.decode()
    assert "http" not in page  # no CDN, no absolute URL of any kind
    for name in ("swagger-ui.css", "swagger-ui-bundle.js", "init.js"):
        assert f'"{docs.ASSETS}/{name}"' in page
    init = assets["init.js"].body.decode()
    assert '"/openapi.json"' in init and "validatorUrl: null" in init
    assert "default-src 'self'" in docs.CSP and "connect-src 'self'" in docs.CSP
