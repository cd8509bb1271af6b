#!/usr/bin/env python3
"""Reference ImageNet classification for frameflow's CLASSIFY operator:
torchvision's evaluation transform for its ImageNet weights, done the way
torchvision does it on a PIL image (Resize(256) -> CenterCrop(224) ->
ToTensor -> Normalize), then the converted MobileNetV2 on ONNX Runtime, a
softmax, and the top k.

Usage: python tests/reference/classify.py MODELS_DIR TOP_K IMG1 [IMG2 ...]
Prints one JSON object per image and line:
  {"image": path, "top": [{"class": i, "label": "...", "p": 0.93}, ...]}
"""
import json
import os
import sys

import numpy as np
import onnxruntime
from PIL import Image


def transform(image, card):
    # torchvision.transforms.Resize(256): the shorter side to 256, the longer
    # int(256 * long / short), Pillow's bilinear filter
    w, h = image.size
    short, long = (w, h) if w <= h else (h, w)
    size = card["resize"]
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    image = image.resize((new_w, new_h), Image.BILINEAR)
    # CenterCrop(224): offsets rounded as Python rounds
    crop = card["crop"]
    top, left = int(round((new_h - crop) / 2.0)), int(round((new_w - crop) / 2.0))
    image = image.crop((left, top, left + crop, top + crop))
    x = np.asarray(image, dtype=np.float32) / 255.0
    x = (x - np.array(card["mean"], np.float32)) / np.array(card["std"], np.float32)
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def main():
    models, top_k, images = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    card = json.load(open(os.path.join(models, "mobilenet.json")))
    labels = [line.rstrip("\n") for line in open(os.path.join(models, card["labels"]))]
    session = onnxruntime.InferenceSession(os.path.join(models, card["model"]), providers=["CPUExecutionProvider"])
    for path in images:
        logits = session.run(None, {"input": transform(Image.open(path).convert("RGB"), card)})[0][0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = np.argsort(-p, kind="stable")[:top_k]
        print(json.dumps({"image": path, "top": [{"class": int(i), "label": labels[i], "p": float(p[i])} for i in top]}))


if __name__ == "__main__":
    main()
