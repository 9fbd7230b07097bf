"""benchlib - what bench/compare.py and bench/ab.py share.

Owns: the benchmark registry (the one list of benchmarks, their programs and
arguments), building with Meson, finding and installing the peer allocators,
running one benchmark once (through the bench_spawn launcher) and a whole
interleaved matrix of runs with progress on stderr, checking checksums,
the statistics (medians, min-max spread, ratios, geometric means), the
markdown tables, the CSV, the gnuplot chart, the description of the machine,
and callgrind runs.

Python 3 standard library only.
"""

from __future__ import annotations

import csv
import datetime
import glob
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

REPO = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------
# The benchmark registry: the one place that names every benchmark.
#
#   name      what the runners and their tables call it
#   prog      the executable in <build>/bench/
#   args      arguments of a normal run (each program has its own defaults;
#             a normal run takes about 0.2-1.5 s on a 2-core machine)
#   quick     arguments of a --quick run (CI: a few hundredths of a second)
#   small     arguments under callgrind (about 50x slower); None = quick
#   threaded  takes --threads (the runners' --threads is passed on)
#   what      one line for --list and the docs
#   callgrind False: left out of --callgrind (its ops are not allocator
#             calls and what it measures is cache-line traffic)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Bench:
    name: str
    prog: str
    args: tuple[str, ...]
    quick: tuple[str, ...]
    threaded: bool
    what: str
    small: Optional[tuple[str, ...]] = None
    callgrind: bool = True     # False: instruction counts say nothing here

    def argv(self, mode: str, threads: Optional[int]) -> list[str]:
        """Arguments for mode 'full', 'quick' or 'callgrind'."""
        extra = {"full": (), "quick": self.quick,
                 "callgrind": self.small if self.small is not None
                 else self.quick}[mode]
        out = list(self.args) + list(extra)
        if self.threaded and threads is not None:
            out += ["--threads", str(threads)]
        return out


