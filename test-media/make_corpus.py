#!/usr/bin/env python3
"""Build the labelled AMD corpus and the prompts, reproducibly.

Every random choice comes from `random.Random(<fixed string seed>)`, espeak-ng and
sox (run with -D: no dither) are deterministic, so the same tools give the same
files. Output: test-media/amd/*.wav (8 kHz mono G.711 mu-law WAV, format tag 7),
test-media/amd/labels.csv and test-media/prompts/*.wav (8 kHz mono 16-bit PCM).

Usage: python3 test-media/make_corpus.py   (or test-media/make-corpus.sh)
       python3 test-media/make_corpus.py --extra-train N DIR [--wide]
           N more training-only files of each class into DIR (see `extra_train`); with
           --wide, the network's band reaching down to 80-300 Hz
       python3 test-media/make_corpus.py --extra-holdout N DIR
           N more files of each class of the holdout's accents and phrases, for scoring
           only (see `extra_holdout`)
"""
import functools
import math
import os
import random
import shutil
import sys
import tempfile

from audio_util import (RATE, WIDE_LOW_HZ, active_rms, count_arg, gsm_round_trip, read_wav, run, scale_to_peak,
                        silence, usage_error, write_labels, write_wav)

SEED = "redial-amd-v1"
N_HUMAN = 120
N_MACHINE = 120

HERE = os.path.dirname(os.path.abspath(__file__))
AMD_DIR = os.path.join(HERE, "amd")
PROMPT_DIR = os.path.join(HERE, "prompts")

NAMES = ["Sam", "Alex", "Maria", "John", "Priya", "Chen", "Laura", "David", "Fatima", "Tom",
         "Olga", "Ben", "Grace", "Omar", "Julia", "Kevin"]
COMPANIES = ["Acme Plumbing", "Northside Dental", "Bright Insurance", "City Motors",
             "Green Valley Clinic", "Summit Realty", "Harbor Bank", "Lakeside Vets"]

HUMAN_SHORT = ["Hello?", "Yeah?", "Hi.", "Hello.", "Yes?", "Hi, this is {n}.",
               "Hello, who's this?", "{n} speaking.", "Hey.", "Yes, hello?", "Hello, {n} here.",
               "Hi there.", "Good morning.", "Hello, yes?"]
HUMAN_SECOND = ["Hello?", "Hello? Anyone there?", "Hello, can you hear me?", "Who is this?",
                "Hello? Is anyone there?", "Yes?"]
PERSONAL = [
    "Hi, you've reached {n}. I can't take your call right now, please leave a message after the tone.",
    "Hey, this is {n}. Leave a message and I'll get back to you.",
    "Hello, you have reached {n}. I'm not available at the moment. Please leave your name and number.",
    "Hi, it's {n}. Sorry I missed you. Leave a message after the beep.",
    "This is {n}. I'm away from my phone. Please leave a message.",
    "Hi, you've reached {n} and {m}. We can't come to the phone right now. Leave a message.",
]
CARRIER = [
    "The person you are calling is not available. Please leave a message after the tone.",
    "The number you have dialed is not available. At the tone, please record your message.",
    "Your call has been forwarded to an automated voice messaging system. {n} is not available.",
    "The subscriber you are trying to reach is unavailable. Please try again later, or leave a message.",
    "Welcome to the voice mail service. The mailbox of {n} is full. Goodbye.",
]
BUSINESS = [
    "Thank you for calling {c}. Our office is currently closed. Please leave a message.",
    "You have reached {c}. Our business hours are nine to five, Monday to Friday.",
    "Thank you for calling {c}. All of our staff are busy. Please leave a message after the tone.",
    "Welcome to {c}. For sales, press one. For support, press two.",
    "Hello, and thank you for calling {c}. Your call is important to us.",
]

