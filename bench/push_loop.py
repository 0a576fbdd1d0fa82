"""Benchmark: `a.push(x)` in a loop, and `m[k] = v` in a loop, before and after the engine's
size limits moved from Rhai's per-value checks (which re-measure the whole value after each
change) to the heap limit. Whole-process wall time of a `--dry-run` of a playbook that only
loops, for two builds of the tool, interleaved run by run, at N and 2N iterations (a linear
loop doubles, a quadratic one quadruples):

    BEFORE=/path/to/old/clearml-script AFTER=target/debug/clearml-script python3 bench/push_loop.py

(RUNS=5 and N=20000 by default; without BEFORE only the current build is measured.)
"""

import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AFTER = os.environ.get("AFTER", os.path.join(ROOT, "target/debug/clearml-script"))
BEFORE = os.environ.get("BEFORE")
RUNS = int(os.environ.get("RUNS", "5"))
N = int(os.environ.get("N", "20000"))

with tempfile.TemporaryDirectory() as d:
    scripts = {}
    for n in (N, 2 * N):
        push = os.path.join(d, f"push{n}.rhai")
        with open(push, "w") as f:
            f.write(f"let a = [];\nfor i in 0..{n} {{ a.push(i); }}\nprint(a.len());\n")
        index = os.path.join(d, f"index{n}.rhai")
        with open(index, "w") as f:
            f.write(f"let m = #{{}};\nfor i in 0..{n} {{ m[`k${{i}}`] = i; }}\nprint(m.len());\n")
        scripts[n] = (push, index)
    builds = [("after", AFTER)] + ([("before", BEFORE)] if BEFORE else [])
    commands = []
    for name, binary in builds:
        for n in (N, 2 * N):
            push, index = scripts[n]
            commands.append((f"{name}: {n} pushes", [binary, push, "--dry-run"]))
            commands.append((f"{name}: {n} index assignments", [binary, index, "--dry-run"]))
    rows = harness.compare(commands, runs=RUNS, warmup=1, cwd=d)
    print(harness.table(rows, RUNS, f"after: {N} pushes"))
