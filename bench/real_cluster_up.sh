#!/usr/bin/env bash
# The cached start of tools/real-cluster: RUNS (default 5) cycles of `up DIR` (until /readyz and
# kwok made the node Ready) and `down DIR`, each timed; prints every time and the median.
# Needs a built cache (tools/real-cluster build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs="${RUNS:-5}"
dir="$(mktemp -d)"
trap '"$root/tools/real-cluster" down "$dir/rc" >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$root/tools/real-cluster" build >/dev/null
ups=() downs=()
for i in $(seq 1 "$runs"); do
  t0=$(date +%s.%N)
  "$root/tools/real-cluster" up "$dir/rc" >/dev/null
  t1=$(date +%s.%N)
  "$root/tools/real-cluster" down "$dir/rc"
  t2=$(date +%s.%N)
  rm -rf "$dir/rc"
  ups+=("$(awk -v a="$t1" -v b="$t0" 'BEGIN {printf "%.2f", a - b}')")
  downs+=("$(awk -v a="$t2" -v b="$t1" 'BEGIN {printf "%.2f", a - b}')")
  echo "run $i: up ${ups[-1]} s, down ${downs[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "median up: $(median "${ups[@]}") s, median down: $(median "${downs[@]}") s ($runs runs)"
