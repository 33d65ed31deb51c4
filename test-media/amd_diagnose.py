#!/usr/bin/env python3
"""Where the AMD errors come from, from the per-frame features (no rebuild needed).

    cargo run --release --example amd_eval -- features > /tmp/amd-features.csv
    python3 test-media/amd_diagnose.py /tmp/amd-features.csv [VARIANT...]

Replays the detector's decision rule (src/amd/detector.rs: model confidence with the
speech/pause gates, the long-greeting rules, the total-time deadline) over the frames
`amd_eval features` printed, with the model in src/amd/model.json, and prints per corpus
and split (train, holdout): accuracy, recalls, decision time from answer, the per-kind confusion and
a histogram of decision times. It also prints, per split, the earliest a human verdict can
be taken by any rule that waits for `human_silence_ms` (400 ms) after the first utterance
(a lower bound on the human decision time), and a cross-validation of model variants on
`train` only, folds split by voice (the holdout is never used to choose), scored on each
corpus (test-media/amd-world/ and test-media/amd/) separately. Needs numpy.

Every cross-validation here (and `train_amd_sequence.py --cv`) splits by voice; with
AMD_CV_FOLDS=voice-script it splits by voice and by script (8 folds: 4 of voices, each
crossed with 2 groups of phrases), so a fold's scored files have neither their voice nor
their first phrase in what it fitted on, as on the holdout. Folds by voice alone let a
fold hear the sentences it is scored on, said by other voices, and were optimistic.

    python3 test-media/amd_diagnose.py /tmp/amd-features.csv --early [VARIANT...]

cross-validates the spectral feature groups (amd-mlp-5) and the sooner commit tier
instead (every 3rd frame and 800 epochs, AMD_CV_STRIDE / AMD_CV_EPOCHS to change).

    python3 test-media/amd_diagnose.py /tmp/amd-features.csv --seeds

cross-validates the shipped recipe with five training seeds and replays the shipped rule
with the long-greeting rule as it was (4 s, or one 3 s phrase, whatever the model says),
deferring to the model (only when P(machine) >= 0.5), and deferring with 2.5 s (shipped):
how far the seed alone moves the figures, and whether a rule's gain exceeds that.

    python3 test-media/amd_diagnose.py /tmp/amd-features.csv --evidence

what any model on these features knows after 0.3, 0.6 and 1.0 s of speech: one feature
vector per train file, at the first frame with that much speech, cross-validated by
voice; accuracy at 0.5, and how many files the model is sure of (P >= 0.9 or 0.97
either way) and how often it is right when sure.
"""
import csv
import json
import os
import sys
from collections import defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# The corpora `amd_eval features` reads, by their directory under test-media/; its rows
# name each file by that path (`amd-world/h001.wav`).
CORPORA = ("amd-world", "amd")
# Training-only corpora, not committed (made by test-media/train-amd.sh when missing).
EXTRA_CORPORA = ("amd-extra-world", "amd-extra")
TIMBRE = {"zero_crossings", "tilt", "level_sd_db", "snr_db"}
# The pitch, envelope, onset and lead-in features (used since amd-mlp-3).
ACOUSTIC = {"periodicity", "pitch_sd_st", "pitch_jump_st", "pitch_end_slope", "pitch_mean_st",
            "syllable_rate", "onset_rise_db", "lead_sd_db"}
# The line around the first speech: its level and digital silence before, the background
# from the onset on, the step between them, and the speech level (used since amd-mlp-3).
LINE = {"lead_db", "lead_digital", "speech_floor_db", "floor_step_db", "level_db", "tail_step_db"}
# The share of the speech's energy in eight bands (amd-mlp-5).
BANDS = {f"band{i}_db" for i in range(8)}
# How fast the speech's spectrum moves, and how steady its level is from word to word.
DYNAMICS = {"spectral_flux_db", "word_level_sd_db"}
# The bands outside 300..3400 Hz: what the line's filters and codecs left there, which a
# telephone network band-limits for people as much as for recordings.
OUT_OF_BAND = {"band0_db", "band7_db"}


