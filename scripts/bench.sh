#!/usr/bin/env bash
# Run every benchmark (each runs frameflow and its baseline side by side)
# and write their closing figures to BENCHMARKS.md. Release build; takes a
# few minutes. Timings need a quiet machine: nothing else should run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/frameflow/target}"

bash scripts/fetch_assets.sh
# The Kafka sink's baseline producer (not needed by the tests).
assets/venv/bin/python -m pip install -q --disable-pip-version-check confluent-kafka==2.12.0
cargo build --release --workspace
log=$(mktemp)
for bench in benches/src/bin/*.rs; do
  name=$(basename "$bench" .rs)
  echo "== $name"
  "$CARGO_TARGET_DIR/release/$name" | tee -a "$log"
done

{
  echo "# Benchmarks"
  echo
  echo "Written by \`bash scripts/bench.sh\` on $(date -u +%Y-%m-%d), $(nproc) cores,"
  echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'). Each line is one figure, frameflow beside"
  echo "its baseline in the same run; the benchmark's source says what each side does."
  echo
  echo "| figure | frameflow | baseline | ratio |"
  echo "|---|---|---|---|"
  grep -E '^P[0-9]+ ' "$log" | sed -E 's/^(.*): frameflow (.*), baseline (.*), ratio (.*)$/| \1 | \2 | \3 | \4 |/'
} > BENCHMARKS.md
rm -f "$log"
echo "wrote BENCHMARKS.md"
