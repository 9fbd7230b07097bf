#!/usr/bin/env python3
"""Real programs under LD_PRELOAD=libhakmem.so (DESIGN.md 9, issue 3).

    real_programs.py LIBHAKMEM PROGRAM [stats|nostats]
                                       PROGRAM: sort | python3 | git | perl

Runs the program's workload twice, without and with hakmem preloaded (only
on the program under test, never on this driver), and fails unless both
runs give the same exit status, the same stdout and the same stderr, byte
for byte. Two proofs that hakmem served the preloaded run:
 - LD_DEBUG=bindings (to LD_DEBUG_OUTPUT files) shows malloc bound to
   libhakmem;
 - with "stats" (the default; -Dbench_minimal builds pass "nostats", they
   have no counters), HAKMEM_STATS=1 writes the exit report to
   HAKMEM_LOG_FILE (coreutils close stderr before library destructors run),
   and its allocation counts are not zero.
Exit 0: pass, 1: fail, 77: skip (the program is not installed).
"""
import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

SORT = "/usr/bin/sort"
PYTHON = "/usr/bin/python3"  # Debian's: `python3` on PATH may be a shim
GIT = "/usr/bin/git"
PERL = "/usr/bin/perl"

# The exit report (lib/stats.c): one write of a block of lines.
REPORT = re.compile(r"hakmem: statistics\n(?:  .*\n)*?  rss .*\n")
TOTAL = re.compile(r"^  total +(\d+) +(\d+) ", re.M)


class Failure(Exception):
    pass


def base_env(tmp):
    """A small, fixed environment: nothing from the caller's leaks in."""
    return {
        "PATH": "/usr/bin:/bin",
        "LC_ALL": "C",
        "LANG": "C",
        "HOME": tmp,
        "TMPDIR": tmp,
        "TZ": "UTC",
    }


WANT_STATS = True
# ld.so's LD_DEBUG=bindings line for a symbol bound to libhakmem
BOUND = re.compile(r"binding file \S+ \[\d+\] to \S*libhakmem\S* \[\d+\]: "
                   r"normal symbol `malloc'")


def run(argv, lib, cwd, env, preload, stdin_data=None):
    """Runs argv; returns (status, stdout, stderr, hakmem's log, bound):
    bound is whether ld.so bound malloc to libhakmem in some process."""
    env = dict(env)
    tmp = env["TMPDIR"]
    log = os.path.join(tmp, "hakmem-report.txt")
    debug = os.path.join(tmp, "ld-debug")
    for f in os.listdir(tmp):
        if f == "hakmem-report.txt" or f.startswith("ld-debug."):
            os.unlink(os.path.join(tmp, f))
    if preload:
        env["LD_PRELOAD"] = lib
        env["LD_DEBUG"] = "bindings"
        env["LD_DEBUG_OUTPUT"] = debug  # one file per process: ld-debug.<pid>
        if WANT_STATS:
            env["HAKMEM_STATS"] = "1"
            env["HAKMEM_LOG_FILE"] = log
    p = subprocess.run(argv, cwd=cwd, env=env, input=stdin_data, capture_output=True,
                       timeout=120)
    text = ""
    bound = False
    for f in sorted(os.listdir(tmp)):
        path = os.path.join(tmp, f)
        if f == "hakmem-report.txt":
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            os.unlink(path)
        elif f.startswith("ld-debug."):
            with open(path, encoding="utf-8", errors="replace") as fh:
                bound = bound or BOUND.search(fh.read()) is not None
            os.unlink(path)
    return p.returncode, p.stdout, p.stderr, text, bound


def report_allocs(log):
    """The total allocation count of each exit report in hakmem's log."""
    allocs = []
    for r in REPORT.findall(log):
        m = TOTAL.search(r)
        if m:
            allocs.append(int(m.group(1)))
    return allocs


