#!/usr/bin/env python3
"""Cut the quickstart's two "cameras" out of one public-domain street film.

Usage: python scripts/cut_frames.py VIDEO FRAMES_DIR
Writes FRAMES_DIR/<camera>/<epoch_ms>.jpg for each camera below.

Both cameras share one base time, as if two cameras filmed the same street at
once; file names are event times so the engine can replay them as a timed
stream. Frames are read sequentially (not seeked) because seeking in H.264 is
not frame-exact, and the frame set must be the same on every machine.
"""
import os
import sys

import cv2

BASE_MS = 1767225600000  # 2026-01-01T00:00:00Z
FPS = 30.0               # the film's frame rate
STEP = 6                 # keep every 6th frame: 5 fps
COUNT = 120              # frames per camera: 24 s of film
CAMERAS = {"market-a": 0, "market-b": 900}  # camera -> first video frame
JPEG_QUALITY = 90


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    video, out_dir = sys.argv[1:]
    wanted = {}  # video frame index -> [(camera, epoch_ms)]
    for cam, first in CAMERAS.items():
        os.makedirs(os.path.join(out_dir, cam), exist_ok=True)
        for k in range(COUNT):
            rel = k * STEP
            wanted.setdefault(first + rel, []).append((cam, BASE_MS + round(rel * 1000 / FPS)))
    cap = cv2.VideoCapture(video)
    if not cap.isOpened():
        sys.exit(f"cannot open {video}")
    last, index, written = max(wanted), 0, 0
    while index <= last:
        ok, frame = cap.read()
        if not ok:
            sys.exit(f"{video} ended at frame {index}, need {last + 1} frames")
        for cam, ms in wanted.get(index, []):
            path = os.path.join(out_dir, cam, f"{ms:013d}.jpg")
            if not cv2.imwrite(path, frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
                sys.exit(f"cannot write {path}")
            written += 1
        index += 1
    print(f"wrote {written} frames ({frame.shape[1]}x{frame.shape[0]}) for {', '.join(CAMERAS)} under {out_dir}")


if __name__ == "__main__":
    main()
