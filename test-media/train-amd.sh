#!/usr/bin/env bash
# Retrains src/amd/model.json (the feature perceptron) and src/amd/sequence_model.json (the
# GRU over per-frame inputs) from the train splits of test-media/amd-world/ and
# test-media/amd/, plus more training-only files made here when missing, of another size
# or without the script column (not committed): of the train voices and phrases
# (test-media/amd-extra-world/ and test-media/amd-extra/; AMD_EXTRA_WORLD (500) and
# AMD_EXTRA_ESPEAK (200) files of each class), and of the train phrases spoken by the
# world corpus's NEW_TRAIN_VOICES (test-media/amd-extra-voices/; AMD_EXTRA_VOICES (500)), and
# of both corpora's train voices and phrases through a network whose band reaches below
# 300 Hz (test-media/amd-extra-wide/ and amd-extra-wide-espeak/, --wide; AMD_EXTRA_WIDE
# (500) and AMD_EXTRA_WIDE_ESPEAK (200));
# 0 for none (a set told to be 0 is left out, though an earlier run left it there); and
# copies of amd-extra-world's files through another far end's line
# (test-media/amd-extra-channel/, make_channel_copies.py). The sequence model alone is also
# trained on lines of real recorded words spoken by the train speakers of two public sets
# (make_real_voice_lines.py --extra-train; test-media/amd-extra-real/ and
# amd-extra-real-dsp/, AMD_EXTRA_REAL (250) of each class each), made when missing from
# the sets' directories named by AMD_FSDD (FSDD's recordings/) and AMD_DSPSPEECH
# (DSPSpeech-20's speech_data/); the commits and clone commands are in
# make_real_voice_lines.py.
# Needs numpy and PyTorch (CPU; `pip install torch`), and to make the extra files the
# corpora's tools (make-world-corpus.sh) and the new voices' festival packages.
set -euo pipefail
cd "$(dirname "$0")/.."
world=${AMD_EXTRA_WORLD:-500}
espeak=${AMD_EXTRA_ESPEAK:-200}
voices=${AMD_EXTRA_VOICES:-500}
wide=${AMD_EXTRA_WIDE:-500}
wide_espeak=${AMD_EXTRA_WIDE_ESPEAK:-200}
real_lines=${AMD_EXTRA_REAL:-250}
# The extra sets told to be 0, comma-separated for amd_eval (AMD_EVAL_WITHOUT): left out of
# the training, though a run before left them there.
without=
leave_out() {
  without+="${without:+,}$(basename "$1")"
}
# Whether DIR's labels.csv has N files of each class.
has_rows() {
  [ -f "$1/labels.csv" ] && [ "$(($(wc -l < "$1/labels.csv") - 1))" -eq $((2 * $2)) ]
}
# Makes DIR's N files of each class with the generator given (and its flags after it),
# unless DIR already holds exactly that many with a `script` column (a set made at another
# size, or before the column, is made again: the files are deterministic, so the first
# ones come out the same).
extra() {
  local dir=$1 n=$2 generator=$3
  shift 3
  [ "$n" -gt 0 ] || { leave_out "$dir"; return 0; }
  if has_rows "$dir" "$n" && head -1 "$dir/labels.csv" | grep -q ',script$'; then
    return 0
  fi
  rm -f "${dir:?}"/*.wav "$dir/labels.csv"
  python3 "$generator" --extra-train "$n" "$dir" "$@"
}
extra test-media/amd-extra-world "$world" test-media/make_world_corpus.py
extra test-media/amd-extra "$espeak" test-media/make_corpus.py
extra test-media/amd-extra-voices "$voices" test-media/make_world_corpus.py --new-voices
extra test-media/amd-extra-wide "$wide" test-media/make_world_corpus.py --wide
extra test-media/amd-extra-wide-espeak "$wide_espeak" test-media/make_corpus.py --wide
# Copies of amd-extra-world's files through a far end's line the corpora do not model (a
# mobile's AMR leg, an early roll-off), whatever their class; made again with amd-extra-world.
channel=test-media/amd-extra-channel
if [ "$world" -gt 0 ] && { ! has_rows "$channel" "$world" || [ test-media/amd-extra-world/labels.csv -nt "$channel/labels.csv" ]; }; then
  rm -f "$channel"/*.wav "$channel/labels.csv"
  python3 test-media/make_channel_copies.py amd-extra-world amd-extra-channel
fi
[ "$world" -gt 0 ] || leave_out "$channel"
# Makes DIR's N lines of each class from the real set in the variable named SOURCE, unless
# DIR already holds exactly that many.
real() {
  local dir=$1 n=$2 source=$3
  [ "$n" -gt 0 ] || { leave_out "$dir"; return 0; }
  has_rows "$dir" "$n" && return 0
  if [ -z "${!source:-}" ]; then
    echo "train-amd.sh: $dir is missing: set $source to the set's directory (make_real_voice_lines.py" \
      "names it and its commit), or AMD_EXTRA_REAL=0 to train without it" >&2
    exit 2
  fi
  rm -f "${dir:?}"/*.wav "$dir/labels.csv"
  python3 test-media/make_real_voice_lines.py "${!source}" --extra-train "$n"
  if [ ! -f "$dir/labels.csv" ]; then
    echo "train-amd.sh: $source=${!source} made another set's lines, not $dir" >&2
    exit 2
  fi
}
real test-media/amd-extra-real "$real_lines" AMD_FSDD
real test-media/amd-extra-real-dsp "$real_lines" AMD_DSPSPEECH
export AMD_EVAL_WITHOUT=$without
tmp=$(mktemp)
frames=$(mktemp)
trap 'rm -f "$tmp" "$frames"' EXIT
cargo run --quiet --release --example amd_eval -- features > "$tmp"
python3 test-media/train_amd.py "$tmp"
cargo run --quiet --release --example amd_eval -- frames > "$frames"
python3 test-media/train_amd_sequence.py "$frames"
