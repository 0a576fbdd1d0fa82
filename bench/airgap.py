"""Benchmark: whole-process wall time and peak memory of `bundle create` (plan, helm pull of each
chart from the sandbox's stand-in repository, helm template of each, the archive) and of the
closure proof (`bundle check`: plan, bundle verified and extracted, helm template of each chart
with its final values, every image checked), beside `helm template` of the same three charts
(the render alone: the floor of both).

    cargo test --no-run && tools/fetch-helm && python3 bench/airgap.py

BIN=target/release/clearml-script for a release build; RUNS=7 by default.
"""

import os
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/debug/clearml-script"))
HELM = os.path.join(ROOT, ".tools/helm/v3.17.3/helm")
RUNS = int(os.environ.get("RUNS", "7"))
EX = os.path.join(ROOT, "examples")

with tempfile.TemporaryDirectory() as d:
    env = dict(os.environ, HELM_BIN=HELM, HELM_CACHE_HOME=os.path.join(d, "c"),
               HELM_CONFIG_HOME=os.path.join(d, "cfg"), HELM_DATA_HOME=os.path.join(d, "data"))
    with open(os.path.join(d, "mirror.yaml"), "w") as f:
        f.write("airgap:\n  registry: registry.local:5000\n")
    with open(os.path.join(d, "bundle.yaml"), "w") as f:
        f.write("airgap:\n  bundle: bundle.tar.gz\n")
    site = ["--values", os.path.join(EX, "site.yaml"), "--values", os.path.join(EX, "site-gpu.yaml"),
            "--values", "mirror.yaml"]
    create = [BIN, "bundle", "create", "bundle.tar.gz", *site, "--sandbox"]
    subprocess.check_call(create, env=env, cwd=d, stderr=subprocess.DEVNULL)
    with tarfile.open(os.path.join(d, "bundle.tar.gz")) as t:
        charts = [m.name for m in t.getmembers() if m.name.startswith("charts/")]
        t.extractall(d, members=[t.getmember(c) for c in charts], filter="data")
    template = " && ".join(
        f"{HELM} template r {os.path.join(d, c)} -n bench --set global.imageRegistry=registry.local:5000 >/dev/null"
        for c in charts
    )
    commands = [
        (f"helm template of the same {len(charts)} charts (sh, one after another)", ["sh", "-c", template]),
        ("clearml-script bundle check (the closure proof)", [BIN, "bundle", "check", *site, "--values", "bundle.yaml"]),
        ("clearml-script bundle create --sandbox", create),
    ]
    rows = harness.compare(commands, runs=RUNS, env=env, cwd=d)
    print(harness.table(rows, RUNS, commands[0][0]))
