"""Benchmark (issue "Linear everywhere"): helm processes and wall time of a live install in the
sandbox, and of a re-run that changes nothing, for two builds of the tool, interleaved.

Each helm invocation goes through a wrapper that logs its first two arguments, so the count is
exact. Every pair of runs starts from a new sandbox state (`--sandbox-state`).

    BEFORE=/path/to/old/clearml-script AFTER=target/release/clearml-script \
        python3 bench/helm_processes.py

(RUNS=5 by default; HELM chooses the helm binary, helm 4 from .tools by default.)
"""

import collections
import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AFTER = os.environ.get("AFTER", os.path.join(ROOT, "target/release/clearml-script"))
BEFORE = os.environ.get("BEFORE")
HELM = os.environ.get("HELM", os.path.join(ROOT, ".tools/helm/v4.1.4/helm"))
RUNS = int(os.environ.get("RUNS", "5"))
SITE = os.path.join(ROOT, "examples/site.yaml")

builds = [("after", AFTER)] + ([("before", BEFORE)] if BEFORE else [])
times = collections.defaultdict(list)
counts = {}
with tempfile.TemporaryDirectory() as d:
    wrapper = os.path.join(d, "helm")
    log = os.path.join(d, "helm.log")
    with open(wrapper, "w") as f:
        f.write(f'#!/bin/sh\necho "$1 $2" >> "$HELM_LOG"\nexec {HELM} "$@"\n')
    os.chmod(wrapper, 0o755)
    for run in range(RUNS):
        for tag, binary in builds:
            state = os.path.join(d, f"state-{tag}-{run}")
            for phase in ("first install", "re-run, nothing changed"):
                open(log, "w").close()
                env = dict(os.environ, HELM_BIN=wrapper, HELM_LOG=log)
                cmd = [binary, os.path.join(ROOT, "scripts/install.rhai"), "--values", SITE,
                       "--sandbox", "--sandbox-state", state]
                start = time.perf_counter()
                subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[(tag, phase)].append((time.perf_counter() - start) * 1000.0)
                with open(log) as f:
                    lines = [l.strip() for l in f if l.strip()]
                counts[(tag, phase)] = (len(lines), collections.Counter(lines))

print(f"| build: run | median wall (ms, {RUNS} runs) | helm processes | which |")
print("|---|---|---|---|")
for (tag, phase), ts in times.items():
    n, which = counts[(tag, phase)]
    shown = ", ".join(f"{k} ×{v}" for k, v in sorted(which.items()))
    print(f"| {tag}: {phase} | {statistics.median(ts):.0f} | {n} | {shown} |")
