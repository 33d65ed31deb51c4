#!/usr/bin/env bash
# Regenerates test-media/amd/ (labelled AMD corpus) and test-media/prompts/.
# Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox) and python3.
set -euo pipefail
cd "$(dirname "$0")"
exec python3 make_corpus.py "$@"
