#!/usr/bin/env python3
"""Training-only copies of a corpus's `train` files, each heard through a far end's line
that the corpus does not model: a mobile's radio leg (an AMR-NB round trip at 4.75-12.2
kbit/s, modes 0-7) or a line that rolls off early (a low-pass at 2.3-3.3 kHz), or both.

Why: on real telephone lines of 83 people reading digits (`make_real_line_check.py`), the
shipped models called most of them machines, and a 2.4 kHz low-pass alone turns 34 of the
world holdout's 60 people into machines (docs/amd.md, session 30). The corpora's people
pass one codec, their machines two (the greeting's storage, then the network), and every
line is band-passed to a full 3.4 kHz, so the models could take a narrow or twice-coded
voice for a recording. A real mobile caller's voice has passed AMR and the network's
codec too. The same channel for both classes, drawn per file whatever its label, takes
that evidence away: it is not a class's.

Usage: python3 test-media/make_channel_copies.py SRC DIR
    SRC and DIR are directories under test-media/ (`amd-extra-world`, `amd-extra-channel`);
    every `train` row of SRC's labels.csv is copied into DIR with its labels, plus the
    columns `source` (SRC's file) and `leg` (`amr0`..`amr7`, `lp2300`..`lp3300`, or both).
Needs sox with AMR-NB (Debian: libsox-fmt-all, as make_world_corpus.py) and numpy.
"""
import csv
import os
import random
import sys
import tempfile

import make_world_corpus as world
from audio_util import amr_round_trip, read_wav, run, usage_error, write_labels, write_wav


def leg(tmp, rng, src, out):
    """SRC's file through a drawn far-end line into OUT (G.711 mu-law); returns its name."""
    a, b, c = (os.path.join(tmp, f"{k}.wav") for k in "abc")
    run("sox", "-D", src, "-e", "signed-integer", "-b", "16", a)
    x = read_wav(a)
    draw = rng.random()
    names = []
    if draw < 0.7:
        mode = rng.randint(0, 7)
        amr_round_trip(tmp, a, b, mode)
        x = world.aligned(read_wav(b), x)
        names.append(f"amr{mode}")
    if draw >= 0.4:
        cut = rng.randint(23, 33) * 100
        write_wav(b, x)
        run("sox", "-D", b, c, "sinc", f"-{cut}")
        x = read_wav(c)[: len(x)]
        names.append(f"lp{cut}")
    write_wav(a, world.under_full_scale(x))
    run("sox", "-D", a, "-e", "u-law", "-b", "8", out)
    return "+".join(names)


def main():
    args = sys.argv[1:]
    if len(args) != 2 or any(a.startswith("-") for a in args):
        usage_error(__doc__, f"expected SRC and DIR, got {args}")
    src, out = (os.path.join(world.HERE, a) for a in args)
    if not os.path.isfile(os.path.join(src, "labels.csv")):
        usage_error(__doc__, f"{src}/labels.csv does not exist")
    with open(os.path.join(src, "labels.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for r in rows:
            rng = random.Random(f"channel-{args[0]}-{r['file']}")
            r["source"] = f"{args[0]}/{r['file']}"
            r["leg"] = leg(tmp, rng, os.path.join(src, r["file"]), os.path.join(out, r["file"]))
    write_labels(out, rows)


if __name__ == "__main__":
    main()
