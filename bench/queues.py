"""Benchmark: creating 1,000 queues through the ClearML API simulator.

Whole-process time of `clearml-script create-queue.rhai` with a site of 1,000 queues against
`clearml-script sandbox`, and the requests it sent per queue (read from the simulator's
counters); beside a straightforward Python equivalent (urllib: the same anchored look-up, then
create) against the same simulator, and a second run of the tool, when every queue exists.

    cargo build --release && python3 bench/queues.py
"""

import base64
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("BIN", os.path.join(ROOT, "target/release/clearml-script"))
N = int(os.environ.get("QUEUES", "1000"))
RUNS = int(os.environ.get("RUNS", "5"))

PY_EQUIVALENT = r'''
import base64, json, re, sys, urllib.request
url, key, secret, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
def call(ep, body):
    req = urllib.request.Request(f"{url}/{ep}", data=json.dumps(body).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["data"]
for i in range(n):
    name = f"{prefix}-{i:04d}"
    found = [q for q in call("queues.get_all", {"name": "^" + re.escape(name) + "$", "only_fields": ["id", "name"]})["queues"] if q["name"] == name]
    if not found:
        call("queues.create", {"name": name})
'''

# the minimal client: list every queue once (paged, id and name only), then create the missing
PY_LIST_ONCE = r'''
import base64, json, sys, urllib.request
url, key, secret, prefix, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
auth = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
def call(ep, body):
    req = urllib.request.Request(f"{url}/{ep}", data=json.dumps(body).encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)["data"]
have, page = set(), 0
while True:
    qs = call("queues.get_all", {"only_fields": ["id", "name"], "page": page, "page_size": 500})["queues"]
    known = len(have)
    have.update(q["name"] for q in qs)
    if len(qs) < 500 or len(have) == known:  # (a server without paging answers all at once)
        break
    page += 1
for i in range(n):
    name = f"{prefix}-{i:04d}"
    if name not in have:
        call("queues.create", {"name": name})
'''


def requests(api):
    # the counters need valid credentials, like every endpoint of the simulator
    auth = "Basic " + base64.b64encode(f"{CREDS[0]}:{CREDS[1]}".encode()).decode()
    req = urllib.request.Request(f"{api}/_sandbox/requests", headers={"Authorization": auth})
    with urllib.request.urlopen(req) as r:
        return sum(json.load(r).values())


CREDS = ("", "")


def timed(cmd, env=None):
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return (time.perf_counter() - start) * 1000.0


with tempfile.TemporaryDirectory() as d:
    sandbox = subprocess.Popen([BIN, "sandbox", "--dir", d], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [sandbox.stdout.readline() for _ in range(4)]
        if not lines[0].startswith("kubeconfig: "):
            raise SystemExit(f"the sandbox did not start: {lines[0]!r}")
        creds = json.load(open(os.path.join(d, "clearml-credentials.json")))
        api, key, secret = creds["api_url"], creds["access_key"], creds["secret_key"]
        CREDS = (key, secret)
        rows = {"clearml-script (new queues)": [], "python3 urllib (new queues)": [], "python3 list once, then create (new queues)": [], "clearml-script (all exist)": []}
        per_queue = {}
        for run in range(RUNS):
            site = os.path.join(d, f"site-{run}.yaml")
            with open(site, "w") as f:
                f.write("base_domain: bench.example.com\ndockerhub_token: unused-token\n")
                f.write(f"agent:\n  api_url: {api}\n  key: {key}\n  secret: {secret}\n  queues:\n")
                for i in range(N):
                    f.write(f"    - {{name: tool{run}-{i:04d}}}\n")
            cmd = [BIN, "create-queue.rhai", "--values", site]
            before = requests(api)
            rows["clearml-script (new queues)"].append(timed(cmd))
            per_queue.setdefault("clearml-script (new queues)", (requests(api) - before) / N)
            before = requests(api)
            rows["clearml-script (all exist)"].append(timed(cmd))
            per_queue.setdefault("clearml-script (all exist)", (requests(api) - before) / N)
            before = requests(api)
            rows["python3 urllib (new queues)"].append(timed([sys.executable, "-c", PY_EQUIVALENT, api, key, secret, f"py{run}", str(N)]))
            per_queue.setdefault("python3 urllib (new queues)", (requests(api) - before) / N)
            before = requests(api)
            rows["python3 list once, then create (new queues)"].append(timed([sys.executable, "-c", PY_LIST_ONCE, api, key, secret, f"pl{run}", str(N)]))
            per_queue.setdefault("python3 list once, then create (new queues)", (requests(api) - before) / N)
        base = statistics.median(rows["python3 list once, then create (new queues)"])
        print(f"| command ({N} queues) | median wall (ms, {RUNS} runs) | ratio to python3 list once | requests per queue | requests in all |")
        print("|---|---|---|---|---|")
        for label, times in rows.items():
            m = statistics.median(times)
            print(f"| {label} | {m:.0f} | {m / base:.2f} | {per_queue[label]:.3f} | {per_queue[label] * N:.0f} |")
    finally:
        sandbox.send_signal(signal.SIGINT)
        sandbox.wait(timeout=10)
