#!/usr/bin/env python3
"""Build the "world" AMD corpus (test-media/amd-world/), reproducibly.

The corpus is meant to look like the world, not like one speech engine:

- three speech engines (espeak-ng, flite, festival) and many voices, several speaking
  rates (sox tempo) and levels;
- the telephone channel: 300-3400 Hz band-pass, then one of G.711 mu-law, an A-law round
  trip, GSM 06.10 or Opus at 8-12 kbit/s, packet-loss gaps (20-60 ms of silence, as a
  concealment that gave up), and clipping of a hot line;
- background noise (white, pink, brown), babble of other voices, and TV/radio (a voice
  and music);
- ring-back lead-ins of several countries and late pick-ups;
- the hard humans (repeated "Hello?", a long first sentence, a receptionist's business
  greeting, a TV in the background, a whisper-quiet voice in noise, "Hello?" after a long
  silence) and the hard machines (short greeting, a greeting that starts with a question,
  music before the greeting, carrier announcements, no beep).

The **holdout split is by voice and by script**: every voice belongs to one split, and
every phrase list is divided by index (every fourth phrase is holdout), so no voice and
no sentence of the holdout is heard in the `train` split. The `script` column of
labels.csv names what each file says, as list and index in it (`short3`, `again7`,
`long1`, `reception2`, `personal_business15`, `brief4`, `late1`...; a file that speaks
twice has two, space-separated), so cross-validation on `train` can hold out scripts as
well as voices. The learned classifier
(`test-media/train_amd.py`) and every tuning use `train` only; the figures reported are
on `holdout`.

Every random choice comes from `random.Random(<fixed string seed>)`; espeak-ng, flite,
festival, sox (run with -D: no dither, -R: fixed noise seed) and opus-tools (fixed
stream serial) are deterministic, so the same tools give the same labels and, on one
machine, the same files (libopus picks its SIMD code for the CPU, so a file whose chain
passes through Opus can differ slightly on another machine: 3 of 480 did). Output:
test-media/amd-world/*.wav (8 kHz mono G.711 mu-law WAV, format tag 7) and
test-media/amd-world/labels.csv. (test-media/make_corpus.py makes the first, espeak-only
corpus in test-media/amd/, which the end-to-end tests play as callers, and the prompts.)

Needs: espeak-ng flite festival festvox-kallpc16k festvox-us-slt-hts sox libsox-fmt-mp3 opus-tools
(Debian package names) and python3.

Usage: python3 test-media/make_world_corpus.py   (or test-media/make-world-corpus.sh)
       python3 test-media/make_world_corpus.py --extra-train N DIR [FIRST] [--new-voices] [--hard] [--hot] [--wide]
           N more training-only files of each class into DIR (see `extra_train`);
           with --new-voices, spoken by NEW_TRAIN_VOICES (also needs festvox-ca-ona-hts
           festvox-czech-dita festvox-suopuhe-lj festvox-kdlpc16k);
           with --hard, of HARD_KINDS only; with --hot, every line hot and clipped;
           with --wide, the network's band reaching down to 80-300 Hz
       python3 test-media/make_world_corpus.py --extra-holdout N DIR [FIRST]
           N more files of each class of the holdout's voices and phrases, for scoring
           only (see `extra_holdout`)
"""
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile

from audio_util import (RATE, WIDE_LOW_HZ, active_rms, amr_round_trip, count_arg, gsm_round_trip, read_wav, run,
                        scale_to_peak, silence, usage_error, write_labels, write_wav)

SEED = "redial-amd-v2"
N_HUMAN = 240
N_MACHINE = 240
HOLDOUT_EVERY = 4  # every 4th clip of each class is holdout

HERE = os.path.dirname(os.path.abspath(__file__))

# The kinds a clip is drawn from: the corpus's mix, and for an extra training set made
# with --hard only the kinds among the detector's errors (cross-validated and on the
# holdout) that the mix makes rare, so that training weighs them more (docs/amd.md,
# session 18: tried, not kept).
HUMAN_KINDS = ["human_short"] * 6 + ["human_again"] * 2 + [
    "human_repeat", "human_late", "human_long", "human_business", "human_tv", "human_quiet"]
MACHINE_KINDS = ["machine_personal"] * 3 + ["machine_business"] * 2 + ["machine_carrier"] * 2 + [
    "machine_short", "machine_question", "machine_music"]
HARD_KINDS = {
    "human": ["human_business", "human_tv", "human_long", "human_again", "human_quiet"],
    "machine": ["machine_short", "machine_question", "machine_music", "machine_carrier", "machine_business"],
}
AMD_DIR = os.path.join(HERE, "amd-world")

# Voices: (engine, name). A voice is in exactly one split.
TRAIN_VOICES = [
    ("espeak", "en-us+m3"), ("espeak", "en+f2"), ("espeak", "en-gb+m1"), ("espeak", "en-us+f4"),
    ("espeak", "en+m7"), ("espeak", "en-gb-x-rp+f1"), ("espeak", "en-us+m2"),
    ("flite", "kal"), ("flite", "kal16"), ("flite", "awb"),
    ("festival", "kal_diphone"),
]
HOLDOUT_VOICES = [
    ("flite", "rms"), ("flite", "slt"), ("festival", "cmu_us_slt_arctic_hts"),
    ("espeak", "en-gb-scotland+f3"), ("espeak", "en-029+m5"), ("espeak", "en-us-nyc+f5"),
]
# Training-only voices for the extra set made with --new-voices (never in the committed
# corpus, so its draws are unchanged), `test-media/amd-extra-voices/` in train-amd.sh:
# vocoders and speakers the train side lacks and the holdout has kinds of (an HTS voice,
# women on other engines than espeak). Festival's Catalan HTS voice (festvox-ca-ona-hts),
# also shifted in pitch by sox (cents, a third element: the formants move with it, as for
# a shorter or longer vocal tract), its Czech and Finnish women (festvox-czech-dita,
# festvox-suopuhe-lj) and an American man (festvox-kdlpc16k), raised. The voices of other
# languages read the English scripts with their own letter-to-sound rules: an accent, not
# an English speaker, but the timbre, vocoder and cadence are what the models are short of
# (docs/amd.md, session 27; session 17 tried pitch-shifted train voices and ked alone).
NEW_TRAIN_VOICES = [
    ("festival", "upc_ca_ona_hts"), ("festival", "upc_ca_ona_hts", -300), ("festival", "upc_ca_ona_hts", 300),
    ("festival", "czech_dita"), ("festival", "suo_fi_lj_diphone"), ("festival", "ked_diphone", 400),
]
# Their Debian packages, checked before a --new-voices set is made.
NEW_VOICE_PACKAGES = {"upc_ca_ona_hts": "festvox-ca-ona-hts", "czech_dita": "festvox-czech-dita",
                      "suo_fi_lj_diphone": "festvox-suopuhe-lj", "ked_diphone": "festvox-kdlpc16k"}
