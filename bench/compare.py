#!/usr/bin/env python3
"""compare.py - runs the benchmarks under hakmem and its peers and compares.

Builds hakmem (release) into a build folder, finds glibc, mimalloc, jemalloc
and tcmalloc, runs every benchmark under each allocator via LD_PRELOAD,
interleaved (A B C D E, A B C D E, ...), and reports per benchmark the
median wall time, ops/s and peak RSS, each as a ratio to mimalloc with the
min-max spread, plus a geometric-mean row: a markdown table on stdout and
table.md, results.csv (every run) and plot.png in results/<timestamp>/.

    bench/compare.py                      # everything, 5 runs each
    bench/compare.py --quick              # CI: one short run each
    bench/compare.py --bench larson,frag --alloc hakmem,mimalloc --runs 9
    bench/compare.py --callgrind          # instructions per operation
    bench/compare.py --list

Exit status: 0 when every run succeeded and every allocator produced the
same checksum for each benchmark; 1 otherwise (the report says why); 2 on
bad usage or when nothing could be built. See docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Compare hakmem with glibc, mimalloc, jemalloc and "
                    "tcmalloc on the benchmarks in bench/.")
    p.add_argument("--bench", help="comma list of benchmarks (default: all; "
                   "see --list)")
    p.add_argument("--alloc", help="comma list of allocators (default: "
                   + ",".join(bl.KNOWN_ALLOCS) + ")")
    p.add_argument("--runs", type=int, default=5,
                   help="runs per benchmark and allocator (default 5)")
    p.add_argument("--threads", type=int,
                   help="threads for the threaded benchmarks (default: each "
                        "program's own, 2 for most)")
    p.add_argument("--quick", action="store_true",
                   help="one short run each (CI): checks that every "
                        "allocator runs every benchmark with the same "
                        "checksum; the timings mean little")
    p.add_argument("--callgrind", action="store_true",
                   help="run each benchmark once under valgrind "
                        "--tool=callgrind (small sizes) and report "
                        "instructions per operation")
    p.add_argument("--timeout", type=float,
                   help="seconds before a run is killed (default 120; 900 "
                        "with --callgrind)")
    p.add_argument("--build-dir", default="build-bench",
                   help="Meson build folder, relative to the repository "
                        "(default build-bench)")
    p.add_argument("--no-build", action="store_true",
                   help="use the programs and library already in --build-dir")
    p.add_argument("--minimal", action="store_true",
                   help="build hakmem with -Dbench_minimal=true")
    p.add_argument("--install", action="store_true",
                   help="apt-get install missing peers, gnuplot and valgrind "
                        "(when root)")
    p.add_argument("--results", help="results folder (default "
                   "results/<timestamp>/)")
    p.add_argument("--list", action="store_true",
                   help="list the benchmarks and exit")
    a = p.parse_args(argv)
    if a.runs < 1:
        p.error("--runs must be at least 1")
    if a.threads is not None and a.threads < 1:
        p.error("--threads must be at least 1")
    return a


def build(args: argparse.Namespace, build_dir: Path, benches: list[bl.Bench],
          want_hakmem: bool, problems: list[str]) -> None:
    if args.no_build:
        return
    opts = ["-Dbuildtype=release", "-Dtests=false", "-Dbench=true",
            f"-Dbench_minimal={'true' if args.minimal else 'false'}"]
    if want_hakmem:
        if bl.meson_build(build_dir, opts):
            return
        problems.append("building hakmem failed; hakmem skipped")
        bl.warn(problems[-1] + " (building only the benchmarks)")
    if not bl.meson_build(build_dir, opts, bl.bench_targets(benches)):
        bl.die("could not build the benchmark programs")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        bl.list_benches()
        return 0
    benches = bl.select_benches(args.bench)
    names = bl.parse_alloc_list(args.alloc)
    problems: list[str] = []

    build_dir = Path(args.build_dir)
    if not build_dir.is_absolute():
        build_dir = bl.REPO / build_dir
    build(args, build_dir, benches, "hakmem" in names, problems)
    bench_dir = build_dir / "bench"
    bl.check_programs(bench_dir, benches)
    hakmem_lib = build_dir / "lib" / "libhakmem.so"
    if any(p.startswith("building hakmem failed") for p in problems):
        names = [n for n in names if n != "hakmem"]
    allocs = bl.resolve_allocators(names, bench_dir, hakmem_lib, args.install,
                                   problems)
    if not allocs:
        bl.die("no allocator to run")
    order = [a.name for a in allocs]
    base = next((n for n in ("mimalloc", "glibc") if n in order), order[0])

    out_dir = bl.results_dir(args.results,
                             "-callgrind" if args.callgrind else "")
    bl.note(f"results go to {out_dir}")
    if args.callgrind:
        if not bl.ensure_tool("valgrind", "valgrind", args.install):
            bl.die("--callgrind needs valgrind (apt-get install valgrind)")
        mode, rounds = "callgrind", 1
    else:
        bl.ensure_tool("gnuplot", "gnuplot-nox", args.install)
        mode, rounds = ("quick", 1) if args.quick else ("full", args.runs)
    benches = bl.for_mode(benches, mode)
    runs = bl.run_suite(benches, allocs, rounds, mode, args.threads,
                        args.timeout, out_dir, problems)

    described = "Allocators: " + "; ".join(
        f"{a.name} = {a.detail or 'libc'}" for a in allocs) + (
        " (hakmem built with -Dbench_minimal=true)" if args.minimal else "")
    if args.callgrind:
        lines = bl.header_lines(
            "hakmem instruction counts (callgrind)",
            ["bench/compare.py"] + argv,
            ["One run per benchmark and allocator under valgrind "
             "--tool=callgrind, with the small arguments", described])
        for m in ("ir", "irtotal"):
            lines += ["", bl.comparison_table(m, benches, order, base,
                                              bl.summarize(runs, m))]
        lines += ["", bl.CALLGRIND_NOTE]
        return bl.finish(out_dir, lines, problems, ALL_OK)

    cells = {m: bl.summarize(runs, m) for m in ("time", "rate", "rss")}
    lines = bl.header_lines(
        "hakmem benchmark comparison" + (" (quick)" if args.quick else ""),
        ["bench/compare.py"] + argv,
        [f"Runs: {rounds} per benchmark and allocator, interleaved; "
         f"threads: {args.threads or 'program defaults'}"
         + ("; quick arguments: timings are not meaningful"
            if args.quick else ""), described])
    for m in ("time", "rate", "rss"):
        lines += ["", bl.comparison_table(m, benches, order, base, cells[m])]

    values = {}
    for b in benches:
        for a in order:
            rr = bl.ratio(cells["rate"].get((b.name, a), bl.Cell()),
                          cells["rate"].get((b.name, base), bl.Cell()))
            if rr is not None:
                values[(b.name, a)] = rr[0]
    why = bl.gnuplot_bars(out_dir / "plot.png",
                          f"ops/s relative to {base} (higher is better)",
                          f"ops/s / {base} ops/s",
                          [b.name for b in benches], order, values)
    if why is None:
        lines += ["", f"Plot: plot.png (median ops/s over {base}'s)."]
    else:
        lines += ["", f"Plot: none ({why})."]
        bl.note(f"no plot: {why}")
    return bl.finish(out_dir, lines, problems, ALL_OK)


ALL_OK = ("All runs succeeded; every allocator produced the same checksum "
          "for each benchmark.")


if __name__ == "__main__":
    bl.run_cli(main)
