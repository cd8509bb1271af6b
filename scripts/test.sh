#!/usr/bin/env bash
# Run every test of the workspace: unit tests, and the end-to-end tests of
# the binary on real frames against the Python references. Fetches what
# the tests need first (scripts/fetch_assets.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/frameflow/target}"

bash scripts/fetch_assets.sh
cargo test --workspace --all-targets "$@"
