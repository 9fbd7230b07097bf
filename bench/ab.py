#!/usr/bin/env python3
"""ab.py - A/B runs of two hakmem build configurations.

Builds hakmem twice with two sets of Meson options (release, no tests) into
build-ab-a/ and build-ab-b/, runs the chosen benchmarks with each build's
libhakmem.so preloaded, pairwise and interleaved (A B, A B, ...), and
reports per benchmark the ratio B/A of the median wall time, ops/s and peak
RSS, with the spread (B's fastest and slowest run over A's median), and a
geometric-mean row: a markdown table on stdout and table.md and results.csv
in results/<timestamp>-ab/.

    bench/ab.py --b "-Dbench_minimal=true"                # what it saves
    bench/ab.py --a "-Dace=true" --b "-Dace=false" --bench larson,frag
    bench/ab.py --a=-Dtiny_superslab=true --b=-Dtiny_superslab=false --quick
    bench/ab.py --b "-Dpool=false" --callgrind            # Ir/op, B/A
    bench/ab.py --a-env HAKMEM_LEARN=0 --b-env HAKMEM_LEARN=1 --bench ace_cycle
                                         # one build, two environments

Both sides run the same benchmark programs (build A's), so only the
library differs. Exit status as for compare.py: 1 when a run failed or the
checksums differ, 2 on bad usage or a failed build. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402


def fix_argv(argv: list[str]) -> list[str]:
    """Lets `--a -Dfoo=true` through argparse, which would take a value
    that starts with '-' for an option: glue it as `--a=-Dfoo=true`."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--a", "--b", "--a-env", "--b-env") and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


DEFAULT_BUILD_B = "build-ab-b"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Build hakmem with two sets of Meson options and "
                    "compare them pairwise on the benchmarks (ratio B/A).")
    p.add_argument("--a", default="", help="Meson options of build A, e.g. "
                   "\"-Dace=true\" (default: none)")
    p.add_argument("--b", default="", help="Meson options of build B")
    p.add_argument("--a-env", default="", help="NAME=value settings (space "
                   "separated) for A's runs, e.g. \"HAKMEM_LEARN=0\"")
    p.add_argument("--b-env", default="", help="NAME=value settings for B's runs")
    p.add_argument("--bench", help="comma list of benchmarks (default: all)")
    p.add_argument("--runs", type=int, default=5,
                   help="runs per benchmark and build (default 5)")
    p.add_argument("--threads", type=int,
                   help="threads for the threaded benchmarks")
    p.add_argument("--quick", action="store_true",
                   help="one short run each: checks both builds run every "
                        "benchmark with the same checksum")
    p.add_argument("--callgrind", action="store_true",
                   help="one run each under callgrind: B/A of instructions "
                        "per operation")
    p.add_argument("--timeout", type=float,
                   help="seconds before a run is killed (default 120; 900 "
                        "with --callgrind)")
    p.add_argument("--build-a", default="build-ab-a",
                   help="build folder of A (default build-ab-a)")
    p.add_argument("--build-b", default=DEFAULT_BUILD_B,
                   help="build folder of B (default build-ab-b)")
    p.add_argument("--no-build", action="store_true",
                   help="use the builds already in the two folders")
    p.add_argument("--results", help="results folder (default "
                   "results/<timestamp>-ab/)")
    p.add_argument("--list", action="store_true",
                   help="list the benchmarks and exit")
    a = p.parse_args(fix_argv(argv))
    if a.runs < 1:
        p.error("--runs must be at least 1")
    return a


BASE_OPTS = ["-Dbuildtype=release", "-Dtests=false", "-Dbench=true"]


def ab_table(benches: list[bl.Bench], cells: dict[str, dict], metrics:
             list[str], value_metric: str) -> str:
    """Rows: benchmarks. Columns: A's and B's median of value_metric, then
    B/A for each metric with B's spread over A's median."""
    header = ["benchmark", f"A {LABEL[value_metric]}",
              f"B {LABEL[value_metric]}"]
    for m in metrics:
        _attr, _heading, higher = bl.METRICS[m]
        header.append(f"B/A {LABEL[m]} ({'higher' if higher else 'lower'} "
                      "is better)")
    rows, ratios = [], {m: [] for m in metrics}
    for b in benches:
        row = [b.name]
        for side in ("A", "B"):
            c = cells[value_metric].get((b.name, side), bl.Cell())
            row.append(bl.fmt_value(value_metric, c.stat.median) if c.stat
                       else (f"FAIL ({c.failed})" if c.failed else "-"))
        for m in metrics:
            ca = cells[m].get((b.name, "A"), bl.Cell())
            cb = cells[m].get((b.name, "B"), bl.Cell())
            row.append(bl.ratio_cell(m, cb, ca, show_value=False))
            rr = bl.ratio(cb, ca)
            if rr is not None:
                ratios[m].append(rr[0])
        rows.append(row)
    gm = ["**geomean**", "", ""]
    for m in metrics:
        g = bl.geomean(ratios[m])
        gm.append("-" if math.isnan(g) else f"**×{bl.fmt_ratio(g)}**")
    rows.append(gm)
    return bl.md_table(header, rows)


