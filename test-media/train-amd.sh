#!/usr/bin/env bash
# Retrains src/amd/model.json from the train splits of test-media/amd-world/ and
# test-media/amd/ (needs numpy).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
cargo run --quiet --release --example amd_eval -- features > "$tmp"
python3 test-media/train_amd.py "$tmp"