# Festival voices given the text without apostrophes: the diphone voices of other
# languages, a precaution taken when Italy's lp_diphone (left out) failed on scripts. The
# Catalan and Czech voices read them, and amd-extra-voices was made so (session 27).
NO_APOSTROPHES = ("suo_fi_lj_diphone",)

NAMES = ["Sam", "Alex", "Maria", "John", "Priya", "Chen", "Laura", "David", "Fatima", "Tom",
         "Olga", "Ben", "Grace", "Omar", "Julia", "Kevin", "Nadia", "Peter", "Rosa", "Ivan"]
COMPANIES = ["Acme Plumbing", "Northside Dental", "Bright Insurance", "City Motors",
             "Green Valley Clinic", "Summit Realty", "Harbor Bank", "Lakeside Vets",
             "Pine Street Bakery", "Metro Cabs", "Oak Hill Library", "Riverside Garage"]

# --- scripts (each list is split by index: i % 4 == 3 is holdout) -----------------------
HUMAN_SHORT = ["Hello?", "Yeah?", "Hi.", "Hello.", "Yes?", "Hi, this is {n}.",
               "Hello, who's this?", "{n} speaking.", "Hey.", "Yes, hello?", "Hello, {n} here.",
               "Hi there.", "Good morning.", "Hello, yes?", "Hiya.", "Speaking.",
               "Good afternoon.", "Yep, hello?", "{n}.", "Hello, {n}'s phone.",
               "Hi, who is it?", "Evening.", "Hello there.", "Yes, {n} here."]
HUMAN_AGAIN = ["Hello?", "Hello? Anyone there?", "Hello, can you hear me?", "Who is this?",
               "Hello? Is anyone there?", "Yes?", "Hi? Hello?", "Can you hear me?",
               "Hello, I can't hear you.", "Is somebody there?", "Hello-o?", "Who's calling?"]
HUMAN_LONG = [
    ["Hi, yes, this is {n} speaking,", "I was just about to head out,", "who's calling please?"],
    ["Oh hello,", "sorry, I was in the other room,", "what can I do for you?"],
    ["Yes, hello,", "{n} here,", "is this about the appointment tomorrow?"],
    ["Hi,", "you caught me at a bad moment actually,", "who is this?"],
    ["Hello, this is {n},", "I think I missed a call from this number earlier,", "is that right?"],
    ["Good evening,", "the {n} household,", "who's speaking?"],
    ["Hello?", "Sorry, the line is not very good,", "could you say that again?"],
    ["Yes, speaking,", "I got your message this morning,", "thanks for calling back."],
]
HUMAN_BUSINESS = [
    "Good morning, {c}, {n} speaking, how can I help?",
    "{c}, this is {n}, how may I help you?",
    "Thank you for calling {c}, {n} speaking.",
    "Hello, {c}, front desk.",
    "{c}, good afternoon, how can I help you today?",
    "Hi, {c}, {n} here.",
    "Reception, {n} speaking.",
    "{c}, can I help you?",
]
PERSONAL = [
    "Hi, you've reached {n}. I can't take your call right now, please leave a message after the tone.",
    "Hey, this is {n}. Leave a message and I'll get back to you.",
    "Hello, you have reached {n}. I'm not available at the moment. Please leave your name and number.",
    "Hi, it's {n}. Sorry I missed you. Leave a message after the beep.",
    "This is {n}. I'm away from my phone. Please leave a message.",
    "Hi, you've reached {n} and {m}. We can't come to the phone right now. Leave a message.",
    "Hey there, {n} here. I'm probably out walking the dog, so leave me a message and I'll call you back.",
    "You've reached the voicemail of {n}. Please leave a detailed message and I will return your call.",
    "Hello! {n} and {m} aren't home right now. Please leave a message after the beep.",
    "Hi, this is {n}'s phone. I'm either on the other line or away from my desk.",
    "Thanks for calling. You've reached {n}. I'll get back to you as soon as I can.",
    "Hi. This is {n}. I'm travelling this week with limited access to my phone. Please leave a message.",
]
QUESTION_FIRST = [
    "Hello? Ha, got you, this is {n}'s voicemail. Leave a message.",
    "Looking for {n}? Sorry, I can't pick up right now. Leave a message after the tone.",
    "Is that you? Well, I'm not here. Leave me a message.",
    "Who's calling? Tell me after the beep, and I'll call you back.",
    "Hi, is this important? Then leave a message and I will get back to you.",
    "Did you want to reach {n}? I'm not available, please leave your name and number.",
    "Hello, hello? This is a recording. {n} can't take your call.",
    "Can't reach me? That's because I'm busy. Leave a message.",
]
SHORT_MACHINE = ["Leave a message.", "It's {n}. Leave a message.", "{n}. Message please.",
                 "Not here. Leave a message.", "{n}'s phone, leave a message.",
                 "Please leave a message.", "Message after the beep.", "You know what to do.",
                 "Hi, it's {n}. Talk to me.", "Leave it at the tone.", "Speak after the beep.",
                 "{n}. Can't talk."]