def load(path):
    rows = list(csv.reader(open(path)))
    names = rows[0][5:]
    frames, meta = defaultdict(list), {}
    for r in rows[1:]:
        frames[r[0]].append([float(v) for v in r[5:]])
        meta[r[0]] = (r[1], r[2], r[3])
    # The extra sets named in AMD_EVAL_EXTRA too, as `amd_eval features` includes them.
    named = tuple(c for c in os.environ.get("AMD_EVAL_EXTRA", "").split(",") if c)
    labels = {f"{corpus}/{r['file']}": r for corpus in CORPORA + EXTRA_CORPORA + named
              if os.path.exists(os.path.join(HERE, corpus, "labels.csv"))
              for r in csv.DictReader(open(os.path.join(HERE, corpus, "labels.csv")))}
    return names, {f: np.array(v) for f, v in frames.items()}, meta, labels


def mlp(m):
    mean, sc = np.array(m["mean"]), np.array(m["scale"])
    w1, b1, w2, b2 = np.array(m["w1"]), np.array(m["b1"]), np.array(m["w2"]), m["b2"]
    return lambda x: 1 / (1 + np.exp(-(np.tanh(((x - mean) / sc) @ w1.T + b1) @ w2 + b2)))


def decide(x, p, ix, c=0.9, speech=0.8, pause=0.4, greet=2.5, phrase=2.5, total=5.0, early=None, long_p=0.5,
           p_long=None, talk=None, mc=None):
    """The detector's rule; `c` is human_confidence and, unless `mc` is given,
    machine_confidence. `early` = (confidence, speech_s, pause_s) is the sooner tier
    (early_*): a surer P that commits on less, never less sure than the main threshold
    of its side. A long
    greeting is a machine when P(machine) >= `long_p` (0: whatever the model says), that
    P being `p_long` when given (the detector: the feature model's alone), else `p`.
    `talk` = (speech_s, max_p): a person who talks on (human_speech_ms) is called at
    confidence `c` after `speech_s` of speech without a pause when that same P is below
    `max_p` (detector::TALKING_ON_MAX_P)."""
    p_long = p if p_long is None else p_long
    mc = c if mc is None else mc
    em, eh = (max(early[0], mc), max(early[0], c)) if early else (None, None)
    for k in range(len(x)):
        el = x[k, ix["elapsed_s"]]
        if (x[k, ix["first_utterance_s"]] >= greet or x[k, ix["longest_phrase_s"]] >= phrase) and p_long[k] >= long_p:
            return "machine", el
        v, tr = x[k, ix["voiced_s"]], x[k, ix["trailing_silence_s"]]
        if p[k] >= mc and v >= speech or early and p[k] >= em and v >= early[1]:
            return "machine", el
        if p[k] <= 1 - c and tr >= pause or early and p[k] <= 1 - eh and tr >= early[2]:
            return "human", el
        if talk and p[k] <= 1 - c and v >= talk[0] and p_long[k] < talk[1]:
            return "human", el
        if el >= total:
            return "unknown", el
    return ("machine" if p[-1] >= 0.5 else "human"), x[-1, ix["elapsed_s"]]


