#!/usr/bin/env bash
# `make demo`: Tabir end to end on this machine, in a temporary folder, with a throwaway
# passphrase. Sets up ONNX Runtime and builds if needed, creates a key domain, starts a local
# server, registers a device and an auditor, enrols one person from the bundled photos,
# verifies a second photo of the same person (match) and a photo of another person (no match),
# identifies, deletes the enrolment, verifies the audit log, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-ort.sh >/dev/null
echo "== building tabir (the first build compiles tfhe: several minutes)"
# The whole workspace, tests included: `make test` afterwards then builds nothing more.
cargo build --quiet --workspace --all-targets
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
TABIR="$TARGET_DIR/debug/tabir"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tabir-demo.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A throwaway passphrase for the demo's sealed keys; real custodians are prompted.
export TABIR_PASSPHRASE="demo-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export TABIR_BUNDLE_PASSPHRASE="$TABIR_PASSPHRASE"
export TABIR_KEYS_DIR="$WORK/keys"
DOMAIN=demo-bansos
NIK=3201014101900001
PHOTOS=tests/images

# step TITLE COMMAND...: run it, print its output indented and how long it took. A non-zero
# exit status other than "no match" (1 from verify/identify) stops the demo.
step() {
    local title="$1"; shift
    local start end status=0
    start=$(date +%s%N)
    local output
    output="$("$@" 2>&1)" || status=$?
    end=$(date +%s%N)
    printf '\n-- %s  [%d ms]\n' "$title" $(( (end - start) / 1000000 ))
    printf '%s\n' "$output" | sed 's/^/   /'
    LAST_STATUS=$status
    if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
        echo "demo failed at: $title (exit status $status)" >&2
        exit "$status"
    fi
}

step "custodian: create key domain $DOMAIN (secret key sealed at rest)" \
    "$TABIR" custody init --domain "$DOMAIN"

"$TABIR" server --data "$WORK/server" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 300); do
    grep -q '^bootstrap token:' "$WORK/server.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 2; }
    sleep 0.1
done
SERVER_URL="$(sed -n 's/^listening on //p' "$WORK/server.out")"
TOKEN="$(sed -n 's/^bootstrap token: //p' "$WORK/server.out")"
SERVER_KEY="$(sed -n 's/^audit public key: //p' "$WORK/server.out")"
export TABIR_SERVER="$SERVER_URL"
printf '\n-- server started on %s (SQLite in %s)\n' "$SERVER_URL" "$WORK/server"

step "custodian: register with the server (one-time token)" \
    "$TABIR" custody bootstrap --token "$TOKEN"
step "custodian: register the domain's evaluation keys" \
    "$TABIR" custody register --domain "$DOMAIN"
step "custodian: issue an office device key" \
    "$TABIR" custody device add --domain "$DOMAIN" --label "demo office, counter 1" --out "$WORK/device"
step "custodian: issue an auditor key" \
    "$TABIR" custody device add --domain "$DOMAIN" --label "demo auditor" --role auditor --out "$WORK/auditor"

DEVICE=(--config "$WORK/device/tabir.toml")
step "device: enrol $NIK from obama.jpg" \
    "$TABIR" enroll "${DEVICE[@]}" --subject "$NIK" "$PHOTOS/obama.jpg"
step "device: verify obama2.jpg (same person)" \
    "$TABIR" verify "${DEVICE[@]}" --subject "$NIK" "$PHOTOS/obama2.jpg"
GENUINE=$LAST_STATUS
step "device: verify biden.jpg (another person)" \
    "$TABIR" verify "${DEVICE[@]}" --subject "$NIK" "$PHOTOS/biden.jpg"
IMPOSTOR=$LAST_STATUS
step "device: identify obama3.jpg against the whole domain" \
    "$TABIR" identify "${DEVICE[@]}" "$PHOTOS/obama3.jpg"
step "device: delete the enrolment of $NIK" \
    "$TABIR" delete "${DEVICE[@]}" --subject "$NIK"
step "auditor: export the audit log" \
    "$TABIR" audit export --config "$WORK/auditor/tabir.toml" --out "$WORK/audit.json"
step "auditor: verify the log's hash chain and signatures" \
    "$TABIR" audit verify --log "$WORK/audit.json" --server-key "$SERVER_KEY"
AUDIT=$LAST_STATUS

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
printf '\n-- server stopped\n'

if [ "$GENUINE" -eq 0 ] && [ "$IMPOSTOR" -eq 1 ] && [ "$AUDIT" -eq 0 ]; then
    echo "demo: OK (genuine photo: match; impostor photo: no match; audit log verifies)"
else
    echo "demo: FAILED (genuine exit $GENUINE, impostor exit $IMPOSTOR, audit exit $AUDIT)" >&2
    exit 1
fi
