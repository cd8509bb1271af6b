#!/usr/bin/env python3
"""Reference QR reading for frameflow's QR operator: OpenCV's QR detector.

Usage: python tests/reference/qr.py IMG1 [IMG2 ...]
Prints one JSON object per image and line:
  {"image": path, "codes": [{"text": ..., "box": [x, y, w, h]}]}
with the box the bounds of the code's four corners, in pixels. Codes OpenCV
finds but cannot read are left out, as frameflow leaves them out.
"""
import json
import sys

import cv2
import numpy as np


def main():
    detector = cv2.QRCodeDetector()
    for path in sys.argv[1:]:
        img = cv2.imread(path)
        codes = []
        ok, texts, points, _ = detector.detectAndDecodeMulti(img)
        if ok:
            for text, quad in zip(texts, points):
                if not text:
                    continue
                xs, ys = quad[:, 0], quad[:, 1]
                box = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())]
                codes.append({"text": text, "box": box})
        print(json.dumps({"image": path, "codes": codes}))


if __name__ == "__main__":
    main()
