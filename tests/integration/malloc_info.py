#!/usr/bin/env python3
"""malloc_info(0, fp) writes well-formed XML, as glibc's does: one <malloc>
root with a version, a <lane> per lane built with numeric counters, its
segments by tier and a <class> per class used, and the <total>/<system>
elements. Usage: malloc_info.py HELPER stats|nostats
(tests/integration/observe_helper.c; nostats: a -Dbench_minimal build,
whose counters are compiled out). Exits 77 (skip) where the helper
does (-Dinterpose=false: no malloc_info)."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def main():
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_")}
    r = subprocess.run([sys.argv[1], "info"], env=env, capture_output=True, timeout=60)
    if r.returncode == 77:
        print("-Dinterpose=false: no malloc_info")
        sys.exit(77)
    if r.returncode != 0:
        sys.exit(f"helper exited {r.returncode}: {r.stderr.decode(errors='replace')}")
    try:
        root = ET.fromstring(r.stdout)
    except ET.ParseError as e:
        sys.exit(f"malloc_info's output is not well-formed XML ({e}):\n{r.stdout.decode()}")
    if root.tag != "malloc" or not root.get("version", "").startswith("hakmem-"):
        sys.exit(f"root element: <{root.tag} {root.attrib}>")
    lanes = root.findall("lane")
    if not lanes or any(not l.get("name") for l in lanes):
        sys.exit(f"no named <lane> elements: {r.stdout.decode()}")
    for lane in lanes:
        for field in ("allocs", "frees", "live", "peak", "mapped", "maps", "unmaps", "purges",
                      "purged"):
            e = lane.find(field)
            if e is None or not (e.text or "").isdigit():
                sys.exit(f"lane {lane.get('name')}: <{field}> missing or not a number")
        seg = lane.find("segments")
        if seg is None or any(not seg.get(k, "").isdigit() for k in ("hot", "draining", "cached")):
            sys.exit(f"lane {lane.get('name')}: <segments hot= draining= cached=> missing")
        for c in lane.findall("class"):
            if any(not c.get(k, "").isdigit() for k in ("size", "allocs", "frees", "live")):
                sys.exit(f"lane {lane.get('name')}: <class> without numbers: {c.attrib}")
    if sys.argv[2] == "stats" and sum(int(l.find("allocs").text) for l in lanes) < 1:
        sys.exit("the helper's allocation is not counted")
    slab_lanes = [l for l in lanes if l.get("name") in ("tiny", "pool", "ace")]
    if sys.argv[2] == "stats" and slab_lanes and not root.findall("lane/class"):
        sys.exit("no <class> rows for the classes the helper used")
    for tag in ("total", "system"):
        e = root.find(tag)
        if e is None or not e.get("size", "").isdigit():
            sys.exit(f"<{tag}> missing or without a numeric size")


if __name__ == "__main__":
    main()
