#!/usr/bin/env python3
"""Real programs under LD_PRELOAD=libhakmem.so (DESIGN.md 9, issue 3).

    real_programs.py LIBHAKMEM PROGRAM [stats|nostats]
        PROGRAM: sort | python3 | git | perl | sqlite3 | cc | xz

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
SQLITE = "/usr/bin/sqlite3"
GCC = "/usr/bin/gcc"
XZ = "/usr/bin/xz"
ZSTD = "/usr/bin/zstd"
SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

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


def compare(name, plain, hak, normalise=None):
    """Both runs agree (after normalise(bytes) of their stdout and stderr,
    when given); the preloaded one reported allocations."""
    rc0, out0, err0, _, _ = plain
    rc1, out1, err1, log, bound = hak
    if normalise:
        out0, err0, out1, err1 = (normalise(x) for x in (out0, err0, out1, err1))
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


def both(name, argv, lib, cwd_plain, cwd_hak, env, stdin_data=None, normalise=None):
    plain = run(argv, lib, cwd_plain, env, False, stdin_data)
    hak = run(argv, lib, cwd_hak, env, True, stdin_data)
    allocs = compare(name, plain, hak, normalise)
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


# Some of python3's own test modules (Debian's libpython3.X-testsuite),
# when installed: containers, strings, regular expressions, JSON.
PY_TEST_MODULES = ["test_dict", "test_list", "test_bytes", "test_re", "test_json",
                   "test_collections", "test_heapq", "test_deque"]
PY_TIMING = re.compile(rb"(Ran \d+ tests?) in [0-9.]+s")


def test_python(lib, tmp):
    if not os.access(PYTHON, os.X_OK):
        return 77
    env = base_env(tmp)
    # -I: isolated (ignores PYTHON* variables and the user's site-packages)
    both("python3", [PYTHON, "-I", "-c", PY_WORKLOAD], lib, tmp, tmp, env)
    found = subprocess.run([PYTHON, "-I", "-c", "import test.test_dict"], env=env,
                           capture_output=True).returncode == 0
    if found:
        both("python3 -m unittest " + " ".join(PY_TEST_MODULES),
             [PYTHON, "-I", "-m", "unittest"] + ["test." + m for m in PY_TEST_MODULES],
             lib, tmp, tmp, env, normalise=lambda b: PY_TIMING.sub(rb"\1", b))
    else:
        print("  python3's test modules are not installed: skipped them")
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


def sql_quote(text):
    return "'" + text.replace("'", "''") + "'"


def sqlite_script(rng):
    """About 9 MB of SQL: two tables, 40000 rows in batched transactions."""
    vocab = vocabulary(rng, 3000)
    out = ["PRAGMA cache_size=-32768;",
           "CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT);",
           "CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, body TEXT, val REAL);",
           "BEGIN;"]
    for i in range(200):
        out.append(f"INSERT INTO g VALUES({i}, {sql_quote(rng.choice(vocab) + '_' + str(i))});")
    for i in range(40000):
        body = " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 40)))
        out.append(f"INSERT INTO t(grp, name, body, val) VALUES({rng.randint(0, 199)}, "
                   f"{sql_quote(rng.choice(vocab))}, {sql_quote(body)}, {rng.random() * 1000:.3f});")
        if i % 10000 == 9999:
            out.append("COMMIT; BEGIN;")
    out.append("COMMIT;")
    return ("\n".join(out) + "\n").encode()


SQLITE_QUERIES = b"""PRAGMA cache_size=-32768;
CREATE INDEX t_grp ON t(grp, val);
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(length(body)), round(sum(val), 3) FROM t;
SELECT g.label, count(*), round(avg(t.val), 3), max(length(t.body)) FROM t JOIN g USING(grp)
  GROUP BY g.label ORDER BY 2 DESC, 1 LIMIT 20;
SELECT name, count(*) FROM t GROUP BY name HAVING count(*) > 30 ORDER BY 2 DESC, 1 LIMIT 30;
SELECT id, substr(body, 1, 40) FROM t WHERE body LIKE '%ab%cd%' ORDER BY val DESC LIMIT 15;
SELECT a.id, b.id FROM t a JOIN t b ON a.name = b.name AND a.grp = b.grp AND a.id < b.id
  ORDER BY a.id, b.id LIMIT 25;
WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r WHERE x < 50000)
  SELECT count(*), sum(x * x % 977) FROM r;
SELECT grp, group_concat(name, ',') FROM (SELECT grp, name FROM t WHERE grp < 5 ORDER BY id LIMIT 400)
  GROUP BY grp;