LABEL = {"time": "time", "rate": "ops/s", "rss": "peak RSS",
         "ir": "malloc-family Ir/op", "irtotal": "whole-program Ir/op"}


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        bl.list_benches()
        return 0
    benches = bl.select_benches(args.bench)
    opts_a = bl.merge_options(BASE_OPTS, shlex.split(args.a))
    opts_b = bl.merge_options(BASE_OPTS, shlex.split(args.b))
    dirs = []
    for d in (args.build_a, args.build_b):
        p = Path(d)
        dirs.append(p if p.is_absolute() else bl.REPO / p)
    if opts_a == opts_b and args.build_b == DEFAULT_BUILD_B:
        # the same build: A and B differ by their environment (unless B's
        # folder was named: two builds of different sources, say)
        dirs[1] = dirs[0]
    if not args.no_build:
        for side, d, opts in (("A", dirs[0], opts_a), ("B", dirs[1], opts_b)):
            if side == "B" and dirs[1] == dirs[0]:
                continue
            bl.note(f"building {side} in {d}")
            if not bl.meson_build(d, opts):
                bl.die(f"build {side} failed (options: {' '.join(opts)})")
    bench_dir = dirs[0] / "bench"
    bl.check_programs(bench_dir, benches)
    allocs = []
    for side, d, opts, env in (("A", dirs[0], opts_a, args.a_env),
                               ("B", dirs[1], opts_b, args.b_env)):
        lib = d / "lib" / "libhakmem.so"
        if not lib.exists():
            bl.die(f"{lib} not found (build {side} first, or drop --no-build)")
        settings = tuple(shlex.split(env))
        for setting in settings:
            if "=" not in setting:
                bl.die(f"--{side.lower()}-env: {setting!r} is not NAME=value")
        allocs.append(bl.Allocator(side, str(lib), bench_dir,
                                   f"{lib} built with {' '.join(opts)}"
                                   + (f", run with {' '.join(settings)}" if settings else ""),
                                   settings))
    if args.callgrind and not bl.ensure_tool("valgrind", "valgrind", False):
        bl.die("--callgrind needs valgrind (apt-get install valgrind)")

    out_dir = bl.results_dir(args.results, "-ab")
    bl.note(f"results go to {out_dir}")
    problems: list[str] = []
    if args.callgrind:
        mode, rounds = "callgrind", 1
        metrics, value = ["ir", "irtotal"], "ir"
        what = "one run each under valgrind --tool=callgrind (small arguments)"
    else:
        mode, rounds = ("quick", 1) if args.quick else ("full", args.runs)
        metrics, value = ["time", "rate", "rss"], "time"
        what = (f"{rounds} per benchmark and build, interleaved A B"
                + ("; quick arguments: timings are not meaningful"
                   if args.quick else ""))
    benches = bl.for_mode(benches, mode)
    runs = bl.run_suite(benches, allocs, rounds, mode, args.threads,
                        args.timeout, out_dir, problems)

    cells = {m: bl.summarize(runs, m) for m in metrics}
    lines = bl.header_lines(
        "hakmem A/B comparison (B/A)", ["bench/ab.py"] + argv,
        [f"A: {allocs[0].detail}", f"B: {allocs[1].detail}",
         f"Runs: {what}; threads: {args.threads or 'program defaults'}; "
         "both sides run build A's benchmark programs"])
    lines += ["", "Each ratio is B's median over A's median, then (B's "
              "fastest–slowest run) / A's median; the geomean row is the "
              "geometric mean of the ratios.", "",
              ab_table(benches, cells, metrics, value)]
    if args.callgrind:
        lines += ["", bl.CALLGRIND_NOTE]
    return bl.finish(out_dir, lines, problems,
                     "All runs succeeded; A and B produced the same checksum "
                     "for each benchmark.")


if __name__ == "__main__":
    bl.run_cli(main)
