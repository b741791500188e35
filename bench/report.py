#!/usr/bin/env python3
"""Turn a bench/run.sh results directory into a markdown report with charts.

Usage:
    bench/report.py RESULTS_DIR [-o docs/benchmarks.md] [--img-dir docs/img]
                    [--base ref|glibc] [--no-charts] [--note TEXT]...

RESULTS_DIR is the OUT_DIR of one bench/run.sh run (it holds meta.txt,
summary.tsv, geomean.tsv and results.tsv). The report has the machine, the
date, the command and the hardheap commit of that run, the geometric means
per allocator, matrices of median time and peak RSS with their ratios, and
two PNG charts (time ratios and peak RSS ratios per workload and allocator,
grouped bars on a log scale) drawn with gnuplot (Debian: gnuplot-nox). Only
the Python standard library is needed; without gnuplot (or with --no-charts)
the report is written without charts. Nothing here is needed to run the
benchmarks: run.sh prints its tables itself.

The numbers are taken as run.sh computed them (summary.tsv, geomean.tsv):
each ratio is the median over the rounds of the per-round ratio against
glibc or against the reference mimalloc of the same run.
"""

import argparse
import csv
import math
import os
import shutil
import subprocess
import sys
import tempfile

# Fixed colours per allocator, so charts of different runs look alike.
COLOURS = {
    "hardheap": "#d62728",
    "hardheap-secure": "#ff9896",
    "glibc": "#7f7f7f",
    "mimalloc": "#1f77b4",
    "mi24": "#17becf",
    "mi24-secure": "#9edae5",
    "jemalloc": "#2ca02c",
    "tcmalloc": "#bcbd22",
    "scudo": "#9467bd",
    "hardened_malloc": "#8c564b",
}
SPARE = ["#e377c2", "#f7b6d2", "#c5b0d5", "#c49c94", "#dbdb8d", "#98df8a", "#aec7e8", "#ffbb78"]


