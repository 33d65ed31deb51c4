#!/usr/bin/env python3
"""Draw the AMD accuracy / decision-time trade-off as an SVG (no plotting library needed).

    cargo run --release --example amd_eval -- sweep holdout > /tmp/sweep.csv
    python3 test-media/plot_tradeoff.py /tmp/sweep.csv docs/amd-tradeoff.svg
    cargo run --release --example amd_eval -- sweep holdout --machine > /tmp/sweep-machine.csv
    python3 test-media/plot_tradeoff.py /tmp/sweep-machine.csv docs/amd-tradeoff-machine.svg
    cargo run --release --example amd_eval -- sweep holdout amd-extra-holdout > /tmp/sweep-large.csv
    python3 test-media/plot_tradeoff.py /tmp/sweep-large.csv docs/amd-tradeoff-large.svg "2,000 more holdout files"

The sweep sets `machine_confidence` = `human_confidence` = c for c in 0.55..1.0 (CSV
column `confidence`), or `machine_confidence` alone for c in 0.8..0.99 with
`human_confidence` at its default (`--machine`, column `machine_confidence`), and scores
the holdout split. The plot shows accuracy, human recall and machine recall (left axis)
and the median and 90th-percentile decision time from answer (right axis) against c,
with the shipped default marked. A third argument names what was scored in the title
(default: the holdout split).
"""
import csv
import sys

DEFAULT = 0.9
W, H = 720, 460
L, R, T, B = 60, 70, 40, 100


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    scored = sys.argv[3] if len(sys.argv) == 4 else "the holdout split"
    with open(sys.argv[1]) as f:
        reader = csv.DictReader(f)
        swept = reader.fieldnames[0]
        rows = [{k: float(v) for k, v in r.items()} for r in reader]
    if swept not in ("confidence", "machine_confidence"):
        sys.exit(f"{sys.argv[1]}: first column `confidence` or `machine_confidence`, not `{swept}`")
    cs = [r[swept] for r in rows]
    axis = ("machine_confidence = human_confidence" if swept == "confidence"
            else f"machine_confidence (human_confidence {DEFAULT})")
    x0, x1 = min(cs), max(cs)
    tmax = 5000.0
    px = lambda c: L + (c - x0) / (x1 - x0) * (W - L - R)
    py = lambda a: T + (1 - (a - 0.5) / 0.5) * (H - T - B)  # accuracy 0.5 .. 1.0
    pt = lambda ms: T + (1 - ms / tmax) * (H - T - B)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">AMD on {scored}: '
           'accuracy and decision time vs. confidence threshold</text>']
    for a in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0):
        out.append(f'<line x1="{L}" y1="{py(a):.1f}" x2="{W - R}" y2="{py(a):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{L - 6}" y="{py(a) + 4:.1f}" text-anchor="end">{a:.1f}</text>')
    for ms in range(0, 5001, 1000):
        out.append(f'<text x="{W - R + 6}" y="{pt(ms) + 4:.1f}">{ms / 1000:.0f} s</text>')
    for c in cs[::2]:
        out.append(f'<text x="{px(c):.1f}" y="{H - B + 18}" text-anchor="middle">{c:.2f}</text>')
    out.append(f'<text x="{W / 2}" y="{H - B + 38}" text-anchor="middle">{axis}</text>')
    out.append(f'<line x1="{px(DEFAULT):.1f}" y1="{T}" x2="{px(DEFAULT):.1f}" y2="{H - B}" stroke="#999" stroke-dasharray="4 3"/>')
    out.append(f'<text x="{px(DEFAULT) + 4:.1f}" y="{T + 12}" fill="#666">default</text>')
    series = [("accuracy", "accuracy", "#000", py, ""), ("human_recall", "human recall", "#1f77b4", py, ""),
              ("machine_recall", "machine recall", "#d62728", py, ""),
              ("median_ms", "median decision (right axis)", "#2ca02c", pt, "6 3"),
              ("p90_ms", "p90 decision (right axis)", "#9467bd", pt, "2 3")]
    legend = []
    for i, (key, name, colour, f, dash) in enumerate(series):
        pts = " ".join(f"{px(r[swept]):.1f},{f(r[key]):.1f}" for r in rows)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        # The legend under the axis, three to a row, so it hides no curve.
        lx, ly = L + (i % 3) * 210, H - 34 + (i // 3) * 18
        legend.append(f'<line x1="{lx}" y1="{ly}" x2="{lx + 24}" y2="{ly}" stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        legend.append(f'<text x="{lx + 30}" y="{ly + 4}">{name}</text>')
    out += legend
    out.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" stroke="#333"/>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