CARRIER = [
    "The person you are calling is not available. Please leave a message after the tone.",
    "The number you have dialed is not available. At the tone, please record your message.",
    "Your call has been forwarded to an automated voice messaging system. {n} is not available.",
    "The subscriber you are trying to reach is unavailable. Please try again later, or leave a message.",
    "Welcome to the voice mail service. The mailbox of {n} is full. Goodbye.",
    "The person you are calling cannot take your call at the moment. Please leave a message.",
    "The mobile phone you are calling is switched off. Please try again later.",
    "Sorry, the number you have called is not in service. Please check the number and try again.",
    "The customer you are calling is busy. Please leave a message after the tone.",
    "The call cannot be completed as dialed. Please hang up and try again.",
    "Please leave your message for {n} after the tone. When you are done, hang up.",
    "The wireless customer you are calling is not available. Please try your call again later.",
]
BUSINESS = [
    "Thank you for calling {c}. Our office is currently closed. Please leave a message.",
    "You have reached {c}. Our business hours are nine to five, Monday to Friday.",
    "Thank you for calling {c}. All of our staff are busy. Please leave a message after the tone.",
    "Welcome to {c}. For sales, press one. For support, press two.",
    "Hello, and thank you for calling {c}. Your call is important to us.",
    "You've reached {c}. We're closed for the holidays and will reopen on Monday.",
    "Thanks for calling {c}. If you know your party's extension, you may dial it at any time.",
    "{c}. Please hold, and the next available representative will be with you shortly.",
    "Hi, you've reached {c}. We are out on a job right now, so leave your number and we'll call back.",
    "Good day, this is {c}. Our opening hours have changed. Please listen carefully.",
    "Thank you for calling {c}. This call may be recorded for training purposes.",
    "You have reached the after hours line of {c}. For emergencies, call the main number.",
]
# What a person says who picks up late (human_late).
LATE = ["Hello?", "Hello? Hello?", "Yes?", "Hi?"]
# The phrase lists by the names the `script` column uses: `pick` draws from them by name,
# and the cross-validation that holds out scripts (amd_diagnose.py) reads them (a long
# first sentence is a list of clauses).
SCRIPT_LISTS = {"short": HUMAN_SHORT, "again": HUMAN_AGAIN, "long": HUMAN_LONG, "reception": HUMAN_BUSINESS,
                "personal": PERSONAL, "business": BUSINESS, "personal_business": PERSONAL + BUSINESS,
                "question": QUESTION_FIRST, "brief": SHORT_MACHINE, "carrier": CARRIER, "late": LATE}
# Babble and TV content: never used as a script.
BACKGROUND = [
    "And now the weather for the weekend, with sunshine in the north and rain in the south.",
    "The match ended two all after a late goal in the second half.",
    "Stocks closed higher today as investors welcomed the news from the central bank.",
    "Add the flour slowly and keep stirring until the mixture is smooth.",
    "Traffic is heavy on the ring road this morning because of roadworks near the bridge.",
    "Scientists say the discovery could change how we think about the early universe.",
    "Coming up after the break, an interview with the author of a new novel.",
    "The council will meet again next week to discuss the plans for the park.",
]


def split_of(items, split):
    """The phrases of a list that belong to `split` (every 4th is holdout)."""
    return [p for i, p in enumerate(items) if (i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1) == (split == "holdout")]


def festival_says(name, txt, wav):
    """Festival's voice `name` reads the text file `txt` into `wav`; whether it made audio.
    text2wave exits 0 when the voice is not installed (leaving `wav` as it was) or its front
    end fails on a text (an empty `wav`), so the file is what tells, and an earlier one is
    removed first."""
    if os.path.exists(wav):
        os.remove(wav)
    run("text2wave", "-eval", f"(voice_{name})", txt, "-o", wav)
    if not os.path.exists(wav):
        return False
    with open(wav, "rb") as f:
        return f.read(4) == b"RIFF"


def tts(tmp, text, voice, tempo, pitch):
    """One utterance from `voice` (engine, name[, cents of pitch shift]) at 8 kHz, trimmed
    of the engine's padding."""
    engine, name = voice[:2]
    shift = ["pitch", str(voice[2])] if len(voice) > 2 else []
    raw = os.path.join(tmp, "tts.wav")
    out = os.path.join(tmp, "tts8.wav")
    if engine == "espeak":
        run("espeak-ng", "-v", name, "-s", "165", "-p", str(pitch), "-w", raw, text)
    elif engine == "flite":
        run("flite", "-voice", name, "-t", text, "-o", raw)
    else:
        txt = os.path.join(tmp, "tts.txt")
        with open(txt, "w") as f:
            f.write(text.replace("'", "") if name in NO_APOSTROPHES else text)
        if not festival_says(name, txt, raw):
            sys.exit(f"festival's {name} made no audio of {text!r}")
    run("sox", "-D", raw, "-r", str(RATE), "-c", "1", "-b", "16", out, "tempo", "-s", f"{tempo:.3f}", *shift)
    x = read_wav(out)
    peak = max(abs(s) for s in x) or 1.0
    thr = 0.01 * peak
    first = next(i for i, s in enumerate(x) if abs(s) > thr)
    last = len(x) - next(i for i, s in enumerate(reversed(x)) if abs(s) > thr)
    return [s / peak for s in x[first:last]]


def tone(freqs, sec, amp, fade=0.005, am_hz=0.0):
    n = int(round(sec * RATE))
    nf = max(1, int(fade * RATE))
    out = []
    for i in range(n):
        g = min(1.0, i / nf, (n - 1 - i) / nf)
        if am_hz:
            g *= 0.5 + 0.5 * math.sin(2 * math.pi * am_hz * i / RATE)
        out.append(amp * g * sum(math.sin(2 * math.pi * f * i / RATE) for f in freqs) / len(freqs))
    return out


