#!/usr/bin/env python3
"""Reference YOLOv3 pre/post-processing that frameflow's Rust detector is checked against.

Usage: python tests/reference/yolo.py MODELS_DIR IMG1 [IMG2 ...] [--min-confidence 0.3] [--nms-iou 0.45]
Prints one JSON object per image and line:
  {"image": path, "width": W, "height": H,
   "detections": [{"label", "confidence", "x", "y", "w", "h"}]}   boxes in original-image pixels, x,y top-left.

Written independently of the Rust code (numpy + OpenCV + ONNX Runtime) so the two
can disagree; the semantics are darknet's and must stay in step with the Rust side:
  1. decode: cv2.imread (BGR) -> RGB.
  2. letterbox: darknet sizing (integer division), cv2.resize INTER_LINEAR, centred on
     a canvas filled with the manifest's letterbox_fill (0.5), values /255, NCHW float32;
     with --letterbox rect the canvas is the resized image rounded up to the manifest's
     size_multiple instead of the full square.
  3. heads: [255,G,G] -> [3,85,G,G]; box centre (c + sig(tx))/G*416, size exp(tw)*anchor;
     score = sig(obj) * sig(class); one candidate per class with score >= min_confidence.
  4. map back to original pixels (undo offset, divide by new_w/W and new_h/H), convert to
     top-left, clip to the image; candidates left with no area are dropped.
  5. NMS per label on the clipped boxes: stable sort by score desc (ties keep decode order:
     head, anchor, row, col), drop a box whose IoU with a kept one is > nms_iou.
  Box centres are (c + sig(tx))/G * net side, where net side is the canvas actually fed.
  6. output sorted by (label, -confidence), stable.
"""
import argparse
import json
import os
import sys

import cv2
import numpy as np
import onnxruntime as ort


def load_manifest(models_dir):
    with open(os.path.join(models_dir, "objects.json")) as f:
        return json.load(f)


def open_session(models_dir, manifest, threads=None):
    """Sequential CPU session: the benchmark's thread count must mean what it says."""
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(os.path.join(models_dir, manifest["onnx"]), opts,
                                providers=["CPUExecutionProvider"])


