#!/usr/bin/env bash
# `buf breaking` of the working tree's protos against main's (WIRE_JSON, buf.yaml): a change to
# the public contract is seen before it lands. Works in any clone: main is the local branch, or
# origin/main where only that exists. Main's protos are taken with `git archive` and given the
# vendored google/api files when main predates them, so the check never depends on the network.
set -euo pipefail
cd "$(dirname "$0")/.."
BUF=${BUF:-.venv/bin/buf}
base=${1:-main}
if ! git rev-parse -q --verify "$base^{commit}" >/dev/null; then
  base="origin/$base"
fi
against=$(mktemp -d)
trap 'rm -rf "$against"' EXIT
git archive "$base" buf.yaml proto | tar -x -C "$against"
mkdir -p "$against/proto/google/api"
for f in proto/google/api/*.proto; do
  [ -e "$against/$f" ] || cp "$f" "$against/$f"
done
"$BUF" breaking --against "$against"
