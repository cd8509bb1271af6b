#!/usr/bin/env python3
"""Reference perceptual hashes for frameflow's HASH operator: imagehash's
dhash (imagehash 4.3.2 on Pillow 12), and its dedup rule applied in Python.

Usage: python tests/reference/hash.py [--png OUT_DIR] [--dedup-ms N --max-distance D] IMG1 [IMG2 ...]
Prints one JSON object per image and line:
  {"image": path, "dhash": "16 hex digits", "duplicate_of": path or null}
The images are one camera's frames in time order, each named by its event
time in ms (1767225600000.png). A frame is a duplicate when its hash is at
most D bits from the last frame kept and it is at most N ms later.
With --png, each image is first written to OUT_DIR as a PNG (by Pillow),
and that PNG is hashed: both sides then read the same pixels.
"""
import argparse
import json
import os

import imagehash
from PIL import Image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--png")
    parser.add_argument("--dedup-ms", type=int)
    parser.add_argument("--max-distance", type=int, default=4)
    parser.add_argument("images", nargs="+")
    args = parser.parse_args()
    kept = None  # (path, hash, time)
    for path in args.images:
        if args.png:
            stem = os.path.splitext(os.path.basename(path))[0]
            out = os.path.join(args.png, stem + ".png")
            Image.open(path).convert("RGB").save(out)
            path = out
        h = imagehash.dhash(Image.open(path))
        duplicate_of = None
        if args.dedup_ms is not None:
            at = int(os.path.splitext(os.path.basename(path))[0])
            if kept and 0 <= at - kept[2] <= args.dedup_ms and h - kept[1] <= args.max_distance:
                duplicate_of = kept[0]
            else:
                kept = (path, h, at)
        print(json.dumps({"image": path, "dhash": str(h), "duplicate_of": duplicate_of}))


if __name__ == "__main__":
    main()
