#!/usr/bin/env python3
"""Python baseline for the detection benchmark: the loop a user would write without frameflow.

Usage: python benches/baselines/p3_detect.py MODELS_DIR FRAMES_DIR [--threads N] [--min-confidence 0.3]
Prints one line: baseline frames=<n> seconds=<s> fps=<f> detections=<d>

It does the same work per frame as frameflow's detect pipeline (JPEG decode, letterbox,
ONNX Runtime inference, head decode, NMS) with the same ONNX Runtime build, so the
comparison measures the pipelines, not the inference engines. The reference module's
functions are reused so both sides compute the same detections. One frame is run first,
untimed, so session warm-up is not counted.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
import yolo  # noqa: E402


def frame_paths(frames_dir):
    return [os.path.join(frames_dir, cam, f)
            for cam in sorted(os.listdir(frames_dir)) if os.path.isdir(os.path.join(frames_dir, cam))
            for f in sorted(os.listdir(os.path.join(frames_dir, cam))) if f.endswith(".jpg")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models_dir")
    ap.add_argument("frames_dir")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--min-confidence", type=float, default=0.3)
    ap.add_argument("--letterbox", choices=["square", "rect"], default="square",
                    help="square: darknet's full 416x416 input (the usual pipeline); "
                         "rect: only to the stride multiple, as frameflow does by default")
    args = ap.parse_args()
    rect = args.letterbox == "rect"

    manifest = yolo.load_manifest(args.models_dir)
    session = yolo.open_session(args.models_dir, manifest, threads=args.threads)
    paths = frame_paths(args.frames_dir)
    if not paths:
        sys.exit(f"no frames under {args.frames_dir}")
    yolo.detect(session, manifest, yolo.read_rgb(paths[0]), args.min_confidence, rect=rect)

    detections = 0
    start = time.perf_counter()
    for path in paths:
        detections += len(yolo.detect(session, manifest, yolo.read_rgb(path), args.min_confidence, rect=rect))
    seconds = time.perf_counter() - start
    print(f"baseline frames={len(paths)} seconds={seconds:.3f} fps={len(paths) / seconds:.2f} detections={detections}")


if __name__ == "__main__":
    main()