def evaluate(names, frames, meta, probs, files, show=True, **rule):
    """`rule`: `decide`'s keywords."""
    ix = {n: i for i, n in enumerate(names)}
    res, kinds = [], defaultdict(lambda: [0, 0])
    for f in files:
        label, kind, _ = meta[f]
        r, t = decide(frames[f], probs[f], ix, **rule)
        res.append((label, r == label, t, r))
        kinds[kind][0] += r == label
        kinds[kind][1] += 1
    acc = np.mean([o for _, o, _, _ in res])
    hr = np.mean([o for l, o, _, _ in res if l == "human"])
    mr = np.mean([o for l, o, _, _ in res if l == "machine"])
    ts = np.array([t for _, _, t, _ in res])
    if show:
        print(f"  n={len(res)} accuracy {acc:.3f} human {hr:.3f} machine {mr:.3f} "
              f"unknown {sum(r == 'unknown' for *_, r in res)} median {np.median(ts):.2f} s p90 {np.quantile(ts, .9):.2f} s")
        print("  by kind:", " ".join(f"{k} {a}/{b}" for k, (a, b) in sorted(kinds.items())))
        hist = np.histogram(ts, bins=np.arange(0, 5.51, 0.5))[0]
        print("  decision time (0.5 s bins from 0):", " ".join(str(v) for v in hist))
    return acc, np.median(ts), np.quantile(ts, 0.9)


def human_bound(names, frames, meta, files, pause=0.4):
    ix = {n: i for i, n in enumerate(names)}
    out = []
    for f in files:
        if meta[f][0] != "human":
            continue
        x = frames[f]
        ok = np.nonzero(x[:, ix["trailing_silence_s"]] >= pause)[0]
        out.append(x[ok[0], ix["elapsed_s"]] if len(ok) else x[-1, ix["elapsed_s"]])
    return np.median(out), np.quantile(out, 0.9)


def train(names, frames, meta, files, excluded, hidden=10, l2=3e-3, epochs=1500, lr=0.01, seed=17,
          espeak_weight=1.0, stride=1):
    """The same training as train_amd.py, on `files` (each file weight 1, or `espeak_weight`
    for a file of test-media/amd/; every `stride`-th frame of each)."""
    sub = {f: frames[f][::stride] for f in files}
    x = np.concatenate([sub[f] for f in files])
    y = np.concatenate([np.full(len(sub[f]), meta[f][0] == "machine", float) for f in files])
    fw = {f: espeak_weight if f.startswith("amd/") or f.startswith("amd-extra/") else 1.0 for f in files}
    w = np.concatenate([np.full(len(sub[f]), fw[f] / len(sub[f])) for f in files])
    w /= w.sum()
    mean, sc = x.mean(0), x.std(0)
    sc[sc < 1e-6] = 1
    keep = np.array([0.0 if n in excluded else 1.0 for n in names])
    z = (x - mean) / sc * keep
    rng = np.random.default_rng(seed)
    n = z.shape[1]
    P = {"w1": rng.normal(0, 1 / np.sqrt(n), (hidden, n)), "b1": np.zeros(hidden),
         "w2": rng.normal(0, 1 / np.sqrt(hidden), hidden), "b2": np.zeros(1)}
    m = {k: np.zeros_like(v) for k, v in P.items()}
    v = {k: np.zeros_like(q) for k, q in P.items()}
    for t in range(1, epochs + 1):
        h = np.tanh(z @ P["w1"].T + P["b1"])
        p = 1 / (1 + np.exp(-(h @ P["w2"] + P["b2"][0])))
        d = w * (p - y)
        G = {"w2": h.T @ d + l2 * P["w2"], "b2": np.array([d.sum()])}
        dh = np.outer(d, P["w2"]) * (1 - h * h)
        G["w1"], G["b1"] = dh.T @ z + l2 * P["w1"], dh.sum(0)
        for k in P:
            m[k] = 0.9 * m[k] + 0.1 * G[k]
            v[k] = 0.999 * v[k] + 0.001 * G[k] ** 2
            P[k] -= lr * (m[k] / (1 - 0.9 ** t)) / (np.sqrt(v[k] / (1 - 0.999 ** t)) + 1e-8)
    return dict(mean=mean, scale=sc, w1=P["w1"] * keep, b1=P["b1"], w2=P["w2"], b2=float(P["b2"][0]))