def ringback(rng, amp):
    """Ring-back of one country: one or two cadences then part of the off period.
    Returns (country, samples, end of the last tone burst in ms)."""
    kind = rng.choice(["us", "uk", "eu", "fr", "au", "jp"])
    seg = []
    for k in range(rng.choice([1, 1, 2])):
        if kind == "us":      # 440+480 Hz, 2 s on 4 s off
            on, off = tone([440, 480], 2.0, amp), 4.0
        elif kind == "uk":    # 400+450 Hz, 0.4 on 0.2 off 0.4 on 2 s off
            on, off = tone([400, 450], 0.4, amp) + silence(0.2) + tone([400, 450], 0.4, amp), 2.0
        elif kind == "eu":    # 425 Hz, 1 s on 4 s off (ITU-T E.180)
            on, off = tone([425], 1.0, amp), 4.0
        elif kind == "fr":    # 440 Hz, 1.5 s on 3.5 s off
            on, off = tone([440], 1.5, amp), 3.5
        elif kind == "au":    # 400+425+450 Hz, 0.4 on 0.2 off 0.4 on 2 s off
            t = [400, 425, 450]
            on, off = tone(t, 0.4, amp) + silence(0.2) + tone(t, 0.4, amp), 2.0
        else:                 # Japan: 400 Hz modulated at 16 Hz, 1 s on 2 s off
            on, off = tone([400], 1.0, amp, am_hz=16.0), 2.0
        if k > 0:
            seg += silence(off)
        seg += on
    tone_end = len(seg)
    seg += silence(rng.uniform(0.1, 0.8))
    return kind, seg, tone_end * 1000 // RATE


def music(rng, sec, amp):
    """Chords with harmonics (no single dominant tone, so no beep), as on-hold or intro
    music before a greeting."""
    out = []
    root = rng.choice([220.0, 246.9, 261.6, 293.7, 329.6])
    while len(out) < sec * RATE:
        r = root * rng.choice([1.0, 1.335, 1.498, 1.26, 0.891])
        notes = [r, r * 1.26, r * 1.498]
        freqs = [f * h for f in notes for h in (1, 2, 3)]
        out += tone(freqs, rng.uniform(0.25, 0.5), amp, fade=0.02)
    return out[: int(sec * RATE)]


class Beds:
    """Long background beds (noise, babble, TV) from which clips take random slices."""

    def __init__(self, tmp, split):
        self.beds = {}
        for kind in ("white", "pink", "brown"):
            path = os.path.join(tmp, f"{kind}.wav")
            run("sox", "-D", "-R", "-n", "-r", str(RATE), "-b", "16", path, "synth", "40", f"{kind}noise", "vol", "0.3")
            self.beds[kind] = normalise(read_wav(path))
        rng = random.Random(f"{SEED}-beds-{split}")
        voices = TRAIN_VOICES if split == "train" else HOLDOUT_VOICES
        lines = split_of(BACKGROUND, split)
        # Babble: four talkers, each a loop of background lines.
        talkers = []
        for _ in range(4):
            x = []
            while len(x) < 40 * RATE:
                x += tts(tmp, rng.choice(lines), rng.choice(voices), rng.uniform(0.9, 1.1), 50)
                x += silence(rng.uniform(0.1, 0.4))
            talkers.append(x[: 40 * RATE])
        self.beds["babble"] = normalise([sum(t[i] for t in talkers) for i in range(40 * RATE)])
        # TV / radio: one presenter over music.
        m = music(rng, 40, 0.3)
        self.beds["tv"] = normalise([a + 0.5 * b for a, b in zip(talkers[0], m)])

    def take(self, rng, kind, n):
        bed = self.beds[kind]
        start = rng.randrange(0, len(bed) - n) if n < len(bed) else 0
        out = bed[start:start + n]
        while len(out) < n:
            out += bed[: n - len(out)]
        return out


def normalise(x):
    r = math.sqrt(sum(s * s for s in x) / max(1, len(x))) or 1.0
    return [s / r for s in x]


def cut_greeting(rng, g, lo, hi):
    """Greetings are cut by the beep or the end of the recording: keep lo..hi s."""
    limit = rng.uniform(lo, hi)
    if len(g) > limit * RATE:
        cut = int(limit * RATE)
        g = g[:cut]
        fade = int(0.03 * RATE)
        for i in range(fade):
            g[cut - fade + i] *= 1 - i / fade
    return g


