"""Benchmark (issue "Linear everywhere"): the dry run as the site grows, before and after.

Whole-process wall time and peak memory of the dry run of install.rhai with the example site;
with 10,000 queues in agent.queues (site-gpu.yaml's agent, repo generation); and with 1,000
fixed users (unhashed). Each for two builds of the tool, interleaved run by run:

    BEFORE=/path/to/old/clearml-script AFTER=target/release/clearml-script python3 bench/scaling.py

(RUNS=5 by default; without BEFORE only the current build is measured.)
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AFTER = os.environ.get("AFTER", os.path.join(ROOT, "target/release/clearml-script"))
BEFORE = os.environ.get("BEFORE")
RUNS = int(os.environ.get("RUNS", "5"))
SITE = os.path.join(ROOT, "examples/site.yaml")
GPU = os.path.join(ROOT, "examples/site-gpu.yaml")
SCRIPT = os.path.join(ROOT, "scripts/install.rhai")

with tempfile.TemporaryDirectory() as d:
    queues = os.path.join(d, "queues.yaml")
    with open(queues, "w") as f:
        f.write("agent:\n  queues:\n")
        for i in range(10_000):
            f.write(f"    - {{name: queue-{i:05d}}}\n")
    users = os.path.join(d, "users.yaml")
    with open(users, "w") as f:
        f.write("fixed_users_pass_hashed: false\nfixed_users:\n")
        for i in range(1_000):
            f.write(f"  - {{username: user{i:04d}, password: pass-{i:04d}-secret, name: User {i}, admin: false}}\n")
    builds = [("after", AFTER)] + ([("before", BEFORE)] if BEFORE else [])
    commands = []
    for tag, binary in builds:
        base = [binary, SCRIPT, "--dry-run", "--output", "json", "--values", SITE]
        commands += [
            (f"{tag}: example site", base),
            (f"{tag}: 10,000 queues", base + ["--values", GPU, "--values", queues]),
            (f"{tag}: 1,000 fixed users", base + ["--values", users]),
        ]
    rows = harness.compare(commands, runs=RUNS, warmup=1)
    for tag, _ in builds:
        mine = [r for r in rows if r[0].startswith(tag + ":")]
        print(harness.table(mine, RUNS, f"{tag}: example site"))
        print()
