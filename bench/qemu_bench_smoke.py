#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A short run of `amp-bench --qemu` (CTest amp_bench.qemu_smoke): that it runs in both modes against the
firmware and the raw baseline image, and prints figures that make sense (positive, finite, ordered,
consistent with each other). Not a timing test: no figure is compared with a target.

Exits 77 (CTest's skip, saying why) when qemu-system-arm or the images are missing."""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys

SKIP = 77


def fail(message):
    print(f"FAILED: {message}")
    sys.exit(1)


def check_runs(where, runs, lo, hi):
    """A figure over rounds: {median, min, max}, with min <= median <= max, inside [lo, hi]."""
    for key in ("median", "min", "max"):
        v = runs.get(key)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            fail(f"{where}.{key} is not a finite number: {v!r}")
        if not lo <= v <= hi:
            fail(f"{where}.{key} = {v} is outside [{lo}, {hi}]")
    if not runs["min"] <= runs["median"] <= runs["max"]:
        fail(f"{where}: min {runs['min']} <= median {runs['median']} <= max {runs['max']} does not hold")


def check_latency(where, rtt, lo_ns):
    # Up to 10 s: a loaded machine can stall a round trip for long, but not that long.
    for key in ("p50", "p99", "max"):
        check_runs(f"{where}.{key}", rtt[key], lo_ns, 10e9)
    if not rtt["p50"]["median"] <= rtt["p99"]["median"] <= rtt["max"]["median"]:
        fail(f"{where}: p50 <= p99 <= max does not hold: {rtt}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bench", required=True)
    p.add_argument("--firmware", default="")
    p.add_argument("--raw", default="")
    a = p.parse_args()

    if shutil.which("qemu-system-arm") is None:
        print("SKIPPED: qemu-system-arm is not installed (Debian: apt-get install qemu-system-arm)")
        return SKIP
    for path in (a.firmware, a.raw):
        if not path or not os.path.exists(path):
            print(f"SKIPPED: the bare-metal images were not built ('{path}'; arm-none-eabi-g++ missing: "
                  "apt-get install gcc-arm-none-eabi)")
            return SKIP

    # A missing image is an error that says so, not a run.
    r = subprocess.run([a.bench, "--qemu", a.firmware, "--raw", a.raw + ".missing"], capture_output=True,
                       text=True, timeout=60)
    if r.returncode == 0 or "no such image" not in r.stderr:
        fail(f"a missing raw image: exit {r.returncode}, stderr {r.stderr!r}")

    sizes = [1, 16, 496]
    rounds = 2
    cmd = [a.bench, "--qemu", a.firmware, "--raw", a.raw, "--rounds", str(rounds), "--iterations", "100",
           "--messages", "300", "--window", "8", "--sizes", ",".join(map(str, sizes)), "--json"]
    print("running:", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        fail(f"exit {r.returncode}\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}")
    print(r.stdout)
    try:
        data = json.loads(r.stdout)
    except json.JSONDecodeError as e:
        fail(f"the output is not JSON: {e}")

    if data["rounds"] != rounds or data["window"] != 8:
        fail(f"rounds/window not as asked: {data['rounds']}, {data['window']}")
    if data["machine"]["cpus"] < 1 or not data["machine"]["cpu"]:
        fail(f"machine: {data['machine']}")
    load = data["load_average"]
    if not 0 <= load["min"] <= load["max"]:
        fail(f"load average: {load}")
    # Raw figures: a doorbell round trip crosses a socket twice and an interrupt (at least a microsecond);
    # a shared-memory one at least a few nanoseconds.
    check_latency("raw.doorbell_rtt_ns", data["raw"]["doorbell_rtt_ns"], 1000)
    check_latency("raw.shm_rtt_ns", data["raw"]["shm_rtt_ns"], 5)
    if data["raw_doorbell_extra_bytes"] != 0:
        fail(f"the raw image answered {data['raw_doorbell_extra_bytes']} doorbell bytes it was not sent")

    rows = data["rpmsg"]
    want = [(mode, size) for mode in ("interrupt", "poll") for size in sizes]
    got = [(row["mode"], row["payload"]) for row in rows]
    if got != want:
        fail(f"rows {got}, expected {want}")
    for row in rows:
        where = f"rpmsg[{row['mode']} {row['payload']} B]"
        raw = data["raw"]["doorbell_rtt_ns" if row["mode"] == "interrupt" else "shm_rtt_ns"]
        check_latency(f"{where}.rtt_ns", row["rtt_ns"], 1000 if row["mode"] == "interrupt" else 5)
        check_runs(f"{where}.rtt_p50_vs_raw", row["rtt_p50_vs_raw"], 1e-4, 1e6)
        # Each round's ratio is its rpmsg p50 over its raw p50: the median ratio lies within what the
        # rounds' extremes allow.
        lo = row["rtt_ns"]["p50"]["min"] / raw["p50"]["max"]
        hi = row["rtt_ns"]["p50"]["max"] / raw["p50"]["min"]
        if not lo * 0.999 <= row["rtt_p50_vs_raw"]["median"] <= hi * 1.001:
            fail(f"{where}: ratio {row['rtt_p50_vs_raw']['median']} outside [{lo}, {hi}]")
        target = 1.3 if row["mode"] == "interrupt" else 3.0
        if row["target"] != target or row["met"] != (row["rtt_p50_vs_raw"]["median"] <= target):
            fail(f"{where}: target {row['target']}, met {row['met']}")
        check_runs(f"{where}.msgs_per_s", row["msgs_per_s"], 1, 1e9)
        check_runs(f"{where}.mb_per_s", row["mb_per_s"], 1e-7, 1e5)
        if not math.isclose(row["mb_per_s"]["max"], row["msgs_per_s"]["max"] * row["payload"] / 1e6, rel_tol=0.01):
            fail(f"{where}: MB/s {row['mb_per_s']} is not msgs/s {row['msgs_per_s']} x {row['payload']} B")

    # The text report, once.
    r = subprocess.run([a.bench, "--qemu", a.firmware, "--raw", a.raw, "--rounds", "1", "--iterations", "50",
                        "--messages", "100", "--sizes", "16", "--modes", "interrupt"],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        fail(f"text run: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    print(r.stdout)
    for needle in ("raw doorbell RTT p50", "interrupt    16 B", "<= 1.3x", "load average"):
        if needle not in r.stdout:
            fail(f"the text report has no '{needle}'")
    if any(line.startswith("poll ") or line.startswith("raw shared-memory") for line in r.stdout.splitlines()):
        fail("--modes interrupt printed poll figures")
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
