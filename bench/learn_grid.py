#!/usr/bin/env python3
"""learn_grid.py - does learning pay? (issue 10, docs/BENCHMARKS.md "The learner")

Runs the phased benchmark learn_phases (40-48 KiB, then 288-312 KiB, then
33 KiB-1 MiB buffers, in one process) under:

  default     the default policy (HAKMEM_LEARN=0);
  capC/wW     each fixed policy of a grid: HAKMEM_CAP_LARGE in --caps times
              HAKMEM_WMAX_LARGE in --wmax (learner off);
  learn       HAKMEM_LEARN=1 (plus --learn-env);
  nolearn     the default policy in a build with -Dlearn=false;

--runs times each, interleaved (every configuration once, then again), and
prints a markdown table of median wall time and peak RSS with their ratios
to the default, plus the best fixed policy by time, by peak RSS and by
their product (time x peak RSS). Then, unless --no-log, one more run with
HAKMEM_LEARN=1 HAKMEM_VERBOSE=1 whose log gives the policy the learner held
at the end of each phase.

    bench/learn_grid.py                      # 3 runs each (about 3 min)
    bench/learn_grid.py --runs 5 --caps 1,4,16,32 --wmax 125,150
    bench/learn_grid.py --quick              # short phases: checks only

Builds (release, no tests): build-grid/ (default options) and
build-grid-nolearn/ (-Dlearn=false). Results: results/<timestamp>-grid/.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

BASE_OPTS = ["-Dbuildtype=release", "-Dtests=false", "-Dbench=true"]

# The proof's run: the program's own defaults (about 1.5 s per phase on the
# 2-core development machine), so that the learner has time to converge.
PHASED = bl.Bench("learn_phases", "learn_phases", (),
                  ("--frames-a", "2000", "--frames-b", "1500", "--frames-c", "600"),
                  False, "three phases of large buffers")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="learn_phases under the default policy, a grid of fixed "
                    "policies, the learner, and a build without it.")
    p.add_argument("--runs", type=int, default=3, help="runs per configuration (3)")
    p.add_argument("--caps", default="1,4,16,32",
                   help="HAKMEM_CAP_LARGE values of the grid (1,4,16,32)")
    p.add_argument("--wmax", default="125,150",
                   help="HAKMEM_WMAX_LARGE values of the grid (125,150; 125 is the default)")
    p.add_argument("--learn-env", default="",
                   help="more NAME=value settings for the learner's runs")
    p.add_argument("--args", default="",
                   help="arguments for learn_phases (default: its own)")
    p.add_argument("--quick", action="store_true",
                   help="short phases, one run: checks that everything runs")
    p.add_argument("--no-build", action="store_true",
                   help="use build-grid/ and build-grid-nolearn/ as they are")
    p.add_argument("--no-log", action="store_true",
                   help="skip the verbose run that shows the learner's policies")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds before a run is killed (300)")
    p.add_argument("--results", help="results folder (default results/<timestamp>-grid/)")
    a = p.parse_args(argv)
    if a.runs < 1:
        p.error("--runs must be at least 1")
    return a


def build(d: Path, opts: list[str]) -> None:
    if not bl.meson_build(d, opts):
        bl.die(f"build failed in {d} (options: {' '.join(opts)})")


def configs(args, lib: str, lib_nolearn: str, bench_dir: Path) -> list[bl.Allocator]:
    out = [bl.Allocator("default", lib, bench_dir, "the default policy", ("HAKMEM_LEARN=0",))]
    for cap in [c.strip() for c in args.caps.split(",") if c.strip()]:
        for w in [w.strip() for w in args.wmax.split(",") if w.strip()]:
            env = ("HAKMEM_LEARN=0", f"HAKMEM_CAP_LARGE={cap}", f"HAKMEM_WMAX_LARGE={w}")
            out.append(bl.Allocator(f"cap{cap}/w{w}", lib, bench_dir,
                                    "fixed: " + " ".join(env[1:]), env))
    learn_env = ("HAKMEM_LEARN=1",) + tuple(shlex.split(args.learn_env))
    out.append(bl.Allocator("learn", lib, bench_dir, " ".join(learn_env), learn_env))
    out.append(bl.Allocator("nolearn", lib_nolearn, bench_dir,
                            "the default policy, -Dlearn=false build", ()))
    return out


PHASE_RE = re.compile(r"learn_phases: phase (\w): ([0-9.]+) s(?:.*CPU ([0-9.]+) s)?")
INCUMBENT_RE = re.compile(r"learn: incumbent: (.*)")
STATE_RE = re.compile(r"learn: (\w+) -> (\w+)")


def policy_log(alloc: bl.Allocator, argv: list[str], timeout: float) -> list[str]:
    """One verbose run of the learner: per phase, its time, the policy it
    held at the phase's end, its adoptions and lifecycle changes."""
    env = bl.child_env()
    for s in alloc.env + ("HAKMEM_VERBOSE=1",):
        k, _, v = s.partition("=")
        env[k] = v
    env["LD_PRELOAD"] = alloc.preload or ""
    cmd = [str(alloc.bench_dir / PHASED.prog)] + argv
    try:
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout, text=True, errors="replace")
    except subprocess.TimeoutExpired:
        return ["(the verbose run timed out)"]
    rows, adopted, states, held = [], 0, [], "the starting policy"
    for line in p.stderr.splitlines():
        m = INCUMBENT_RE.search(line)
        if m:
            held = m.group(1)
            adopted += 1
            continue
        m = STATE_RE.search(line)
        if m and m.group(1) in ("LEARN", "FROZEN", "CANARY"):
            states.append(f"{m.group(1)}→{m.group(2)}")
            continue
        m = PHASE_RE.search(line)
        if m:
            cpu = f" (CPU {float(m.group(3)):.3f} s)" if m.group(3) else ""
            rows.append([m.group(1), f"{float(m.group(2)):.3f} s{cpu}", str(adopted),
                         " ".join(states) or "-", held])
            adopted, states = 0, []
    if not rows:
        return [f"(no phase lines in the verbose run; exit {p.returncode})"]
    shown = " ".join(shlex.quote(x) for x in ["env"] + list(alloc.env) +
                     ["HAKMEM_VERBOSE=1", f"LD_PRELOAD={alloc.preload}"] + cmd)
    return ["", "### The learner's policies per phase (one verbose run)", "",
            f"`{shown}`", "",
            bl.md_table(["phase", "time", "adoptions", "lifecycle",
                         "policy held at the phase's end"], rows)]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    d = bl.REPO / "build-grid"
    dn = bl.REPO / "build-grid-nolearn"
    if not args.no_build:
        build(d, BASE_OPTS)
        build(dn, bl.merge_options(BASE_OPTS, ["-Dlearn=false"]))
    bench_dir = d / "bench"
    bl.check_programs(bench_dir, [PHASED])
    lib, libn = d / "lib" / "libhakmem.so", dn / "lib" / "libhakmem.so"
    for f in (lib, libn):
        if not f.exists():
            bl.die(f"{f} not found (drop --no-build)")
    allocs = configs(args, str(lib), str(libn), bench_dir)
    bench = PHASED
    if args.args:
        bench = bl.Bench(PHASED.name, PHASED.prog, tuple(shlex.split(args.args)),
                         PHASED.quick, False, PHASED.what)
    mode, rounds = ("quick", 1) if args.quick else ("full", args.runs)
    out_dir = bl.results_dir(args.results, "-grid")
    bl.note(f"results go to {out_dir}")
    problems: list[str] = []
    runs = bl.run_suite([bench], allocs, rounds, mode, None, args.timeout, out_dir, problems)

    # CPU seconds (user + system, every thread of the process, the learner's
    # included): on a shared machine less noisy than the wall time
    bl.METRICS["cpu"] = ("cpu", "CPU seconds (user + system)", False)
    for r in runs:
        r.cpu = r.utime + r.stime
    cpu_c = bl.summarize(runs, "cpu")
    time_c = bl.summarize(runs, "time")
    rss_c = bl.summarize(runs, "rss")
    base_t = time_c.get((bench.name, "default"), bl.Cell())
    base_r = rss_c.get((bench.name, "default"), bl.Cell())
    base_c = cpu_c.get((bench.name, "default"), bl.Cell())
    rows, product = [], {}
    for a in allocs:
        ct = time_c.get((bench.name, a.name), bl.Cell())
        cr = rss_c.get((bench.name, a.name), bl.Cell())
        cc = cpu_c.get((bench.name, a.name), bl.Cell())
        tr, rr = bl.ratio(cc, base_c), bl.ratio(cr, base_r)
        prod = tr[0] * rr[0] if tr and rr else float("nan")
        product[a.name] = prod
        cpu_text = (f"{cc.stat.median:.3f} s · " if cc.stat else "") + \
            bl.ratio_cell("cpu", cc, base_c, show_value=False)
        rows.append([a.name, a.detail, bl.ratio_cell("time", ct, base_t), cpu_text,
                     bl.ratio_cell("rss", cr, base_r),
                     "-" if prod != prod else f"×{prod:.2f}"])
    fixed = [a.name for a in allocs if a.name.startswith("cap")]

    def best(score) -> str:
        vals = [(score(n), n) for n in fixed]
        vals = [v for v in vals if v[0] == v[0]]
        return min(vals)[1] if vals else "-"

    def median(cells, n) -> float:
        c = cells.get((bench.name, n), bl.Cell())
        return c.stat.median if c.stat else float("nan")
    lines = bl.header_lines(
        "hakmem: the learner against fixed policies (learn_phases)",
        ["bench/learn_grid.py"] + argv,
        [f"Program: {bench.prog} {' '.join(bench.argv(mode, None))}",
         f"Library: {lib} (and {libn}, -Dlearn=false); "
         f"{rounds} run(s) per configuration, interleaved"])
    lines += ["", "Each cell: the median, then ×(median / the default's median) and "
              "(best–worst run / the default's median). CPU time: user + system seconds of "
              "the whole process (the learner's thread included), less noisy than the wall "
              "time on a shared machine. CPU × RSS: the product of the two median ratios "
              "(lower is better).", "",
              bl.md_table(["configuration", "settings", "wall time", "CPU time", "peak RSS",
                           "CPU × RSS"], rows), "",
              f"Best fixed policy by wall time: {best(lambda n: median(time_c, n))}; by CPU "
              f"time: {best(lambda n: median(cpu_c, n))}; by peak RSS: "
              f"{best(lambda n: median(rss_c, n))}; by CPU × RSS: "
              f"{best(lambda n: product[n])}."]
    if not args.no_log and not args.quick:
        lines += policy_log(allocs[-2], bench.argv(mode, None), args.timeout)
    return bl.finish(out_dir, lines, problems,
                     "All runs succeeded with the same checksum.")


if __name__ == "__main__":
    bl.run_cli(main)
