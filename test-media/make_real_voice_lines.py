#!/usr/bin/env python3
"""Lines spoken by real people, for a check of the AMD detector on voices no speech engine
made (docs/amd.md, "Real voices").

The words are recordings of real people, from one of two public sets (not in this
repository), told apart by their layout:
- the Free Spoken Digit Dataset (FSDD, CC BY-SA 4.0, `recordings/{digit}_{name}_{n}.wav`):
  6 male speakers with US, Belgian, German and Greek accents, 50 takes of each digit,
  8 kHz, trimmed; written to test-media/amd-real/;
- DSPSpeech-20 (MIT, `speech_data/{id}/{id}-{word}-{n}.wav`): 34 students, men and women
  (8 speak at a median pitch above 210 Hz), 20 takes of each of 20 words, 16 kHz, 2.05 s
  windows recorded in a browser; the 8 English words (Speech, Speaker, Signal, Process,
  Print, Open, Close, Project) are used, resampled to 8 kHz and trimmed to the word, and
  a take that clips or does not trim below 1.2 s is left out. Written to
  test-media/amd-real-dsp/.
Each line goes through the world corpus's chain (make_world_corpus.py): a person's live
line (level, room noise or babble, mobile DTX, the handset's click, a breath), or a
greeting's recording chain (room, microphone band, storage codec, platform level) and the
platform's line and beep; ring-back lead-ins, hot lines, the telephone band and a codec
round trip.

- people (`human_one`, `human_two`, `human_again`): one word, two words, or a word, a
  pause of 1.0-1.8 s and a word again ("Hello? ... Hello?"), then 3.5 s of the line;
- machines (`machine_digits`, `machine_words`): 10-16 words read out in groups of three,
  as a greeting or a platform reads a number, then a beep (60 %) or the line.

Speakers are split (session 28): every other speaker in sorted order, from the first, is a
train speaker (FSDD's george, lucas and theo; 17 of DSPSpeech-20's 34). With
`--extra-train N` the generator makes N lines of each class spoken by the train speakers
only, from seeds of their own and the train side's background beds, in split `train`
(test-media/amd-extra-real/ or amd-extra-real-dsp/): `train-amd.sh` trains the sequence
model on them. The check's lines are made as before, every speaker taking lines in turn,
but those of a train speaker are in split `train`, so `amd_eval`'s `holdout` reads only
the held-out speakers: the check is on voices the models never heard. No check file is
trained on. With `--tts` the same lines (the same random draws, the same word at each
place) are spoken by the world corpus's holdout voices instead, one voice per speaker (in
turn), so the two sets differ only in whether a person or an engine spoke the words
(written to the set's directory with `-tts`).

The sets: FSDD at commit 26eb9aa (`git clone https://github.com/Jakobovski/free-spoken-digit-dataset`),
DSPSpeech-20 at commit 8165959 (`git clone https://github.com/zhongyuchen/DSPSpeech-20`).

Usage:
    python3 test-media/make_real_voice_lines.py FSDD/recordings [--tts | --extra-train N]
    python3 test-media/make_real_voice_lines.py DSPSpeech-20/speech_data [--tts | --extra-train N]
writes 120 files per class and labels.csv (N with --extra-train), then
    cargo run --release --example amd_eval -- sweep holdout amd-real
    cargo run --release --example amd_eval -- decisions holdout amd-real-dsp
Needs what make_world_corpus.py needs (its background beds are built with its TTS voices).
"""
import math
import os
import random
import sys
import tempfile
from typing import Callable, NamedTuple

import audio_util
import make_world_corpus as world
from audio_util import count_arg, read_wav, silence, usage_error, write_labels

FSDD_SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# DSPSpeech-20's words 12-19 (0-11 are Chinese, and have no twin in the engine voices).
DSP_WORDS = {12: "speech", 13: "speaker", 14: "signal", 15: "process", 16: "print", 17: "open",
             18: "close", 19: "project"}
PER_CLASS = 120


def fsdd_takes(src):
    """{speaker: [(text, path)]} of FSDD's recordings/, or None for another layout."""
    takes = {s: [] for s in FSDD_SPEAKERS}
    for f in sorted(os.listdir(src)):
        parts = f[:-len(".wav")].split("_") if f.endswith(".wav") else []
        if len(parts) == 3 and parts[0].isdigit() and parts[1] in takes:
            takes[parts[1]].append((DIGITS[int(parts[0])], os.path.join(src, f)))
    if not any(takes.values()):
        return None
    missing = [s for s, t in takes.items() if not t]
    if missing:
        sys.exit(f"{src}: no recordings of {', '.join(missing)} (FSDD's recordings/ directory?)")
    return takes


def dsp_takes(src):
    """{speaker: [(text, path)]} of DSPSpeech-20's speech_data/, English words only, or None."""
    takes = {}
    for spk in sorted(os.listdir(src)):
        d = os.path.join(src, spk)
        if not (spk.isdigit() and os.path.isdir(d)):
            continue
        for f in sorted(os.listdir(d)):
            parts = f[:-len(".wav")].split("-") if f.endswith(".wav") else []
            if len(parts) == 3 and parts[0] == spk and parts[1].isdigit() and int(parts[1]) in DSP_WORDS:
                takes.setdefault(spk, []).append((DSP_WORDS[int(parts[1])], os.path.join(d, f)))
    return takes or None


