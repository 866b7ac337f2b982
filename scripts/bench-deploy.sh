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
# the other version, so every tool does as many 1->2 as 2->1 switches. Each switch is measured
# three ways:
#
#   wall     $EPOCHREALTIME around the run
#   CPU      user + sys of the whole process tree, children included: the run is a subshell that
#            ends with bash's `times` (its own time and that of every process it waited for:
#            `docker`, the compose plugin, curl, pact and their own children; not the daemon's)
#   engine   the engine's own time for the change, from a `docker events` stream (filtered on
#            the project's label) started before the first switch: the switch's first container
#            event (`create` of the new container, or `kill`/`stop`/`die` of the old) to the new
#            container's `health_status: healthy` (the web service declares a healthcheck:
#            busybox wget of /healthz every 1 s, as the image's own)
#
# Prints the median of each and the ratios, a summary table of issue 16's deploy figures
# (c2quay CPU / floor CPU, target at most 2x; c2quay wall / engine time, target at most 1.10x,
# with the floor's own ratio beside it), then the time from a readiness failure to the old
# version healthy again (c2quay's rollback step).
# Usage: bash scripts/bench-deploy.sh [RUNS] (default 5, at most 20).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${1:-5}
# C2QUAY_BENCH_WRAP: a command prefix for the c2quay runs, for profiling (e.g. "strace -f -c -o FILE").
wrap=${C2QUAY_BENCH_WRAP:-}
[ "$runs" -gt 20 ] && runs=20
export PATH="/usr/local/bin:$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"

cargo build --quiet --release --workspace --bins
bin="$root/target/release"
work=$(mktemp -d /tmp/c2quay-bench.XXXXXX)
project="c2qbench$$"
broker_port=$((20000 + RANDOM % 10000))
web_port=$((30000 + RANDOM % 10000))
broker="http://127.0.0.1:$broker_port"

events_pid=""
cleanup() {
  [ -n "$events_pid" ] && kill "$events_pid" 2>/dev/null || true
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
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
      interval: 1s
      timeout: 2s
      start_period: 1s
      retries: 2
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
current=1

# One switch to VERSION each, run in a subshell by measure.
run_floor() { # VERSION RUN
  pin "$1"
  compose -f "$work/pin.yaml" up -d --wait --pull never web >/dev/null 2>&1
}
run_shell() { # VERSION RUN
  pin "$1"
  pact broker can-i-deploy -b "$broker" --pacticipant shop-web --version "$1" --to-environment bench >/dev/null
  compose -f "$work/pin.yaml" up -d --wait --pull never web >/dev/null 2>&1
  curl -fsS "http://127.0.0.1:$web_port/" | grep -q "version $1"
  pact broker record-deployment -b "$broker" --pacticipant shop-web --version "$1" --environment bench >/dev/null
}
run_c2quay() { # VERSION RUN
  manifest "$1" "$1"
  $wrap "$bin/c2quay" deploy bench --desired "$work/desired" --state-dir "$work/state" -o json \
    >"$work/report-$2.json" 2>"$work/c2quay.err" \
    || { cat "$work/c2quay.err" >&2; exit 1; }
}

# Runs TOOL's switch to the other version in a subshell that ends with `times`, and appends
# "TOOL RUN T0 T1 WALL_MS CPU_MS" to switches.txt.
measure() { # TOOL RUN
  local v=$((3 - current)) t0 t1
  t0=$EPOCHREALTIME
  ( "run_$1" "$v" "$2"; times ) > "$work/times.txt"
  t1=$EPOCHREALTIME
  current=$v
  echo "$1 $2 $t0 $t1 $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", (b - a) * 1000 + 0.5 }') $(times_ms "$work/times.txt")" \
    >> "$work/switches.txt"
}

echo "warming up (first up creates the network)"
manifest 1 1
"$bin/c2quay" deploy bench --desired "$work/desired" --state-dir "$work/state" >/dev/null 2>"$work/c2quay.err" || { cat "$work/c2quay.err" >&2; exit 1; }
current=1

# The engine's side: the project's container events from now on (--since also replays what the
# daemon saw before the stream was attached). Exec events (the healthchecks) are left out.
docker events --since "$EPOCHREALTIME" --filter "label=com.docker.compose.project=$project" \
  --filter type=container --filter event=create --filter event=start --filter event=kill \
  --filter event=stop --filter event=die --filter event=destroy --filter event=health_status \
  --format '{{json .}}' > "$work/events.jsonl" 2> "$work/events.err" &
events_pid=$!

: > "$work/switches.txt"
for ((i = 1; i <= runs; i++)); do
  for tool in floor shell c2quay; do measure "$tool" "$i"; done
  tail -3 "$work/switches.txt" | awk -v i="$i" -v n="$runs" '{ w[$1] = $5; c[$1] = $6 }
    END { printf "run %d/%d (wall, cpu ms): floor %d, %d   shell %d, %d   c2quay %d, %d\n",
          i, n, w["floor"], c["floor"], w["shell"], c["shell"], w["c2quay"], c["c2quay"] }'