def cv_probs(names, frames, meta, labels, tr, folds, excluded, corpora=None, **kw):
    """P(machine) of every train file from a model fitted on the files its fold leaves
    for fitting (only on the files of `corpora`, when given)."""
    cvp = {}
    for fold in folds:
        fit_on = [f for f in tr if fold.fits(f) and (corpora is None or f.split("/")[0] in corpora)]
        fit = mlp(train(names, frames, meta, fit_on, excluded, **kw))
        for f in tr:
            if fold.scores(f):
                cvp[f] = fit(frames[f])
    return cvp


# With AMD_CV_FOLDS=voice-script the folds hold out scripts as well as voices: each voice
# fold is crossed with SCRIPT_GROUPS groups of phrases, a phrase's group being a hash of
# its text (so a phrase both corpora say is in one group wherever it is said).
SCRIPT_GROUPS = 2


class Fold:
    """One cross-validation fold: the voices it holds out and, when folds split by script
    too, the phrase group it holds out. A model is fitted on the files with none of those
    voices and no phrase of that group, and scores the files with one of those voices
    whose first phrase is of that group (a file that speaks twice may have said its
    second phrase in the fitted files)."""

    def __init__(self, labels, voices, group=None, groups=None):
        self.labels, self.voices, self.group, self.groups = labels, set(voices), group, groups

    def fits(self, f):
        return self.labels[f]["voice"] not in self.voices and (self.group is None or self.group not in self.groups[f])

    def scores(self, f):
        return self.labels[f]["voice"] in self.voices and (self.group is None or self.groups[f][0] == self.group)


def phrase_groups(labels, files):
    """{file: [group of each phrase its `script` cell names]}, the phrases looked up in
    the generator's SCRIPT_LISTS of the file's corpus."""
    import zlib
    sys.path.insert(0, HERE)
    import make_corpus
    import make_world_corpus
    groups = {}
    for f in files:
        corpus = f.split("/")[0]
        lists = (make_corpus if corpus in ("amd", "amd-extra") else make_world_corpus).SCRIPT_LISTS
        cells = labels[f].get("script", "").split()
        if not cells:
            sys.exit(f"test-media/{corpus}/labels.csv has no script for {f}: remake it (an extra "
                     "training set: delete it and run test-media/train-amd.sh)")
        texts = []
        for cell in cells:
            name = cell.rstrip("0123456789")
            phrase = lists[name][int(cell[len(name):])]
            texts.append(phrase if isinstance(phrase, str) else " ".join(phrase))  # a long one's clauses
        groups[f] = [zlib.crc32(t.encode()) % SCRIPT_GROUPS for t in texts]
    return groups


def train_folds(path):
    """The features, the train files and the cross-validation folds: 4 folds of their
    voices (a voice that is in several corpora is in one fold), each crossed with the
    phrase groups when AMD_CV_FOLDS=voice-script."""
    names, frames, meta, labels = load(path)
    tr = [f for f in frames if meta[f][2] == "train"]
    voices = sorted({labels[f]["voice"] for f in tr})
    by = os.environ.get("AMD_CV_FOLDS", "voice")
    if by == "voice":
        folds = [Fold(labels, voices[i::4]) for i in range(4)]
    elif by == "voice-script":
        groups = phrase_groups(labels, tr)
        folds = [Fold(labels, voices[i::4], g, groups) for i in range(4) for g in range(SCRIPT_GROUPS)]
    else:
        sys.exit(f"AMD_CV_FOLDS: `voice` or `voice-script`, not `{by}`")
    return names, frames, meta, labels, tr, folds