def compare(name, plain, hak):
    """Both runs agree; the preloaded one reported allocations."""
    rc0, out0, err0, _, _ = plain
    rc1, out1, err1, log, bound = hak
    if b"hakmem:" in err0:
        raise Failure(f"{name}: the run without hakmem mentions hakmem:\n{err0[:2000]!r}")
    allocs = report_allocs(log)
    if rc0 != rc1:
        raise Failure(f"{name}: exit status {rc0} without hakmem, {rc1} with it; stderr with "
                      f"it:\n{err1.decode('utf-8', 'replace')[:4000]}")
    if out0 != out1:
        raise Failure(f"{name}: stdout differs ({len(out0)} bytes without hakmem, "
                      f"{len(out1)} with it; sha256 {hashlib.sha256(out0).hexdigest()[:16]} vs "
                      f"{hashlib.sha256(out1).hexdigest()[:16]})")
    if err0 != err1:
        raise Failure(f"{name}: stderr differs:\nwithout hakmem: {err0[:2000]!r}\n"
                      f"with it: {err1[:2000]!r}")
    if not bound:
        raise Failure(f"{name}: LD_DEBUG=bindings shows no malloc bound to libhakmem")
    if WANT_STATS and (not allocs or max(allocs) == 0):
        raise Failure(f"{name}: no hakmem report with allocations in HAKMEM_LOG_FILE: was the "
                      f"program served by hakmem? log: {log[:2000]!r}, stderr: "
                      f"{err1.decode('utf-8', 'replace')[:2000]}")
    return allocs


def both(name, argv, lib, cwd_plain, cwd_hak, env, stdin_data=None):
    plain = run(argv, lib, cwd_plain, env, False, stdin_data)
    hak = run(argv, lib, cwd_hak, env, True, stdin_data)
    allocs = compare(name, plain, hak)
    served = (f"hakmem served {sum(allocs)} allocations in {len(allocs)} process(es)"
              if WANT_STATS else "malloc bound to libhakmem")
    print(f"  {name}: {len(plain[1])} bytes of output agree; {served}")
    return plain


# ---- the workloads ---------------------------------------------------------

def words(rng, n, vocab):
    return [vocab[min(int(rng.paretovariate(1.2)) - 1, len(vocab) - 1)] for _ in range(n)]


def vocabulary(rng, n):
    letters = "abcdefghijklmnopqrstuvwxyz"
    seen = set()
    out = []
    while len(out) < n:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(2, 12)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def test_sort(lib, tmp):
    if not os.access(SORT, os.X_OK):
        return 77
    rng = random.Random(1)
    vocab = vocabulary(rng, 5000)
    path = os.path.join(tmp, "input.txt")
    with open(path, "w") as f:
        for i in range(120000):  # about 4 MB
            f.write(f"{rng.choice(vocab)} {rng.randint(0, 10**9)} "
                    f"{' '.join(rng.choice(vocab) for _ in range(rng.randint(0, 4)))}\n")
    env = base_env(tmp)
    both("sort", [SORT, path], lib, tmp, tmp, env)
    both("sort -n -k2 --parallel=2 -S 1M", [SORT, "-n", "-k2", "--parallel=2", "-S", "1M", path],
         lib, tmp, tmp, env)
    both("sort -u -r (stdin)", [SORT, "-u", "-r"], lib, tmp, tmp, env,
         stdin_data=open(path, "rb").read())
    return 0


PY_WORKLOAD = r"""
import hashlib
h = hashlib.sha256()
for r in range(4):
    d = {}
    for i in range(150000):
        d["k%d_%d" % (r, i)] = ("v" * (i % 37)) + str(i * r)
    keys = list(d)
    big = "".join(d[k] for k in keys[::7])
    parts = [d[k] * 3 for k in keys[:20000]]
    nested = {k: {"n": i, "s": d[k][:5], "l": list(range(i % 10))} for i, k in enumerate(keys[:30000])}
    h.update(big.encode())
    h.update("|".join(parts).encode())
    h.update(str(sum(len(v["l"]) for v in nested.values())).encode())
    h.update(str(len(d)).encode())
    del d, keys, big, parts, nested
s = "abc" * 1000000
t = s.replace("b", "xyz").upper()
chunks = [t[i:i + 4096] for i in range(0, len(t), 4096)]
h.update("".join(reversed(chunks)).encode())
b = bytearray()
for i in range(20000):
    b += bytes([i % 251]) * (i % 300)
h.update(bytes(b))
print(h.hexdigest(), len(t), len(b))
"""


def test_python(lib, tmp):
    if not os.access(PYTHON, os.X_OK):
        return 77
    env = base_env(tmp)
    # -I: isolated (ignores PYTHON* variables and the user's site-packages)
    both("python3", [PYTHON, "-I", "-c", PY_WORKLOAD], lib, tmp, tmp, env)
    return 0


