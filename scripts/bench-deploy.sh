#!/usr/bin/env bash
# Benchmark of one v1 <-> v2 switch of the shop's web service, measured side by side in one run:
#
#   floor    bare `docker compose up -d --wait` of the same change (an override pins the image)
#   shell    the same job with the official tools: `pact broker can-i-deploy`, `docker compose
#            up -d --wait`, a curl smoke check, `pact broker record-deployment`
#   c2quay   `c2quay deploy` (gate, pull policy never, up, own readiness, smoke, verify, record,
#            snapshots, report)
#
# The three take turns on the same Compose project, each switching from whatever runs now to
# the other version, so every tool does as many 1->2 as 2->1 switches. Prints the median of each
# and the ratios, then the time from a readiness failure to the old version healthy again
# (c2quay's rollback step). Usage: bash scripts/bench-deploy.sh [RUNS] (default 5, at most 20).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-5}
# C2QUAY_BENCH_WRAP: a command prefix for the c2quay runs, for profiling (e.g. "strace -f -c -o FILE").
wrap=${C2QUAY_BENCH_WRAP:-}
[ "$runs" -gt 20 ] && runs=20
export PATH="/usr/local/bin:$HOME/.cargo/bin:$PATH"

cargo build --quiet --release --workspace --bins
bin="$root/target/release"
work=$(mktemp -d /tmp/c2quay-bench.XXXXXX)
project="c2qbench$$"
broker_port=$((20000 + RANDOM % 10000))
web_port=$((30000 + RANDOM % 10000))
broker="http://127.0.0.1:$broker_port"

cleanup() {
  [ -f "$work/emulator.pid" ] && kill "$(cat "$work/emulator.pid")" 2>/dev/null || true
  docker compose -p "$project" --project-directory "$work/shop" -f "$work/shop/compose.yaml" down >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/shop" "$work/desired" "$work/state"
chmod 700 "$work/state"
cat > "$work/shop/compose.yaml" <<EOF
services:
  web:
    image: c2quay-test/web:1
    pull_policy: never
    init: true
    stop_grace_period: 3s
    ports: ["127.0.0.1:$web_port:8080"]
EOF
cat > "$work/seed.yaml" <<'EOF'
environments: [{ name: bench, production: false }]
versions:
  - { pacticipant: shop-web, version: "1" }
  - { pacticipant: shop-web, version: "2" }
EOF
"$bin/c2quay-broker-emulator" --listen "127.0.0.1:$broker_port" --seed "$work/seed.yaml" > "$work/emulator.log" 2>&1 &
echo $! > "$work/emulator.pid"
for _ in $(seq 1 50); do curl -fsS "$broker/" >/dev/null 2>&1 && break; sleep 0.1; done

manifest() { # VERSION IMAGE_TAG
  cat > "$work/desired/bench.yaml" <<EOF
apiVersion: c2quay.dev/v1
kind: Environment
metadata: { name: bench }
spec:
  compose: { project: $project, directory: $work/shop, waitTimeout: 30s, pull: never }
  broker: { url: "$broker", environment: bench }
  services:
    web: { pacticipant: shop-web, version: "$1", image: "c2quay-test/web:$2" }
  smoke:
    - name: web answers
      http: { url: "http://127.0.0.1:$web_port/", bodyContains: "version $1" }
      attempts: 10
      interval: 200ms
  policy: { rollback: "on" }
EOF
}
compose() { docker compose -p "$project" --project-directory "$work/shop" -f "$work/shop/compose.yaml" "$@"; }
pin() { printf 'services:\n  web:\n    image: c2quay-test/web:%s\n' "$1" > "$work/pin.yaml"; }
now_ms() { date +%s%3N; }
current=1
other() { if [ "$current" = 1 ]; then echo 2; else echo 1; fi; }

run_floor() {
  local v; v=$(other); pin "$v"
  compose -f "$work/pin.yaml" up -d --wait --pull never web >/dev/null 2>&1
  current=$v
}
run_shell() {
  local v; v=$(other); pin "$v"
  pact broker can-i-deploy -b "$broker" --pacticipant shop-web --version "$v" --to-environment bench >/dev/null
  compose -f "$work/pin.yaml" up -d --wait --pull never web >/dev/null 2>&1
  curl -fsS "http://127.0.0.1:$web_port/" | grep -q "version $v"
  pact broker record-deployment -b "$broker" --pacticipant shop-web --version "$v" --environment bench >/dev/null
  current=$v
}
run_c2quay() {
  local v; v=$(other); manifest "$v" "$v"
  $wrap "$bin/c2quay" deploy bench --desired "$work/desired" --state-dir "$work/state" -o json \
    >"$work/report-$((++c2q_runs)).json" 2>"$work/c2quay.err" \
    || { cat "$work/c2quay.err" >&2; exit 1; }
  current=$v
}
c2q_runs=0

echo "warming up (first up creates the network)"
manifest 1 1
"$bin/c2quay" deploy bench --desired "$work/desired" --state-dir "$work/state" >/dev/null 2>"$work/c2quay.err" || { cat "$work/c2quay.err" >&2; exit 1; }
current=1

declare -a floor shell c2q
for ((i = 0; i < runs; i++)); do
  for tool in floor shell c2quay; do
    t0=$(now_ms); "run_$tool"; t1=$(now_ms)
    case $tool in
      floor) floor+=($((t1 - t0))) ;;
      shell) shell+=($((t1 - t0))) ;;
      c2quay) c2q+=($((t1 - t0))) ;;
    esac
  done
  echo "run $((i + 1))/$runs: floor ${floor[-1]} ms, shell ${shell[-1]} ms, c2quay ${c2q[-1]} ms"
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }
mf=$(median "${floor[@]}"); ms=$(median "${shell[@]}"); mc=$(median "${c2q[@]}")
echo
echo "median of $runs switches (ms):  floor $mf   shell pipeline $ms   c2quay deploy $mc"
awk -v f="$mf" -v s="$ms" -v c="$mc" 'BEGIN { printf "c2quay / floor = %.2fx   c2quay / shell = %.2fx   shell / floor = %.2fx\n", c / f, c / s, s / f }'