def read_meta(path):
    meta = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if "\t" in line:
                k, v = line.split("\t", 1)
                meta[k] = v
    return meta


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def fnum(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


def row_label(bench, threads, threaded):
    return f"{bench}/{threads}t" if threaded else bench


def md_escape(s):
    return s.replace("|", "\\|")


def colour_for(alloc, i):
    return COLOURS.get(alloc, SPARE[i % len(SPARE)])


CLIP_HI = 16.0  # bars above this are cut (the value is given in the chart's note)
CLIP_LO = 1 / 16.0


def gnuplot_chart(gnuplot, png, title, ylabel, labels, allocs, values, base_name, above, below):
    """Grouped bars of log2(ratio): bars go up for slower/bigger than the
    base and down for faster/smaller; the y tics are labelled as ratios.
    Bars beyond CLIP_HI / CLIP_LO are cut there and listed in a note.
    Returns the list of cut bars (label, allocator, value), or None when
    nothing was drawn."""
    finite = [v for row in values for v in row if v is not None and v > 0]
    if not finite:
        return None
    clipped = []
    for lab, row in zip(labels, values):
        for a, v in zip(allocs, row):
            if v is not None and (v > CLIP_HI or v < CLIP_LO):
                clipped.append((lab, a, v))
    lo = max(min(min(finite), 0.9), CLIP_LO)
    hi = min(max(max(finite), 1.1), CLIP_HI)
    ylo = math.floor(math.log2(lo))
    yhi = math.ceil(math.log2(hi))
    tics = []
    for e in range(ylo, yhi + 1):
        r = 2.0 ** e
        lab = f"{r:g}x" if r >= 1 else f"1/{2 ** -e:g}x"
        tics.append(f'"{lab}" {e}')
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data.tsv")
        with open(data, "w", encoding="utf-8") as f:
            # no header line: gnuplot would make it a (blank) first cluster
            for lab, row in zip(labels, values):
                cells = []
                for v in row:
                    if v is None or v <= 0:
                        cells.append("?")
                    else:
                        cells.append(f"{math.log2(min(max(v, CLIP_LO), CLIP_HI)):.5f}")
                f.write(lab + "\t" + "\t".join(cells) + "\n")
        width = max(1000, 160 + len(labels) * (11 * len(allocs) + 22))
        plots = []
        for i, a in enumerate(allocs):
            using = f"{i + 2}:xtic(1)" if i == 0 else f"{i + 2}"
            plots.append(f"'{data}' using {using} title '{a}' lc rgb '{colour_for(a, i)}'")
        note = f"above the line: {above} than {base_name}; below: {below}"
        if clipped:
            note += f"; bars beyond 1/{1 / CLIP_LO:g}x and {CLIP_HI:g}x are cut ({len(clipped)}; values in the tables)"
        script = f"""
set terminal pngcairo noenhanced size {width},640 font 'DejaVu Sans,10'
set output '{png}'
set datafile separator '\\t'
set datafile missing '?'
set title '{title}'
set ylabel '{ylabel}'
set style data histograms
set style histogram clustered gap 2
set style fill solid 0.9 border -1
set boxwidth 0.9
set key outside right top vertical
set xtics rotate by 35 right nomirror
set ytics ({", ".join(tics)})
set grid ytics lc rgb '#dddddd'
set xrange [-0.6:{len(labels) - 0.4}]
set yrange [{ylo - 0.05}:{yhi + 0.05}]
set xzeroaxis lt -1 lw 1.5
set label 1 '{note}' at graph 0.01, graph 0.97 font ',9'
plot {", ".join(plots)}
"""
        script_path = os.path.join(tmp, "chart.gp")
        with open(script_path, "w", encoding="utf-8") as f:
            f.write(script)
        res = subprocess.run([gnuplot, script_path], capture_output=True, text=True)
        if res.returncode != 0:
            sys.stderr.write(f"report.py: gnuplot failed for {png}:\n{res.stderr}")
            return None
    return clipped


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="OUT_DIR of a bench/run.sh run")
    ap.add_argument("-o", "--output", default=None, help="markdown file (default: docs/benchmarks.md of this repository)")
    ap.add_argument("--img-dir", default=None, help="where the PNG charts go (default: img/ next to the markdown file)")
    ap.add_argument("--base", choices=["ref", "glibc"], default="ref",
                    help="what the charts' ratios are against: the reference mimalloc of the run (default; glibc when the run had none) or glibc")
    ap.add_argument("--no-charts", action="store_true", help="write the markdown only")
    ap.add_argument("--note", action="append", default=[],
                    help="a remark about the run for the Run section (e.g. the load on the machine); may be repeated")
    args = ap.parse_args()

    res = args.results
    for f in ("meta.txt", "summary.tsv", "geomean.tsv"):
        if not os.path.isfile(os.path.join(res, f)):
            sys.exit(f"report.py: {res} has no {f} (is it the OUT_DIR of a bench/run.sh run?)")
    meta = read_meta(os.path.join(res, "meta.txt"))
    summary = read_tsv(os.path.join(res, "summary.tsv"))
    geomean = read_tsv(os.path.join(res, "geomean.tsv"))

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.output or os.path.join(repo, "docs", "benchmarks.md")
    img_dir = args.img_dir or os.path.join(os.path.dirname(os.path.abspath(out)), "img")
    ref = meta.get("ref", "")
    allocs = meta.get("allocators", "").split()

    # rows in run order
    rows, seen = [], set()
    cell = {}
    for r in summary:
        key = (r["bench"], r["threads"])
        if key not in seen:
            seen.add(key)
            rows.append(key)
        cell[(r["bench"], r["threads"], r["allocator"])] = r
    threaded = set(meta.get("threaded", "").split())
    labels = [row_label(b, t, b in threaded) for b, t in rows]

    base = "glibc" if args.base == "glibc" or not ref else ref
    tkey = "time_vs_glibc" if base == "glibc" else "time_vs_ref"
    rkey = "rss_vs_glibc" if base == "glibc" else "rss_vs_ref"

    charts = []
    if not args.no_charts:
        gnuplot = shutil.which("gnuplot")
        if not gnuplot:
            sys.stderr.write("report.py: gnuplot not found (Debian: apt-get install gnuplot-nox); writing the report without charts\n")
        else:
            os.makedirs(img_dir, exist_ok=True)
            # the base itself is the 1x line, not a bar
            shown = [a for a in allocs if a != base]
            for key, name, what in ((tkey, "bench-time.png", "time"), (rkey, "bench-rss.png", "peak RSS")):
                vals = [[fnum(cell.get((b, t, a), {}).get(key)) for a in shown] for b, t in rows]
                png = os.path.join(img_dir, name)
                cut = gnuplot_chart(gnuplot, png, f"{what} relative to {base} (median of per-round ratios; log scale; {base} = 1x)",
                                    f"{what} / {base}", labels, shown, vals, base,
                                    "slower" if what == "time" else "more memory",
                                    "faster" if what == "time" else "less memory")
                if cut is not None:
                    charts.append((what, os.path.relpath(png, os.path.dirname(os.path.abspath(out))), cut))

    L = []
    L.append("# hardheap benchmarks")
    L.append("")
    L.append("Generated by `bench/report.py` from one run of `bench/run.sh`; the workloads are "
             "described in [bench/README.md](../bench/README.md). Every program checks the memory it "
             "gets back and prints a checksum that must be the same under every allocator; a run "
             "that failed is listed in the notes and left out of the means.")
    L.append("")
    L.append("## Run")
    L.append("")
    L.append(f"- date: {meta.get('date', '?')}")
    nice = meta.get("nice", "0")
    L.append(f"- command: `{meta.get('command', '?')}`" + (f", run under `nice -n {nice}`" if nice not in ("", "0") else ""))
    L.append(f"- hardheap: allocator sources at commit `{meta.get('hardheap_commit', '?')}` "
             f"(tree HEAD `{meta.get('hardheap_tree_head', '?')}`)")
    L.append(f"- machine: {meta.get('cpu', '?')}, {meta.get('cores', '?')} cores, "
             f"{meta.get('memory_gib', '?')} GiB; {meta.get('host', '?')}; {meta.get('os', '?')}; "
             f"{meta.get('glibc', '?')}")
    L.append(f"- compiler: {meta.get('compiler', '?')} (-O2)")
    L.append(f"- rounds: {meta.get('rounds', '?')} (interleaved, allocator order rotated per round; "
             f"medians); thread counts of the multi-threaded workloads: {meta.get('threads', '?')}")
    L.append(f"- ratios: against glibc and against {ref or '(no mimalloc measured)'}; each is the median "
             "over the rounds of the ratio within one round")
    L.append("- allocators:")
    for a in allocs:
        L.append(f"  - {a}: `{meta.get('lib.' + a, '?')}`")
    if meta.get("skipped"):
        L.append(f"- not found, skipped: {meta['skipped']}")
    for n in args.note:
        L.append(f"- note: {n}")
    L.append("")

    L.append("## Geometric means")
    L.append("")
    L.append("Over all workload rows (one row per workload and thread count).")
    L.append("")
    refl = ref or "mimalloc"
    L.append(f"| allocator | rows | time vs glibc | time vs {refl} | peak RSS vs glibc | peak RSS vs {refl} |")
    L.append("|---|---:|---:|---:|---:|---:|")
    for g in geomean:
        L.append(f"| {g['allocator']} | {g['rows_glibc']} | {ratio(fnum(g['time_vs_glibc']))} | "
                 f"{ratio(fnum(g['time_vs_ref']))} | {ratio(fnum(g['rss_vs_glibc']))} | {ratio(fnum(g['rss_vs_ref']))} |")
    L.append("")
    for what, rel, cut in charts:
        L.append(f"![{what} relative to {base}]({rel})")
        L.append("")
        if cut:
            L.append(f"(Cut {what} bars: "
                     + ", ".join(f"{l} / {a}: {v:.2f}x" if v < 1 else f"{l} / {a}: {v:.1f}x" for l, a, v in cut) + ".)")
            L.append("")

    def matrix(title, intro, fmt):
        L.append(f"## {title}")
        L.append("")
        L.append(intro)
        L.append("")
        L.append("| workload | " + " | ".join(allocs) + " |")
        L.append("|---|" + "---:|" * len(allocs))
        for (b, t), lab in zip(rows, labels):
            cells = []
            for a in allocs:
                c = cell.get((b, t, a))
                cells.append(fmt(c) if c and c.get("time_s") else "failed")
            L.append(f"| {lab} | " + " | ".join(cells) + " |")
        L.append("")

    if ref:
        matrix(f"Time relative to {ref}", f"Median per-round ratio of wall time against {ref} (below 1.00x: faster).",
               lambda c: ratio(fnum(c["time_vs_ref"])))
    matrix("Time relative to glibc", "Median per-round ratio of wall time against glibc.",
           lambda c: ratio(fnum(c["time_vs_glibc"])))
    matrix("Median time (s)", "Median wall time of the workload's own loop, with the fastest and slowest round.",
           lambda c: f"{float(c['time_s']):.3f} ({float(c['time_min']):.3f}-{float(c['time_max']):.3f})")
    if ref:
        matrix(f"Peak RSS relative to {ref}", f"Median per-round ratio of peak RSS (ru_maxrss) against {ref}.",
               lambda c: ratio(fnum(c["rss_vs_ref"])))
    matrix("Peak RSS relative to glibc", "Median per-round ratio of peak RSS against glibc.",
           lambda c: ratio(fnum(c["rss_vs_glibc"])))
    matrix("Median peak RSS (MiB)", "Median peak resident set size of the whole process (binary and libc included, about 1.5 MiB).",
           lambda c: f"{float(c['rss_kib']) / 1024:.1f}")

    notes = [(r["bench"], r["threads"], r["allocator"], r["notes"], r["rounds_ok"], r["rounds_run"])
             for r in summary if r.get("notes")]
    L.append("## Failures")
    L.append("")
    if notes:
        for b, t, a, n, ok, run in notes:
            L.append(f"- {row_label(b, t, b in threaded)} / {a} ({ok}/{run} rounds ok): {md_escape(n)}")
    else:
        L.append("None: every run verified its memory and printed the reference checksum.")
    L.append("")

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(L))
    print(f"report.py: wrote {out}" + "".join(f", {os.path.join(os.path.dirname(os.path.abspath(out)), rel)}" for _, rel, _ in charts))


if __name__ == "__main__":
    main()
