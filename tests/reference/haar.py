#!/usr/bin/env python3
"""Reference Haar face detection for frameflow's FACES(model => 'haar'):
OpenCV 4's CascadeClassifier with haarcascade_frontalface_default.xml and
detectMultiScale's defaults (scale factor 1.1, 3 neighbours), on the grey
image (cv2.cvtColor BGR2GRAY). OpenCV 5 has no CascadeClassifier, so the
set-up puts OpenCV 4 in ASSETS/opencv4, which goes first on the path.

Usage: python tests/reference/haar.py OPENCV4_DIR IMG1 [IMG2 ...]
Prints one JSON object per image and line: {"image": path, "faces": [[x, y, w, h], ...]}
"""
import json
import os
import sys

sys.path.insert(0, sys.argv[1])
import cv2  # noqa: E402  (OpenCV 4, from the path just given)


def main():
    assert cv2.__version__.startswith("4."), cv2.__version__
    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    for path in sys.argv[2:]:
        grey = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2GRAY)
        faces = cascade.detectMultiScale(grey)
        print(json.dumps({"image": path, "faces": [list(map(int, f)) for f in faces]}))


if __name__ == "__main__":
    main()
