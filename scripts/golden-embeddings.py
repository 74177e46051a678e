#!/usr/bin/env python3
"""Reference detections and embeddings of the fixture photos, computed with OpenCV's own
face pipeline (FaceDetectorYN + FaceRecognizerSF), for the golden tests of tabir-face.

The detector sees the same 640x640 letterbox the Rust pipeline builds (scale the longer side
to 640 with bilinear interpolation, image at the top-left, black padding), because the
committed YuNet has a fixed input size. Coordinates are mapped back to the original photo;
alignment and embedding run on the original photo, as in the Rust pipeline.

Usage: scripts/golden-embeddings.py   (needs opencv-python-headless and numpy)
Writes tests/golden/opencv_reference.json.
"""
import json
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg"]
SIDE = 640


def letterbox(image):
    h, w = image.shape[:2]
    scale = SIDE / max(w, h)
    nw, nh = round(w * scale), round(h * scale)
    canvas = np.zeros((SIDE, SIDE, 3), dtype=np.uint8)
    canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return canvas, scale


def main():
    detector = cv2.FaceDetectorYN.create(
        str(ROOT / "models/face_detection_yunet_2023mar.onnx"), "", (SIDE, SIDE), 0.6, 0.3, 5000)
    recognizer = cv2.FaceRecognizerSF.create(
        str(ROOT / "models/face_recognition_sface_2021dec.onnx"), "")
    out = {"opencv": cv2.__version__, "images": {}}
    for name in IMAGES:
        image = cv2.imread(str(ROOT / "tests/images" / name))
        boxed, scale = letterbox(image)
        _, faces = detector.detect(boxed)
        best = faces[np.argmax(faces[:, -1])].copy()
        best[:14] /= scale
        aligned = recognizer.alignCrop(image, best)
        feature = recognizer.feature(aligned).flatten().astype(np.float64)
        out["images"][name] = {
            "faces": int(len(faces)),
            "box": [float(v) for v in best[:4]],
            "landmarks": [[float(best[4 + 2 * j]), float(best[5 + 2 * j])] for j in range(5)],
            "score": float(best[14]),
            "embedding": [float(v) for v in feature / np.linalg.norm(feature)],
        }
        print(name, len(faces), "faces, score", round(float(best[14]), 4))
    target = ROOT / "tests/golden/opencv_reference.json"
    target.write_text(json.dumps(out, indent=1) + "\n")
    emb = {k: np.array(v["embedding"]) for k, v in out["images"].items()}
    for a in IMAGES:
        print(a, " ".join(f"{b}={emb[a] @ emb[b]:.3f}" for b in IMAGES))


if __name__ == "__main__":
    main()