def read_rgb(path):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot decode {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def letterbox(rgb, net_w, net_h, fill, multiple=None):
    """Darknet's letterbox_image: integer sizing, so the Rust side can match it pixel for pixel.

    With `multiple` (rectangular mode) the canvas shrinks to the resized image rounded up
    to that multiple, e.g. 416x256 for a 640x360 frame.
    Returns (tensor [1,3,net_h,net_w] float32, (new_w, new_h, dx, dy)).
    """
    h, w = rgb.shape[:2]
    if net_w / w < net_h / h:  # wider than the net: fit the width
        new_w, new_h = net_w, (h * net_w) // w
    else:
        new_w, new_h = (w * net_h) // h, net_h
    if multiple:
        net_w = min(net_w, -(-new_w // multiple) * multiple)
        net_h = min(net_h, -(-new_h // multiple) * multiple)
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((net_h, net_w, 3), fill, np.float32)
    dx, dy = (net_w - new_w) // 2, (net_h - new_h) // 2
    canvas[dy:dy + new_h, dx:dx + new_w] = resized.astype(np.float32) / 255.0
    return canvas.transpose(2, 0, 1)[None].copy(), (new_w, new_h, dx, dy)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def decode_heads(outputs, manifest, min_confidence, net_w, net_h):
    """Darknet-style candidates in letterboxed-input pixels: (cx, cy, w, h, class, score) arrays."""
    n_cls = len(manifest["labels"])
    boxes, classes, scores = [], [], []
    for head, out in zip(manifest["heads"], outputs):
        gh, gw = out.shape[-2:]
        t = out.reshape(len(head["anchors"]), 5 + n_cls, gh, gw).astype(np.float64)
        anchors = np.array(head["anchors"], np.float64)
        cols, rows = np.meshgrid(np.arange(gw), np.arange(gh))
        cx = (cols + sigmoid(t[:, 0])) / gw * net_w
        cy = (rows + sigmoid(t[:, 1])) / gh * net_h
        bw = np.exp(t[:, 2]) * anchors[:, 0, None, None]
        bh = np.exp(t[:, 3]) * anchors[:, 1, None, None]
        score = sigmoid(t[:, 4])[:, None] * sigmoid(t[:, 5:])  # [A, C, gh, gw]
        a, c, r, k = np.nonzero(score >= min_confidence)
        # np.nonzero walks class before row/col; re-sort to decode order (anchor, row, col, class)
        order = np.lexsort((c, k, r, a))
        a, c, r, k = a[order], c[order], r[order], k[order]
        boxes.append(np.stack([cx[a, r, k], cy[a, r, k], bw[a, r, k], bh[a, r, k]], axis=1))
        classes.append(c)
        scores.append(score[a, c, r, k])
    return np.concatenate(boxes), np.concatenate(classes), np.concatenate(scores)


def to_image_boxes(boxes, letterbox_info, width, height):
    """Letterboxed centre boxes -> clipped top-left boxes [x, y, w, h] in original pixels."""
    new_w, new_h, dx, dy = letterbox_info
    sx, sy = new_w / width, new_h / height
    cx, cy = (boxes[:, 0] - dx) / sx, (boxes[:, 1] - dy) / sy
    bw, bh = boxes[:, 2] / sx, boxes[:, 3] / sy
    x1 = np.clip(cx - bw / 2, 0, width)
    y1 = np.clip(cy - bh / 2, 0, height)
    x2 = np.clip(cx + bw / 2, 0, width)
    y2 = np.clip(cy + bh / 2, 0, height)
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def iou(a, b):
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def nms(boxes, classes, scores, nms_iou):
    """Greedy per-class NMS; returns kept indices."""
    keep = []
    for cls in np.unique(classes):
        idx = np.nonzero(classes == cls)[0]
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        kept = []
        for i in idx:
            if all(iou(boxes[i], boxes[j]) <= nms_iou for j in kept):
                kept.append(i)
        keep += kept
    return keep


def detect(session, manifest, rgb, min_confidence=0.3, nms_iou=0.45, rect=False):
    """Full pipeline on one RGB image; returns detections sorted by (label, -confidence).

    rect: letterbox only to the model's size multiple (rectangular inference)."""
    inp = manifest["input"]
    height, width = rgb.shape[:2]
    multiple = inp.get("size_multiple") if rect else None
    tensor, info = letterbox(rgb, inp["width"], inp["height"], inp["letterbox_fill"], multiple)
    outputs = session.run([h["output"] for h in manifest["heads"]], {inp["name"]: tensor})
    net_h, net_w = tensor.shape[2:]
    return postprocess([o[0] for o in outputs], manifest, info, width, height, min_confidence, nms_iou, net_w, net_h)


def postprocess(outputs, manifest, info, width, height, min_confidence, nms_iou, net_w, net_h):
    boxes, classes, scores = decode_heads(outputs, manifest, min_confidence, net_w, net_h)
    boxes = to_image_boxes(boxes, info, width, height)
    ok = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
    boxes, classes, scores = boxes[ok], classes[ok], scores[ok]
    labels = manifest["labels"]
    dets = [{"label": labels[classes[i]], "confidence": float(scores[i]),
             "x": float(boxes[i, 0]), "y": float(boxes[i, 1]), "w": float(boxes[i, 2]), "h": float(boxes[i, 3])}
            for i in nms(boxes, classes, scores, nms_iou)]
    dets.sort(key=lambda d: (d["label"], -d["confidence"]))
    return dets


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models_dir")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--min-confidence", type=float, default=0.3)
    ap.add_argument("--nms-iou", type=float, default=0.45)
    ap.add_argument("--letterbox", choices=["square", "rect"], default="square")
    args = ap.parse_args()
    manifest = load_manifest(args.models_dir)
    session = open_session(args.models_dir, manifest)
    for path in args.images:
        rgb = read_rgb(path)
        dets = detect(session, manifest, rgb, args.min_confidence, args.nms_iou, args.letterbox == "rect")
        for d in dets:
            d["confidence"] = round(d["confidence"], 5)
            for k in "xywh":
                d[k] = round(d[k], 2)
        print(json.dumps({"image": path, "width": rgb.shape[1], "height": rgb.shape[0], "detections": dets}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
