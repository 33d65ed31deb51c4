"""Audio helpers shared by the corpus generators (make_corpus.py,
make_world_corpus.py): 16-bit mono WAV at 8 kHz as lists of floats in
[-1, 1), the few level operations both use, and their labels.csv writer."""
import array
import csv
import math
import os
import subprocess
import sys
import wave

RATE = 8000
# The range a `--wide` training set draws the network's lower band edge from, in Hz (both
# corpora's generators; the committed corpora cut every line at 300 Hz).
WIDE_LOW_HZ = (80, 300)


def run(*args, stdin=None):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, input=stdin)


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, path
        data = array.array("h", w.readframes(w.getnframes()))
    if sys.byteorder == "big":
        data.byteswap()
    return [s / 32768.0 for s in data]


def write_wav(path, samples):
    data = array.array("h", (max(-32768, min(32767, int(round(s * 32768.0)))) for s in samples))
    if sys.byteorder == "big":
        data.byteswap()
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(data.tobytes())


def gsm_round_trip(tmp, src, dst):
    """The WAV file `src` through GSM 06.10 and back, as 16-bit WAV at `dst`."""
    g = os.path.join(tmp, "round-trip.gsm")
    run("sox", "-D", src, g)
    run("sox", "-D", g, "-e", "signed-integer", "-b", "16", dst)


def amr_round_trip(tmp, src, dst, mode):
    """The WAV file `src` through AMR-NB at `mode` (0-7: 4.75-12.2 kbit/s) and back, as
    16-bit WAV at `dst`; not aligned: the decoder's delay stays in."""
    g = os.path.join(tmp, "round-trip.amr-nb")
    run("sox", "-D", src, "-C", str(mode), g)
    run("sox", "-D", g, "-e", "signed-integer", "-b", "16", dst)


def silence(sec):
    return [0.0] * int(round(sec * RATE))


def active_rms(x):
    peak = max(abs(s) for s in x) or 1.0
    act = [s for s in x if abs(s) > 0.05 * peak]
    return math.sqrt(sum(s * s for s in act) / max(1, len(act)))


def scale_to_peak(x, dbfs):
    peak = max(abs(s) for s in x) or 1.0
    g = 10 ** (dbfs / 20) / peak
    return [s * g for s in x]


def write_labels(directory, rows):
    """`rows` (dicts with the same keys, in column order) as `directory`/labels.csv."""
    with open(os.path.join(directory, "labels.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def usage_error(doc, problem):
    """Exits naming `problem` and the Usage section of a generator's docstring `doc`: an
    argument a generator does not know must never fall through to making the committed
    corpus again."""
    sys.exit(f"{problem}\n{doc[doc.index('Usage:'):].rstrip()}")


def count_arg(doc, name, text, minimum):
    """`text` as an integer of at least `minimum` for argument `name`, or a usage error."""
    if not text.isdigit() or int(text) < minimum:
        usage_error(doc, f"{name} must be an integer of at least {minimum}, not {text!r}")
    return int(text)
