#!/usr/bin/env bash
# Retrains src/amd/model.json (the feature perceptron) and src/amd/sequence_model.json (the
# GRU over per-frame inputs) from the train splits of test-media/amd-world/ and
# test-media/amd/, plus more training-only files of their train voices and phrases made
# here when missing, of another size or without the script column (test-media/amd-extra-world/ and
# test-media/amd-extra/, not committed; AMD_EXTRA_WORLD (500) and AMD_EXTRA_ESPEAK (200)
# files of each class, 0 for none).
# Needs numpy and PyTorch (CPU; `pip install torch`), and to make the extra files the corpora's tools (make-world-corpus.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
world=${AMD_EXTRA_WORLD:-500}
espeak=${AMD_EXTRA_ESPEAK:-200}
# Makes DIR's N files of each class with the generator given, unless DIR already holds
# exactly that many with a `script` column (a set made at another size, or before the
# column, is made again: the files are deterministic, so the first ones come out the same).
extra() {
  local dir=$1 n=$2
  shift 2
  [ "$n" -gt 0 ] || return 0
  if [ -f "$dir/labels.csv" ] && [ "$(($(wc -l < "$dir/labels.csv") - 1))" -eq $((2 * n)) ] &&
    head -1 "$dir/labels.csv" | grep -q ',script$'; then
    return 0
  fi
  rm -f "${dir:?}"/*.wav "$dir/labels.csv"
  python3 "$@" --extra-train "$n" "$dir"
}
extra test-media/amd-extra-world "$world" test-media/make_world_corpus.py
extra test-media/amd-extra "$espeak" test-media/make_corpus.py
tmp=$(mktemp)
frames=$(mktemp)
trap 'rm -f "$tmp" "$frames"' EXIT
cargo run --quiet --release --example amd_eval -- features > "$tmp"
python3 test-media/train_amd.py "$tmp"
cargo run --quiet --release --example amd_eval -- frames > "$frames"
python3 test-media/train_amd_sequence.py "$frames"
