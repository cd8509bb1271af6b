"""Baseline for P5: the usual Python ingestion endpoint, on the standard
library. A threaded HTTP server that does what frameflow's HTTP source does
at the door: checks the HS256 token (signature and expiry) and the camera
it allows, the media type and the image's magic bytes, and puts the frame
in a bounded queue (503 when full) that a consumer thread drains, decoding
each frame with OpenCV as frameflow decodes each in its dataflow.

Usage: p5_http_ingest.py SECRET_FILE  -- prints `port=N` once listening.
"""

import base64

import cv2
import numpy as np
import hashlib
import hmac
import json
import queue
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = open(sys.argv[1], "rb").read().strip()
FRAMES = queue.Queue(maxsize=256)
MAGIC = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}


def b64(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def claims(token):
    header, payload, signature = token.split(".")
    expected = hmac.new(SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, b64(signature)):
        return None
    body = json.loads(b64(payload))
    return body if body["exp"] > time.time() else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        camera = self.path.rsplit("/", 1)[-1]
        auth = self.headers.get("Authorization", "")
        token = claims(auth[7:]) if auth.startswith("Bearer ") else None
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        if token is None:
            return self.answer(401, {"error": "bad token"})
        if camera not in token["sources"] and "*" not in token["sources"]:
            return self.answer(403, {"error": "camera not allowed"})
        magic = MAGIC.get(self.headers.get("Content-Type", ""))
        if magic is None:
            return self.answer(415, {"error": "unsupported type"})
        if not body.startswith(magic):
            return self.answer(400, {"error": "not that image"})
        frame_id = hashlib.sha1(body).hexdigest()[:16]
        try:
            FRAMES.put_nowait((token["tenant"], camera, body))
        except queue.Full:
            return self.answer(503, {"error": "at capacity"})
        self.answer(202, {"frame_id": frame_id})

    def log_message(self, *args):
        pass


def drain():
    while True:
        _, _, body = FRAMES.get()
        cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)


threading.Thread(target=drain, daemon=True).start()
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"port={server.server_address[1]}", flush=True)
server.serve_forever()
