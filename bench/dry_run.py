"""Benchmark: whole-process wall time and peak memory of the dry run of the standard install
with the example site, beside a process-spawn floor (`true`) and a Python equivalent.

    cargo build --release && python3 bench/dry_run.py
"""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/clearml-script")
SITE = os.path.join(ROOT, "examples/site.yaml")
RUNS = int(os.environ.get("RUNS", "15"))

commands = [
    ("`true` (process spawn floor)", ["true"]),
    (
        "clearml-script install.rhai --dry-run --output json",
        [BIN, os.path.join(ROOT, "scripts/install.rhai"), "--values", SITE, "--dry-run", "--output", "json"],
    ),
    (
        "python3 equivalent (PyYAML)",
        [sys.executable, os.path.join(ROOT, "bench/equivalent_dry_run.py"), "--values", SITE],
    ),
]
rows = harness.compare(commands, runs=RUNS)
print(harness.table(rows, RUNS, "python3 equivalent (PyYAML)"))
