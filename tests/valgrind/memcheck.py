#!/usr/bin/env python3
"""Runs tests/valgrind/planted.c under valgrind's memcheck, the way
docs/VALGRIND.md says, and checks that memcheck reports exactly the two
bugs planted in it: one invalid read of size 1 and one definitely lost
37-byte block (and nothing else: no error inside hakmem's own code).

usage: memcheck.py PLANTED_PROGRAM INTERPOSE(0|1)

With INTERPOSE=1 (the program's malloc is hakmem's) memcheck must replace
hakmem's malloc family to see the bugs: --soname-synonyms=somalloc=*hakmem*
says so (valgrind 3.12 and later also replace a shared library's malloc
on their own; older ones need the option). It then runs again with
--soname-synonyms=somalloc=nouseroverride, which leaves hakmem's malloc in
place: memcheck must report nothing at all (it cannot see inside hakmem's
blocks, and hakmem's own code must make no invalid access and no
uninitialised read).
Exit 77 (skip) when valgrind is not installed.
"""
import re
import shutil
import subprocess
import sys


def memcheck(prog, synonyms):
    cmd = ["valgrind", "--tool=memcheck", "--leak-check=full", "--errors-for-leak-kinds=definite",
           "--error-exitcode=99"]
    if synonyms:
        cmd.append("--soname-synonyms=somalloc=" + synonyms)
    cmd.append(prog)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return r.returncode, r.stderr


def errors(log):
    m = re.search(r"ERROR SUMMARY: (\d+) errors", log)
    return int(m.group(1)) if m else -1


def main():
    prog, interpose = sys.argv[1], sys.argv[2] == "1"
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: skipped (apt-get install valgrind)")
        return 77
    failed = 0

    rc, log = memcheck(prog, synonyms="*hakmem*" if interpose else None)
    checks = [
        ("exit status 99 (memcheck found errors)", rc == 99),
        ("one invalid read of size 1", log.count("Invalid read of size 1") == 1),
        ("the 37-byte block definitely lost",
         re.search(r"definitely lost: 37 bytes in 1 blocks", log) is not None),
        ("exactly those two errors", errors(log) == 2),
    ]
    for what, ok in checks:
        print(("ok   " if ok else "FAIL ") + what)
        failed += not ok

    if interpose:
        rc, log2 = memcheck(prog, synonyms="nouseroverride")
        ok = rc == 0 and errors(log2) == 0
        print(("ok   " if ok else "FAIL ") +
              "hakmem's own malloc under memcheck: no error at all")
        failed += not ok
        if not ok:
            log += "\n---- somalloc=nouseroverride ----\n" + log2

    if failed:
        print(log)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