# Where c2quay's time goes: the median of each step over the runs (from the deploy reports).
python3 - "$work" "$mc" <<'PY'
import glob, json, statistics, sys
steps = {}
for path in sorted(glob.glob(sys.argv[1] + "/report-*.json")):
    for s in json.load(open(path))["steps"]:
        steps.setdefault(s["step"], []).append(s["millis"])
parts = ", ".join("%s %d" % (k, statistics.median(v)) for k, v in steps.items())
total = sum(statistics.median(v) for v in steps.values())
print("c2quay steps (median ms): %s; outside the steps (process start, lock, files): %d"
      % (parts, int(sys.argv[2]) - total))
PY

echo
echo "rollback: deploying an image that never becomes healthy (waitTimeout 10s)"
v=$(other)
sed -i "s/waitTimeout: 30s/waitTimeout: 10s/" "$work/desired/bench.yaml"
manifest "$v" unhealthy
sed -i "s/waitTimeout: 30s/waitTimeout: 10s/" "$work/desired/bench.yaml"
set +e
"$bin/c2quay" deploy bench --desired "$work/desired" --state-dir "$work/state" -o json > "$work/rollback.json" 2>/dev/null
code=$?
set -e
python3 - "$work/rollback.json" "$code" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
steps = {s["step"]: s for s in report["steps"]}
print("exit code %s, outcome %s" % (sys.argv[2], report["outcome"]["outcome"]))
print("readiness waited %d ms before failing; rollback (up + readiness of the old image) took %d ms"
      % (steps["readiness"]["millis"], steps["rollback"]["millis"]))
EOF
