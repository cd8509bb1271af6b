#!/usr/bin/env bash
# Run every test of the workspace: unit tests, and the end-to-end tests of
# the binary on real frames against the Python references. Fetches what
# the tests need first (scripts/fetch_assets.sh). Ends with one line that
# totals every test binary's results.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/frameflow/target}"

bash scripts/fetch_assets.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -hoE '([0-9]+) passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -hoE '([0-9]+) failed' "$log" | awk '{s += $1} END {print s + 0}')
echo
echo "tests: $passed passed, $failed failed"
exit "$status"
