"""`make gen` / `make gen-check`: Python code generated from proto/ into gen/ (committed).

gen/agents/v1/*_pb2.py, *_pb2_grpc.py and *.pyi import as `agents.v1.*`; gen/agents/v1/
descriptors.binpb is the same files as a FileDescriptorSet that keeps their comments (source
info), which server reflection serves. The check regenerates into a temporary folder and fails on
any difference, so stale generated code never lands.
"""

from __future__ import annotations

import filecmp
import sys
import tempfile
from pathlib import Path

import grpc_tools
from google.api import annotations_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "gen"
DESCRIPTOR_SET = "agents/v1/descriptors.binpb"  # under gen/; read by services.common.reflection
# google/api/*.proto ship in googleapis-common-protos, google/protobuf/*.proto in grpcio-tools.
_INCLUDES = [
    Path(annotations_pb2.__file__).parents[2],
    Path(grpc_tools.__file__).parent / "_proto",
]


def generate(out: Path) -> None:
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.glob("agents/**/*.proto"))
    (out / DESCRIPTOR_SET).parent.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        *(f"-I{p}" for p in _INCLUDES),
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
    if argv[1:] == ["check"]:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            stale = _differences(OUT, Path(tmp)) if OUT.exists() else [str(OUT)]
        if stale:
            print("gen/ is stale; run `make gen`:\n  " + "\n  ".join(stale), file=sys.stderr)
            return 1
        print("gen/ is up to date")
        return 0
    print("usage: python -m services.common.protogen gen|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
