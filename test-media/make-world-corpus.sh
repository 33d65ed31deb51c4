#!/usr/bin/env bash
# Regenerates test-media/amd-world/ (the AMD corpus of several speech engines, channels
# and hard cases, with its holdout split by voice and script).
# Needs (Debian): espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox
# libsox-fmt-mp3 opus-tools, and python3.
set -euo pipefail
cd "$(dirname "$0")"
exec python3 make_world_corpus.py "$@"
