#!/usr/bin/env bash
# Regenerates test-media/amd/ (labelled AMD corpus) and test-media/prompts/.
# Needs (Debian): espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox
# opus-tools, and python3.
set -euo pipefail
cd "$(dirname "$0")"
exec python3 make_corpus.py "$@"
