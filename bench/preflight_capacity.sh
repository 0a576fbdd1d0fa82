#!/usr/bin/env bash
# The preflight with its capacity rendered from the charts, beside the same preflight with
# preflight.requests given (nothing rendered), interleaved, against --sandbox.
#   HELM_BIN=.tools/helm/v3.17.3/helm bench/preflight_capacity.sh [RUNS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$repo/target/debug/clearml-script}
runs=${1:-5}
for _ in $(seq "$runs"); do
  for mode in rendered given; do
    extra=()
    if [ "$mode" = given ]; then
      extra=(--set-string preflight.requests.cpu=4 --set-string preflight.requests.memory=16Gi)
    fi
    start=$(date +%s.%N)
    nice -n 10 "$bin" preflight.rhai --sandbox --values "$repo/examples/site.yaml" \
      --values "$repo/examples/site-gpu.yaml" --set 'preflight.skip=hosts\,sources' \
      "${extra[@]}" >/dev/null 2>&1
    end=$(date +%s.%N)
    echo "$mode $(echo "$end - $start" | bc)"
  done
done
