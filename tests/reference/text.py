#!/usr/bin/env python3
"""Reference OCR for frameflow's TEXT operator: the rapidocr-onnxruntime
package itself (PP-OCRv4 on ONNX Runtime, its own pre- and post-processing
on OpenCV), with its default settings.

Usage: python tests/reference/text.py [--png OUT_DIR] IMG1 [IMG2 ...]
Prints one JSON object per image and line:
  {"image": path, "lines": [{"quad": [[x, y] * 4], "text": "...", "score": s}, ...]}
With --png, each image is first written to OUT_DIR as a PNG (by Pillow),
and that PNG is read: both sides then see the same pixels.
"""
import argparse
import json
import os

from PIL import Image
from rapidocr_onnxruntime import RapidOCR


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--png")
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    engine = RapidOCR()
    for path in args.images:
        if args.png:
            out = os.path.join(args.png, os.path.splitext(os.path.basename(path))[0] + ".png")
            Image.open(path).convert("RGB").save(out)
            path = out
        result, _ = engine(path)
        lines = [{"quad": quad, "text": text, "score": float(score)} for quad, text, score in result or []]
        print(json.dumps({"image": path, "lines": lines}))


if __name__ == "__main__":
    main()
