#!/usr/bin/env python3
"""Photos with QR codes in them, for the QR operator's test.

Usage: python tests/reference/qr_scenes.py IMAGES_DIR OUT_DIR
Writes OUT_DIR/*.jpg: each real photo of IMAGES_DIR (the set-up's darknet and
scikit-image photos) with one or two QR codes made by segno (a real encoder)
pasted in, as a printed code on a wall would be: scaled, some rotated a few
degrees or seen in slight perspective, then saved as JPEG (quality 90).
The payloads are varied (URLs, text, digits; versions 1-6) and listed per
image in OUT_DIR/payloads.json. The test compares frameflow with an
independent decoder (OpenCV's) reading the same JPEGs; the list only tells
a code OpenCV missed from one that is not there.
"""
import json
import os
import sys

import cv2
import numpy as np
import segno

PAYLOADS = [
    "https://frameflow.example/cam/gate-1",
    "frameflow",
    "0123456789",
    "Dock 7 - inbound pallets, lane B",
    "WIFI:T:WPA;S:warehouse;P:correct horse battery staple;;",
    "https://example.org/a/rather/long/path/that/makes/the/code/bigger?id=42&camera=north",
]


def code_image(text, module_px):
    qr = segno.make(text, micro=False, error="m")
    rows = [list(r) for r in qr.matrix_iter(scale=1, border=4)]
    grid = (1 - np.array(rows, dtype=np.uint8)) * 255
    img = cv2.resize(grid, None, fx=module_px, fy=module_px, interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def paste(scene, code, centre, angle, tilt):
    h, w = code.shape[:2]
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    # rotate about the centre, then squeeze one side (perspective)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    pts = []
    for x, y in src - [w / 2, h / 2]:
        squeeze = 1 - tilt * (y / h + 0.5) if tilt else 1
        x *= squeeze
        pts.append([centre[0] + c * x - s * y, centre[1] + s * x + c * y])
    dst = np.float32(pts)
    m = cv2.getPerspectiveTransform(src, dst)
    sh, sw = scene.shape[:2]
    warped = cv2.warpPerspective(code, m, (sw, sh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    mask = cv2.warpPerspective(np.full((h, w), 255, np.uint8), m, (sw, sh), flags=cv2.INTER_LINEAR)
    alpha = (mask.astype(np.float32) / 255)[..., None]
    return (scene * (1 - alpha) + warped * alpha).astype(np.uint8)


def main():
    images_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(7)
    names = sorted(n for n in os.listdir(images_dir) if n.endswith((".jpg", ".png")))
    payloads = {}
    for i, name in enumerate(names):
        out = os.path.splitext(name)[0] + ".jpg"
        scene = cv2.imread(os.path.join(images_dir, name))
        sh, sw = scene.shape[:2]
        count = 1 + i % 2
        for k in range(count):
            text = PAYLOADS[(i * 2 + k) % len(PAYLOADS)]
            payloads.setdefault(out, []).append(text)
            code = code_image(text, module_px=int(rng.integers(3, 6)))
            side = code.shape[0]
            if side > min(sh, sw) / (count + 0.5):
                f = min(sh, sw) / (count + 0.5) / side
                code = cv2.resize(code, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                side = code.shape[0]
            x = (k + 0.5) * sw / count
            y = sh / 2 + (rng.random() - 0.5) * (sh - side * 1.5) / 2
            angle = float(rng.uniform(-12, 12)) if i % 3 else 0.0
            tilt = float(rng.uniform(0.05, 0.15)) if i % 4 == 1 else 0.0
            scene = paste(scene, code, (x, y), angle, tilt)
        cv2.imwrite(os.path.join(out_dir, out), scene, [cv2.IMWRITE_JPEG_QUALITY, 90])
    with open(os.path.join(out_dir, "payloads.json"), "w") as f:
        json.dump(payloads, f, indent=1)


if __name__ == "__main__":
    main()