def make_tree(root, nfiles):
    for i in range(nfiles):
        d = os.path.join(root, f"dir{i % 40:02d}", f"sub{i % 7}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"file{i:05d}.txt"), "w") as f:
            f.write(f"file {i}\n" + ("line %d of file %d\n" % (i % 13, i)) * (i % 20 + 1))


def test_git(lib, tmp):
    if not os.access(GIT, os.X_OK):
        return 77
    env = base_env(tmp)
    env.update({
        "GIT_AUTHOR_NAME": "hakmem test", "GIT_AUTHOR_EMAIL": "test@hakmem.invalid",
        "GIT_COMMITTER_NAME": "hakmem test", "GIT_COMMITTER_EMAIL": "test@hakmem.invalid",
        "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
        "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null",
    })
    repos = {}
    for mode in ("plain", "hak"):
        repo = os.path.join(tmp, mode)
        os.makedirs(repo)
        make_tree(repo, 3000)
        repos[mode] = repo
    steps = [
        ["init", "-q"],
        ["add", "-A"],
        ["commit", "-q", "-m", "3000 files"],
        ["rev-parse", "HEAD", "HEAD^{tree}"],
        ["ls-tree", "-r", "HEAD"],
        ["log", "--stat", "--format=%H %T %an %ad"],
        ["status", "--porcelain"],
    ]
    for step in steps:
        argv = [GIT, "-c", "init.defaultBranch=main", "-c", "gc.auto=0"] + step
        both("git " + " ".join(step), argv, lib, repos["plain"], repos["hak"], env)
    return 0


PERL_WORKLOAD = r"""
use strict; use warnings;
my %count; my %len; my $lines = 0;
while (my $line = <STDIN>) {
    $lines++;
    chomp $line;
    $line =~ s/([aeiou])\1+/$1/g;
    for my $w (split /\s+/, lc $line) {
        next unless length $w;
        $count{$w}++;
        push @{ $len{length $w} }, $w if $count{$w} == 1;
    }
}
my @top = sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count;
print "lines $lines words ", scalar(@top), "\n";
printf "%s %d\n", $_, $count{$_} for @top[0 .. 199];
for my $l (sort { $a <=> $b } keys %len) {
    my @w = sort @{ $len{$l} };
    print "$l ", scalar(@w), " ", join(",", @w[0 .. ($#w < 4 ? $#w : 4)]), "\n";
}
my $joined = join("", map { uc } @top);
print length($joined), " ", ($joined =~ tr/AEIOU//), "\n";
"""


def test_perl(lib, tmp):
    if not os.access(PERL, os.X_OK):
        return 77
    rng = random.Random(2)
    vocab = vocabulary(rng, 4000)
    text = []
    for _ in range(25000):
        text.append(" ".join(words(rng, rng.randint(3, 14), vocab)).capitalize())
    data = ("\n".join(text) + "\n").encode()
    env = base_env(tmp)
    env["PERL_HASH_SEED"] = "0"  # output is sorted anyway; this keeps runs alike
    both("perl word frequency", [PERL, "-e", PERL_WORKLOAD], lib, tmp, tmp, env,
         stdin_data=data)
    return 0


TESTS = {"sort": test_sort, "python3": test_python, "git": test_git, "perl": test_perl}


def main():
    global WANT_STATS
    if len(sys.argv) not in (3, 4) or sys.argv[2] not in TESTS or \
            (len(sys.argv) == 4 and sys.argv[3] not in ("stats", "nostats")):
        print(__doc__, file=sys.stderr)
        return 2
    WANT_STATS = len(sys.argv) == 3 or sys.argv[3] == "stats"
    lib = os.path.abspath(sys.argv[1])
    if not os.path.exists(lib):
        print(f"no library at {lib}", file=sys.stderr)
        return 1
    # tmpfs when there is one: git's thousands of small files cost seconds
    # on a slow disk
    shm = "/dev/shm"
    base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
    tmp = tempfile.mkdtemp(prefix="hakmem-real-", dir=base)
    try:
        rc = TESTS[sys.argv[2]](lib, tmp)
        if rc == 77:
            print(f"{sys.argv[2]}: not installed, skipped")
        return rc
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    except subprocess.TimeoutExpired as e:
        print(f"FAIL: timed out: {e.cmd}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
