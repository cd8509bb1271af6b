#!/usr/bin/env python3
"""Reference for frameflow's port of Pillow's resize (operators/src/pillow.rs):
Pillow itself, resizing one image in several ways.

Usage: python tests/reference/resize.py IMAGE OUT_DIR CASE...
CASE:  [SX:SY:SW:SH@]CHANNELS:WIDTH:HEIGHT:FILTER[:X:Y:CROP_W:CROP_H]
  SX:SY:SW:SH@ a part of the image to resize instead of the whole;
  CHANNELS 1 (the red channel) or 3 (RGB);
  FILTER bilinear or lanczos; with a window, the resized image cropped to it.
Writes the raw interleaved bytes of case i to OUT_DIR/i.raw.
"""
import os
import sys

from PIL import Image

FILTERS = {"bilinear": Image.BILINEAR, "lanczos": Image.LANCZOS}


def main():
    image = Image.open(sys.argv[1]).convert("RGB")
    modes = {1: image.getchannel("R"), 3: image}
    for i, case in enumerate(sys.argv[3:]):
        source = modes
        if "@" in case:
            part, case = case.split("@")
            sx, sy, sw, sh = map(int, part.split(":"))
            source = {c: m.crop((sx, sy, sx + sw, sy + sh)) for c, m in modes.items()}
        channels, w, h, name, *window = case.split(":")
        resized = source[int(channels)].resize((int(w), int(h)), FILTERS[name])
        if window:
            x, y, cw, ch = map(int, window)
            resized = resized.crop((x, y, x + cw, y + ch))
        with open(os.path.join(sys.argv[2], f"{i}.raw"), "wb") as out:
            out.write(resized.tobytes())


if __name__ == "__main__":
    main()
