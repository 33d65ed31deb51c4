#!/usr/bin/env python3
"""Lines spoken by real people, for a check of the AMD detector on voices no speech engine
made (docs/amd.md, "Real voices").

The words are recordings of six people (the Free Spoken Digit Dataset, FSDD: 6 male
speakers with US, Belgian, German and Greek accents, 50 takes of each digit, 8 kHz,
CC BY-SA 4.0; not in this repository). Each line goes through the world corpus's chain
(make_world_corpus.py): a person's live line (level, room noise or babble, mobile DTX,
the handset's click, a breath), or a greeting's recording chain (room, microphone band,
storage codec, platform level) and the platform's line and beep; ring-back lead-ins, hot
lines, the telephone band and a codec round trip.

- people (`human_one`, `human_two`, `human_again`): one word, two words, or a word, a
  pause of 1.0-1.8 s and a word again ("Hello? ... Hello?"), then 3.5 s of the line;
- machines (`machine_digits`): 10-16 digits read out in groups of three, as a greeting or
  a platform reads a number, then a beep (60 %) or the line.

No file is used for training or tuning: the check is on voices the models never heard.
With `--tts` the same lines (the same random draws, the same digit at each place) are
spoken by the world corpus's holdout voices instead, one voice per FSDD speaker, so the
two sets differ only in whether a person or an engine spoke the words.

Usage (FSDD at commit 26eb9aa, `git clone https://github.com/Jakobovski/free-spoken-digit-dataset`):
    python3 test-media/make_real_voice_lines.py FSDD/recordings [--tts]
writes test-media/amd-real/ (with --tts: test-media/amd-real-tts/), 120 files per class
and labels.csv (every file in split `holdout`), then
    cargo run --release --example amd_eval -- sweep holdout amd-real
    cargo run --release --example amd_eval -- decisions holdout amd-real
Needs what make_world_corpus.py needs (its background beds are built with its TTS voices).
"""
import os
import random
import sys
import tempfile

import make_world_corpus as world
from audio_util import read_wav, silence, write_labels

SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
PER_CLASS = 120


class Words:
    """The takes of each speaker, and what one draw of a take sounds like: the recording,
    or (`tts`) the same digit from the holdout voice standing in for that speaker."""

    def __init__(self, src, tmp, tts):
        if not os.path.isdir(src):
            sys.exit(f"{src}: not a directory (FSDD's recordings/ directory)")
        self.takes = {s: [] for s in SPEAKERS}
        for f in sorted(os.listdir(src)):
            parts = f[:-len(".wav")].split("_") if f.endswith(".wav") else []
            if len(parts) == 3 and parts[0].isdigit() and parts[1] in self.takes:
                self.takes[parts[1]].append((int(parts[0]), os.path.join(src, f)))
        missing = [s for s, t in self.takes.items() if not t]
        if missing:
            sys.exit(f"{src}: no recordings of {', '.join(missing)} (FSDD's recordings/ directory?)")
        self.tmp, self.tts, self.cache = tmp, tts, {}

    def say(self, rng, speaker):
        digit, path = rng.choice(self.takes[speaker])
        if not self.tts:
            x = read_wav(path)
            peak = max(abs(v) for v in x) or 1.0
            return [v / peak for v in x]
        voice = world.HOLDOUT_VOICES[SPEAKERS.index(speaker)]
        if (digit, voice) not in self.cache:
            self.cache[(digit, voice)] = world.tts(self.tmp, DIGITS[digit], voice, 1.0, 50)
        return list(self.cache[(digit, voice)])


def person(rng, words, speaker):
    """A pickup's words and the silence after them, with their spans for the line's DTX."""
    pattern = rng.choice(["one", "one", "two", "again"])
    lead = rng.uniform(0.2, 1.6)
    x = silence(lead)
    spans = []

    def say():
        w = words.say(rng, speaker)
        spans.append((len(x), len(x) + len(w)))
        x.extend(w)

    say()
    if pattern == "two":
        x.extend(silence(rng.uniform(0.1, 0.3)))
        say()
    elif pattern == "again":
        x.extend(silence(rng.uniform(1.0, 1.8)))
        say()
    x.extend(silence(3.5))
    return x, {"kind": f"human_{pattern}", "spans": spans, "onset_ms": int(lead * 1000)}


def read_out(rng, words, speaker):
    """A greeting that reads a number: digits in groups of three."""
    rec = []
    for k in range(rng.randint(10, 16)):
        rec += words.say(rng, speaker)
        rec += silence(rng.uniform(0.3, 0.5) if k % 3 == 2 else rng.uniform(0.04, 0.15))
    extra = {"recording": rec, "lead": rng.uniform(0.0, 0.6), "after_s": 2.0}
    if rng.random() < 0.6:
        extra["beep"] = (rng.uniform(0.2, 0.8), rng.choice([1000, 1400, 850]), 0.4, 0.3)
    return extra, {"kind": "machine_digits"}


def line(tmp, beds, words, label, i, out):
    rng = random.Random(f"real-voices-{label}-{i}")
    speaker = SPEAKERS[i % len(SPEAKERS)]
    if label == "human":
        x, meta = person(rng, words, speaker)
        x = world.human_line(rng, beds, x, None, meta)
    else:
        extra, meta = read_out(rng, words, speaker)
        x, _ = world.machine_line(tmp, rng, beds, extra, meta)
    prefix, answer_ms = [], 0
    if rng.random() < 0.25:
        _, prefix, answer_ms = world.ringback(rng, 10 ** (rng.uniform(-24, -8) / 20))
    x = prefix + x
    clip = rng.random() < 0.1
    x = world.under_full_scale(world.hot_line(rng, x) if clip else x)
    codec = rng.choice(["ulaw", "ulaw", "alaw", "gsm", "opus"])
    name = f"{label[0]}{i + 1:03d}.wav"
    world.telephone(tmp, x, codec, 0.0, rng, os.path.join(out, name))
    print(name, meta["kind"], speaker, file=sys.stderr)
    return {"file": name, "label": label, "kind": meta["kind"], "split": "holdout",
            "answer_ms": answer_ms, "speaker": speaker, "codec": codec, "clipped": int(clip),
            "level_dbfs": meta.get("level_dbfs", ""), "env": meta.get("env", "")}


def main():
    tts = "--tts" in sys.argv
    args = [a for a in sys.argv[1:] if a != "--tts"]
    if len(args) != 1:
        sys.exit("usage: make_real_voice_lines.py FSDD/recordings [--tts]")
    out = os.path.join(world.HERE, "amd-real-tts" if tts else "amd-real")
    with tempfile.TemporaryDirectory() as tmp:
        words = Words(args[0], tmp, tts)
        os.makedirs(out, exist_ok=True)
        beds = world.Beds(tmp, "holdout")
        rows = [line(tmp, beds, words, label, i, out)
                for label in ("human", "machine") for i in range(PER_CLASS)]
    write_labels(out, rows)


if __name__ == "__main__":
    main()
