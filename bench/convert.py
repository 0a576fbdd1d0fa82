"""Benchmark: native registry conversion of ~1 GB of app zips (mostly stored and deflated binary
assets, one .app.conf each naming a ClearML image), beside `cp` of the same files and a
straightforward Python zipfile rewrite (read every entry, write a new zip, replace it), each
measured as a whole process with its peak memory, on fresh copies of the same input.

Three `cp` rows: into a new directory (nothing is replaced); over the existing files (the
filesystem frees the old blocks as the conversion's replacement does); and the conversion's own
way of replacing (copy beside, rename over, sync), which is the like-for-like comparison.

    cargo build --release && python3 bench/convert.py      (SIZE_MB=1024 APPS=20 RUNS=7)

BEFORE_BIN=path/to/an/older/clearml-script adds its conversion as a row of its own, interleaved
with the others (a before/after comparison measured in the same run).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/release/clearml-script")
SIZE_MB = int(os.environ.get("SIZE_MB", "1024"))
APPS = int(os.environ.get("APPS", "20"))
RUNS = int(os.environ.get("RUNS", "7"))
BEFORE_BIN = os.environ.get("BEFORE_BIN")

PY_REWRITE = r'''
import os, re, shutil, sys, zipfile
d, target = sys.argv[1], sys.argv[2]
pat = re.compile(r"(?:docker\.io/)?allegroai/[a-z0-9][a-z0-9._-]*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?")
for name in sorted(os.listdir(d)):
    if not name.endswith(".zip"):
        continue
    src = os.path.join(d, name)
    tmp = src + ".tmp"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".app.conf"):
                text = data.decode()
                data = pat.sub(lambda m: target + (":" + m.group(0).split(":", 1)[1] if ":" in m.group(0) else ""), text).encode()
            zout.writestr(info, data, compress_type=info.compress_type)
    os.replace(tmp, src)
'''


def make_input(d):
    per_app = SIZE_MB * 1024 * 1024 // APPS
    for i in range(APPS):
        with zipfile.ZipFile(os.path.join(d, f"app{i:02d}.zip"), "w") as z:
            z.writestr(zipfile.ZipInfo(f"app{i:02d}.app.conf"),
                       f'id: "app{i}"\ntask {{ container {{ image: "allegroai/clearml-apps:hpo-1.10.0-{i}" }} }}\n',
                       compress_type=zipfile.ZIP_DEFLATED)
            z.writestr(zipfile.ZipInfo("assets/weights.bin"), os.urandom(per_app // 2), compress_type=zipfile.ZIP_STORED)
            z.writestr(zipfile.ZipInfo("assets/data.bin"), os.urandom(per_app // 2), compress_type=zipfile.ZIP_DEFLATED)


def main():
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as d:
        src = os.path.join(d, "input")
        os.makedirs(src)
        make_input(src)
        size = sum(os.path.getsize(os.path.join(src, f)) for f in os.listdir(src))
        playbook = os.path.join(d, "convert.rhai")
        with open(playbook, "w") as f:
            f.write('convert_registry("work", "registry.local:5000/clearml-apps");\n')
        rows = {
            "cp -r (copy the zips)": [],
            "cp over the existing zips": [],
            "cp beside + mv over + sync (the same replacement)": [],
            "clearml-script convert_registry (native)": [],
            **({"clearml-script convert_registry (native, BEFORE_BIN)": []} if BEFORE_BIN else {}),
            "python3 zipfile rewrite": [],
        }
        replace = ('for f in "$0"/*.zip; do b=$(basename "$f"); cp "$f" "$1/.$b.tmp" && mv -f "$1/.$b.tmp" "$1/$b"; done; sync')
        work = os.path.join(d, "work")
        for _ in range(RUNS):
            for label in rows:
                shutil.rmtree(work, ignore_errors=True)
                if label.startswith("cp -r"):
                    ms, mib = harness.run_once(["cp", "-r", src, work])
                elif label.startswith("cp over"):
                    shutil.copytree(src, work)
                    subprocess.run(["sync"], check=True)
                    ms, mib = harness.run_once(["sh", "-c", 'cp -f "$0"/*.zip "$1"/', src, work])
                elif label.startswith("cp beside"):
                    shutil.copytree(src, work)
                    subprocess.run(["sync"], check=True)
                    ms, mib = harness.run_once(["sh", "-c", replace, src, work])
                else:
                    shutil.copytree(src, work)
                    subprocess.run(["sync"], check=True)
                    if label.endswith("(BEFORE_BIN)"):
                        ms, mib = harness.run_once([BEFORE_BIN, playbook], cwd=d)
                    elif label.startswith("clearml"):
                        ms, mib = harness.run_once([BIN, playbook], cwd=d)
                    else:
                        ms, mib = harness.run_once([sys.executable, "-c", PY_REWRITE, work, "registry.local:5000/clearml-apps"])
                rows[label].append((ms, mib))
        import statistics
        base = statistics.median(ms for ms, _ in rows["cp beside + mv over + sync (the same replacement)"])
        print(f"input: {APPS} app zips, {size / 1024 / 1024:.0f} MiB; load average {os.getloadavg()[0]:.1f} at the end")
        print(f"| command | median wall (ms, {RUNS} runs) | throughput (MiB/s) | ratio to cp beside + mv + sync | median peak RSS (MiB) |")
        print("|---|---|---|---|---|")
        for label, samples in rows.items():
            ms = statistics.median(s[0] for s in samples)
            mib = statistics.median(s[1] for s in samples)
            print(f"| {label} | {ms:.0f} | {size / 1024 / 1024 / (ms / 1000):.0f} | {ms / base:.2f} | {mib:.1f} |")


if __name__ == "__main__":
    main()
