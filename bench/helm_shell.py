"""Benchmark (issue "Linear everywhere"): a live install against an API server, beside a shell
that runs the same helm commands, and a re-run that changes nothing.

Each run starts two `clearml-script sandbox` servers (a Kubernetes API, a chart repository, a
ClearML API). On the first, the tool installs live (`install.rhai --values examples/site.yaml
--kubeconfig …`, helm 4) through a wrapper that records each helm call (its arguments, stdin
and values files) and then runs the real helm; the same install again is the re-run. On the
second, a shell script runs exactly the helm commands the tool's first install ran, minus its
`helm version` probe, with the recorded values files, the password on stdin as the tool gave
it, and the paths and URLs of that sandbox. Each side has fresh helm homes; the runs are
interleaved.

    cargo build --release && tools/fetch-helm && python3 bench/helm_shell.py

(RUNS=7; PREFLIGHT=1 runs install.rhai's preflight too, which the shell does not do;
BEFORE_BIN=/path/to/an/older/clearml-script adds its first install and re-run, on a third
sandbox, interleaved with the others.)
"""

import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.abspath(os.environ.get("BIN", os.path.join(ROOT, "target/release/clearml-script")))
HELM = os.environ.get("HELM", os.path.join(ROOT, ".tools/helm/v4.1.4/helm"))
RUNS = int(os.environ.get("RUNS", "7"))
PREFLIGHT = os.environ.get("PREFLIGHT") == "1"
BEFORE_BIN = os.environ.get("BEFORE_BIN")
SITE = os.path.join(ROOT, "examples/site.yaml")

RECORDER = """#!/bin/sh
d=$(mktemp -d "$CALLS/call.XXXXXXXX")
for a in "$@"; do printf '%s\\0' "$a" >> "$d/argv"; done
cat > "$d/stdin"
prev=""; n=0
for a in "$@"; do
  if [ "$prev" = "-f" ]; then n=$((n+1)); cp "$a" "$d/values$n.yaml"; fi
  prev="$a"
done
exec "$REAL_HELM" "$@" < "$d/stdin"
"""


def start_sandbox(d):
    p = subprocess.Popen([BIN, "sandbox", "--dir", d], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    lines = dict(p.stdout.readline().rstrip("\n").split(": ", 1) for _ in range(5))
    return p, lines["kubeconfig"], lines["chart repository"]


def stop(p):
    p.send_signal(signal.SIGINT)
    p.wait(timeout=20)


def helm_homes(d):
    return {k: os.path.join(d, k.lower()) for k in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME")}


def recorded(calls):
    out = []
    for c in sorted(os.listdir(calls), key=lambda c: os.stat(os.path.join(calls, c)).st_mtime_ns):
        c = os.path.join(calls, c)
        argv = open(os.path.join(c, "argv"), "rb").read().decode().split("\0")[:-1]
        out.append((c, argv))
    return out


def shell_script(calls, old, new, d):
    """The tool's helm calls as a shell script for the second sandbox."""
    lines = ["set -e"]
    for c, argv in calls:
        if argv[:1] == ["version"]:
            continue
        args, n, prev = [], 0, ""
        for a in argv:
            for o, w in zip(old, new):
                a = a.replace(o, w)
            if prev == "-f":
                n += 1
                a = os.path.join(c, f"values{n}.yaml")
            args.append(a)
            prev = a
        quoted = " ".join("'" + a.replace("'", "'\\''") + "'" for a in args)
        lines.append(f"{HELM} {quoted} < '{os.path.join(c, 'stdin')}' > /dev/null")
    path = os.path.join(d, "replay.sh")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def timed(cmd, env):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - start) * 1000.0


samples = {"tool: first install": [], "tool: re-run, nothing changed": [], "shell: the same helm commands": []}
if BEFORE_BIN:
    samples["before: first install"] = []
    samples["before: re-run, nothing changed"] = []
processes = {}


def tool_runs(bin_path, label, d, sandbox_dir, home):
    """The first install and the re-run of one build against its own sandbox; answers the
    first install's recorded helm calls and the sandbox's kubeconfig and repository."""
    p, kube, repo = start_sandbox(sandbox_dir)
    try:
        env = dict(os.environ, REAL_HELM=HELM, CLEARML_SCRIPT_ALLOW_EXAMPLE_CREDENTIALS="1",
                   **helm_homes(home))
        cmd = [bin_path, os.path.join(ROOT, "scripts/install.rhai"), "--values", SITE,
               "--kubeconfig", kube, "--helm", wrapper,
               "--set", f"chart_repo_url={repo}"]
        if not PREFLIGHT:
            cmd.append("--skip-preflight")
        calls, again = os.path.join(d, f"calls-{label}"), os.path.join(d, f"calls-again-{label}")
        os.makedirs(calls)
        os.makedirs(again)
        samples[f"{label}: first install"].append(timed(cmd, dict(env, CALLS=calls)))
        samples[f"{label}: re-run, nothing changed"].append(timed(cmd, dict(env, CALLS=again)))
    finally:
        stop(p)
    first = recorded(calls)
    processes[f"{label}: first install"] = [" ".join(argv[:2]) for _, argv in first]
    processes[f"{label}: re-run, nothing changed"] = [" ".join(argv[:2]) for _, argv in recorded(again)]
    return first, kube, repo


with tempfile.TemporaryDirectory() as top:
    wrapper = os.path.join(top, "helm")
    with open(wrapper, "w") as f:
        f.write(RECORDER)
    os.chmod(wrapper, 0o755)
    for run in range(RUNS):
        d = os.path.join(top, f"run{run}")
        for sub in ("a", "b", "c", "home-tool", "home-before", "home-shell"):
            os.makedirs(os.path.join(d, sub))
        # the older build first on odd runs, second on even ones
        order = [("tool", BIN, "a", "home-tool")]
        if BEFORE_BIN:
            before = ("before", os.path.abspath(BEFORE_BIN), "c", "home-before")
            order = order + [before] if run % 2 == 0 else [before] + order
        for label, bin_path, sb, home in order:
            got = tool_runs(bin_path, label, d, os.path.join(d, sb), os.path.join(d, home))
            if label == "tool":
                first, kube_a, repo_a = got
        b, kube_b, repo_b = start_sandbox(os.path.join(d, "b"))
        try:
            script = shell_script(first, [kube_a, repo_a], [kube_b, repo_b], d)
            processes["shell: the same helm commands"] = [
                " ".join(argv[:2]) for _, argv in first if argv[:1] != ["version"]]
            shell_env = dict(os.environ, **helm_homes(os.path.join(d, "home-shell")))
            samples["shell: the same helm commands"].append(timed(["sh", script], shell_env))
        finally:
            stop(b)
        shutil.rmtree(d)

base = statistics.median(samples["shell: the same helm commands"])
print(f"| command | median wall (ms, {RUNS} runs) | ratio to the shell | helm processes |")
print("|---|---|---|---|")
for label, ts in samples.items():
    m = statistics.median(ts)
    print(f"| {label} | {m:.0f} | {m / base:.2f} | {len(processes[label])}: {', '.join(processes[label])} |")