PAUSE = ["Hello? Anyone there?", "Hello? Hello?", "Hello? Who is it?"]
# The phrase lists by the names the `script` column uses: `pick` draws from them by name,
# and amd_diagnose.py's folds read them.
SCRIPT_LISTS = {"short": HUMAN_SHORT, "second": HUMAN_SECOND, "pause": PAUSE, "personal": PERSONAL,
                "carrier": CARRIER, "business": BUSINESS}

VOICES = ["en", "en-us", "en-gb", "en-gb-scotland", "en-029"]
# The split, by voice and by script. A file is `train` only if both its voice and every
# script it speaks are train ones; every other file is `holdout` and is never trained or
# tuned on. Holdout voices: the en-gb-scotland and en-029 accents (the world corpus's
# holdout espeak voices are among them, and its train split has neither accent). Holdout
# scripts: every 4th entry of each list (i % 4 == 3), the same rule as the world corpus,
# whose lists start with these same phrases, so a holdout phrase here is a holdout
# phrase there too.
HOLDOUT_ACCENTS = ("en-gb-scotland", "en-029")
VARIANTS = ["", "+m1", "+m2", "+m3", "+m4", "+m5", "+m7", "+f1", "+f2", "+f3", "+f4"]


def tts(tmp, text, voice, speed, pitch):
    """espeak-ng at its native rate, then sox to 8 kHz; returns floats."""
    raw = os.path.join(tmp, "tts.wav")
    out = os.path.join(tmp, "tts8.wav")
    run("espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", raw, text)
    run("sox", "-D", raw, "-r", str(RATE), out)
    x = read_wav(out)
    # espeak pads its output with silence; trim it so the timeline below is exact.
    thr = 0.01 * max(abs(s) for s in x)
    first = next(i for i, s in enumerate(x) if abs(s) > thr)
    last = len(x) - next(i for i, s in enumerate(reversed(x)) if abs(s) > thr)
    return x[first:last]


def tone(freqs, sec, amp, fade=0.005):
    n = int(round(sec * RATE))
    nf = max(1, int(fade * RATE))
    out = []
    for i in range(n):
        g = min(1.0, i / nf, (n - 1 - i) / nf)
        out.append(amp * g * sum(math.sin(2 * math.pi * f * i / RATE) for f in freqs) / len(freqs))
    return out


def ringback(rng, amp):
    """One ring-back burst and part of the following off period; returns (samples, end_ms
    of the last tone burst relative to the segment start)."""
    kind = rng.choice(["us", "uk", "eu"])
    if kind == "us":          # 440+480 Hz, 2 s on 4 s off
        seg = tone([440, 480], 2.0, amp)
    elif kind == "uk":        # 400+450 Hz, 0.4 on 0.2 off 0.4 on 2 s off
        seg = tone([400, 450], 0.4, amp) + silence(0.2) + tone([400, 450], 0.4, amp)
    else:                     # 425 Hz, 1 s on 4 s off
        seg = tone([425], 1.0, amp)
    tone_end = len(seg)
    seg += silence(rng.uniform(0.2, 0.8))
    return kind, seg, tone_end * 1000 // RATE


def noise(rng, kind, n):
    out = [0.0] * n
    if kind == "white":
        for i in range(n):
            out[i] = rng.gauss(0, 1)
    elif kind == "pink":      # Paul Kellet's economy pink filter
        b0 = b1 = b2 = 0.0
        for i in range(n):
            w = rng.gauss(0, 1)
            b0 = 0.99765 * b0 + w * 0.0990460
            b1 = 0.96300 * b1 + w * 0.2965164
            b2 = 0.57000 * b2 + w * 1.0526913
            out[i] = b0 + b1 + b2 + w * 0.1848
    else:                     # brown: leaky integrator
        b = 0.0
        for i in range(n):
            b = 0.995 * b + rng.gauss(0, 1) * 0.1
            out[i] = b
    r = math.sqrt(sum(s * s for s in out) / n) or 1.0
    return [s / r for s in out]


def voice_choice(rng):
    return rng.choice(VOICES) + rng.choice(VARIANTS), rng.randint(140, 200), rng.randint(30, 70)


