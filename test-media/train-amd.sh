#!/usr/bin/env bash
# Retrains src/amd/model.json (the feature perceptron) and src/amd/sequence_model.json (the
# GRU over per-frame inputs) from the train splits of test-media/amd-world/ and
# test-media/amd/, plus more training-only files made here when missing, of another size
# or without the script column (not committed): of the train voices and phrases
# (test-media/amd-extra-world/ and test-media/amd-extra/; AMD_EXTRA_WORLD (500) and
# AMD_EXTRA_ESPEAK (200) files of each class), and of the train phrases spoken by the
# world corpus's NEW_TRAIN_VOICES (test-media/amd-extra-voices/; AMD_EXTRA_VOICES (500));
# 0 for none.
# Needs numpy and PyTorch (CPU; `pip install torch`), and to make the extra files the
# corpora's tools (make-world-corpus.sh) and the new voices' festival packages.
set -euo pipefail
cd "$(dirname "$0")/.."
world=${AMD_EXTRA_WORLD:-500}
espeak=${AMD_EXTRA_ESPEAK:-200}
voices=${AMD_EXTRA_VOICES:-500}
# Makes DIR's N files of each class with the generator given (and its flags after it),
# unless DIR already holds exactly that many with a `script` column (a set made at another
# size, or before the column, is made again: the files are deterministic, so the first
# ones come out the same).
extra() {
  local dir=$1 n=$2 generator=$3
  shift 3
  [ "$n" -gt 0 ] || return 0
  if [ -f "$dir/labels.csv" ] && [ "$(($(wc -l < "$dir/labels.csv") - 1))" -eq $((2 * n)) ] &&
    head -1 "$dir/labels.csv" | grep -q ',script$'; then
    return 0
  fi
  rm -f "${dir:?}"/*.wav "$dir/labels.csv"
  python3 "$generator" --extra-train "$n" "$dir" "$@"
}
extra test-media/amd-extra-world "$world" test-media/make_world_corpus.py
extra test-media/amd-extra "$espeak" test-media/make_corpus.py
extra test-media/amd-extra-voices "$voices" test-media/make_world_corpus.py --new-voices
tmp=$(mktemp)
frames=$(mktemp)
trap 'rm -f "$tmp" "$frames"' EXIT
cargo run --quiet --release --example amd_eval -- features > "$tmp"
python3 test-media/train_amd.py "$tmp"
cargo run --quiet --release --example amd_eval -- frames > "$frames"
python3 test-media/train_amd_sequence.py "$frames"
