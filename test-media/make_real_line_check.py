#!/usr/bin/env python3
"""People on real telephone lines, for a check of the AMD detector on lines no model of
this project made (docs/amd.md, session 30).

The recordings are the Hyke set (Reda, Panjwani and Cutrell, "Hyke: A Low-cost Remote
Attendance Tracking System for Developing Regions", NSDR 2011; not in this repository):
83 people in India (35 women, 48 men) called an IVR system in March 2011 and, after its
prompt, read five lines of digits in English, one digit at a time; a third have
background noise, from hiss to conversations and songs. 8 kHz 16-bit mono, as the IVR
recorded them: the network, the handsets and the codecs are real, and nothing is added
here. Every file is copied as it is, each labelled `human` (`human_real_line`), split
`holdout` (never trained on). Columns: `speaker`, `sex` (F/M), `line` (1-5; line 1 is the
longest, 41 digits).

What the check measures: a person speaking short words with pauses on a real line. It is
not a pickup (after the first word the reader goes on reading, as a "Hello? ... Hello?"
goes on), so `decisions` also shows when a verdict came: a machine verdict before the
first word has ended is evidence from the line alone.

The set: `audio_data/` of https://github.com/klchang/SpeakerRecognition at commit a233e18.

Usage:
    python3 test-media/make_real_line_check.py SpeakerRecognition/audio_data
writes test-media/amd-real-line/ (415 files and labels.csv), then
    cargo run --release --example amd_eval -- decisions holdout amd-real-line
"""
import glob
import os
import shutil
import sys

from audio_util import usage_error, write_labels

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    args = sys.argv[1:]
    if len(args) != 1 or args[0].startswith("-"):
        usage_error(__doc__, f"expected the set's audio_data directory, got {args}")
    takes = sorted(glob.glob(os.path.join(args[0], "*_audio", "[FM]_*", "*_[1-5].wav")))
    if not takes:
        usage_error(__doc__, f"no {{female,male}}_audio/[FM]_ID/ID_N.wav under {args[0]}")
    out = os.path.join(HERE, "amd-real-line")
    os.makedirs(out, exist_ok=True)
    rows = []
    for path in takes:
        speaker = os.path.basename(os.path.dirname(path))
        name = os.path.basename(path)
        shutil.copyfile(path, os.path.join(out, name))
        rows.append({"file": name, "label": "human", "kind": "human_real_line", "beep_onset_ms": "",
                     "split": "holdout", "answer_ms": 0, "speaker": speaker, "sex": speaker[0],
                     "line": name.rsplit("_", 1)[1][0]})
    write_labels(out, rows)
    print(f"{len(rows)} files of {len({r['speaker'] for r in rows})} speakers in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
