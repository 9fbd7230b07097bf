#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz target (tests/fuzz/corpus/seed-*).

Each seed is a short operation sequence in fuzz_ops.c's encoding that
reaches one part of the allocator, so the fuzzer starts from inputs that
already cover every lane, alignment, realloc across lanes, the remote free
paths and thread exit. Run it again after changing the encoding; crashes the
fuzzer finds are kept beside the seeds as crash-* files.
"""
import os
import sys

ALLOC, CALLOC, ALIGNED, FREE, REALLOC, USABLE, SWITCH, RETIRE, TRIM, BAD = range(10)
TINY, TINY_ANY, EDGE_TP, POOL, EDGE_PA, ACE, EDGE_AH, HUGE = range(8)


def size(rng, v):
    """Two size bytes: range rng (0..7), value v (0..8191) inside it."""
    return [(rng << 5) | ((v >> 8) & 0x1F), v & 0xFF]


def alloc(slot, rng, v, op=ALLOC):
    return [op, slot] + size(rng, v)


def aligned(slot, rng, v, log2, kind):
    return [ALIGNED, slot] + size(rng, v) + [(kind << 5) | log2]


def seeds():
    s = {}
    # every lane, then usable sizes and frees
    ops = []
    for i, rng in enumerate(range(8)):
        ops += alloc(i, rng, 37 * i + 5)
    for i in range(8):
        ops += [USABLE, i]
    for i in range(8):
        ops += [FREE, i]
    s["lanes"] = ops
    # calloc in every lane
    s["calloc"] = sum((alloc(i, r, 100 + i, CALLOC) for i, r in enumerate(range(8))), [])
    # aligned allocations: every kind, alignments up to 2 MiB
    ops = []
    for k in range(3):
        for lg in (0, 3, 4, 6, 12, 16, 20, 21):
            ops += aligned((k * 8 + lg) % 64, TINY_ANY if lg < 12 else POOL, 200 + lg, lg, k)
    s["aligned"] = ops
    # a realloc chain that crosses every lane boundary up and down
    ops = alloc(3, TINY, 10)
    for rng in (TINY_ANY, EDGE_TP, POOL, EDGE_PA, ACE, EDGE_AH, HUGE, ACE, POOL, TINY, TINY):
        ops += [REALLOC, 3] + size(rng, 777)
    ops += [REALLOC, 3] + size(TINY, 0)  # realloc to 0 frees
    ops += [REALLOC, 9] + size(POOL, 5)  # realloc(NULL, n)
    s["realloc-chain"] = ops
    # blocks of thread 0 freed by threads 1 and 2 (remote frees), then reuse
    ops = []
    for i in range(24):
        ops += alloc(i, (TINY, POOL, ACE)[i % 3], i * 11)
    ops += [SWITCH, 1]
    for i in range(0, 24, 2):
        ops += [FREE, i]
    ops += [SWITCH, 2]
    for i in range(1, 24, 2):
        ops += [REALLOC, i] + size(TINY_ANY, i * 13)
    ops += [SWITCH, 0]
    for i in range(24):
        ops += alloc(i, TINY, i)
    s["remote-free"] = ops
    # a worker allocates, exits (heap abandoned), its blocks freed by thread 0
    ops = [SWITCH, 1]
    for i in range(16):
        ops += alloc(i, (TINY, POOL)[i % 2], i * 3)
    ops += [RETIRE]
    for i in range(0, 16, 2):
        ops += [FREE, i]
    ops += [SWITCH, 1]
    for i in range(16, 32):
        ops += alloc(i, TINY, i)
    ops += [SWITCH, 0, TRIM]
    s["retire"] = ops
    # thread churn: workers allocate, exit, and their blocks are freed by
    # the next worker and by thread 0 (abandoned heaps adopted, remote frees
    # into orphaned slabs)
    ops = []
    for r in range(12):
        w = 1 + r % 2
        ops += [SWITCH, w]
        for i in range(8):
            ops += alloc((r * 8 + i) % 64, (TINY, POOL, TINY_ANY)[i % 3], r * 31 + i)
        ops += [RETIRE]
        ops += [SWITCH, 3 - w]
        for i in range(0, 8, 2):
            ops += [FREE, (r * 8 + i) % 64]
        ops += [SWITCH, 0]
        for i in range(1, 8, 2):
            ops += [REALLOC, (r * 8 + i) % 64] + size(TINY, i)
    ops += [TRIM]
    s["thread-churn"] = ops
    # many small blocks of one class, freed in a scattered order, trim
    ops = []
    for i in range(64):
        ops += alloc(i, TINY, 48)
    for i in range(64):
        ops += [FREE, (i * 37) % 64]
    ops += [TRIM, BAD]
    for i in range(64):
        ops += alloc(i, TINY, 48)
    s["one-class"] = ops
    return s


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(out, exist_ok=True)
    for name, ops in seeds().items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(bytes(ops))


if __name__ == "__main__":
    main()