def early(path, only):
    """Feature groups and the sooner commit tier, cross-validated on train (4 folds by
    voice, the extra training files included), scored on the committed corpora's train
    files (the extra files are more of the same voices and phrases)."""
    names, frames, meta, labels, tr, folds = train_folds(path)
    kw = dict(stride=int(os.environ.get("AMD_CV_STRIDE", "3")), epochs=int(os.environ.get("AMD_CV_EPOCHS", "800")))
    variants = [("amd-mlp-4 features", TIMBRE | BANDS | DYNAMICS, {}),
                ("+ bands", TIMBRE | DYNAMICS, {}),
                ("+ flux, word level", TIMBRE | BANDS, {}),
                ("+ bands, flux, word level", TIMBRE, {}),
                ("+ bands, flux, word level, 16 hidden", TIMBRE, {"hidden": 16}),
                ("+ voice-band bands, flux, word level", TIMBRE | OUT_OF_BAND, {}),
                ("+ voice-band bands", TIMBRE | OUT_OF_BAND | DYNAMICS, {}),
                ("+ voice-band bands, flux, word level, 16 hidden", TIMBRE | OUT_OF_BAND, {"hidden": 16})]
    rules = [dict(c=0.9, speech=0.8, pause=0.4)] + [
        dict(c=c, speech=sp, pause=pa, early=(ce, se, pe))
        for c in (0.9,) for sp, pa in ((0.8, 0.4), (0.6, 0.3))
        for ce in (0.95, 0.97, 0.99) for se in (0.2, 0.4) for pe in (0.1, 0.2)]
    for name, excluded, extra in variants:
        if only and name not in only:
            continue
        cvp = cv_probs(names, frames, meta, labels, tr, folds, excluded, **kw, **extra)
        for rule in rules:
            scores = []
            for corpus in CORPORA:
                fs = [f for f in tr if f.startswith(corpus + "/")]
                acc, med, p90 = evaluate(names, frames, meta, cvp, fs, show=False, **rule)
                scores.append(f"{corpus} {acc:.3f} {med:.2f} s {p90:.2f} s")
            print(f"{name} | {rule} | " + " | ".join(scores), flush=True)


SHIPPED = dict(stride=3, epochs=800)
SHIPPED_EXCLUDED = TIMBRE | OUT_OF_BAND
SHIPPED_TIER = (0.97, 0.2, 0.2)
# The detector's defaults (AmdConfig): machine_speech_ms 400, human_silence_ms 300 since
# session 13, human_speech_ms 800 with TALKING_ON_MAX_P 0.3 since session 14
# (cross-validated on train with the GRU members, docs/amd.md).
SHIPPED_RULE = dict(c=0.9, speech=0.4, pause=0.3, long_p=0.5, greet=2.5, phrase=2.5, early=SHIPPED_TIER,
                    talk=(0.8, 0.3))


def seeds(path):
    """The shipped recipe cross-validated with five seeds, with the long-greeting rule
    deferring to the model and regardless of it."""
    names, frames, meta, labels, tr, folds = train_folds(path)
    for seed in (17, 18, 19, 20, 21):
        cvp = cv_probs(names, frames, meta, labels, tr, folds, SHIPPED_EXCLUDED, seed=seed, **SHIPPED)
        for rule, kw in (("long greeting (4 s, or a 3 s phrase) whatever the model says", dict(long_p=0, greet=4, phrase=3)),
                         ("long greeting (4 s, or a 3 s phrase) if P >= 0.5", dict(long_p=0.5, greet=4, phrase=3)),
                         ("long greeting (2.5 s) if P >= 0.5", dict(long_p=0.5, greet=2.5, phrase=2.5))):
            out = []
            for corpus in CORPORA:
                fs = [f for f in tr if f.startswith(corpus + "/")]
                acc, med, p90 = evaluate(names, frames, meta, cvp, fs, show=False, early=SHIPPED_TIER, **kw)
                out.append(f"{corpus} {acc:.3f} {med:.2f} / {p90:.2f} s")
            print(f"seed {seed}, {rule}: " + " | ".join(out), flush=True)


