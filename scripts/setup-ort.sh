#!/usr/bin/env bash
# Place ONNX Runtime's shared library in .ort/lib/, from the pinned PyPI wheel, checked by
# sha256. Idempotent: does nothing when the library is already there with the right hash.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.31.1
WHEEL=onnxruntime-${VERSION}-cp311-cp311-manylinux_2_28_x86_64.whl
WHEEL_SHA256=5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f
LIB=libonnxruntime.so.${VERSION}
LIB_SHA256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
DEST=.ort/lib

if [ -f "$DEST/$LIB" ] && echo "$LIB_SHA256  $DEST/$LIB" | sha256sum --check --quiet 2>/dev/null; then
    echo "setup-ort: $DEST/$LIB present"
    exit 0
fi

command -v python3 >/dev/null || { echo "setup-ort: python3 with pip is needed to fetch ONNX Runtime" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup-ort: fetching $WHEEL from PyPI"
python3 -m pip download --quiet --no-deps --only-binary :all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
    -d "$tmp" "onnxruntime==$VERSION"
echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet || {
    echo "setup-ort: $WHEEL does not have the pinned sha256" >&2; exit 1; }
python3 - "$tmp/$WHEEL" "$tmp" "$LIB" <<'PY'
import sys, zipfile
wheel, out, lib = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    z.extract(f"onnxruntime/capi/{lib}", out)
PY
mkdir -p "$DEST"
echo "$LIB_SHA256  $tmp/onnxruntime/capi/$LIB" | sha256sum --check --quiet || {
    echo "setup-ort: $LIB does not have the pinned sha256" >&2; exit 1; }
mv "$tmp/onnxruntime/capi/$LIB" "$DEST/$LIB"
echo "setup-ort: installed $DEST/$LIB"
