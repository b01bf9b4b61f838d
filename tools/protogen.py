"""`make gen` / `make gen-check`: Python code generated from proto/ into gen/ (committed).

gen/agents/v1/*_pb2.py, *_pb2_grpc.py and *.pyi import as `agents.v1.*`; gen/agents/v1/
descriptors.binpb is the same files as a FileDescriptorSet that keeps their comments (source
info), which server reflection serves. The check regenerates both into a temporary folder and
fails on any difference, so stale generated code never lands. `vendor` (make protos-vendor)
refreshes the committed proto/google/api/*.proto from the installed googleapis-common-protos;
`vendor-check` says whether they differ (not part of gen-check: an upstream comment edit must not
fail a fresh clone's build). A development tool, not installed.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "gen"
DESCRIPTOR_SET = "agents/v1/descriptors.binpb"  # under gen/; read by services.common.reflection
# google/api/*.proto are vendored in proto/ (buf needs them inside its module); they come from
# googleapis-common-protos. google/protobuf/*.proto ship in grpcio-tools.
VENDORED = ("google/api/annotations.proto", "google/api/http.proto")
_UPSTREAM = Path(annotations_pb2.__file__).parents[2]
_WELL_KNOWN = Path(grpc_tools.__file__).parent / "_proto"


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.glob("agents/**/*.proto"))
    (out / DESCRIPTOR_SET).parent.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{_WELL_KNOWN}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        "--include_source_info",
        f"--descriptor_set_out={out / DESCRIPTOR_SET}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    for package in {(out / p).parent for p in protos} | {out / "agents"}:
        (package / "__init__.py").touch()


def vendor() -> None:
    for name in VENDORED:
        (PROTO_ROOT / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_UPSTREAM / name, PROTO_ROOT / name)


def _stale_vendored() -> list[str]:
    return [
        str(PROTO_ROOT / name)
        for name in VENDORED
        if not (PROTO_ROOT / name).exists()
        or not filecmp.cmp(_UPSTREAM / name, PROTO_ROOT / name, shallow=False)
    ]


def _differences(a: Path, b: Path) -> list[str]:
    cmp = filecmp.dircmp(a, b, ignore=["__pycache__"])
    found = [f"{a / n}" for n in cmp.left_only + cmp.right_only + cmp.diff_files]
    for sub in cmp.common_dirs:
        found += _differences(a / sub, b / sub)
    return found


def main(argv: list[str]) -> int:
    if argv[1:] == ["gen"]:
        generate(OUT)
        return 0
    if argv[1:] == ["vendor"]:
        vendor()
        return 0
    if argv[1:] == ["vendor-check"]:
        vendored = _stale_vendored()
        for path in vendored:
            print(f"{path} differs from googleapis-common-protos'", file=sys.stderr)
        return 1 if vendored else 0
    if argv[1:] == ["check"]:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = _differences(OUT, Path(tmp)) if OUT.exists() else [str(OUT)]
        if stale:
            print("gen/ is stale; run `make gen`:\n  " + "\n  ".join(stale), file=sys.stderr)
            return 1
        print("gen/ is up to date")
        return 0
    print("usage: python tools/protogen.py gen|check|vendor|vendor-check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