def split_of(voice, scripts):
    """`holdout` if the voice's accent or any script (list name, index) is held out."""
    held = voice.split("+")[0] in HOLDOUT_ACCENTS or any(i % 4 == 3 for _, i in scripts)
    return "holdout" if held else "train"


def pick(rng, name, scripts):
    """A phrase from SCRIPT_LISTS[name] (one rng.choice, as the corpus was first made
    with), noting (name, index) in `scripts`."""
    items = SCRIPT_LISTS[name]
    text = rng.choice(items)
    scripts.append((name, items.index(text)))
    return text


def make_clip(rng, label, tmp):
    """Returns (samples at unit level, meta dict). Times in ms from the clip start."""
    voice, speed, pitch = voice_choice(rng)
    n, m = rng.sample(NAMES, 2)
    c = rng.choice(COMPANIES)
    meta = {"voice": voice, "speed": speed, "pitch": pitch}
    scripts = []
    # Leading silence after answer: most people speak within a second; a few wait up to 2 s.
    lead = rng.choice([rng.uniform(0.0, 0.8)] * 3 + [rng.uniform(0.8, 2.0)])
    parts = [silence(lead)]
    beep_at = None
    if label == "human":
        kind = rng.choice(["human_short"] * 3 + ["human_double", "human_pause"])
        if kind == "human_pause":
            parts = [silence(rng.uniform(1.0, 1.6))]
            parts.append(tts(tmp, pick(rng, "pause", scripts), voice, speed, pitch))
        else:
            text = pick(rng, "short", scripts).format(n=n)
            parts.append(tts(tmp, text, voice, speed, pitch))
            if kind == "human_double":
                parts.append(silence(rng.uniform(1.2, 2.0)))
                parts.append(tts(tmp, pick(rng, "second", scripts), voice, speed, pitch))
        parts.append(silence(rng.uniform(1.2, 2.0)))
        speech = [s for p in parts for s in p]
    else:
        kind = rng.choice(["machine_personal", "machine_carrier", "machine_business"])
        text = pick(rng, kind[len("machine_"):], scripts).format(n=n, m=m, c=c)
        g = tts(tmp, text, voice, speed, pitch)
        # Keep greetings in 2-6 s: a longer one is cut at a random point (real greetings
        # are cut by the beep too); a fast short one stays as it is.
        limit = rng.uniform(2.0, 6.0)
        if len(g) > limit * RATE:
            cut = int(limit * RATE)
            g = g[:cut]
            fade = int(0.03 * RATE)
            for i in range(fade):
                g[cut - fade + i] *= 1 - i / fade
        parts.append(g)
        speech = [s for p in parts for s in p]
        if rng.random() < 0.6:
            speech += silence(rng.uniform(0.2, 0.8))
            beep_at = len(speech) * 1000 // RATE
            f = rng.uniform(400, 2000)
            dur = rng.uniform(0.15, 1.0)
            meta["beep_hz"] = round(f)
            meta["beep_ms"] = round(dur * 1000)
            beep_amp = 10 ** (-rng.uniform(0, 6) / 20) * max(abs(s) for s in speech)
            speech += tone([f], dur, beep_amp, fade=0.002)
        speech += silence(rng.uniform(0.3, 0.6))
    meta["kind"] = kind
    meta["script"] = " ".join(f"{name}{i}" for name, i in scripts)
    meta["split"] = split_of(voice, scripts)
    meta["onset_ms"] = len(parts[0]) * 1000 // RATE  # first speech, after the leading silence
    return speech, beep_at, meta


