"""Whole-process timing: median wall time, median peak RSS and (with cpu=True) median CPU time
(user + system, from the kernel's accounting of the waited child) of a command over N runs.

Used by the bench scripts; the machines are shared and noisy, so every figure is recorded beside
a comparison measured in the same run, interleaved run by run.
"""

import os
import statistics
import subprocess
import tempfile
import time


def measure(cmd, env=None, cwd=None):
    """Run through GNU time (on every machine of this kind), whose own small fork is what the
    peak RSS counts before the exec; Python's fork would count Python's 14 MiB. The CPU time is
    GNU time's rusage with its waited child's (microseconds, where `time -f %U` gives 10 ms).
    Returns (wall ms, peak MiB, CPU ms)."""
    with tempfile.NamedTemporaryFile("r") as rss:
        start = time.perf_counter()
        child = subprocess.Popen(
            ["/usr/bin/time", "-f", "%M", "-o", rss.name, *cmd],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        if child.returncode != 0:
            raise SystemExit(f"command failed ({child.returncode}): {' '.join(cmd)}")
        kib = int(rss.read().strip().splitlines()[-1])
    return wall * 1000.0, kib / 1024.0, (usage.ru_utime + usage.ru_stime) * 1000.0


def run_once(cmd, env=None, cwd=None):
    """(wall ms, peak MiB) of one run; see `measure`."""
    return measure(cmd, env, cwd)[:2]


def compare(commands, runs=15, warmup=2, env=None, cwd=None, cpu=False):
    """commands: list of (label, argv). Interleaves the runs; returns rows of
    (label, median ms, median peak MiB), with the median CPU ms as a fourth item when `cpu`."""
    for _ in range(warmup):
        for _, cmd in commands:
            measure(cmd, env, cwd)
    samples = {label: ([], [], []) for label, _ in commands}
    for _ in range(runs):
        for label, cmd in commands:
            for kept, got in zip(samples[label], measure(cmd, env, cwd)):
                kept.append(got)
    width = 4 if cpu else 3
    return [
        (label, *[statistics.median(s) for s in kept][: width - 1])
        for label, kept in samples.items()
    ]


def table(rows, runs, base_label):
    """A Markdown table of `compare`'s rows, each beside the row labelled `base_label`."""
    base = next(row for row in rows if row[0] == base_label)
    cpu = len(base) == 4
    out = [
        f"| command | median wall (ms, {runs} runs) | ratio to {base_label} | median peak RSS (MiB) |"
        + (" median CPU (ms) | CPU ratio |" if cpu else ""),
        "|---|---|---|---|" + ("---|---|" if cpu else ""),
    ]
    for row in rows:
        label, ms, mib = row[:3]
        line = f"| {label} | {ms:.1f} | {ms / base[1]:.2f} | {mib:.1f} |"
        if cpu:
            line += f" {row[3]:.1f} | {row[3] / base[3]:.2f} |"
        out.append(line)
    return "\n".join(out)
