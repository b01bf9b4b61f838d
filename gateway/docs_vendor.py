"""`make docs-assets` / `make docs-assets-check`: the Swagger UI files /docs serves, from npm.

gateway/docs_ui/vendor/ holds files of the npm package `swagger-ui-dist`, unchanged, and
SOURCE.json says which version, the tarball's integrity (as the registry publishes it) and each
file's sha256. `vendor` fetches the package with `npm pack` and writes both; `check` fetches it
again and fails when a committed file differs from the package's, so nothing hand-edited or of
unknown origin is served. Without npm, `check` says loudly that it did not compare.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "swagger-ui-dist"
VERSION = "5.35.0"
FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE")
VENDOR = Path(__file__).resolve().parent / "docs_ui" / "vendor"
MANIFEST = VENDOR / "SOURCE.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pack(version: str) -> tuple[str, dict[str, bytes]]:
    """(integrity, {file: bytes}) of the published package, as npm fetched and verified it."""
    npm = shutil.which("npm")
    if npm is None:
        raise FileNotFoundError("npm")
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [npm, "pack", f"{PACKAGE}@{version}", "--json", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
        info = json.loads(out.stdout)[0]
        tarball = (Path(tmp) / info["filename"]).read_bytes()
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        files = {}
        for name in FILES:
            member = archive.extractfile(f"package/{name}")
            assert member is not None, name
            files[name] = member.read()
    return info["integrity"], files


def vendor() -> None:
    integrity, files = _pack(VERSION)
    VENDOR.mkdir(parents=True, exist_ok=True)
    for old in VENDOR.iterdir():
        old.unlink()
    for name, data in files.items():
        (VENDOR / name).write_bytes(data)
    manifest = {
        "package": PACKAGE,
        "version": VERSION,
        "integrity": integrity,
        "produced_by": "make docs-assets (python -m gateway.docs_vendor vendor): npm pack, "
        "files copied unchanged",
        "files": {name: sha256(data) for name, data in sorted(files.items())},
    }
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"vendored {PACKAGE}@{VERSION} into {VENDOR}")


def check() -> int:
    manifest = json.loads(MANIFEST.read_text())
    try:
        integrity, files = _pack(manifest["version"])
    except FileNotFoundError:
        print(
            "npm is not installed: the vendored Swagger UI files were NOT compared with the npm "
            f"package {PACKAGE}@{manifest['version']} (their checksums are, by the unit tests)",
            file=sys.stderr,
        )
        return 0
    stale = [] if integrity == manifest["integrity"] else ["SOURCE.json integrity"]
    for name, data in files.items():
        path = VENDOR / name
        if (
            not path.exists()
            or path.read_bytes() != data
            or manifest["files"][name] != sha256(data)
        ):
            stale.append(name)
    if stale:
        print("gateway/docs_ui/vendor differs from npm; run `make docs-assets`:", stale)
        return 1
    print(f"gateway/docs_ui/vendor matches {PACKAGE}@{manifest['version']}")
    return 0


def main(argv: list[str]) -> int:
    if argv[1:] == ["vendor"]:
        vendor()
        return 0
    if argv[1:] == ["check"]:
        return check()
    print("usage: python -m gateway.docs_vendor vendor|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
