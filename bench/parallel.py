"""Benchmark (issue "Linear everywhere"): independent charts wait together.

A sandbox install of the control plane, then the agent, the shared Redis and the gateway, with
every workload kept unready for DELAY ms after each change (`--fault ready-after:DELAY`), so
each chart's `--wait` takes at least DELAY. Four charts wait, so the waits add up to 4 x DELAY;
with the three after the control plane waiting together, the install needs about 2 x DELAY
above its own work. Measured side by side, interleaved, each run on a new sandbox:

- install.rhai (the parallel group) with the delay;
- the same steps one after another (a playbook of the same stdlib calls, in order) with the delay;
- install.rhai without a delay (the install's own work: helm, the simulators, the tool).

    AFTER=target/release/clearml-script python3 bench/parallel.py

(RUNS=5, DELAY=2000 by default; HELM chooses the helm binary, helm 3 from .tools by default.)
"""

import os
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AFTER = os.path.abspath(os.environ.get("AFTER", os.path.join(ROOT, "target/release/clearml-script")))
HELM = os.environ.get("HELM", os.path.join(ROOT, ".tools/helm/v3.17.3/helm"))
RUNS = int(os.environ.get("RUNS", "5"))
DELAY = int(os.environ.get("DELAY", "2000"))
SITE = os.path.join(ROOT, "examples/site.yaml")
GPU = os.path.join(ROOT, "examples/site-gpu.yaml")
INSTALL = os.path.join(ROOT, "scripts/install.rhai")

SEQUENTIAL = """
import "clearml/values" as values;
import "clearml/control_plane" as cp;
import "clearml/agent" as agent;
import "clearml/gateway" as gateway;
values::add_chart_source(site);
cp::install(site);
agent::install_redis(site);
agent::install_agent(site);
gateway::install(site);
"""

REDIS = "agent:\n  redis:\n    enabled: true\n    password: shared-redis-password-1234\n"

with tempfile.TemporaryDirectory() as d:
    seq = os.path.join(d, "sequential.rhai")
    with open(seq, "w") as f:
        f.write(SEQUENTIAL)
    redis = os.path.join(d, "redis.yaml")
    with open(redis, "w") as f:
        f.write(REDIS)
    values = ["--values", SITE, "--values", GPU, "--values", redis]
    rows = [
        ("install.rhai, parallel group, delay", [INSTALL, "--skip-preflight"], DELAY),
        ("the same steps one after another, delay", [seq], DELAY),
        ("install.rhai, no delay (the install's own work)", [INSTALL, "--skip-preflight"], 0),
    ]
    env = dict(os.environ, HELM_BIN=HELM, CLEARML_SCRIPT_ALLOW_EXAMPLE_CREDENTIALS="1")
    samples = {label: [] for label, _, _ in rows}
    for run in range(RUNS):
        for i, (label, script, delay) in enumerate(rows):
            state = os.path.join(d, f"state-{run}-{i}")
            cmd = [AFTER, *script, *values, "--sandbox", "--sandbox-state", state,
                   "--fault", f"ready-after:{delay}"]
            start = time.perf_counter()
            code = subprocess.call(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   env=env, cwd=d)
            wall = (time.perf_counter() - start) * 1000.0
            if code != 0:
                raise SystemExit(f"command failed ({code}): {' '.join(cmd)}")
            samples[label].append(wall)
    waits = 4 * DELAY
    print(f"| command | median wall (ms, {RUNS} runs) | minus the no-delay install (ms) | "
          f"ratio of that to the sum of the waits ({waits} ms) |")
    print("|---|---|---|---|")
    base = statistics.median(samples[rows[2][0]])
    for label, _, delay in rows:
        ms = statistics.median(samples[label])
        extra = ms - base
        ratio = f"{extra / waits:.2f}" if delay else "-"
        print(f"| {label} | {ms:.0f} | {extra:.0f} | {ratio} |")