def make_clip(rng, label, split, tmp, voices=None, kinds=None):
    """Returns (speech samples at unit peak, beep onset ms or None, meta).
    Times in ms from the clip start (the answer). `voices` replaces the split's own,
    `kinds` the label's mix of kinds."""
    voices = voices or (TRAIN_VOICES if split == "train" else HOLDOUT_VOICES)
    voice = rng.choice(voices)
    tempo = rng.uniform(0.85, 1.2)
    pitch = rng.randint(30, 70)
    n, m = rng.sample(NAMES, 2)
    c = rng.choice(COMPANIES)
    say = lambda text: tts(tmp, text.format(n=n, m=m, c=c), voice, tempo, pitch)
    scripts = []

    def pick(name):
        """One rng.choice of the split's phrases of SCRIPT_LISTS[name] (as the corpus was
        first made with), noting the phrase as `name` and its index in the whole list."""
        items = SCRIPT_LISTS[name]
        text = rng.choice(split_of(items, split))
        scripts.append(f"{name}{items.index(text)}")
        return text

    meta = {"voice": ":".join(map(str, voice)), "tempo": round(tempo, 2)}
    # Most people and machines speak within a second of answering; some wait.
    lead = rng.choice([rng.uniform(0.1, 0.9)] * 4 + [rng.uniform(0.9, 1.8)])
    beep_at = None
    extra = None
    if label == "human":
        kind = rng.choice(kinds or HUMAN_KINDS)
        if kind == "human_late":
            lead = rng.uniform(2.0, 3.0)
        parts = [silence(lead)]
        if kind in ("human_short", "human_tv", "human_quiet"):
            parts.append(say(pick("short")))
        elif kind == "human_again":
            parts.append(say(pick("short")))
            parts.append(silence(rng.uniform(1.0, 2.0)))
            parts.append(say(pick("again")))
        elif kind == "human_repeat":
            scripts.append("short0")  # "Hello?"
            for _ in range(rng.choice([2, 3])):
                parts.append(say(HUMAN_SHORT[0]))
                parts.append(silence(rng.uniform(0.6, 1.2)))
        elif kind == "human_late":
            text = rng.choice(LATE)
            scripts.append(f"late{LATE.index(text)}")
            parts.append(say(text))
        elif kind == "human_long":
            for k, clause in enumerate(pick("long")):
                if k:
                    parts.append(silence(rng.uniform(0.2, 0.5)))
                parts.append(say(clause))
        else:  # human_business
            parts.append(say(pick("reception")))
        parts.append(silence(rng.uniform(1.5, 2.5)))
        if kind == "human_tv":
            extra = ("tv", rng.uniform(8, 16))
        elif kind == "human_quiet":
            extra = (rng.choice(["pink", "brown", "white"]), rng.uniform(6, 12))
        # A person moves the handset and speaks up or down between utterances: each
        # utterance has its own level (+-4 dB); a platform-normalised recording does not.
        speech, spans = [], []
        for p in parts:
            if any(p):
                g = 10 ** (rng.uniform(-4, 4) / 20)
                spans.append((len(speech), len(speech) + len(p)))
                speech += [v * g for v in p]
            else:
                speech += p
        meta["spans"] = spans
    else:
        kind = rng.choice(kinds or MACHINE_KINDS)
        # The greeting is a recording: what was said (music first in some), captured and
        # stored on its own; the platform's lead before it and its beep after it are
        # added by `machine_line`.
        rec = []
        if kind == "machine_music":
            rec += music(rng, rng.uniform(1.0, 2.5), 0.5)
            rec += silence(rng.uniform(0.0, 0.3))
            g = cut_greeting(rng, say(pick("personal_business")), 1.5, 4.0)
        elif kind == "machine_short":
            g = say(pick("brief"))
        elif kind == "machine_question":
            g = cut_greeting(rng, say(pick("question")), 2.0, 5.0)
        else:
            g = cut_greeting(rng, say(pick(kind[len("machine_"):])), 2.0, 6.0)
        rec += g
        extra = {"lead": lead, "recording": rec, "music_s": (len(rec) - len(g)) / RATE}
        # Carrier announcements and business lines often end without a beep.
        p_beep = {"machine_carrier": 0.3, "machine_business": 0.4}.get(kind, 0.7)
        if rng.random() < p_beep:
            extra["beep"] = (rng.uniform(0.2, 0.8), rng.uniform(400, 2000), rng.uniform(0.15, 1.0),
                             10 ** (-rng.uniform(0, 6) / 20))
            meta["beep_hz"] = round(extra["beep"][1])
        extra["after_s"] = rng.uniform(0.3, 0.6)
        meta["kind"] = kind
        meta["script"] = " ".join(scripts)
        return None, None, extra, meta
    meta["kind"] = kind
    meta["script"] = " ".join(scripts)
    meta["onset_ms"] = int(lead * 1000)
    return speech, beep_at, extra, meta


def rms_of(x):
    return math.sqrt(sum(v * v for v in x) / max(1, len(x))) or 1.0


def at_level(x, dbfs):
    """`x` scaled to an RMS of `dbfs` (re full scale)."""
    g = 10 ** (dbfs / 20) / rms_of(x)
    return [v * g for v in x]


def comfort_noise(rng, beds, n, dbfs):
    """Comfort noise (RFC 3389 / G.711 Appendix II): a platform or a DTX link fills a
    silent stretch with a low, smooth, spectrally shaped noise whose level the sender
    signals (-dBov in the CN payload); here pink or brown noise at `dbfs`."""
    return at_level(beds.take(rng, rng.choice(["pink", "brown"]), n), dbfs)


def aligned(y, x):
    """`y` (a codec's decoded output, delayed by its look-ahead and padding) shifted to
    line up with its input `x` and cut to its length."""
    import numpy as np
    a = np.array(x[: 2 * RATE])
    b = np.array(y[: 2 * RATE + 3000])
    best, lag = -1.0, 0
    for k in range(0, min(3000, len(b) - 1)):
        m = min(len(a), len(b) - k)
        c = float(np.dot(a[:m], b[k:k + m]))
        if c > best:
            best, lag = c, k
    y = y[lag:lag + len(x)]
    return y + [0.0] * (len(x) - len(y))


def record(tmp, rng, beds, rec, kind, meta):
    """The recording chain of a greeting: a room and a microphone while it was recorded
    (the room's noise runs from the press of "record" to its end, so the recording starts
    and stops with its own noise floor), a storage codec, and the platform's level
    normalisation. Returns the recording at its platform level."""
    pre = silence(rng.uniform(0.1, 0.5))
    post = silence(rng.uniform(0.1, 0.4))
    x = scale_to_peak(pre + rec + post, -3)
    # Carrier announcements are studio recordings: close to no room at all.
    room = rng.choice(["pink", "brown", "babble", "white", "pink", "brown"])
    snr = rng.uniform(35, 50) if kind == "machine_carrier" else rng.uniform(15, 38)
    r = active_rms(rec) / 10 ** (snr / 20)
    x = [v + r * w for v, w in zip(x, beds.take(rng, room, len(x)))]
    # The handset or headset microphone: its own band edges.
    hp, lp = rng.uniform(80, 300), rng.uniform(2800, 3800)
    a, b, c = (os.path.join(tmp, f"r{k}.wav") for k in "abc")
    write_wav(a, x)
    run("sox", "-D", a, b, "highpass", f"{hp:.0f}", "lowpass", f"{lp:.0f}")
    store = rng.choice(["gsm", "amr", "amr", "mp3", "opus", "wav"])
    if store == "gsm":
        gsm_round_trip(tmp, b, c)
    elif store == "amr":  # AMR-NB, 4.75-12.2 kbit/s (modes 0-7)
        mode = rng.randint(0, 7)
        store += f"{mode}"
        amr_round_trip(tmp, b, c, mode)
    elif store == "mp3":  # a cloud voicemail's compressed file
        kbps = rng.choice([8, 16, 24])
        store += f"{kbps}"
        g = os.path.join(tmp, "r.mp3")
        run("sox", "-D", b, "-C", str(kbps), g)
        run("sox", "-D", g, "-r", str(RATE), "-e", "signed-integer", "-b", "16", c)
    elif store == "opus":
        kbps = rng.choice([8, 12, 16])
        store += f"{kbps}"
        g = os.path.join(tmp, "r.opus")
        run("opusenc", "--quiet", "--serial", "1", "--bitrate", str(kbps), b, g)
        run("opusdec", "--quiet", "--rate", str(RATE), g, c)
    else:
        c = b
    y = aligned(read_wav(c), x) if store != "wav" else read_wav(c)[: len(x)]
    meta.update(room=room, room_snr_db=round(snr, 1), store=store)
    # The platform normalises what it stores: a narrow range of peak levels.
    return scale_to_peak(y, rng.uniform(-8, -3)), len(pre)