def trimmed(x):
    """The word in a take: from 20 ms before the first to 30 ms after the last 10 ms block
    within 25 dB of the take's loud blocks (and 10 dB over its quiet ones); None when the
    take clips, or trims to less than 0.15 s or more than 1.2 s (a click or a breath
    far from the word)."""
    if max(abs(v) for v in x) > 0.99:
        return None
    n = audio_util.RATE // 100
    blocks = [10 * math.log10(sum(v * v for v in x[i:i + n]) / n + 1e-10) for i in range(0, len(x) - n + 1, n)]
    ranked = sorted(blocks)
    thr = max(ranked[int(0.95 * len(ranked))] - 25, ranked[int(0.1 * len(ranked))] + 10)
    loud = [i for i, e in enumerate(blocks) if e > thr]
    if not loud:
        return None
    word = x[max(0, loud[0] - 2) * n:(loud[-1] + 3) * n]
    return word if 0.15 <= len(word) / audio_util.RATE <= 1.2 else None


def dsp_word(path, tmp):
    """A DSPSpeech-20 take at 8 kHz, trimmed to its word (None: left out)."""
    out = os.path.join(tmp, "take.wav")
    audio_util.run("sox", "-D", path, "-r", str(audio_util.RATE), "-c", "1", "-b", "16", out)
    return trimmed(read_wav(out))


class Source(NamedTuple):
    """A set of recorded words: how its takes are found and one is read (as a word at
    8 kHz, or None when left out), where the check's lines and the training lines go, and
    what its machines are."""
    takes: Callable
    word: Callable
    name: str
    train_name: str
    machine_kind: str


# FSDD's takes are 8 kHz and trimmed already.
SOURCES = (Source(fsdd_takes, lambda path, _tmp: read_wav(path), "amd-real", "amd-extra-real", "machine_digits"),
           Source(dsp_takes, dsp_word, "amd-real-dsp", "amd-extra-real-dsp", "machine_words"))


class Words:
    """The takes of each speaker, and what one draw of a take sounds like: the recording,
    or (`tts`) the same word from the holdout voice standing in for that speaker."""

    def __init__(self, src, tmp, tts):
        if not os.path.isdir(src):
            sys.exit(f"{src}: not a directory (FSDD's recordings/ or DSPSpeech-20's speech_data/)")
        found = next(((s, t) for s in SOURCES if (t := s.takes(src)) is not None), None)
        if found is None:
            sys.exit(f"{src}: neither FSDD's recordings/ nor DSPSpeech-20's speech_data/")
        self.source, self.takes = found
        self.speakers = sorted(self.takes)
        # The speakers the models are trained on: every other one, from the first.
        self.train_speakers = self.speakers[0::2]
        self.tmp, self.tts, self.cache = tmp, tts, {}

    def say(self, rng, speaker):
        text, path = rng.choice(self.takes[speaker])
        if path not in self.cache:
            self.cache[path] = self.source.word(path, self.tmp)
        x = self.cache[path]
        if x is None:  # left out: the draw moves on to another take (for the twins too)
            return self.say(rng, speaker)
        if not self.tts:
            peak = max(abs(v) for v in x) or 1.0
            return [v / peak for v in x]
        voice = world.HOLDOUT_VOICES[self.speakers.index(speaker) % len(world.HOLDOUT_VOICES)]
        if (text, voice) not in self.cache:
            self.cache[(text, voice)] = world.tts(self.tmp, text, voice, 1.0, 50)
        return list(self.cache[(text, voice)])


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
    """A greeting that reads a number (or a list): words in groups of three."""
    rec = []
    for k in range(rng.randint(10, 16)):
        rec += words.say(rng, speaker)
        rec += silence(rng.uniform(0.3, 0.5) if k % 3 == 2 else rng.uniform(0.04, 0.15))
    extra = {"recording": rec, "lead": rng.uniform(0.0, 0.6), "after_s": 2.0}
    if rng.random() < 0.6:
        extra["beep"] = (rng.uniform(0.2, 0.8), rng.choice([1000, 1400, 850]), 0.4, 0.3)
    return extra, {"kind": words.source.machine_kind}


def line(tmp, beds, words, label, i, out, train):
    """The i-th line of `label`: of the check, or (`train`) of the train speakers' set."""
    rng = random.Random(f"{'real-train' if train else 'real-voices'}-{label}-{i}")
    speakers = words.train_speakers if train else words.speakers
    speaker = speakers[i % len(speakers)]
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
    split = "train" if speaker in words.train_speakers else "holdout"
    return {"file": name, "label": label, "kind": meta["kind"], "split": split,
            "answer_ms": answer_ms, "speaker": speaker, "codec": codec, "clipped": int(clip),
            "level_dbfs": meta.get("level_dbfs", ""), "env": meta.get("env", "")}


def main():
    args = sys.argv[1:]
    tts = "--tts" in args
    args = [a for a in args if a != "--tts"]
    per_class, train = PER_CLASS, False
    if len(args) == 3 and args[1] == "--extra-train" and not tts:
        per_class, train = count_arg(__doc__, "N", args[2], 1), True
    elif len(args) != 1 or args[0].startswith("-"):
        usage_error(__doc__, f"unknown arguments {sys.argv[1:]}")
    with tempfile.TemporaryDirectory() as tmp:
        words = Words(args[0], tmp, tts)
        source = words.source
        out = os.path.join(world.HERE, source.train_name if train else source.name + ("-tts" if tts else ""))
        os.makedirs(out, exist_ok=True)
        beds = world.Beds(tmp, "train" if train else "holdout")
        rows = [line(tmp, beds, words, label, i, out, train)
                for label in ("human", "machine") for i in range(per_class)]
    write_labels(out, rows)


if __name__ == "__main__":
    main()
