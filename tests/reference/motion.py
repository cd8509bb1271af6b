#!/usr/bin/env python3
"""Reference moving regions for frameflow's MOTION operator: OpenCV's MOG2.

Usage: python tests/reference/motion.py VIDEO OUT_DIR FRAMES [--min-area 200]
Writes the first FRAMES frames of VIDEO to OUT_DIR as PNG files named by
their time (100 ms apart from 1767225600000, vtest.avi being 10 frames/s),
and prints one JSON object per frame and line:
  {"image": path, "regions": [[x, y, w, h, area], ...]}
from cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=16,
detectShadows=False) on the frames in order, the mask opened with a 3x3
kernel, and its 8-connected components of at least min-area pixels.
"""
import argparse
import json
import os

import cv2
import numpy as np


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("video")
    parser.add_argument("out")
    parser.add_argument("frames", type=int)
    parser.add_argument("--min-area", type=int, default=200)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    capture = cv2.VideoCapture(args.video)
    mog = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=16, detectShadows=False)
    kernel = np.ones((3, 3), np.uint8)
    for i in range(args.frames):
        ok, frame = capture.read()
        if not ok:
            break
        path = os.path.join(args.out, f"{1767225600000 + 100 * i}.png")
        cv2.imwrite(path, frame)
        # Read back, as frameflow reads it (PNG is lossless: the same pixels).
        frame = cv2.imread(path)
        mask = cv2.morphologyEx(mog.apply(frame), cv2.MORPH_OPEN, kernel)
        _, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
        regions = [[int(v) for v in s] for s in stats[1:] if s[4] >= args.min_area]
        print(json.dumps({"image": path, "regions": regions}))


if __name__ == "__main__":
    main()
