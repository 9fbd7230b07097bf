#!/usr/bin/env python3
"""The statistics report: JSON that parses, numbers that agree with a known
allocation pattern, periodic reports at the interval, the text format's
per-class rows. Usage: report.py PROGRAM (tests/integration/report_pattern.c).
Exits 77 (skip) in -Dbench_minimal builds, where the report is compiled out."""
import json
import os
import subprocess
import sys
import tempfile


def run(prog, env_extra, sleep_ms):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_")}
    env.update(env_extra)
    r = subprocess.run([prog, str(sleep_ms)], env=env, capture_output=True, timeout=60)
    if r.returncode != 0:
        sys.exit(f"{prog} exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    return r


def main():
    prog = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "stats.json")
        run(prog, {"HAKMEM_STATS": "1", "HAKMEM_STATS_FORMAT": "json",
                   "HAKMEM_STATS_FILE": path, "HAKMEM_STATS_INTERVAL_MS": "100"}, 550)
        if not os.path.exists(path):
            print("no report written: -Dbench_minimal build?")
            sys.exit(77)
        lines = [l for l in open(path).read().splitlines() if l.strip()]
        reports = [json.loads(l)["hakmem"] for l in lines]  # every line parses
        if len(reports) < 4:  # about 5 periodic ones, and the exit report
            sys.exit(f"expected periodic reports every 100 ms over 550 ms, got {len(reports)}")
        last = reports[-1]
        lanes = {l["name"]: l for l in last["lanes"]}
        if "tiny" in lanes:
            cls = [c for c in lanes["tiny"]["classes"] if c["block_size"] == 112]
            if not cls or cls[0]["allocs"] < 1000:
                sys.exit(f"tiny class 112: {cls}")
            if cls[0]["hits"] + cls[0]["misses"] != cls[0]["allocs"]:
                sys.exit(f"hits + misses != allocs: {cls}")
            if lanes["tiny"]["live_bytes"] < 1000 * 112:
                sys.exit(f"tiny live bytes {lanes['tiny']['live_bytes']} < 112000")
            if cls[0]["live_bytes"] < 1000 * 112 or cls[0]["peak_bytes"] < cls[0]["live_bytes"]:
                sys.exit(f"class 112's live and peak bytes: {cls}")
            if lanes["tiny"]["segments_hot"] + lanes["tiny"]["segments_draining"] < 1:
                sys.exit(f"tiny segments in use: {lanes['tiny']}")
        elif lanes["huge"]["allocs"] < 1000:  # the huge lane serves them as pages
            sys.exit(f"huge allocs {lanes['huge']['allocs']} < 1000")
        if last["total"]["live_bytes"] < 100000:
            sys.exit(f"total live bytes {last['total']['live_bytes']}")
        if last["options"].get("HAKMEM_STATS_FORMAT") != "json":
            sys.exit(f"options that differ from defaults: {last['options']}")
        if not 100 <= last["policy"]["wmax_large_pct"] <= 200:
            sys.exit(f"policy: {last['policy']}")

        # the text report, to stderr, with a row per class used
        r = run(prog, {"HAKMEM_STATS": "1"}, 0)
        err = r.stderr.decode(errors="replace")
        if "hakmem: statistics" not in err or "options: HAKMEM_STATS=1" not in err:
            sys.exit(f"text report: {err}")
        if "tiny" in lanes and "hits" not in err:  # per-class rows: lanes with classes
            sys.exit(f"text report without per-class rows: {err}")
        if "tiny" in lanes and "segments: tiny 1 hot" not in err:
            sys.exit(f"text report without the segments line: {err}")
        # the learner and the call sites (issue 10): research mode turns the
        # learner, the report and the verbose log on; every malloc sampled
        path2 = os.path.join(tmp, "research.json")
        r = run(prog, {"HAKMEM_MODE": "research", "HAKMEM_STATS_FORMAT": "json",
                       "HAKMEM_STATS_FILE": path2, "HAKMEM_SITE_PROFILE": "1",
                       "HAKMEM_SITE_SAMPLE": "0"}, 100)
        rep = json.loads(open(path2).read().splitlines()[-1])["hakmem"]
        if rep["options"].get("HAKMEM_LEARN") != "1":
            sys.exit(f"research mode did not turn the learner on: {rep['options']}")
        learner = rep["learner"]
        if learner is not None and learner["state"] not in ("LEARN", "FROZEN", "CANARY"):
            sys.exit(f"learner: {learner}")
        sites = rep["sites"]
        prog_name = os.path.basename(prog)
        mine = [s for s in sites if prog_name in s["symbol"]]
        if not mine or mine[0]["allocs"] != 1000 or mine[0]["bytes"] != 100000:
            sys.exit(f"call sites: no site in {prog_name} with 1000 allocations: {sites}")
        if mine[0]["hist"][2] != 1000:  # 65..256 B
            sys.exit(f"size histogram: {mine[0]}")
        r = run(prog, {"HAKMEM_MODE": "research", "HAKMEM_SITE_PROFILE": "1"}, 0)
        err = r.stderr.decode(errors="replace")
        if learner is not None and "  learner: " not in err:
            sys.exit(f"text report without the learner's line: {err}")
        if "policy: wmax_large" not in err:
            sys.exit(f"text report without the policy: {err}")
    print("1 passed, 0 failed")


if __name__ == "__main__":
    main()