def evidence(path):
    """Per-file snapshots after a fixed amount of speech, cross-validated by voice."""
    names, frames, meta, labels, tr, folds = train_folds(path)
    ix = {n: i for i, n in enumerate(names)}
    for speech in (0.3, 0.6, 1.0):
        snap = {}
        for f in tr:
            k = np.nonzero(frames[f][:, ix["voiced_s"]] >= speech - 1e-6)[0]
            if len(k):
                snap[f] = frames[f][k[0]][None, :]
        files = list(snap)
        probs = cv_probs(names, snap, meta, labels, files, folds, SHIPPED_EXCLUDED, epochs=800)
        for corpus in CORPORA:
            fs = [f for f in files if f.startswith(corpus + "/")]
            y = np.array([meta[f][0] == "machine" for f in fs])
            p = np.array([probs[f][0] for f in fs])
            line = [f"after {speech} s of speech, {corpus} train ({len(fs)} files with that much): accuracy {((p >= 0.5) == y).mean():.3f}"]
            for c in (0.9, 0.97):
                sure = (p >= c) | (p <= 1 - c)
                line.append(f"sure at {c}: {sure.mean():.2f} of files, right {((p[sure] >= 0.5) == y[sure]).mean():.3f}")
            print("; ".join(line), flush=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    if len(sys.argv) > 2 and sys.argv[2] == "--early":
        return early(sys.argv[1], sys.argv[3:])
    if len(sys.argv) > 2 and sys.argv[2] == "--seeds":
        return seeds(sys.argv[1])
    if len(sys.argv) > 2 and sys.argv[2] == "--evidence":
        return evidence(sys.argv[1])
    names, frames, meta, labels, tr, folds = train_folds(sys.argv[1])
    model = mlp(json.load(open(os.path.join(HERE, "..", "src", "amd", "model.json"))))
    probs = {f: model(x) for f, x in frames.items()}
    for corpus in CORPORA:
        for split in ("train", "holdout"):
            files = [f for f in frames if f.startswith(corpus + "/") and meta[f][2] == split]
            print(f"{corpus} {split} (shipped model, confidence 0.9):")
            evaluate(names, frames, meta, probs, files)
            med, p90 = human_bound(names, frames, meta, files)
            print(f"  humans: earliest verdict after 400 ms of silence: median {med:.2f} s, p90 {p90:.2f} s from answer")
    # Model variants, cross-validated on train with folds split by voice (a voice that is
    # in both corpora is in one fold), scored on each corpus's train files separately.
    only = sys.argv[2:] or None
    world = ("amd-world",)
    variants = [("timing only", TIMBRE | ACOUSTIC | LINE, CORPORA, {}),
                ("timing + pitch/envelope", TIMBRE | LINE, CORPORA, {}),
                ("timing + line", TIMBRE | ACOUSTIC, CORPORA, {}),
                ("timing + line + pitch/envelope", TIMBRE, CORPORA, {}),
                ("timing + line + pitch/envelope, world corpus only", TIMBRE, world, {}),
                ("timing + line + pitch/envelope, espeak files weight 0.5", TIMBRE, CORPORA, {"espeak_weight": 0.5}),
                ("all features", set(), CORPORA, {}), ("all, L2 3e-2", set(), CORPORA, {"l2": 3e-2}),
                ("timing + line, L2 3e-2", TIMBRE | ACOUSTIC, CORPORA, {"l2": 3e-2})]
    print("cross-validation on train, 4 folds by voice:")
    for name, excluded, corpora, kw in variants:
        if only and not any(o in name for o in only):
            continue
        cvp = cv_probs(names, frames, meta, labels, tr, folds, excluded, corpora=corpora, **kw)
        for c in (0.7, 0.8, 0.9):
            for pause in (0.2, 0.3, 0.4):
                for speech in (0.4, 0.8):
                    scores = []
                    for corpus in CORPORA:
                        fs = [f for f in tr if f.startswith(corpus + "/")]
                        acc, med, p90 = evaluate(names, frames, meta, cvp, fs, show=False, c=c, pause=pause, speech=speech)
                        scores.append(f"{corpus}: accuracy {acc:.3f}, median {med:.2f} s, p90 {p90:.2f} s")
                    print(f"  {name}, confidence {c} pause {pause} speech {speech}: " + "; ".join(scores))

if __name__ == "__main__":
    main()
