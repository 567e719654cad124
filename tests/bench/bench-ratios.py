#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Issue 11's ratios to a raw baseline, as the median of alternating rounds.

Each round runs bench-agent at 100 clients (agent.ping beside a raw echo
server) and bench-backend one direction at a time (guestsim beside a raw
Unix socketpair); each tool measures its baseline in the same run. Figures,
not a test: it prints the rounds and their medians and exits 0 unless a tool
could not run at all (then 1).

Usage: bench-ratios.py [ROUNDS] [SECONDS-PER-MEASUREMENT]
       (run from a build directory, or with top_builddir set)
"""
import os
import re
import statistics
import subprocess
import sys

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
SECONDS = sys.argv[2] if len(sys.argv) > 2 else "1"
BUILD = os.environ.get("top_builddir", os.getcwd())

# name, command, extra environment, regular expression of the ratio, issue 11's target
CASES = [
    ("agent.ping, 100 clients / raw echo", [f"{BUILD}/tests/bench/bench-agent", SECONDS],
     {"BENCH_AGENT_CLIENTS": "100"}, re.compile(r"^\s*100 \|.*\|\s*([0-9.]+)\s*$", re.M), 0.7),
    ("guestsim guest->host / raw socketpair", [f"{BUILD}/tests/bench/bench-backend", SECONDS],
     {"BENCH_BACKEND_ONLY": "g2h"}, re.compile(r"guest->host .*ratio ([0-9.]+)"), 0.8),
    ("guestsim host->guest / raw socketpair", [f"{BUILD}/tests/bench/bench-backend", SECONDS],
     {"BENCH_BACKEND_ONLY": "h2g"}, re.compile(r"host->guest .*ratio ([0-9.]+)"), 0.6),
]


def one(cmd, extra, pattern):
    env = dict(os.environ, top_builddir=BUILD, **extra)
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None, "timed out after 120 s"
    m = pattern.search(p.stdout)
    if p.returncode != 0 or not m:
        return None, f"exit {p.returncode}: {(p.stdout + p.stderr).strip()[-300:]}"
    return float(m.group(1)), None


def main():
    ratios = {name: [] for name, *_ in CASES}
    broken = False
    for r in range(ROUNDS):
        for name, cmd, extra, pattern, _ in CASES:
            ratio, err = one(cmd, extra, pattern)
            if ratio is None:
                print(f"round {r + 1}: {name}: {err}", flush=True)
                broken = True
                continue
            ratios[name].append(ratio)
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"bench ratios: {ROUNDS} alternating rounds, {SECONDS} s per measurement, "
          f"load {load}")
    for name, *_, target in CASES:
        v = ratios[name]
        if not v:
            print(f"  {name:40} no measurement")
            continue
        print(f"  {name:40} median {statistics.median(v):.2f}  range {min(v):.2f}-{max(v):.2f}"
              f"  (target >= {target})  rounds: {' '.join(f'{x:.2f}' for x in v)}")
    return 1 if broken and not all(ratios.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
