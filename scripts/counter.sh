#!/usr/bin/env bash
# `make counter`: the counter app on this machine, to look at after `make demo`. Starts a local
# tabir-server in a temporary folder, registers a custodian, creates a key domain, issues one
# office device and one auditor, then runs `tabir office serve` for the device (open the printed
# address in a browser with a camera) and `tabir audit serve` for the auditor. Ctrl-C stops
# everything and removes the folder. Throwaway passphrase, as in the demo.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-ort.sh >/dev/null
echo "== building tabir and tabir-server"
cargo build --quiet -p tabir-cli -p tabir-server
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$PWD/$TARGET_DIR" ;; esac
TABIR="$TARGET_DIR/debug/tabir"
TABIR_SERVER="$TARGET_DIR/debug/tabir-server"
LISTEN="${COUNTER_LISTEN:-127.0.0.1:8080}"
AUDITOR_LISTEN="${AUDITOR_LISTEN:-127.0.0.1:8081}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tabir-counter.XXXXXX")"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

export TABIR_PASSPHRASE="counter-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export TABIR_BUNDLE_PASSPHRASE="$TABIR_PASSPHRASE"
export TABIR_KEYS_DIR="$WORK/keys"

"$TABIR_SERVER" --data "$WORK/server" --master-key "$WORK/server-master.key" --listen 127.0.0.1:0 \
    >"$WORK/server.out" 2>"$WORK/server.log" &
PIDS+=($!)
for _ in $(seq 1 300); do
    grep -q '^audit public key:' "$WORK/server.out" 2>/dev/null && break
    sleep 0.1
done
export TABIR_SERVER="$(sed -n 's/^listening on //p' "$WORK/server.out")"
SERVER_KEY="$(sed -n 's/^audit public key: //p' "$WORK/server.out")"
"$TABIR" custody bootstrap --token-file "$(sed -n 's/^bootstrap token file: //p' "$WORK/server.out")" >/dev/null
"$TABIR" custody init --domain counter-demo >/dev/null
"$TABIR" custody device add --domain counter-demo --label "counter 1" --out "$WORK/device" >/dev/null
"$TABIR" custody device add --domain counter-demo --label "auditor" --role auditor --out "$WORK/auditor" >/dev/null
echo "== server on $TABIR_SERVER; key domain counter-demo; device and auditor bundles in $WORK"

"$TABIR" audit serve --config "$WORK/auditor/tabir.toml" --server-key "$SERVER_KEY" \
    --listen "$AUDITOR_LISTEN" &
PIDS+=($!)
echo "== counter app: open http://$LISTEN/ (Ctrl-C stops everything)"
"$TABIR" office serve --config "$WORK/device/tabir.toml" --listen "$LISTEN" &
PIDS+=($!)
wait
