"""Whole-process timing: median wall time and median peak RSS of a command over N runs.

Used by the bench scripts; the machines are shared and noisy, so every figure is recorded beside
a comparison measured in the same run, interleaved run by run.
"""

import os
import statistics
import subprocess
import tempfile
import time


def run_once(cmd, env=None, cwd=None):
    """Run through GNU time (on every machine of this kind), whose own small fork is what the
    peak RSS counts before the exec; Python's fork would count Python's 14 MiB."""
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        code = subprocess.call(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        wall = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"command failed ({code}): {' '.join(cmd)}")
        kib = int(rss.read().strip().splitlines()[-1])
    return wall * 1000.0, kib / 1024.0  # ms, MiB


def compare(commands, runs=15, warmup=2, env=None, cwd=None):
    """commands: list of (label, argv). Interleaves the runs; returns rows of
    (label, median ms, median peak MiB)."""
    for _ in range(warmup):
        for _, cmd in commands:
            run_once(cmd, env, cwd)
    samples = {label: ([], []) for label, _ in commands}
    for _ in range(runs):
        for label, cmd in commands:
            ms, mib = run_once(cmd, env, cwd)
            samples[label][0].append(ms)
            samples[label][1].append(mib)
    return [
        (label, statistics.median(s[0]), statistics.median(s[1]))
        for label, s in samples.items()
    ]


def table(rows, runs, base_label):
    base = next(ms for label, ms, _ in rows if label == base_label)
    out = [
        f"| command | median wall (ms, {runs} runs) | ratio to {base_label} | median peak RSS (MiB) |",
        "|---|---|---|---|",
    ]
    for label, ms, mib in rows:
        out.append(f"| {label} | {ms:.1f} | {ms / base:.2f} | {mib:.1f} |")
    return "\n".join(out)