def build(index, label, tmp, tag=""):
    rng = random.Random(f"{SEED}-{tag}{label}-{index}")
    speech, beep_at, meta = make_clip(rng, label, tmp)
    level = rng.uniform(-30, -1)
    speech = scale_to_peak(speech, level)
    prefix = []
    answer_ms = 0
    meta["ringback"] = ""
    if rng.random() < 0.25:
        rb_kind, prefix, tone_end = ringback(rng, 10 ** (rng.uniform(-24, -8) / 20))
        meta["ringback"] = rb_kind
        answer_ms = tone_end
    offset_ms = len(prefix) * 1000 // RATE
    x = prefix + speech
    nk = rng.choice(["none", "pink", "brown", "white", "pink", "brown"])
    snr = None
    if nk != "none":
        snr = rng.uniform(10, 30)
        nrms = active_rms(speech) / 10 ** (snr / 20)
        nz = noise(rng, nk, len(x))
        x = [s + nrms * v for s, v in zip(x, nz)]
    peak = max(abs(s) for s in x)
    if peak > 0.99:
        x = [s * 0.99 / peak for s in x]
    codec = "gsm" if rng.random() < 0.3 else "ulaw"
    meta.update(level_dbfs=round(level, 1), noise=nk, snr_db="" if snr is None else round(snr, 1),
                codec=codec, answer_ms=answer_ms, speech_onset_ms=meta["onset_ms"] + offset_ms,
                beep_onset_ms="" if beep_at is None else beep_at + offset_ms)
    return x, meta


def telephone(tmp, x, codec, out, low_hz=300):
    """Band-pass `low_hz`-3400 Hz, an optional GSM round trip, then G.711 mu-law WAV."""
    a = os.path.join(tmp, "a.wav")
    b = os.path.join(tmp, "b.wav")
    write_wav(a, x)
    run("sox", "-D", a, b, "sinc", f"{low_hz}-3400")
    if codec == "gsm":
        gsm_round_trip(tmp, b, a)
        b, a = a, b
    run("sox", "-D", b, "-e", "u-law", "-b", "8", out)


def corpus(tmp):
    os.makedirs(AMD_DIR, exist_ok=True)
    rows = []
    for label, count, prefix in (("human", N_HUMAN, "h"), ("machine", N_MACHINE, "m")):
        for i in range(count):
            name = f"{prefix}{i + 1:03d}.wav"
            x, meta = build(i, label, tmp)
            telephone(tmp, x, meta["codec"], os.path.join(AMD_DIR, name))
            rows.append(row_of(name, label, meta, x))
            print(name, meta["kind"], file=sys.stderr)
    write_labels(AMD_DIR, rows)


def row_of(name, label, meta, x):
    return {"file": name, "label": label, "kind": meta["kind"],
            "beep_onset_ms": meta["beep_onset_ms"], "split": meta["split"],
            "answer_ms": meta["answer_ms"],
            "speech_onset_ms": meta["speech_onset_ms"], "ringback": meta["ringback"],
            "voice": meta["voice"], "speed": meta["speed"], "pitch": meta["pitch"],
            "level_dbfs": meta["level_dbfs"], "noise": meta["noise"],
            "snr_db": meta["snr_db"], "codec": meta["codec"],
            "duration_ms": len(x) * 1000 // RATE,
            **({"low_hz": meta["low_hz"]} if "low_hz" in meta else {}), "script": meta["script"]}


def extra_train(tmp, count, out_dir, wide=False):
    """`count` more training-only files of each class in `out_dir` (not committed): clips
    drawn from their own seeds ("extra-"), of which only those whose voice accent and
    every phrase are train ones are kept, so no holdout accent or sentence is heard. With
    `wide`, from seeds of their own ("extra-wide-"), each through a network whose lower
    edge is drawn from 80-300 Hz whatever its class (column `low_hz`; as
    make_world_corpus.py --wide, which says why)."""
    extra_set(tmp, count, out_dir, "train", "extra-wide-" if wide else "extra-", wide)


def extra_holdout(tmp, count, out_dir):
    """`count` more files of each class of the holdout's kind, for scoring only, in
    `out_dir` (not committed): clips drawn from seeds of their own ("extra-holdout-"), of
    which only those that the corpus would put in `holdout` (a held-out accent or phrase)
    are kept (session 22: a larger sample than the committed holdout's). Never trained on."""
    extra_set(tmp, count, out_dir, "holdout", "extra-holdout-")