class PlatformLine:
    """A voicemail platform's own line, drawn from `rng` in proportions `mix` (digital,
    comfort, hiss): digital silence or comfort noise between what it plays, or a steady
    hiss of a noisy leg on the way that runs under all of it (no step at all)."""

    def __init__(self, rng, beds, mix):
        self.rng, self.beds = rng, beds
        self.idle = rng.choice(["digital"] * mix[0] + ["comfort"] * mix[1] + ["hiss"] * mix[2])
        self.dbfs = rng.uniform(-75, -56)

    def idle_for(self, n):
        """`n` samples of the line with nothing played."""
        return [0.0] * n if self.idle == "digital" else comfort_noise(self.rng, self.beds, n, self.dbfs)

    def under(self, x):
        """`x`, all of it, as it leaves the platform: with the hiss under it on a hissing line."""
        if self.idle != "hiss":
            return x
        return [v + w for v, w in zip(x, comfort_noise(self.rng, self.beds, len(x), self.dbfs))]


def machine_line(tmp, rng, beds, extra, meta):
    """What the caller hears from a voicemail platform: its own line before the greeting,
    the recording played back, the platform's line again, the beep it generates, and its
    line after. Returns (samples, beep onset)."""
    rec, pre = record(tmp, rng, beds, extra["recording"], meta["kind"], meta)
    line = PlatformLine(rng, beds, (9, 7, 4))
    lead = int(extra["lead"] * RATE)
    x = line.idle_for(lead) + rec
    beep_at = None
    if "beep" in extra:
        gap, f, dur, amp = extra["beep"]
        x += line.idle_for(int(gap * RATE))
        beep_at = len(x) * 1000 // RATE
        x += tone([f], dur, amp, fade=0.002)
    x += line.idle_for(int(extra["after_s"] * RATE))
    x = line.under(x)
    meta.update(idle=line.idle, idle_dbfs=round(line.dbfs, 1), onset_ms=(lead + pre) * 1000 // RATE)
    return x, beep_at


def human_line(rng, beds, speech, extra, meta):
    """What the caller hears from a person who picked up: the place they are in, heard
    from the moment of answer (a quiet room, a noisy one, a TV), the handset's handling
    click as it is lifted, a breath before the first word; on some mobiles the phone's
    noise suppression and DTX take the background down between words."""
    quiet = meta["kind"] == "human_quiet"
    level = rng.uniform(-45, -36) if quiet else rng.uniform(-32, -4)
    x = scale_to_peak(speech, level)
    spans = meta.pop("spans")
    if extra is not None:
        env, snr = extra
        r = active_rms(x) / 10 ** (snr / 20)
    else:
        env = rng.choice(["quiet", "quiet", "quiet", "pink", "brown", "white", "babble", "brown"])
        if env == "quiet":
            # A quiet room through a handset microphone: a low steady floor, the
            # microphone's and the room's hiss (-62 to -48 dBFS before the band-pass).
            snr = None
            r = 10 ** (rng.uniform(-62, -48) / 20)
            env = rng.choice(["pink", "white"])
        else:
            snr = rng.uniform(10, 28)
            r = active_rms(x) / 10 ** (snr / 20)
    bed = beds.take(rng, env, len(x))
    bed = [r * v for v in bed]
    if rng.random() < 0.25 and not quiet:
        # Noise suppression and DTX on the callee's mobile: outside speech (with 100 ms
        # of hangover) the background is taken 15-30 dB down, as comfort noise.
        down = 10 ** (-rng.uniform(15, 30) / 20)
        keep = [False] * len(x)
        for a, b in spans:
            for i in range(max(0, a - 800), min(len(x), b + 800)):
                keep[i] = True
        bed = [v if k else v * down for v, k in zip(bed, keep)]
        meta["dtx"] = 1
    x = [v + w for v, w in zip(x, bed)]
    if rng.random() < 0.5 and spans:
        # The handling click of the handset: a short decaying broadband burst.
        at = int(rng.uniform(0.0, min(0.15, spans[0][0] / RATE)) * RATE)
        n = int(rng.uniform(0.005, 0.03) * RATE)
        amp = 10 ** (rng.uniform(-30, -12) / 20)
        for i in range(min(n, len(x) - at)):
            x[at + i] += amp * (1 - i / n) * (2 * rng.random() - 1)
    if rng.random() < 0.3 and spans and spans[0][0] > 0.45 * RATE:
        # A breath before the first word: 150-300 ms of soft noise 18-28 dB under the voice.
        n = int(rng.uniform(0.15, 0.3) * RATE)
        end = spans[0][0] - int(rng.uniform(0.05, 0.15) * RATE)
        amp = 10 ** (level / 20) * 10 ** (-rng.uniform(18, 28) / 20)
        b = at_level(beds.take(rng, "pink", n), 0)
        for i in range(n):
            x[end - n + i] += amp * 0.25 * b[i] * math.sin(math.pi * i / n)
    meta.update(env=env if snr is not None or extra is not None else f"quiet-{env}",
                env_snr_db="" if snr is None else round(snr, 1), level_dbfs=round(level, 1))
    return x


def build(index, label, split, tmp, beds, tag="", voices=None, kinds=None, hot=False):
    rng = random.Random(f"{SEED}-{tag}{label}-{index}")
    speech, beep_at, extra, meta = make_clip(rng, label, split, tmp, voices, kinds)
    if label == "human":
        x = human_line(rng, beds, speech, extra, meta)
    else:
        x, beep_at = machine_line(tmp, rng, beds, extra, meta)
    prefix = []
    answer_ms = 0
    meta["ringback"] = ""
    if rng.random() < 0.25:
        rb_kind, prefix, tone_end = ringback(rng, 10 ** (rng.uniform(-24, -8) / 20))
        meta["ringback"] = rb_kind
        answer_ms = tone_end
    offset_ms = len(prefix) * 1000 // RATE
    x = prefix + x
    # (`hot`: every line that may be hot is, for an extra training set; the draw is made
    # all the same, so the rest of the clip is what it would have been.)
    clip = (rng.random() < 0.1 or hot) and meta["kind"] != "human_quiet"
    x = under_full_scale(hot_line(rng, x) if clip else x)
    codec = rng.choice(["ulaw", "ulaw", "alaw", "gsm", "opus"])
    loss = rng.choice([0.0, 0.0, 0.0, rng.uniform(0.01, 0.05)])
    meta.update(codec=codec, loss=round(loss, 3), clipped=int(clip), answer_ms=answer_ms,
                speech_onset_ms=meta["onset_ms"] + offset_ms,
                beep_onset_ms="" if beep_at is None else beep_at + offset_ms)
    return x, meta, rng


def hot_line(rng, x):
    """A hot line: 6-12 dB too much gain, clipped at full scale."""
    g = 10 ** (rng.uniform(6, 12) / 20) * 0.99 / (max(abs(s) for s in x) or 1.0)
    return [max(-0.99, min(0.99, s * g)) for s in x]


def under_full_scale(x):
    peak = max(abs(s) for s in x)
    return [s * 0.99 / peak for s in x] if peak > 0.99 else x


def telephone(tmp, x, codec, loss, rng, out, low_hz=300):
    """Band-pass `low_hz`-3400 Hz, a codec round trip, packet-loss gaps, then G.711 mu-law WAV."""
    a = os.path.join(tmp, "a.wav")
    b = os.path.join(tmp, "b.wav")
    write_wav(a, x)
    run("sox", "-D", a, b, "sinc", f"{low_hz}-3400")
    if codec == "gsm":
        gsm_round_trip(tmp, b, a)
    elif codec == "alaw":
        g = os.path.join(tmp, "c.wav")
        run("sox", "-D", b, "-e", "a-law", "-b", "8", g)
        run("sox", "-D", g, "-e", "signed-integer", "-b", "16", a)
    elif codec == "opus":
        g = os.path.join(tmp, "c.opus")
        run("opusenc", "--quiet", "--serial", "1", "--bitrate", str(rng.choice([8, 10, 12])), b, g)
        run("opusdec", "--quiet", "--rate", str(RATE), g, a)
    else:
        a, b = b, a
    y = read_wav(a)[: len(x)]
    if loss > 0:
        # Lost packets whose concealment gave up: 1-3 frames of 20 ms go silent.
        i = 0
        while i < len(y):
            if rng.random() < loss:
                n = 160 * rng.choice([1, 1, 2, 3])
                y[i:i + n] = [0.0] * len(y[i:i + n])
            i += 160
    write_wav(b, y)
    run("sox", "-D", b, "-e", "u-law", "-b", "8", out)


def row_of(name, label, split, meta, x):
    return {"file": name, "label": label, "kind": meta["kind"],
            "beep_onset_ms": meta["beep_onset_ms"], "split": split,
            "answer_ms": meta["answer_ms"],
            "speech_onset_ms": meta["speech_onset_ms"], "ringback": meta["ringback"],
            "voice": meta["voice"], "tempo": meta["tempo"],
            "level_dbfs": meta.get("level_dbfs", ""),
            "env": meta.get("env", ""), "env_snr_db": meta.get("env_snr_db", ""),
            "dtx": meta.get("dtx", 0),
            "idle": meta.get("idle", ""), "idle_dbfs": meta.get("idle_dbfs", ""),
            "room": meta.get("room", ""), "room_snr_db": meta.get("room_snr_db", ""),
            "store": meta.get("store", ""),
            "codec": meta["codec"], "loss": meta["loss"],
            "clipped": meta["clipped"], "duration_ms": len(x) * 1000 // RATE,
            **({"low_hz": meta["low_hz"]} if "low_hz" in meta else {}),
            "script": meta["script"]}


def extra_train(tmp, count, out_dir, first=0, new_voices=False, hard=False, hot=False, wide=False):
    """`count` more files of each class for training only, in `out_dir` (not committed):
    train voices, train phrases and train background beds, drawn from their own seeds
    ("extra-"), so no holdout voice or sentence is heard and the committed corpus is
    unchanged. Files `first`..`first+count-1` of each class: disjoint ranges can be made
    in parallel and their labels concatenated. With `new_voices` the speakers are
    NEW_TRAIN_VOICES instead, from seeds of their own ("extra-voices-"); with `hard` the
    kinds are HARD_KINDS only, from seeds of their own too ("extra-hard-", or
    "extra-voices-hard-" with both); with `hot` every line is hot and clipped (but a
    whisper-quiet one), from seeds of their own too ("extra-hot-", after the others); with
    `wide` the network passes the voice down to a lower edge drawn from 80-300 Hz for each
    file whatever its class (column `low_hz`), from seeds of their own too ("extra-wide-",
    after the others). Why: the corpora cut every line at 300 Hz, but people on real
    telephone lines carry some 15 dB more of their voice at 125-250 Hz than the world
    corpus's people (docs/amd.md, session 32): a model that never heard a voice there has
    no reason to read one as a person's."""
    tag, voices = ("extra-voices-", NEW_TRAIN_VOICES) if new_voices else ("extra-", None)
    if hard:
        tag += "hard-"
    if hot:
        tag += "hot-"
    if wide:
        tag += "wide-"
    extra_set(tmp, count, out_dir, "train", first, tag, voices, HARD_KINDS if hard else None, hot, wide)


def extra_holdout(tmp, count, out_dir, first=0):
    """`count` more files of each class of the holdout's population, for scoring only, in
    `out_dir` (not committed): holdout voices, holdout phrases and holdout background beds
    drawn from seeds of their own ("extra-holdout-"), so the committed holdout's 60 files of
    a class, where one file is 1.7 points of recall, can be checked on a sample large
    enough to tell a point or two apart (session 22). Never trained on."""
    extra_set(tmp, count, out_dir, "holdout", first, "extra-holdout-")


def extra_set(tmp, count, out_dir, split, first, tag, voices=None, kinds=None, hot=False, wide=False):
    """Files `first`..`first+count-1` of each class of `split`, from seeds tagged `tag`;
    with `wide`, each through a network whose lower edge is drawn from 80-300 Hz."""
    os.makedirs(out_dir, exist_ok=True)
    beds = Beds(tmp, split)
    rows = []
    for label, prefix in (("human", "xh"), ("machine", "xm")):
        for i in range(first, first + count):
            name = f"{prefix}{i + 1:05d}.wav"
            x, meta, rng = build(i, label, split, tmp, beds, tag=tag, voices=voices,
                                 kinds=kinds[label] if kinds else None, hot=hot)
            low_hz = 300
            if wide:
                low_hz = meta["low_hz"] = rng.randint(*WIDE_LOW_HZ)
            telephone(tmp, x, meta["codec"], meta["loss"], rng, os.path.join(out_dir, name), low_hz)
            rows.append(row_of(name, label, split, meta, x))
            print(name, meta["kind"], meta["voice"], file=sys.stderr)
    write_labels(out_dir, rows)


def corpus(tmp):
    if os.path.isdir(AMD_DIR):
        for f in os.listdir(AMD_DIR):
            if f.endswith(".wav") or f == "labels.csv":
                os.remove(os.path.join(AMD_DIR, f))
    os.makedirs(AMD_DIR, exist_ok=True)
    beds = {s: Beds(tmp, s) for s in ("train", "holdout")}
    rows = []
    for label, count, prefix in (("human", N_HUMAN, "h"), ("machine", N_MACHINE, "m")):
        for i in range(count):
            name = f"{prefix}{i + 1:03d}.wav"
            split = "holdout" if i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1 else "train"
            x, meta, rng = build(i, label, split, tmp, beds[split])
            telephone(tmp, x, meta["codec"], meta["loss"], rng, os.path.join(AMD_DIR, name))
            rows.append(row_of(name, label, split, meta, x))
            print(name, split, meta["kind"], meta["voice"], file=sys.stderr)
    write_labels(AMD_DIR, rows)


def parse_args(argv):
    """What `argv` (without the program) asks for: None for the committed corpus, or
    (option, N, DIR, FIRST, new_voices, hard, hot, wide). Anything else is a usage error."""
    flags = ("--new-voices", "--hard", "--hot", "--wide")
    new_voices, hard, hot, wide = (f in argv for f in flags)
    args = [a for a in argv if a not in flags]
    if not argv:
        return None
    if not args or args[0] not in ("--extra-train", "--extra-holdout"):
        usage_error(__doc__, f"unknown argument {(args or argv)[0]!r}")
    if (new_voices or hard or hot or wide) and args[0] != "--extra-train":
        usage_error(__doc__, "--new-voices, --hard, --hot and --wide make an extra training set")
    if len(args) not in (3, 4) or any(a.startswith("-") for a in args[1:]):
        usage_error(__doc__, f"{args[0]} takes N DIR [FIRST] (and the flags above), not {args[1:]}")
    first = count_arg(__doc__, "FIRST", args[3], 0) if len(args) == 4 else 0
    return args[0], count_arg(__doc__, "N", args[1], 1), args[2], first, new_voices, hard, hot, wide


def check_new_voices(tmp):
    """Each festival voice of NEW_TRAIN_VOICES says a word, or the package to install is named."""
    txt = os.path.join(tmp, "check.txt")
    with open(txt, "w") as f:
        f.write("Hello.")
    for name in sorted({v[1] for v in NEW_TRAIN_VOICES if v[0] == "festival"}):
        if not festival_says(name, txt, os.path.join(tmp, "check.wav")):
            sys.exit(f"festival has no voice {name} here (Debian: apt-get install {NEW_VOICE_PACKAGES[name]})")


def main():
    extra = parse_args(sys.argv[1:])
    tools = ("espeak-ng", "flite", "text2wave", "sox", "opusenc", "opusdec")
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is required (Debian: apt-get install espeak-ng flite festival "
                     "festvox-kallpc16k festvox-us-slt-hts sox libsox-fmt-mp3 opus-tools)")
    # A voicemail's stored greeting may be AMR or MP3 (`record`); sox reads and writes them
    # through format plug-ins that a bare `sox` package lacks. Checked here, not at the first
    # such greeting, which may come after a thousand files.
    formats = subprocess.run(["sox", "-h"], capture_output=True, text=True).stdout
    listed = next((line.split(":", 1)[1].split() for line in formats.splitlines()
                   if line.startswith("AUDIO FILE FORMATS:")), [])
    for fmt, package in (("mp3", "libsox-fmt-mp3"), ("amr-nb", "libsox-fmt-base")):
        if fmt not in listed:
            sys.exit(f"sox cannot write {fmt} here (Debian: apt-get install {package})")
    with tempfile.TemporaryDirectory() as tmp:
        if extra is None:
            corpus(tmp)
            return
        option, count, out_dir, first, new_voices, hard, hot, wide = extra
        if new_voices:
            check_new_voices(tmp)
        if option == "--extra-train":
            extra_train(tmp, count, out_dir, first, new_voices, hard, hot, wide)
        else:
            extra_holdout(tmp, count, out_dir, first)


if __name__ == "__main__":
    main()