done
sleep 1 # the last events reach the stream
kill "$events_pid" 2>/dev/null || true
wait "$events_pid" 2>/dev/null || true
events_pid=""

python3 - "$work" <<'EOF'
import glob, json, statistics, sys
work = sys.argv[1]
events = []
for line in open(work + "/events.jsonl"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    events.append((int(e["timeNano"]) / 1e9, e.get("Action") or e.get("status") or "", e.get("id")))
events.sort()
switches = {}
for line in open(work + "/switches.txt"):
    tool, run, t0, t1, wall, cpu = line.split()
    t0, t1 = float(t0), float(t1)
    window = [e for e in events if t0 <= e[0] <= t1]
    # The recreate starts with its first container event (compose creates the new container,
    # then stops and removes the old one); it ends when the new container is healthy.
    changes = [e for e in window if not e[1].startswith("health_status")]
    created = {e[2] for e in window if e[1] == "create"}
    healthy = [e for e in window if e[1] == "health_status: healthy" and (e[2] in created or not created)]
    row = {"wall": int(wall), "cpu": int(cpu), "engine": None, "before": None, "after": None}
    if changes and healthy and healthy[0][0] >= changes[0][0]:
        row["engine"] = (healthy[0][0] - changes[0][0]) * 1000
        row["before"] = (changes[0][0] - t0) * 1000
        row["after"] = (t1 - healthy[0][0]) * 1000
    switches.setdefault(tool, []).append(row)
med = lambda xs: statistics.median(xs) if xs else float("nan")
out = {}
print()
print(f"median of {len(switches['c2quay'])} switches (ms)       wall    cpu  engine  before 1st event  after healthy  wall/engine")
for tool, label in (("floor", "floor: docker compose up --wait"), ("shell", "shell: pact + compose + curl"),
                    ("c2quay", "c2quay deploy")):
    rows = switches[tool]
    traced = [r for r in rows if r["engine"]]
    m = {k: med([r[k] for r in rows]) for k in ("wall", "cpu")}
    m.update({k: med([r[k] for r in traced]) for k in ("engine", "before", "after")})
    m["ratio"] = med([r["wall"] / r["engine"] for r in traced])
    out[tool] = m
    missing = len(rows) - len(traced)
    print(f"  {label:<31} {m['wall']:>5.0f} {m['cpu']:>6.0f} {m['engine']:>7.0f} {m['before']:>17.0f} "
          f"{m['after']:>14.0f} {m['ratio']:>11.2f}x"
          + (f"  ({missing} switches without a full event trace)" if missing else ""))
f, sh, c = out["floor"], out["shell"], out["c2quay"]
print(f"c2quay / floor: wall {c['wall'] / f['wall']:.2f}x, cpu {c['cpu'] / f['cpu']:.2f}x   "
      f"c2quay / shell: wall {c['wall'] / sh['wall']:.2f}x, cpu {c['cpu'] / sh['cpu']:.2f}x   "
      f"shell / floor: wall {sh['wall'] / f['wall']:.2f}x, cpu {sh['cpu'] / f['cpu']:.2f}x")
print("  engine: the switch's first container event to the new container's health_status: healthy (docker events)")
print("  cpu: user+sys of the run's whole process tree (bash `times` of its subshell, children it waited for included)")
print("  wall/engine: median of the per-switch ratios")
steps = {}
for path in sorted(glob.glob(work + "/report-*.json")):
    for s in json.load(open(path))["steps"]:
        steps.setdefault(s["step"], []).append(s["millis"])
parts = ", ".join("%s %d" % (k, statistics.median(v)) for k, v in steps.items())
total = sum(statistics.median(v) for v in steps.values())
print("c2quay steps (median ms): %s; outside the steps (process start, lock, files): %d" % (parts, c["wall"] - total))
with open(work + "/figures.txt", "w") as fig:
    fig.write(f"{c['cpu']:.0f} {f['cpu']:.0f} {c['wall']:.0f} {c['engine']:.0f} {c['ratio']:.2f} "
              f"{f['wall']:.0f} {f['engine']:.0f} {f['ratio']:.2f}\n")
EOF

read -r c_cpu f_cpu c_wall c_engine c_ratio f_wall f_engine f_ratio < "$work/figures.txt"
table="$work/table.tsv"
: > "$table"
figure_row "$table" "deploy CPU, process tree (ms)" "$c_cpu" "$f_cpu (bare compose up --wait)" \
  "$(awk -v a="$c_cpu" -v b="$f_cpu" 'BEGIN { printf "%.2f", a / b }')x" "<= 2x" 2
figure_row "$table" "deploy wall vs engine time (ms)" "$c_wall" "$c_engine (engine, same switches)" \
  "${c_ratio}x" "<= 1.10x" 1.10
figure_row "$table" "  bare compose wall vs engine (ms)" "$f_wall (floor)" "$f_engine (engine, same switches)" \
  "${f_ratio}x" "(reference)" none
print_summary "$table" "issue 16, deploy figures (medians of $runs switches each, measured side by side in this run)"

echo
echo "rollback: deploying an image that never becomes healthy (waitTimeout 10s)"
v=$((3 - current))
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