def extra_set(tmp, count, out_dir, split, tag, wide=False):
    """`count` files of each class of `split`, from clips drawn from seeds tagged `tag`;
    with `wide`, each through a network whose lower edge is drawn from 80-300 Hz."""
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for label, prefix in (("human", "xh"), ("machine", "xm")):
        i = kept = 0
        while kept < count:
            x, meta = build(i, label, tmp, tag=tag)
            i += 1
            if meta["split"] != split:
                continue
            kept += 1
            name = f"{prefix}{kept:05d}.wav"
            low_hz = 300
            if wide:
                low_hz = meta["low_hz"] = random.Random(f"{tag}{label}-{i}-edge").randint(*WIDE_LOW_HZ)
            telephone(tmp, x, meta["codec"], os.path.join(out_dir, name), low_hz)
            rows.append(row_of(name, label, meta, x))
            print(name, meta["kind"], file=sys.stderr)
    write_labels(out_dir, rows)


PROMPTS = {
    "callback-offer": "All our agents are busy. Press 1 to be called back, or stay on the line.",
    "callback-confirm": "Thank you. We will call you back as soon as an agent is available. Goodbye.",
    "please-hold": "Please hold while we connect you to an agent.",
    "voicemail-message": "Hello, this is a call back from our support team, as you requested. "
                         "We will try again later. Thank you.",
    "apology": "We are sorry, we could not connect your call. We will try again later.",
    "callback-exists": "You already have a call back booked with us. We will call you soon. Goodbye.",
    "enter-number": "Please enter your phone number, with the country code, then press the hash key.",
    "you-entered": "You entered",
    "press-1-to-confirm": "Press 1 to confirm, or 2 to enter it again.",
}
# Digits for reading a number back.
PROMPTS.update({f"digit-{d}": w for d, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])})


def prompts(tmp):
    os.makedirs(PROMPT_DIR, exist_ok=True)
    for name, text in PROMPTS.items():
        x = scale_to_peak(tts(tmp, text, "en-us+f3", 160, 50), -3)
        x = silence(0.2) + x + silence(0.3)
        a = os.path.join(tmp, "p.wav")
        write_wav(a, x)
        run("sox", "-D", a, os.path.join(PROMPT_DIR, name + ".wav"), "sinc", "300-3400")
    # Hold music: a gentle arpeggio of soft sine tones, 4 s, loops cleanly (starts and
    # ends at silence).
    notes = [523.25, 659.25, 783.99, 659.25]
    x = []
    for f in notes * 2:
        x += tone([f, f / 2], 0.5, 0.25, fade=0.05)
    write_wav(os.path.join(PROMPT_DIR, "hold-music.wav"), x)


def parse_args(argv):
    """What `argv` (without the program) asks for: None for the committed corpus and the
    prompts, or (the extra set's function, N, DIR). Anything else is a usage error."""
    extra = {"--extra-train": extra_train, "--extra-holdout": extra_holdout}
    if not argv:
        return None
    if argv[0] not in extra:
        usage_error(__doc__, f"unknown argument {argv[0]!r}")
    wide = argv[0] == "--extra-train" and argv[-1] == "--wide"
    args = argv[:-1] if wide else argv
    if len(args) != 3 or args[2].startswith("-"):
        usage_error(__doc__, f"{argv[0]} takes N and DIR")
    make = functools.partial(extra_train, wide=True) if wide else extra[argv[0]]
    return make, count_arg(__doc__, "N", args[1], 1), args[2]


def main():
    extra = parse_args(sys.argv[1:])
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is required (Debian: apt-get install espeak-ng sox)")
    with tempfile.TemporaryDirectory() as tmp:
        if extra:
            make, count, out_dir = extra
            make(tmp, count, out_dir)
            return
        prompts(tmp)
        corpus(tmp)


if __name__ == "__main__":
    main()
