"""Benchmark: whole-process time of helm 4 `upgrade --install --wait` of the fixture chart
against `clearml-script sandbox`, beside helm 4 `template` of the same chart (the same render,
no cluster: the floor) and helm 4 `version` (process start).

    cargo build --release && tools/fetch-helm && python3 bench/helm_sandbox.py
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/clearml-script")
HELM = os.path.join(ROOT, ".tools/helm/v4.1.4/helm")
CHART = os.path.join(ROOT, "tests/fixtures/charts/demo")
RUNS = int(os.environ.get("RUNS", "15"))

with tempfile.TemporaryDirectory() as d:
    sandbox = subprocess.Popen([BIN, "sandbox", "--dir", d], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        first = sandbox.stdout.readline()  # kubeconfig: ...
        if not first.startswith("kubeconfig: "):
            raise SystemExit(f"the sandbox did not start: {first!r} (build with cargo build --release)")
        env = dict(os.environ, KUBECONFIG=os.path.join(d, "kubeconfig"), HELM_CACHE_HOME=os.path.join(d, "c"),
                   HELM_CONFIG_HOME=os.path.join(d, "cfg"), HELM_DATA_HOME=os.path.join(d, "data"))
        commands = [
            ("helm 4 version (process start)", [HELM, "version"]),
            ("helm 4 template (render, no cluster)", [HELM, "template", "demo", CHART, "-n", "bench"]),
            (
                "helm 4 upgrade --install --wait against the sandbox",
                [HELM, "upgrade", "--install", "demo", CHART, "-n", "bench", "--create-namespace", "--wait", "--timeout", "60s"],
            ),
        ]
        rows = harness.compare(commands, runs=RUNS, env=env)
        print(harness.table(rows, RUNS, "helm 4 template (render, no cluster)"))
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=10)
