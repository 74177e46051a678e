#!/usr/bin/env bash
# `make demo`: Tabir end to end on this machine, in a temporary folder, with a throwaway
# passphrase. Sets up ONNX Runtime and builds if needed, starts a local server (the separate
# tabir-server binary), registers the custodian, creates a key domain whose secret key is split
# into shares and wiped at once, issues two office devices and an auditor (each with its own
# share), enrols one person from the bundled photos, verifies a second photo of the same person
# (match) and a photo of another person (no match), identifies, revokes a device (its requests
# and its share are dead from then on), checks every reported decision against the escrow as
# the auditor, verifies the audit log, and stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-ort.sh >/dev/null
echo "== building tabir and tabir-server (the first build compiles tfhe: several minutes)"
# The whole workspace, tests included: `make test` afterwards then builds nothing more.
cargo build --quiet --workspace --all-targets
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
TABIR="$TARGET_DIR/debug/tabir"
TABIR_SERVER="$TARGET_DIR/debug/tabir-server"

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
# exit status other than "no match" (1 from verify/identify) stops the demo, unless the step
# is expected to be refused (refused_step).
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
    if [ "$status" -ne 0 ] && [ "$status" -ne 1 ] && [ "${EXPECT_REFUSAL:-0}" -ne 1 ]; then
        echo "demo failed at: $title (exit status $status)" >&2
        exit "$status"
    fi
}

"$TABIR_SERVER" --data "$WORK/server" --master-key "$WORK/server-master.key" --listen 127.0.0.1:0 \
    >"$WORK/server.out" 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 300); do
    grep -q '^audit public key:' "$WORK/server.out" 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 2; }
    sleep 0.1
done
SERVER_URL="$(sed -n 's/^listening on //p' "$WORK/server.out")"
TOKEN_FILE="$(sed -n 's/^bootstrap token file: //p' "$WORK/server.out")"
SERVER_KEY="$(sed -n 's/^audit public key: //p' "$WORK/server.out")"
export TABIR_SERVER="$SERVER_URL"
printf '\n-- tabir-server started on %s (SQLite in %s; master key outside it, in %s)\n' \
    "$SERVER_URL" "$WORK/server" "$WORK/server-master.key"

step "custodian: register with the server (one-time token from the server's 0600 file)" \
    "$TABIR" custody bootstrap --token-file "$TOKEN_FILE"
step "custodian: create key domain $DOMAIN (secret key split into shares and wiped; registered)" \
    "$TABIR" custody init --domain "$DOMAIN"
step "custodian: issue office device 1 (its own decryption share)" \
    "$TABIR" custody device add --domain "$DOMAIN" --label "demo office, counter 1" --out "$WORK/device"
step "custodian: issue office device 2" \
    "$TABIR" custody device add --domain "$DOMAIN" --label "demo office, counter 2" --out "$WORK/device2"
step "custodian: issue an auditor key (its own share, for the escrow check)" \
    "$TABIR" custody device add --domain "$DOMAIN" --label "demo auditor" --role auditor --out "$WORK/auditor"
step "who holds what: no file anywhere holds the domain's secret key" \
    "$TABIR" custody status

DEVICE=(--config "$WORK/device/tabir.toml")
step "device 1: enrol $NIK from obama.jpg (template encrypted with the public key)" \
    "$TABIR" enroll "${DEVICE[@]}" --subject "$NIK" "$PHOTOS/obama.jpg"
step "device 1: verify obama2.jpg (same person)" \
    "$TABIR" verify "${DEVICE[@]}" --subject "$NIK" "$PHOTOS/obama2.jpg"
GENUINE=$LAST_STATUS
step "device 1: verify biden.jpg (another person)" \
    "$TABIR" verify "${DEVICE[@]}" --subject "$NIK" "$PHOTOS/biden.jpg"
IMPOSTOR=$LAST_STATUS
step "device 1: identify obama3.jpg against the whole domain" \
    "$TABIR" identify "${DEVICE[@]}" "$PHOTOS/obama3.jpg"
step "device 2: verify obama2.jpg" \
    "$TABIR" verify --config "$WORK/device2/tabir.toml" --subject "$NIK" "$PHOTOS/obama2.jpg"
DEVICE2_ID="$("$TABIR" custody status --json | python3 -c 'import json,sys; d=json.load(sys.stdin)["domains"][0]["devices"]; print([x["key_id"] for x in d if x["label"].endswith("counter 2")][0])')"
step "custodian: revoke device 2 (the server deletes its half of device 2's share pair)" \
    "$TABIR" custody device revoke --domain "$DOMAIN" --key-id "$DEVICE2_ID"
EXPECT_REFUSAL=1 step "device 2 (revoked): verify again; refused, and its share opens nothing now" \
    "$TABIR" verify --config "$WORK/device2/tabir.toml" --subject "$NIK" "$PHOTOS/obama2.jpg"
REVOKED=$LAST_STATUS
step "auditor: check every reported decision against the escrowed results" \
    "$TABIR" audit decisions --config "$WORK/auditor/tabir.toml" --server-key "$SERVER_KEY"
DECISIONS=$LAST_STATUS
step "device 1: delete the enrolment of $NIK" \
    "$TABIR" delete "${DEVICE[@]}" --subject "$NIK"
step "auditor: export the audit log" \
    "$TABIR" audit export --config "$WORK/auditor/tabir.toml" --out "$WORK/audit.json"
step "auditor: verify the log's hash chain and signatures, and that it extends the checkpoint" \
    "$TABIR" audit verify --log "$WORK/audit.json" --server-key "$SERVER_KEY" \
    --checkpoint "$WORK/audit.json.checkpoint.json"
AUDIT=$LAST_STATUS

kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
printf '\n-- server stopped\n'

if [ "$GENUINE" -eq 0 ] && [ "$IMPOSTOR" -eq 1 ] && [ "$REVOKED" -eq 2 ] && [ "$DECISIONS" -eq 0 ] && [ "$AUDIT" -eq 0 ]; then
    echo "demo: OK (genuine photo: match; impostor photo: no match; revoked device refused; every reported decision matches the escrow; audit log verifies)"
else
    echo "demo: FAILED (genuine exit $GENUINE, impostor exit $IMPOSTOR, revoked exit $REVOKED, decisions exit $DECISIONS, audit exit $AUDIT)" >&2
    exit 1
fi