UPDATE t SET body = upper(body) || ' ' || name WHERE grp % 7 = 3;
DELETE FROM t WHERE val < 100;
SELECT count(*), sum(length(body)) FROM t;
SELECT * FROM t ORDER BY body DESC, id LIMIT 3 OFFSET 1000;
PRAGMA integrity_check;
VACUUM;
.sha3sum
"""


def test_sqlite(lib, tmp):
    if not os.access(SQLITE, os.X_OK):
        return 77
    env = base_env(tmp)
    script = sqlite_script(random.Random(3))
    dirs = {}
    for mode in ("plain", "hak"):
        dirs[mode] = os.path.join(tmp, mode)
        os.makedirs(dirs[mode])
    argv = [SQLITE, "-bail", "data.db"]
    both(f"sqlite3 inserts ({len(script) >> 20} MB of SQL)", argv, lib, dirs["plain"], dirs["hak"],
         env, stdin_data=script)
    both("sqlite3 indexes, joins, updates, vacuum", argv, lib, dirs["plain"], dirs["hak"], env,
         stdin_data=SQLITE_QUERIES)
    files = [open(os.path.join(dirs[m], "data.db"), "rb").read() for m in ("plain", "hak")]
    if files[0] != files[1]:
        raise Failure(f"sqlite3: the database files differ ({len(files[0])} and {len(files[1])} "
                      f"bytes)")
    print(f"  sqlite3: the {len(files[0]) >> 20} MB database files are identical")
    return 0


# The sources below compile with the build's own hak_config.h (the build
# directory holds the library, in lib/).
def build_config(lib):
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(lib))), "hak_config.h")
    with open(path) as f:
        return f.read()
CC_SOURCES = ["lib/slab.c", "lib/pagerun.c", "lib/dispatch.c", "modules/huge/huge.c",
              "tests/stress/stress_mixed.c"]


def test_cc(lib, tmp):
    """gcc (cc1, as: every process on hakmem) compiles some of our own
    sources at -O2; the object files must be identical byte for byte."""
    if not os.access(GCC, os.X_OK):
        return 77
    env = base_env(tmp)
    cfg = os.path.join(tmp, "cfg")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "hak_config.h"), "w") as f:
        f.write(build_config(lib))
    dirs = {}
    for mode in ("plain", "hak"):
        dirs[mode] = os.path.join(tmp, mode)
        os.makedirs(dirs[mode])
    srcs = [os.path.join(SOURCE_ROOT, s) for s in CC_SOURCES]
    argv = [GCC, "-std=c11", "-O2", "-g0", "-Wall", "-Wextra", "-D_GNU_SOURCE", "-fno-builtin",
            "-I" + SOURCE_ROOT, "-I" + os.path.join(SOURCE_ROOT, "lib"),
            "-I" + os.path.join(SOURCE_ROOT, "lib", "include"), "-I" + cfg, "-c"] + srcs
    plain = both(f"gcc -O2 -c ({len(srcs)} of hakmem's sources)", argv, lib, dirs["plain"],
                 dirs["hak"], env)
    if plain[0] != 0:
        raise Failure(f"cc: gcc failed without hakmem too:\n{plain[2][-2000:]}")
    total = 0
    for src in CC_SOURCES:
        obj = os.path.splitext(os.path.basename(src))[0] + ".o"
        a, b = (open(os.path.join(dirs[m], obj), "rb").read() for m in ("plain", "hak"))
        if a != b:
            raise Failure(f"cc: {obj} differs ({len(a)} bytes without hakmem, {len(b)} with it)")
        total += len(a)
    print(f"  cc: {len(CC_SOURCES)} object files ({total} bytes) identical")
    # and the preprocessor's output of one of them, on stdout
    both("gcc -E dispatch.c", argv[:-len(srcs) - 1] + ["-E", srcs[2]], lib, dirs["plain"],
         dirs["hak"], env)
    return 0


def compressible(rng, size):
    """size bytes of text, random runs and repeats: something to compress."""
    vocab = vocabulary(rng, 5000)
    out = bytearray()
    while len(out) < size:
        k = rng.random()
        if k < 0.7:
            out += (" ".join(rng.choice(vocab) for _ in range(rng.randint(5, 20))) + "\n").encode()
        elif k < 0.9:
            out += rng.randbytes(rng.randint(16, 256))
        else:
            out += bytes([rng.randint(0, 3)]) * rng.randint(100, 3000)
    return bytes(out[:size])


def test_xz(lib, tmp):
    """xz -T2 (and zstd -T2 when installed) compress and decompress 24 MiB
    with two worker threads each."""
    if not os.access(XZ, os.X_OK):
        return 77
    env = base_env(tmp)
    data = compressible(random.Random(4), 24 << 20)
    plain = both("xz -T2 -1 (24 MiB)", [XZ, "-T2", "-1", "--block-size=2MiB", "-c"], lib, tmp,
                 tmp, env, stdin_data=data)
    unpacked = both("xz -T2 -d", [XZ, "-T2", "-d", "-c"], lib, tmp, tmp, env,
                    stdin_data=plain[1])
    if unpacked[1] != data:
        raise Failure("xz: the round trip did not give the data back")
    if os.access(ZSTD, os.X_OK):
        plain = both("zstd -T2 -6 (24 MiB)", [ZSTD, "-T2", "-6", "-q", "-c"], lib, tmp, tmp, env,
                     stdin_data=data)
        unpacked = both("zstd -d", [ZSTD, "-d", "-q", "-c"], lib, tmp, tmp, env,
                        stdin_data=plain[1])
        if unpacked[1] != data:
            raise Failure("zstd: the round trip did not give the data back")
    return 0


TESTS = {"sort": test_sort, "python3": test_python, "git": test_git, "perl": test_perl,
         "sqlite3": test_sqlite, "cc": test_cc, "xz": test_xz}


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