REGISTRY: tuple[Bench, ...] = (
    Bench("hot_loop", "hot_loop", (), ("--iters", "1000000"), False,
          "single-size hot loop: 32 B blocks, 100 live, malloc/free"),
    Bench("random_mixed", "random_mixed", (),
          ("--iters", "200000", "--ws", "5000"), False,
          "random sizes 16..1040 B replacing blocks of a 20000-block working set"),
    Bench("tiny_16", "random_mixed", ("--ws", "256", "--min", "16", "--max", "16",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "16 B blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("tiny_64", "random_mixed", ("--ws", "256", "--min", "64", "--max", "64",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "64 B blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("tiny_256", "random_mixed", ("--ws", "256", "--min", "256", "--max", "256",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "256 B blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("tiny_1k", "random_mixed", ("--ws", "256", "--min", "1024", "--max", "1024",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "1 KiB blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("tiny_mixed", "random_mixed", ("--ws", "256", "--min", "16", "--max", "1040",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "random 16..1040 B blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("pool_2k", "random_mixed", ("--ws", "256", "--min", "2048", "--max", "2048",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "2 KiB blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("pool_8k", "random_mixed", ("--ws", "256", "--min", "8192", "--max", "8192",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "8 KiB blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("pool_32k", "random_mixed", ("--ws", "256", "--min", "32768", "--max", "32768",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "32 KiB blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("pool_mixed", "random_mixed", ("--ws", "256", "--min", "1024", "--max", "32768",
                                     "--iters", "20000000"),
          ("--iters", "500000"), False,
          "random 1..32 KiB blocks replacing random ones of 256 live (one lane's fast paths)"),
    Bench("ace_1m", "random_mixed", ("--ws", "64", "--min", "1048576", "--max", "1048576",
                                     "--iters", "400000"),
          ("--iters", "10000"), False,
          "1 MiB blocks replacing random ones of 64 live (the ACE lane)"),
    Bench("ace_mixed", "random_mixed", ("--ws", "256", "--min", "32769", "--max", "1048576",
                                     "--iters", "400000"),
          ("--iters", "10000"), False,
          "random 32 KiB..1 MiB blocks replacing random ones of 256 live (the ACE lane)"),
    Bench("larson", "larson", (), ("--rounds", "20", "--steps", "5000"), True,
          "Larson-style server: workers replace 8..1024 B blocks, hand some on each round"),
    Bench("prodcons", "prodcons", (), ("--iters", "100000"), True,
          "producer/consumer pairs: every free is a cross-thread free"),
    Bench("mt_mid", "mt_mid", (), ("--iters", "100000"), True,
          "threads replacing 8-32 KiB blocks of their own working sets"),
    Bench("frag", "frag", (), ("--iters", "200000"), False,
          "fragmentation: interleaved lifetimes over phases of changing sizes, survivors"),
    Bench("size_64k", "large_sizes", ("--scenario", "64k"),
          ("--iters", "20000"), False, "replacing blocks of 64 KiB +-25%"),
    Bench("size_256k", "large_sizes", ("--scenario", "256k"),
          ("--iters", "8000"), False, "replacing blocks of 256 KiB +-25%"),
    Bench("size_2m", "large_sizes", ("--scenario", "2m"),
          ("--iters", "1000"), False, "replacing blocks of 2 MiB +-25%"),
    Bench("size_mix", "large_sizes", ("--scenario", "mix"),
          ("--iters", "3000"), False, "replacing blocks of 64 KiB, 256 KiB or 2 MiB"),
    Bench("huge_blocks", "huge_blocks", (), ("--iters", "12"), False,
          "blocks of 5-25 MiB written in full, freed and reallocated",
          small=("--iters", "4", "--ws", "2")),
    Bench("big_4m_once", "big_loop", ("--size", "4194304", "--use", "once",
                                      "--iters", "200000"),
          ("--iters", "2000"), False,
          "one 4 MiB block malloc'ed, touched once (one word), freed, in a loop",
          small=("--iters", "200")),
    Bench("big_2m_full", "big_loop", ("--size", "2097152", "--use", "full",
                                      "--iters", "3000"),
          ("--iters", "50"), False,
          "one 2 MiB block malloc'ed, written in full, freed, in a loop",
          small=("--iters", "20")),
    Bench("heap_growth", "heap_growth", (), ("--iters", "500"), False,
          "slowly growing heap: rounds of temporaries, a long tail of survivors"),
    Bench("realloc_grow", "realloc_grow", (), ("--iters", "100000"), False,
          "interleaved buffers grown by realloc (appends and x1.12 growth)"),
    Bench("false_sharing", "false_sharing", (),
          ("--rounds", "4", "--writes", "500000"), True,
          "threads incrementing small blocks allocated together (ops = writes)",
          callgrind=False),
    Bench("thread_churn", "thread_churn", (), ("--iters", "500"), True,
          "many short-lived threads; some blocks freed after their owner exits"),
    Bench("ace_cycle", "ace_cycle", (), ("--frames", "300"), False,
          "frames of 64-512 KiB buffers, two alternating working sets above the default "
          "ACE caps (the learner's benchmark: HAKMEM_LEARN=0 vs 1)",
          small=("--frames", "200", "--think", "0")),
    Bench("learn_phases", "learn_phases",
          ("--frames-a", "50000", "--frames-b", "40000", "--frames-c", "15000"),
          ("--frames-a", "600", "--frames-b", "300", "--frames-c", "150"), False,
          "three phases in one run: 40-48 KiB, then 288-312 KiB, then 33 KiB-1 MiB "
          "buffers, each suiting another ACE policy (bench/learn_grid.py runs it 4x longer)",
          small=("--frames-a", "2000", "--frames-b", "1000", "--frames-c", "500",
                 "--think", "0")),
)

BENCH_BY_NAME = {b.name: b for b in REGISTRY}
SPAWN = "bench_spawn"  # the launcher, built with the benchmarks


def select_benches(spec: Optional[str]) -> list[Bench]:
    """Benchmarks named in a comma list (None: all), in registry order."""
    if not spec:
        return list(REGISTRY)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in BENCH_BY_NAME]
    if unknown:
        die(f"unknown benchmark(s): {', '.join(unknown)} "
            f"(known: {', '.join(BENCH_BY_NAME)})")
    return [b for b in REGISTRY if b.name in names]


def for_mode(benches: list[Bench], mode: str) -> list[Bench]:
    """The benchmarks that make sense in mode (callgrind leaves some out)."""
    if mode != "callgrind":
        return benches
    skipped = [b.name for b in benches if not b.callgrind]
    if skipped:
        note(f"callgrind: leaving out {', '.join(skipped)}")
    return [b for b in benches if b.callgrind]


def list_benches(out=sys.stdout) -> None:
    width = max(len(b.name) for b in REGISTRY)
    for b in REGISTRY:
        args = " ".join([b.prog] + list(b.args))
        flag = " [threaded: takes --threads]" if b.threaded else ""
        print(f"{b.name:<{width}}  {b.what}{flag}\n{'':<{width}}  "
              f"runs: {args}   quick: {' '.join(b.quick)}", file=out)


# ---------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------

def warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def note(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def die(msg: str, code: int = 2) -> None:
    print(f"error: {msg}", file=sys.stderr, flush=True)
    sys.exit(code)


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------

def meson_build(build_dir: Path, options: list[str],
                targets: Optional[list[str]] = None) -> bool:
    """Configures build_dir with options (setting up or reconfiguring) and
    builds targets (None: everything). Returns False on failure."""
    if (build_dir / "meson-private").is_dir():
        setup = ["meson", "setup", "--reconfigure", str(build_dir)] + options
    else:
        setup = ["meson", "setup", str(build_dir)] + options
    note("$ " + " ".join(setup))
    # Build logs go to stderr: stdout carries only the report.
    if subprocess.run(setup, cwd=REPO, stdout=sys.stderr).returncode != 0:
        return False
    build = ["ninja", "-C", str(build_dir)] + (targets or [])
    note("$ " + " ".join(build))
    return subprocess.run(build, cwd=REPO, stdout=sys.stderr).returncode == 0


def bench_targets(benches: Iterable[Bench]) -> list[str]:
    """Ninja targets of the programs the benches need, and the launcher."""
    progs = sorted({b.prog for b in benches} | {SPAWN})
    return [f"bench/{p}" for p in progs]


def merge_options(defaults: list[str], user: list[str]) -> list[str]:
    """Meson -D options: the user's win over defaults of the same name."""
    def key(opt: str) -> str:
        return opt.split("=", 1)[0]
    given = {key(o) for o in user}
    return [o for o in defaults if key(o) not in given] + user


def check_programs(bench_dir: Path, benches: Iterable[Bench]) -> None:
    missing = [p for p in sorted({b.prog for b in benches} | {SPAWN})
               if not os.access(bench_dir / p, os.X_OK)]
    if missing:
        die(f"not built in {bench_dir}: {', '.join(missing)} "
            "(build with the bench option on, or drop --no-build)")


# ---------------------------------------------------------------------------
# Allocators
# ---------------------------------------------------------------------------

@dataclass
class Allocator:
    name: str                  # column name in the tables
    preload: Optional[str]     # LD_PRELOAD value; None runs the libc malloc
    bench_dir: Path            # where the benchmark programs are
    detail: str = ""           # library path and version, for the report
    env: tuple[str, ...] = ()  # NAME=value settings for its runs (ab.py --a-env)


# name -> (file names to look for, Debian package that ships the .so)
PEERS = {
    "mimalloc": (("libmimalloc.so", "libmimalloc.so.2"), "libmimalloc-dev"),
    "jemalloc": (("libjemalloc.so", "libjemalloc.so.2"), "libjemalloc-dev"),
    "tcmalloc": (("libtcmalloc_minimal.so", "libtcmalloc_minimal.so.4"),
                 "libgoogle-perftools-dev"),
}
KNOWN_ALLOCS = ("hakmem", "glibc", "mimalloc", "jemalloc", "tcmalloc")


def lib_dirs() -> list[str]:
    dirs = []
    try:
        arch = subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        if arch:
            dirs.append(f"/usr/lib/{arch}")
    except (OSError, subprocess.SubprocessError):
        pass
    dirs += sorted(d for d in glob.glob("/usr/lib/*-linux-gnu*")
                   if os.path.isdir(d))
    dirs += ["/usr/lib", "/usr/local/lib"]
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def find_peer(name: str) -> Optional[str]:
    files, _pkg = PEERS[name]
    for d in lib_dirs():
        for f in files:
            p = os.path.join(d, f)
            if os.path.exists(p):
                return p
    return None


def package_version(path: str) -> str:
    """'package version' of the Debian package that owns path, or ''."""
    try:
        real = os.path.realpath(path)
        for p in (path, real):
            r = subprocess.run(["dpkg", "-S", p], capture_output=True,
                               text=True, timeout=20)
            if r.returncode == 0 and ":" in r.stdout:
                pkg = r.stdout.split(":", 1)[0].strip()
                v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg],
                                   capture_output=True, text=True, timeout=20)
                return f"{pkg} {v.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return ""


def apt_install(pkgs: list[str]) -> bool:
    """apt-get install -y pkgs (root only); one apt-get update and a retry
    if the first attempt fails."""
    if not pkgs:
        return True
    if os.geteuid() != 0:
        warn(f"not root: cannot install {' '.join(pkgs)}")
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "--no-install-recommends"] + pkgs
    note("$ " + " ".join(cmd))
    if subprocess.run(cmd, env=env, stdout=sys.stderr).returncode == 0:
        return True
    note("$ apt-get update")
    subprocess.run(["apt-get", "update"], env=env, stdout=sys.stderr)
    return subprocess.run(cmd, env=env, stdout=sys.stderr).returncode == 0


def glibc_version() -> str:
    try:
        return "glibc " + os.confstr("CS_GNU_LIBC_VERSION").split()[-1]
    except (ValueError, OSError, AttributeError, IndexError):
        return "glibc"


def resolve_allocators(names: list[str], bench_dir: Path,
                       hakmem_lib: Optional[Path], install: bool,
                       problems: list[str]) -> list[Allocator]:
    """Allocator records for the names, in the order given; missing peers
    are installed (install=True) or skipped with a warning; a missing hakmem
    library is a problem (the runner then exits nonzero)."""
    missing = [n for n in names if n in PEERS and find_peer(n) is None]
    if missing and install:
        apt_install([PEERS[n][1] for n in missing])
    out = []
    for n in names:
        if n == "glibc":
            out.append(Allocator(n, None, bench_dir, glibc_version()))
        elif n == "hakmem":
            if hakmem_lib is None or not hakmem_lib.exists():
                problems.append(f"hakmem: library not found at {hakmem_lib}; "
                                "skipped")
                warn(problems[-1])
                continue
            out.append(Allocator(n, str(hakmem_lib), bench_dir,
                                 f"{hakmem_lib} ({git_describe()})"))
        else:
            lib = find_peer(n)
            if lib is None:
                warn(f"{n}: {PEERS[n][0][0]} not found (apt-get install "
                     f"{PEERS[n][1]}, or run with --install as root); skipped")
                continue
            ver = package_version(lib)
            out.append(Allocator(n, lib, bench_dir,
                                 f"{lib}" + (f" ({ver})" if ver else "")))
    return out


def parse_alloc_list(spec: Optional[str]) -> list[str]:
    if not spec:
        return list(KNOWN_ALLOCS)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [n for n in names if n not in KNOWN_ALLOCS]
    if bad:
        die(f"unknown allocator(s): {', '.join(bad)} "
            f"(known: {', '.join(KNOWN_ALLOCS)})")
    return names


def ensure_tool(tool: str, package: str, install: bool) -> bool:
    if shutil.which(tool):
        return True
    if install:
        apt_install([package])
    return shutil.which(tool) is not None


# ---------------------------------------------------------------------------
# Running one benchmark once
# ---------------------------------------------------------------------------

RESULT_RE = re.compile(r"ops/s=(\S+)\s+checksum=(\S+)\s+ops=(\d+)\s+secs=(\S+)")
REPORT_RE = re.compile(r"(\w+)=(\S+)")


@dataclass
class Run:
    bench: str
    alloc: str
    round: int                 # 1-based round of the interleaving
    command: str               # how to reproduce it in a shell
    status: str = "ok"         # ok | timeout | signal:NAME | exit:N | bad-output | spawn-error
    wall: float = math.nan     # seconds, fork to exit, measured by bench_spawn
    maxrss_kib: float = math.nan
    utime: float = math.nan
    stime: float = math.nan
    minflt: float = math.nan
    majflt: float = math.nan
    ops_per_s: float = math.nan
    checksum: str = ""
    ops: int = 0
    secs: float = math.nan     # the program's own measured seconds
    message: str = ""          # the tail of stderr when something went wrong
    ir_total: float = math.nan   # callgrind: all instructions
    ir_alloc: float = math.nan   # callgrind: inside malloc-family calls

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def shell_command(preload: Optional[str], argv: list[str]) -> str:
    pre = f"env LD_PRELOAD={shlex.quote(preload)} " if preload else ""
    return pre + " ".join(shlex.quote(a) for a in argv)


def child_env() -> dict[str, str]:
    """The runners' environment without LD_PRELOAD (bench_spawn sets it for
    the benchmark only)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return f"SIG{num}"


def run_once(bench: Bench, alloc: Allocator, argv_tail: list[str], rnd: int,
             timeout: float, wrap: Optional[list[str]] = None) -> Run:
    """Runs bench under alloc once. wrap (e.g. valgrind) goes in front of
    the program; then the preload is set by `env` after the wrapper, so
    that only the program runs on the allocator."""
    prog = str(alloc.bench_dir / bench.prog)
    if wrap:
        inner = ["env"] + ([f"LD_PRELOAD={alloc.preload}"] if alloc.preload
                           else []) + [prog] + argv_tail
        argv, preload = wrap + inner, None
    else:
        argv, preload = [prog] + argv_tail, alloc.preload
    env = child_env()
    for setting in alloc.env:
        name, _, value = setting.partition("=")
        env[name] = value
    run = Run(bench.name, alloc.name, rnd,
              " ".join(alloc.env) + (" " if alloc.env else "") +
              shell_command(preload, argv))

    with tempfile.TemporaryDirectory(prefix="hakmem-bench-") as tmp:
        report = os.path.join(tmp, "report")
        out_path = os.path.join(tmp, "stdout")
        err_path = os.path.join(tmp, "stderr")
        spawn = [str(alloc.bench_dir / SPAWN)]
        if preload:
            spawn += ["--preload", preload]
        spawn += ["--report", report, "--"] + argv
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            try:
                proc = subprocess.Popen(spawn, stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=err,
                                        env=env,
                                        start_new_session=True)
            except OSError as e:
                run.status, run.message = "spawn-error", str(e)
                return run
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                run.status = "timeout"
                run.message = f"killed after {timeout:g} s"
                run.wall = timeout
            except BaseException:
                kill_group(proc)
                raise
        stdout = read_text(out_path)
        stderr = read_text(err_path)
        if run.status == "timeout":
            return run
        rep = read_text(report).strip()
        if proc.returncode != 0 or not rep:
            run.status = "spawn-error"
            run.message = tail(stderr) or f"bench_spawn exited {proc.returncode}"
            return run

    fields = dict(REPORT_RE.findall(rep))
    for k in ("wall", "utime", "stime"):
        setattr(run, k, float(fields.get(k, "nan")))
    for k in ("maxrss_kib", "minflt", "majflt"):
        setattr(run, k, float(fields.get(k, "nan")))
    status = fields.get("status", "exit:?")
    kind, _, val = status.partition(":")
    if kind == "signal":
        run.status = "signal:" + signal_name(int(val))
    elif val != "0":
        run.status = f"exit:{val}"
    m = None
    for line in stdout.splitlines():
        mm = RESULT_RE.search(line)
        if mm:
            m = mm
    if run.ok and m is None:
        run.status = "bad-output"
    if m is not None:
        try:
            run.ops_per_s = float(m.group(1))
            run.checksum = m.group(2)
            run.ops = int(m.group(3))
            run.secs = float(m.group(4))
        except ValueError:
            run.status = "bad-output"
    if not run.ok:
        run.message = tail(stderr) or tail(stdout)
    return run


def kill_group(proc: subprocess.Popen) -> None:
    """Stops a run: SIGTERM makes bench_spawn kill and reap the benchmark;
    whatever is left after 5 s is killed with its process group."""
    try:
        proc.terminate()
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def read_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


# ---------------------------------------------------------------------------
# Running the matrix, interleaved, with progress
# ---------------------------------------------------------------------------

class Progress:
    """One line on stderr per run (rewritten in place on a terminal):
    position, benchmark, allocator, round, runs left, estimated time left."""

    def __init__(self, total: int, label_width: int = 14):
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()
        self.per_bench: dict[str, list[float]] = {}
        self.tty = sys.stderr.isatty()
        self.width = label_width

    def eta(self, pending: list[str]) -> float:
        """Seconds left: each pending run costs its benchmark's mean so
        far, or the mean of all runs so far."""
        times = [t for ts in self.per_bench.values() for t in ts]
        if not times:
            return math.nan
        overall = sum(times) / len(times)
        left = 0.0
        for b in pending:
            ts = self.per_bench.get(b)
            left += sum(ts) / len(ts) if ts else overall
        return left

    def start(self, bench: str, alloc: str, rnd: int, rounds: int,
              pending: list[str]) -> None:
        eta = self.eta(pending)
        left = self.total - self.done
        msg = (f"[{self.done + 1:>{len(str(self.total))}}/{self.total}] "
               f"{bench:<{self.width}} {alloc:<9} run {rnd}/{rounds}  "
               f"{left} runs left, ~{fmt_duration(eta)} left")
        if self.tty:
            sys.stderr.write("\r\x1b[K" + msg)
        else:
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()

    def finish(self, run: Run) -> None:
        self.done += 1
        elapsed = run.wall if not math.isnan(run.wall) else 0.0
        self.per_bench.setdefault(run.bench, []).append(elapsed)
        if not run.ok:
            self.clear()
            sys.stderr.write(f"FAILED: {run.bench} under {run.alloc} "
                             f"(round {run.round}): {run.status}"
                             f"{': ' + run.message if run.message else ''}\n"
                             f"  reproduce: {run.command}\n")
            sys.stderr.flush()

    def clear(self) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

    def close(self) -> None:
        self.clear()
        note(f"{self.done} runs in {fmt_duration(time.monotonic() - self.t0)}")


def fmt_duration(s: float) -> str:
    if math.isnan(s):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def run_matrix(benches: list[Bench], allocs: list[Allocator], rounds: int,
               mode: str, threads: Optional[int], timeout: float,
               on_run: Optional[Callable[[Run], None]] = None,
               wrap_for: Optional[Callable[[Bench, Allocator, int],
                                           Optional[list[str]]]] = None
               ) -> list[Run]:
    """Runs every benchmark `rounds` times under every allocator, benchmark
    by benchmark, interleaving the allocators: A B C, A B C, ... wrap_for
    (callgrind) gives a wrapper command per run."""
    order = [(b, r, a) for b in benches for r in range(1, rounds + 1)
             for a in allocs]
    width = max([len(b.name) for b in benches] + [8])
    prog = Progress(len(order), width)
    runs: list[Run] = []
    try:
        for i, (b, r, a) in enumerate(order):
            prog.start(b.name, a.name, r, rounds,
                       [x[0].name for x in order[i:]])
            wrap = wrap_for(b, a, r) if wrap_for else None
            run = run_once(b, a, b.argv(mode, threads), r, timeout, wrap)
            if on_run:
                on_run(run)
            prog.finish(run)
            runs.append(run)
    finally:
        prog.close()
    return runs


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def check_runs(runs: list[Run]) -> list[str]:
    """Problems: failed runs, and benchmarks whose checksum or operation
    count differs between runs (any allocator, any round)."""
    problems = []
    for r in runs:
        if not r.ok:
            problems.append(f"{r.bench} under {r.alloc} (round {r.round}) "
                            f"failed: {r.status}"
                            f"{': ' + r.message if r.message else ''}"
                            f" -- reproduce: {r.command}")
    by_bench: dict[str, list[Run]] = {}
    for r in runs:
        if r.ok:
            by_bench.setdefault(r.bench, []).append(r)
    for bench, rs in by_bench.items():
        sums: dict[tuple[str, int], list[str]] = {}
        for r in rs:
            key = (r.checksum, r.ops)
            if r.alloc not in sums.setdefault(key, []):
                sums[key].append(r.alloc)
        if len(sums) > 1:
            detail = "; ".join(f"checksum={c} ops={o}: {', '.join(a)}"
                               for (c, o), a in sums.items())
            problems.append(f"{bench}: results differ between runs -- "
                            f"{detail}")
    return problems


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------

METRICS = {
    # key: (Run attribute, heading, higher is better)
    "time": ("wall", "Time: median wall seconds per run", False),
    "rate": ("ops_per_s", "Throughput: median ops/s", True),
    "rss": ("maxrss_kib", "Peak RSS: median of the runs' maximum resident set",
            False),
    "ir": ("ir_alloc", "Instructions per operation inside malloc-family "
           "calls", False),
    "irtotal": ("ir_total", "Instructions per operation, whole program",
                False),
}


@dataclass
class Stat:
    median: float
    lo: float
    hi: float
    n: int


def stat_of(values: list[float]) -> Optional[Stat]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return None
    return Stat(statistics.median(vals), min(vals), max(vals), len(vals))


@dataclass
class Cell:
    stat: Optional[Stat] = None
    failed: str = ""           # status of the first failed run, if any


def summarize(runs: list[Run], metric: str) -> dict[tuple[str, str], Cell]:
    """(bench, alloc) -> Cell of the metric over the successful runs."""
    attr = METRICS[metric][0]
    vals: dict[tuple[str, str], list[float]] = {}
    cells: dict[tuple[str, str], Cell] = {}
    for r in runs:
        key = (r.bench, r.alloc)
        cell = cells.setdefault(key, Cell())
        if not r.ok:
            cell.failed = cell.failed or r.status
            continue
        v = getattr(r, attr)
        if metric in ("ir", "irtotal"):
            v = v / r.ops if r.ops else math.nan
        vals.setdefault(key, []).append(v)
    for key, v in vals.items():
        cells[key].stat = stat_of(v)
    return cells


def ratio(cell: Cell, base: Cell) -> Optional[tuple[float, float, float]]:
    """(median ratio, low, high): the cell's median, fastest and slowest run
    divided by the base's median."""
    if cell.stat is None or base.stat is None or base.stat.median <= 0:
        return None
    m = base.stat.median
    return cell.stat.median / m, cell.stat.lo / m, cell.stat.hi / m


def geomean(values: list[float]) -> float:
    vals = [v for v in values if v > 0 and not math.isnan(v)]
    if not vals:
        return math.nan
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


# ---------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------

def fmt_value(metric: str, v: float) -> str:
    if math.isnan(v):
        return "-"
    if metric == "time":
        return f"{v:.3f} s" if v < 100 else f"{v:.0f} s"
    if metric == "rate":
        for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if v >= div:
                return f"{v / div:.3g}{unit}"
        return f"{v:.3g}"
    if metric == "rss":
        return f"{v / 1024:.1f} MiB"
    return f"{v:.1f}"


def fmt_ratio(r: float) -> str:
    if math.isnan(r):
        return "-"
    return f"{r:.2f}" if r < 100 else f"{r:.0f}"


def ratio_cell(metric: str, cell: Cell, base: Cell, show_value: bool = True
               ) -> str:
    if cell.stat is None:
        return f"FAIL ({cell.failed})" if cell.failed else "-"
    text = fmt_value(metric, cell.stat.median) if show_value else ""
    rr = ratio(cell, base)
    if rr is not None:
        r, lo, hi = rr
        spread = f" ({fmt_ratio(lo)}–{fmt_ratio(hi)})" if cell.stat.n > 1 else ""
        text += f"{' · ' if text else ''}×{fmt_ratio(r)}{spread}"
    if cell.failed:
        text += f" [some runs {cell.failed}]"
    return text


def md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i == 0 else "---:"
                          for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def comparison_table(metric: str, benches: list[Bench], allocs: list[str],
                     base: str, cells: dict[tuple[str, str], Cell]) -> str:
    """One metric: a row per benchmark, a column per allocator, each cell
    'median · ×ratio-to-base (low–high)', and a geometric-mean row."""
    _attr, heading, higher = METRICS[metric]
    better = "higher" if higher else "lower"
    rows, ratios = [], {a: [] for a in allocs}
    for b in benches:
        row = [b.name]
        for a in allocs:
            cell = cells.get((b.name, a), Cell())
            basec = cells.get((b.name, base), Cell())
            row.append(ratio_cell(metric, cell, basec))
            rr = ratio(cell, basec)
            if rr is not None:
                ratios[a].append(rr[0])
        rows.append(row)
    gm = ["**geomean**"]
    for a in allocs:
        g = geomean(ratios[a])
        n = len(ratios[a])
        gm.append("-" if math.isnan(g) else
                  f"**×{fmt_ratio(g)}**" + ("" if n == len(benches)
                                           else f" ({n}/{len(benches)})"))
    rows.append(gm)
    title = (f"### {heading} ({better} is better; ×ratio to {base}, "
             f"(fastest–slowest run) / {base} median)")
    return title + "\n\n" + md_table(["benchmark"] + allocs, rows)


# ---------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------

def results_dir(given: Optional[str], suffix: str = "") -> Path:
    if given:
        d = Path(given)
    else:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S")
        d = REPO / "results" / (stamp + suffix)
    d.mkdir(parents=True, exist_ok=True)
    return d


CSV_FIELDS = ("bench", "alloc", "round", "status", "wall", "secs",
              "ops_per_s", "ops", "checksum", "maxrss_kib", "utime", "stime",
              "minflt", "majflt", "ir_total", "ir_alloc", "command", "message")


def write_csv(path: Path, runs: list[Run]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_FIELDS)
        for r in runs:
            row = []
            for k in CSV_FIELDS:
                v = getattr(r, k)
                if isinstance(v, float):
                    v = "" if math.isnan(v) else (f"{v:.0f}" if v.is_integer()
                                                  else f"{v:.6g}")
                row.append(v)
            w.writerow(row)


def gnuplot_bars(out_png: Path, title: str, ylabel: str,
                 benches: list[str], series: list[str],
                 values: dict[tuple[str, str], float]) -> Optional[str]:
    """A clustered bar chart (log scale) of values[(bench, series)] with a
    line at 1. Returns None on success or the reason it was skipped."""
    gp = shutil.which("gnuplot")
    if gp is None:
        return "gnuplot is not installed (apt-get install gnuplot-nox)"
    data = out_png.with_suffix(".dat")
    with open(data, "w") as f:
        f.write("# bench " + " ".join(series) + "\n")
        for b in benches:
            vals = [values.get((b, s), math.nan) for s in series]
            f.write(b + " " + " ".join("NaN" if math.isnan(v) else f"{v:.5g}"
                                       for v in vals) + "\n")
    finite = [v for v in values.values() if v > 0 and not math.isnan(v)]
    if not finite:
        return "no data to plot"
    lo = min(min(finite), 1.0) / 1.3
    hi = max(max(finite), 1.0) * 1.3
    width = min(2000, max(1000, 18 * len(benches) * len(series) + 300))
    script = out_png.with_suffix(".gp")
    probe = subprocess.run([gp, "-e", "set terminal"], capture_output=True,
                           text=True)
    term = "pngcairo" if "pngcairo" in probe.stdout + probe.stderr else "png"
    plots = ", ".join(
        f"'{data.name}' using {i + 2}:xtic(1) title '{s}'"
        for i, s in enumerate(series))
    with open(script, "w") as f:
        f.write(f"""set terminal {term} noenhanced size {width},600
set output '{out_png.name}'
set title "{title}"
set ylabel "{ylabel}"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y 2
set yrange [{lo:.4g}:{hi:.4g}]
set grid ytics
set xtics rotate by -35 scale 0
set key outside right top
set datafile missing "NaN"
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 dt 2
plot {plots}
""")
    r = subprocess.run([gp, script.name], cwd=out_png.parent,
                       capture_output=True, text=True)
    if r.returncode != 0 or not out_png.exists():
        return f"gnuplot failed: {tail(r.stderr)}"
    return None


# ---------------------------------------------------------------------------
# Describing the run
# ---------------------------------------------------------------------------

def git_describe() -> str:
    try:
        r = subprocess.run(["git", "-C", str(REPO), "describe", "--always",
                            "--dirty"], capture_output=True, text=True,
                           timeout=20)
        if r.returncode == 0 and r.stdout.strip():
            return "git " + r.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "no git commit"


def machine_info() -> list[str]:
    """Lines describing the machine: CPU, cores, memory, kernel, distro."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = f"{kib / 1048576:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    distro = ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    distro = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    u = os.uname()
    return [f"CPU: {cpu or u.machine}, {os.cpu_count()} logical cores"
            + (f", {mem} RAM" if mem else ""),
            f"OS: {distro or u.sysname}, kernel {u.release}, {glibc_version()}"]


def header_lines(title: str, argv: list[str], extra: list[str]) -> list[str]:
    now = datetime.datetime.now().astimezone()
    lines = [f"## {title}", "",
             f"- Date: {now.strftime('%Y-%m-%d %H:%M %Z')}"]
    lines += [f"- {m}" for m in machine_info()]
    lines += [f"- {e}" for e in extra]
    lines.append("- Command: `" + " ".join(argv) + "`")
    return lines


# ---------------------------------------------------------------------------
# Callgrind
# ---------------------------------------------------------------------------

# Entry points of the malloc family as callgrind names them (glibc, hakmem,
# mimalloc, jemalloc and tcmalloc export the plain names; some builds show
# a prefixed alias instead).
ALLOC_FN_RE = re.compile(
    r"^(?:__GI_)?(?:__libc_|mi_|je_|tc_|hak_)?(?:malloc|free|calloc|realloc|"
    r"reallocarray|aligned_alloc|posix_memalign|memalign|valloc|pvalloc|"
    r"cfree)(?:'\d+)?$")


def callgrind_wrapper(out_file: Path) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}",
            "--trace-children=yes", "--quiet"]


def parse_callgrind(path: Path, prog_path: str) -> tuple[float, float]:
    """(total Ir, Ir inside malloc-family calls made by the benchmark
    program itself). The second is the sum of the inclusive costs of every
    call from a function of the program's object file to a function whose
    name is a malloc-family entry point."""
    names: dict[str, dict[str, str]] = {"ob": {}, "fn": {}}
    total = math.nan
    alloc = 0.0
    cur_ob = ""
    caller_in_prog = False
    pending_call = False
    callee_alloc = False
    prog_real = os.path.realpath(prog_path)

    def resolve(kind: str, val: str) -> str:
        # "(12) name" defines id 12; "(12)" refers to it.
        table = names["ob" if kind in ("ob", "cob") else "fn"]
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", val)
        if not m:
            return val
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "")

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if pending_call:
                pending_call = False
                parts = line.split()
                if callee_alloc and caller_in_prog and len(parts) >= 2:
                    try:
                        alloc += float(parts[1])
                    except ValueError:
                        pass
                continue
            if not line or line[0] in "0123456789+-*":
                continue
            if line.startswith(("summary:", "totals:")):
                try:
                    total = float(line.split(":", 1)[1].split()[0])
                except (ValueError, IndexError):
                    pass
                continue
            key, _, val = line.partition("=")
            if key == "ob":
                cur_ob = resolve("ob", val)
            elif key == "fn":
                resolve("fn", val)
                caller_in_prog = os.path.realpath(cur_ob) == prog_real
            elif key == "cfn":
                callee_alloc = bool(ALLOC_FN_RE.match(resolve("cfn", val)))
            elif key in ("cob",):
                resolve("cob", val)
            elif key == "calls":
                pending_call = True
    return total, (alloc if alloc > 0 else math.nan)


# ---------------------------------------------------------------------------
# A whole suite: run, measure (callgrind included), check, save the CSV
# ---------------------------------------------------------------------------

def run_suite(benches: list[Bench], allocs: list[Allocator], rounds: int,
              mode: str, threads: Optional[int], timeout: Optional[float],
              out_dir: Path, problems: list[str]) -> list[Run]:
    """Runs the matrix (mode 'full', 'quick' or 'callgrind'; callgrind runs
    once each and its files go to out_dir/callgrind/), writes every run to
    out_dir/results.csv and appends failures and checksum mismatches to
    problems. Ctrl-C stops the runs and keeps what ran."""
    wrap = None
    cg_dir = out_dir / "callgrind"

    def cg_file(b: Bench, a: Allocator) -> Path:
        return cg_dir / f"callgrind.{b.name}.{a.name}.out"
    if mode == "callgrind":
        cg_dir.mkdir(parents=True, exist_ok=True)
        rounds = 1
        timeout = timeout or 900.0
        wrap = (lambda b, a, r: callgrind_wrapper(cg_file(b, a)))
    runs: list[Run] = []
    try:
        run_matrix(benches, allocs, rounds, mode, threads, timeout or 120.0,
                   on_run=runs.append, wrap_for=wrap)
    except KeyboardInterrupt:
        warn("interrupted: reporting what ran so far")
        problems.append("interrupted before the end")
    if mode == "callgrind":
        by_name = {a.name: a for a in allocs}
        for r in runs:
            if not r.ok:
                continue
            b, a = BENCH_BY_NAME[r.bench], by_name[r.alloc]
            f = cg_file(b, a)
            if f.exists():
                r.ir_total, r.ir_alloc = parse_callgrind(
                    f, str(a.bench_dir / b.prog))
            if math.isnan(r.ir_total):
                r.status, r.message = "bad-output", f"no callgrind totals in {f}"
    write_csv(out_dir / "results.csv", runs)
    problems += check_runs(runs)
    return runs


def finish(out_dir: Path, lines: list[str], problems: list[str],
           all_ok: str) -> int:
    """Appends the problems (or all_ok), writes out_dir/table.md, prints
    the report on stdout and returns the exit status."""
    if problems:
        lines += ["", "### Problems", ""] + [f"- {p}" for p in problems]
    else:
        lines += ["", all_ok]
    text = "\n".join(lines) + "\n"
    (out_dir / "table.md").write_text(text)
    print(text)
    note(f"wrote {out_dir}/table.md and results.csv")
    return 1 if problems else 0


CALLGRIND_NOTE = (
    "Malloc-family Ir/op: the instructions executed inside the malloc, free, "
    "calloc and realloc calls the benchmark program makes (inclusive of "
    "everything they call), divided by its ops. Whole-program Ir/op counts "
    "every instruction of the process: the benchmark's own work (the same "
    "under every allocator) and the allocator's work outside those calls "
    "(initialisation, thread start and exit). Valgrind runs threads one at "
    "a time: no contention shows here. Callgrind files: callgrind/.")


def run_cli(main) -> None:
    """Runs main(argv) as the script's entry point: its return value is the
    exit status; Ctrl-C exits 130, a closed pipe (piped into head) 1."""
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
