#!/usr/bin/env python3
"""Greetings of a real voicemail platform as a caller hears them, for a check of the AMD
detector's machine side on recorded voices and wording no speech engine made (docs/amd.md,
"Real voices").

The platform is Asterisk, its prompts Debian's `asterisk-core-sounds-{en,es,fr,it,ru}-wav`
(CC BY-SA 3.0; not in this repository): studio recordings of five voices, read from
/usr/share/asterisk/sounds/ (`en_US_f_Allison`, `es_MX_f_Allison`, `fr_CA_f_June`,
`it_IT_m_Carlo`, `ru_RU_f_IvrvoiceRU`; a language that is not installed is left out). A
line is what app_voicemail or a network plays after answering, prompt files streamed one
after another as they are stored (each keeps its own lead and tail), then Asterisk's own
`beep`:

- `machine_unavailable`: the greeting of a mailbox with no recorded name: "The person at
  extension" 3-5 digits "is unavailable" (or "is on the phone"), "Please leave your
  message after the tone. When done, hang up or press the pound key.", the beep;
- `machine_intro`: "Please leave your message after the tone…" alone, the beep;
- `machine_nobody`: "Nobody is available to take your call at the moment", the intro,
  the beep;
- `machine_carrier`: a network announcement and no beep ("The number you have dialed is
  not in service…", "All circuits are busy now. Please try your call again later.", "Your
  call cannot be completed as dialed. Please check the number and dial again.", "The
  number is not answering…"), from those the language has.

The prompts are stored as installed (16-bit WAV) or through GSM 06.10 (the `-gsm`
packages, the usual install), played after 0-1 s of the platform's idle line (digital
silence, or comfort noise at -75 to -56 dBFS; or, in a fifth, a steady hiss at that level
under all of it: no step at all), with 2 s of it after. Then the world
corpus's network (make_world_corpus.py): ring-back lead-in in a quarter, a hot line in a
tenth, packet loss in a quarter, the telephone band and a codec round trip, µ-law.

Every line is a machine and in split `holdout`; no file is trained on.

Usage:
    python3 test-media/make_platform_lines.py [N]
writes N lines (200 by default, the voices in turn) and labels.csv to
test-media/amd-platform/, then
    cargo run --release --example amd_eval -- sweep holdout amd-platform --machine
    cargo run --release --example amd_eval -- decisions holdout amd-platform
Needs sox and opus-tools, as make_world_corpus.py does.
"""
import os
import random
import sys
import tempfile

import make_world_corpus as world
from audio_util import RATE, count_arg, gsm_round_trip, read_wav, silence, usage_error, write_labels

SOUNDS = "/usr/share/asterisk/sounds"
VOICES = ["en_US_f_Allison", "es_MX_f_Allison", "fr_CA_f_June", "it_IT_m_Carlo", "ru_RU_f_IvrvoiceRU"]
KINDS = ["machine_unavailable"] * 2 + ["machine_intro", "machine_nobody"] + ["machine_carrier"] * 2
CARRIER = [["ss-noservice"], ["all-circuits-busy-now", "please-try-call-later"],
           ["cannot-complete-as-dialed", "check-number-dial-again"],
           ["number-not-answering", "please-try-call-later"], ["im-sorry", "ss-noservice"]]
PER_RUN = 200


def prompts(rng, kind, has):
    """The prompt files a line of `kind` plays, by name, from those the voice `has`."""
    if kind == "machine_unavailable":
        digits = [f"digits/{rng.randint(0, 9)}" for _ in range(rng.randint(3, 5))]
        return ["vm-theperson"] + digits + [rng.choice(["vm-isunavail", "vm-isonphone"]), "vm-intro"]
    if kind == "machine_intro":
        return ["vm-intro"]
    if kind == "machine_nobody":
        return ["vm-nobodyavail", "vm-intro"]
    return rng.choice([c for c in CARRIER if all(has(p) for p in c)])


def stored(tmp, path, store):
    """A prompt file as the platform plays it: as installed, or through GSM storage."""
    if store == "wav":
        return read_wav(path)
    w = os.path.join(tmp, "p.wav")
    gsm_round_trip(tmp, path, w)
    return read_wav(w)


def first_speech(x):
    """Where the first 20 ms block within 30 dB of the loudest is (the first word)."""
    n = RATE // 50
    blocks = [max(abs(v) for v in x[i:i + n]) for i in range(0, len(x) - n + 1, n)]
    top = max(blocks, default=0.0)
    return next((i * n for i, b in enumerate(blocks) if b > top * 10 ** (-30 / 20)), 0)


def line(tmp, beds, voice, i, out):
    rng = random.Random(f"platform-{i}")
    d = os.path.join(SOUNDS, voice)
    kind = rng.choice(KINDS)
    names = prompts(rng, kind, lambda p: os.path.isfile(os.path.join(d, p + ".wav")))
    store = rng.choice(["wav", "gsm"])
    greeting = []
    for p in names:
        greeting += stored(tmp, os.path.join(d, p + ".wav"), store)
    platform = world.PlatformLine(rng, beds, (2, 2, 1))
    lead = platform.idle_for(int(rng.uniform(0.0, 1.0) * RATE))
    onset = len(lead) + first_speech(greeting)
    x = lead + greeting
    beep_at = None
    if kind != "machine_carrier":
        beep_at = len(x)
        x += stored(tmp, os.path.join(d, "beep.wav"), store)
    x = platform.under(x + platform.idle_for(2 * RATE))
    answer = 0
    if rng.random() < 0.25:
        _, prefix, answer = world.ringback(rng, 10 ** (rng.uniform(-24, -8) / 20))
        x = prefix + x
        onset += len(prefix)
        beep_at = None if beep_at is None else beep_at + len(prefix)
    clip = rng.random() < 0.1
    x = world.under_full_scale(world.hot_line(rng, x) if clip else x)
    loss = rng.uniform(0.01, 0.05) if rng.random() < 0.25 else 0.0
    codec = rng.choice(["ulaw", "ulaw", "alaw", "gsm", "opus"])
    name = f"p{i + 1:03d}.wav"
    world.telephone(tmp, x, codec, loss, rng, os.path.join(out, name))
    print(name, kind, voice, file=sys.stderr)
    ms = lambda samples: samples * 1000 // RATE  # noqa: E731
    return {"file": name, "label": "machine", "kind": kind,
            "beep_onset_ms": "" if beep_at is None else ms(beep_at), "split": "holdout",
            "answer_ms": answer, "speech_onset_ms": ms(onset), "voice": voice, "prompts": " ".join(names),
            "store": store, "idle": platform.idle, "codec": codec, "loss": round(loss, 3), "clipped": int(clip)}


def main():
    args = sys.argv[1:]
    if len(args) > 1 or args and args[0].startswith("-"):
        usage_error(__doc__, f"unknown arguments {args}")
    count = count_arg(__doc__, "N", args[0], 1) if args else PER_RUN
    voices = [v for v in VOICES if os.path.isdir(os.path.join(SOUNDS, v))]
    if not voices:
        sys.exit(f"no Asterisk prompts under {SOUNDS}: apt-get install asterisk-core-sounds-en-wav "
                 "(and -es-wav, -fr-wav, -it-wav, -ru-wav)")
    out = os.path.join(world.HERE, "amd-platform")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        beds = world.Beds(tmp, "holdout")
        rows = [line(tmp, beds, voices[i % len(voices)], i, out) for i in range(count)]
    write_labels(out, rows)


if __name__ == "__main__":
    main()
