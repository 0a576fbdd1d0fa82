"""Benchmark (issue "Linear everywhere"): the dry run as the site grows, before and after.

Whole-process wall time, peak memory and CPU time of the dry run of install.rhai with the example site;
with 10,000 queues in agent.queues (site-gpu.yaml's agent, repo generation); and with 1,000
fixed users (unhashed). Each for two builds of the tool, interleaved run by run:

    BEFORE=/path/to/old/clearml-script AFTER=target/release/clearml-script python3 bench/scaling.py

(RUNS=5 by default; without BEFORE only the current build is measured.)

With one build only, BEFORE_STDLIB=REV measures the playbook and stdlib of git revision REV
(install.rhai, agent.rhai and control_plane.rhai as they were, run as local files by the same
binary) beside the current ones: the queue and fixed-user paths are script code, so this is the
before and after of their fix in one build. QUEUES=N changes the 10,000.
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AFTER = os.environ.get("AFTER", os.path.join(ROOT, "target/release/clearml-script"))
BEFORE = os.environ.get("BEFORE")
BEFORE_STDLIB = os.environ.get("BEFORE_STDLIB")
QUEUES = int(os.environ.get("QUEUES", "10000"))
RUNS = int(os.environ.get("RUNS", "5"))
SITE = os.path.join(ROOT, "examples/site.yaml")
GPU = os.path.join(ROOT, "examples/site-gpu.yaml")
# each build runs its own embedded standard playbook (its install.rhai and stdlib go together)
SCRIPT = "install.rhai"

with tempfile.TemporaryDirectory() as d:
    queues = os.path.join(d, "queues.yaml")
    with open(queues, "w") as f:
        f.write("agent:\n  queues:\n")
        for i in range(QUEUES):
            f.write(f"    - {{name: queue-{i:05d}}}\n")
    users = os.path.join(d, "users.yaml")
    with open(users, "w") as f:
        f.write("fixed_users_pass_hashed: false\nfixed_users:\n")
        for i in range(1_000):
            f.write(f"  - {{username: user{i:04d}, password: pass-{i:04d}-secret, name: User {i}, admin: false}}\n")
    builds = [("after", AFTER, SCRIPT)] + ([("before", BEFORE, SCRIPT)] if BEFORE else [])
    if BEFORE_STDLIB:
        import subprocess
        old = os.path.join(d, "old")
        os.makedirs(old)
        for path, local in [("scripts/install.rhai", "install.rhai"),
                            ("stdlib/clearml/agent.rhai", "agent.rhai"),
                            ("stdlib/clearml/control_plane.rhai", "control_plane.rhai")]:
            text = subprocess.check_output(["git", "-C", ROOT, "show", f"{BEFORE_STDLIB}:{path}"],
                                           text=True)
            text = text.replace('import "clearml/agent"', 'import "agent"')
            text = text.replace('import "clearml/control_plane"', 'import "control_plane"')
            with open(os.path.join(old, local), "w") as f:
                f.write(text)
        builds.append((f"before ({BEFORE_STDLIB} playbooks)", AFTER, os.path.join(old, "install.rhai")))
    commands = []
    for tag, binary, script in builds:
        base = [binary, script, "--dry-run", "--output", "json", "--values", SITE]
        commands += [
            (f"{tag}: example site", base),
            (f"{tag}: {QUEUES:,} queues", base + ["--values", GPU, "--values", queues]),
            (f"{tag}: 1,000 fixed users", base + ["--values", users]),
        ]
    rows = harness.compare(commands, runs=RUNS, warmup=1, cpu=True)
    for tag, _, _ in builds:
        mine = [r for r in rows if r[0].startswith(tag + ":")]
        print(harness.table(mine, RUNS, f"{tag}: example site"))
        print()
