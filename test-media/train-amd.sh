#!/usr/bin/env bash
# Retrains src/amd/model.json (the feature perceptron) and src/amd/sequence_model.json (the
# GRU over per-frame inputs) from the train splits of test-media/amd-world/ and
# test-media/amd/, plus more training-only files of their train voices and phrases made
# here when missing (test-media/amd-extra-world/ and test-media/amd-extra/, not committed;
# AMD_EXTRA_WORLD and AMD_EXTRA_ESPEAK files of each class, 0 for none).
# Needs numpy and PyTorch (CPU; `pip install torch`), and to make the extra files the corpora's tools (make-world-corpus.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
world=${AMD_EXTRA_WORLD:-500}
espeak=${AMD_EXTRA_ESPEAK:-200}
if [ "$world" -gt 0 ] && [ ! -f test-media/amd-extra-world/labels.csv ]; then
  python3 test-media/make_world_corpus.py --extra-train "$world" test-media/amd-extra-world
fi
if [ "$espeak" -gt 0 ] && [ ! -f test-media/amd-extra/labels.csv ]; then
  python3 test-media/make_corpus.py --extra-train "$espeak" test-media/amd-extra
fi
tmp=$(mktemp)
frames=$(mktemp)
trap 'rm -f "$tmp" "$frames"' EXIT
cargo run --quiet --release --example amd_eval -- features > "$tmp"
python3 test-media/train_amd.py "$tmp"
cargo run --quiet --release --example amd_eval -- frames > "$frames"
python3 test-media/train_amd_sequence.py "$frames"
