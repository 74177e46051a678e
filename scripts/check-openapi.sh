#!/usr/bin/env bash
# Validate the OpenAPI document a freshly started tabir-server serves, with
# openapi-spec-validator (pinned, from PyPI, in a virtual environment under the target folder).
set -euo pipefail
cd "$(dirname "$0")/.."

VALIDATOR=openapi-spec-validator==0.9.0
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
VENV="$TARGET_DIR/openapi-venv"

command -v python3 >/dev/null || { echo "check-openapi: python3 is needed" >&2; exit 1; }
if [ ! -x "$VENV/bin/openapi-spec-validator" ]; then
    echo "check-openapi: installing $VALIDATOR into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$VALIDATOR"
fi

cargo build --quiet -p tabir-server
work=$(mktemp -d)
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
"$TARGET_DIR/debug/tabir-server" --data "$work/data" --master-key "$work/master.key" \
    --listen 127.0.0.1:0 >"$work/out" 2>"$work/log" &
server_pid=$!
for _ in $(seq 1 300); do
    grep -q '^audit public key:' "$work/out" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/log" >&2; exit 1; }
    sleep 0.1
done
url="$(sed -n 's/^listening on //p' "$work/out")"
"$VENV/bin/python" - "$url/v1/openapi.json" <<'PY'
import json, sys, urllib.request
from openapi_spec_validator import validate
document = json.load(urllib.request.urlopen(sys.argv[1]))
validate(document)
operations = sum(len(item) for item in document["paths"].values())
print(f"check-openapi: OpenAPI {document['openapi']} document valid: {operations} operations, "
      f"{len(document['components']['schemas'])} schemas")
PY
