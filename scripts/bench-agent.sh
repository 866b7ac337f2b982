#!/usr/bin/env bash
# Benchmark of the agent at rest (issue 4), measured side by side in one run against a real
# Docker engine and the broker emulator:
#
#   idle      RSS and CPU of a release-built `c2quay agent` watching 50 converged environments,
#             over C2QUAY_BENCH_IDLE_SECONDS (default 60) with the default resync (60s)
#   resync    the cost of one no-op resync with 10, 50 and 200 converged environments: wall time,
#             processes spawned and broker requests (the goal: a constant number of processes,
#             zero broker requests), averaged over C2QUAY_BENCH_RESYNC_CYCLES (default 3) cycles
#             of --resync 5s
#   latency   time from a manifest write to the start of its reconcile, minus the debounce,
#             over C2QUAY_BENCH_LATENCY_WRITES (default 20) writes, median and p95
#
# Every environment is a real Compose project (`c2qbench-<pid>-NNN`) with one `c2quay-test/web:1`
# service (`init: true`, `network_mode: bridge` so 200 projects need no 200 networks, one
# 127.0.0.1 port, an HTTP smoke check), gated by the emulator (one pacticipant per environment,
# deployable), deployed and Ready through the agent itself. The image's healthcheck (every 1 s)
# is disabled: 200 of them are 200 `docker exec` a second, which saturate a 2-core host and make
# health flap, and every flap is a container event that the agent rightly reconciles. The sets
# grow in place (the 50 include the 10, the 200 the 50), so 200 deploys in all; the containers
# are removed on exit.
#
# How it measures, from outside the agent:
#   - RSS: VmRSS of the agent and of ALL its descendants (every process whose parent chain in
#     /proc leads to the agent, e.g. a long-running `docker events`), at the end of the window;
#     the figure is their total and the number of descendants.
#   - CPU: utime+stime from /proc/PID/stat; children = reaped (cutime+cstime) + live children.
#   - Resync: once converged, the agent is restarted under
#     `strace -f --seccomp-bpf -e trace=execve,openat,exit_group` (only these calls stop, so the
#     overhead stays small, but it is included). Between resyncs
#     an idle agent makes none of them, so each burst of calls in the window is one piece of
#     work, and a burst that reloads the desired directory or reads the state directory (a
#     resync reads every manifest and status file) or runs `docker ps` is a resync, whether or
#     not it spawns anything: its wall time is first to last call,
#     "in docker" the time a process it spawned was alive, its processes the successful execve
#     calls (agent children and their own children). Broker requests: the emulator's request
#     log and the agent's `c2quay_broker_requests_total`, read before and after the window.
#     Reconciles logged in the window are counted: a window with any is measured again.
#   - Latency: JSON logs (`--log-format json`, RUST_LOG=info,c2quay=debug); the write time is
#     bash's $EPOCHREALTIME just before the write. Three marks after each write, minus the
#     debounce: the debouncer fired ("desired directory events"), the reconcile was queued and
#     started ("desired directory changed", logged just before the main loop spawns it), and the
#     reconcile planned ("plan", after it observed the project (`docker ps` + `inspect`)). The change is service-neutral
#     (waitTimeout 20s <-> 21s), so each reconcile is a Noop.
#
# Usage: bash scripts/bench-agent.sh
# Environment: C2QUAY_BENCH_SIZES (default "10 50 200", ascending; the idle and latency figures
# use 50, or the largest size below it), C2QUAY_BENCH_IDLE_SECONDS, C2QUAY_BENCH_RESYNC_CYCLES,
# C2QUAY_BENCH_LATENCY_WRITES, C2QUAY_BENCH_KEEP_LOGS (a directory to copy the agent's logs and
# strace output to). Ends with a summary table of issue 16's agent figures (idle RSS of the
# whole tree with 50 environments < 20 MiB and 0 children; no-op resync of 200 environments
# < 100 ms and 0 processes; with smaller sizes the resync row shows the largest size measured).
# Takes about 5 to 8 minutes on a busy 2-core machine, most of it the 200
# deploys; C2QUAY_BENCH_SIZES="10 50" takes about 3.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="/usr/local/bin:$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"

read -r -a sizes <<< "${C2QUAY_BENCH_SIZES:-10 50 200}"
idle_seconds=${C2QUAY_BENCH_IDLE_SECONDS:-60}
resync_cycles=${C2QUAY_BENCH_RESYNC_CYCLES:-3}
latency_writes=${C2QUAY_BENCH_LATENCY_WRITES:-20}
idle_size=50
resync_seconds=5
debounce_ms=500
parallel=8
max_size=${sizes[-1]}
for n in "${sizes[@]}"; do [ "$n" -le 50 ] && idle_size=$n; done

command -v strace >/dev/null || { echo "strace is missing: apt-get install strace" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "docker is not reachable: bash scripts/test-world.sh" >&2; exit 1; }
docker image inspect c2quay-test/web:1 >/dev/null 2>&1 \
  || { echo "image c2quay-test/web:1 is missing: bash scripts/test-world.sh" >&2; exit 1; }

echo "building (release)"
cargo build --quiet --release -p c2quay -p c2quay-broker-emulator
bin="$root/target/release"
agent_bin="$bin/c2quay"
# An older c2quay binary to measure the no-op resync against, side by side in this run
# (alternating rounds on the same environments), e.g. one built from the commit before a change:
#   git worktree add /tmp/base <rev> && cargo build --release --manifest-path /tmp/base/Cargo.toml
#   C2QUAY_BENCH_BASELINE_BIN=/tmp/base/target/release/c2quay bash scripts/bench-agent.sh
# C2QUAY_BENCH_BASELINE_ROUNDS (default 2) alternating rounds of each binary.
baseline_bin=${C2QUAY_BENCH_BASELINE_BIN:-}
baseline_rounds=${C2QUAY_BENCH_BASELINE_ROUNDS:-2}
[ -z "$baseline_bin" ] || [ -x "$baseline_bin" ] || { echo "C2QUAY_BENCH_BASELINE_BIN is not an executable: $baseline_bin" >&2; exit 1; }
work=$(mktemp -d /tmp/c2quay-bench-agent.XXXXXX)
prefix="c2qbench-$$"
desired="$work/desired"
state="$work/state"
mkdir -p "$desired" "$state" "$work/compose" "$work/manifests"
chmod 700 "$state"

agent_pid=""
tracer_pid=""
emulator_pid=""

# Stops the agent started by start_agent: SIGTERM, then SIGKILL after 15 s.
stop_agent() {
  if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
    kill -TERM "$agent_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$agent_pid" 2>/dev/null || true
  fi
  if [ -n "$tracer_pid" ]; then
    # strace ends with its last tracee; one that hangs (it happened once, under heavy load) is
    # killed, which lets the tracees it held stopped run on and exit.
    for _ in $(seq 1 50); do kill -0 "$tracer_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$tracer_pid" 2>/dev/null || true
    wait "$tracer_pid" 2>/dev/null || true
  fi
  [ -n "$agent_pid" ] && { wait "$agent_pid" 2>/dev/null || true; }
  agent_pid=""
  tracer_pid=""
}

cleanup() {
  set +e
  stop_agent
  if [ -n "${C2QUAY_BENCH_KEEP_LOGS:-}" ]; then
    mkdir -p "$C2QUAY_BENCH_KEEP_LOGS" && cp "$work"/*.log* "$work"/*.txt "$C2QUAY_BENCH_KEEP_LOGS"/ 2>/dev/null
  fi
  [ -n "$emulator_pid" ] && kill "$emulator_pid" 2>/dev/null && wait "$emulator_pid" 2>/dev/null
  local ids
  ids=$(timeout 60 docker ps -a --format '{{.ID}} {{.Label "com.docker.compose.project"}}' | awk -v p="$prefix-" 'index($2, p) == 1 { print $1 }')
  if [ -n "$ids" ]; then
    echo "removing $(echo "$ids" | wc -l) bench containers"
    # shellcheck disable=SC2086
    timeout 180 docker rm -f $ids >/dev/null 2>&1
  fi
  docker network ls --format '{{.Name}}' | grep "^$prefix-" | xargs -r timeout 60 docker network rm >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# COUNT free 127.0.0.1 ports below the kernel's ephemeral range (so no outgoing connection or
# `bind(0)` of another program takes one during the minutes the bench holds them), from a
# random start, skipping the ports the project reserves.
free_ports() {
  python3 - "$1" <<'EOF'
import random, socket, sys
count = int(sys.argv[1])
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
reserved = {9292, 9464, 18080, 18081}
port, found = random.randint(10000, max(10001, low - 3 * count)), []
while len(found) < count and port < low:
    if port not in reserved:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                found.append(port)
            except OSError:
                pass
    port += 1
if len(found) < count:
    sys.exit(f"only {len(found)} free ports below {low}")
print(" ".join(map(str, found)))
EOF
}
read -r -a ports <<< "$(free_ports $((max_size + 2)))"
broker_port=${ports[-1]}
agent_port=${ports[-2]}
broker="http://127.0.0.1:$broker_port"

index_of() { printf '%03d' "$1"; }

# The manifest of environment I with the given waitTimeout (a service-neutral knob).
write_manifest() { # I WAIT_TIMEOUT FILE
  local i; i=$(index_of "$1")
  cat > "$3" <<EOF
apiVersion: c2quay.dev/v1
kind: Environment
metadata:
  name: bench-$i
spec:
  compose:
    project: $prefix-$i
    directory: $work/compose/$i
    files: [compose.yaml]
    waitTimeout: $2
    pull: never
  broker:
    url: $broker
    environment: bench
  services:
    web:
      pacticipant: bench-web-$i
      version: "1"
      image: "c2quay-test/web:1"
  smoke:
    - name: web answers
      http:
        url: http://127.0.0.1:${ports[$1 - 1]}/
        status: 200
      timeout: 2s
      attempts: 10
      interval: 500ms
  policy:
    rollback: "on"
EOF
}

echo "writing $max_size environments and the broker seed"
{
  echo "environments: [{ name: bench, production: false }]"
  echo "versions:"
  for ((i = 1; i <= max_size; i++)); do echo "  - { pacticipant: bench-web-$(index_of "$i"), version: \"1\" }"; done
} > "$work/seed.yaml"
for ((i = 1; i <= max_size; i++)); do
  dir="$work/compose/$(index_of "$i")"
  mkdir -p "$dir"
  cat > "$dir/compose.yaml" <<EOF
services:
  web:
    image: c2quay-test/web:1
    pull_policy: never
    init: true
    stop_grace_period: 3s
    healthcheck: { disable: true }
    network_mode: bridge
    ports: ["127.0.0.1:${ports[$i - 1]}:8080"]
EOF
  write_manifest "$i" 20s "$work/manifests/$(index_of "$i").yaml"
done

"$bin/c2quay-broker-emulator" --listen "127.0.0.1:$broker_port" --seed "$work/seed.yaml" > "$work/emulator.log" 2>&1 &
emulator_pid=$!
for _ in $(seq 1 100); do curl -fsS "$broker/" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "$broker/" >/dev/null || { echo "the emulator did not start:" >&2; cat "$work/emulator.log" >&2; exit 1; }

# Puts environments 1..N in the desired directory.
desire() { # N
  for ((i = 1; i <= $1; i++)); do
    local f; f="$(index_of "$i").yaml"
    [ -f "$desired/$f" ] || cp "$work/manifests/$f" "$desired/$f"
  done
}

# Starts the agent in the background; MODE is `plain` or `traced` (under strace).
start_agent() { # MODE RESYNC LOG
  local mode=$1 resync=$2 log=$3
  : > "$log"
  local -a agent=(env "RUST_LOG=info,c2quay=debug" C2QUAY_LOG_FORMAT=json "$agent_bin" agent
    --desired "$desired" --state-dir "$state" --listen "127.0.0.1:$agent_port"
    --resync "$resync" --debounce "${debounce_ms}ms" --parallel "$parallel")
  if [ "$mode" = traced ]; then
    strace -f --seccomp-bpf -qq -ttt -s 64 -e trace=execve,openat,exit_group -e signal=none -o "$log.strace" \
      "${agent[@]}" 2> "$log" &
    tracer_pid=$!
    for _ in $(seq 1 100); do
      agent_pid=$(pgrep -P "$tracer_pid" -x c2quay || true)
      [ -n "$agent_pid" ] && break
      sleep 0.1
    done
  else
    "${agent[@]}" 2> "$log" &
    agent_pid=$!
  fi
  [ -n "$agent_pid" ] || { echo "the agent did not start" >&2; exit 1; }
}

# Waits (bounded) until N environments are Ready and the agent logged N reconciles.
wait_converged() { # N LOG TIMEOUT_S
  local n=$1 log=$2 deadline=$((SECONDS + $3)) ready=0 reconciled=0
  while [ "$SECONDS" -lt "$deadline" ]; do
    kill -0 "$agent_pid" 2>/dev/null || { echo "the agent died:" >&2; tail -20 "$log" >&2; exit 1; }
    if grep -q "Function not implemented" "$log"; then
      # ENOSYS from the seccomp filter: strace stopped tracing, the measurement is void.
      echo "strace stopped tracing the agent (its calls fail with ENOSYS); run the bench again" >&2
      exit 1
    fi
    ready=$(python3 - "$state" <<'EOF'
import glob, json, sys
n = 0
for path in glob.glob(sys.argv[1] + "/envs/*/status.json"):
    try:
        n += json.load(open(path)).get("phase") == "Ready"
    except (OSError, ValueError):
        pass
print(n)
EOF
)
    reconciled=$(grep -c '"message":"reconciled"' "$log" || true)
    [ "$ready" -ge "$n" ] && [ "$reconciled" -ge "$n" ] && return 0
    sleep 1
  done
  echo "timed out: $ready of $n environments Ready, $reconciled reconciles logged" >&2
  grep -v '"level":"DEBUG"' "$log" | tail -20 >&2
  exit 1
}

# Waits (bounded) until the agent logged no reconcile for QUIET_S seconds: the reconciles that
# the deploys' own container events queued are done.
wait_quiet() { # LOG QUIET_S TIMEOUT_S
  local last=-1 since=$SECONDS deadline=$((SECONDS + $3)) count
  while [ "$SECONDS" -lt "$deadline" ]; do
    count=$(grep -c '"message":"reconciled"' "$1" || true)
    [ "$count" != "$last" ] && { last=$count; since=$SECONDS; }
    [ $((SECONDS - since)) -ge "$2" ] && return 0
    sleep 1
  done
  echo "warning: the agent still reconciled something every few seconds after $3 s" >&2
}

broker_request_count() { curl -fsS --max-time 5 "$broker/_emulator/requests" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'; }
agent_broker_requests() {
  curl -fsS --max-time 5 "http://127.0.0.1:$agent_port/metrics" \
    | awk '/^c2quay_broker_requests_total/ { sum += $NF } END { printf "%d\n", sum }'
}
# Reconciles the agent logged between two $EPOCHREALTIME values.
reconciles_between() { # LOG T0 T1
  python3 - "$@" <<'EOF'
import json, sys
from datetime import datetime
t0, t1, n = float(sys.argv[2]), float(sys.argv[3]), 0
for line in open(sys.argv[1]):
    if '"message":"reconciled"' in line:
        ts = datetime.fromisoformat(json.loads(line)["timestamp"].replace("Z", "+00:00")).timestamp()
        n += t0 <= ts <= t1
print(n)
EOF
}
# utime stime cutime cstime (clock ticks) of a process.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12, $13, $14, $15 }' "/proc/$1/stat"; }

results="$work/results.txt"
: > "$results"

# Measures resync cycles of the running traced agent with N environments in windows of
# resync_cycles cycles, until a window sees no reconcile (at most 3 windows). A reconcile in the
# window comes from a container event (someone else's Docker work, a dockerd restart) or from
# the resync itself; discarded windows are kept in the results (NOISY), so neither is hidden.
# The no-op resync without strace: the agent's own "resync done" debug lines (it times each
# resync: reload, one container list, the plan of every environment) over CYCLES resyncs.
measure_resync_plain() { # N LOG [KIND]
  local n=$1 log=$2 kind=${3:-PLAINRESYNC} mark
  mark=$(grep -c '"resync done"' "$log" || true)
  local deadline=$((SECONDS + resync_seconds * (resync_cycles + 2) + 10))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$(grep -c '"resync done"' "$log" || true)" -ge $((mark + resync_cycles)) ] && break
    sleep 1
  done
  python3 - "$log" "$mark" "$n" "$kind" >> "$results" <<'PY'
import json, statistics, sys
log, mark, n, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
seen = []
for line in open(log):
    try:
        record = json.loads(line)
    except ValueError:
        continue
    # tracing's JSON lines carry the fields at the top level (or under "fields").
    fields = record.get("fields", record)
    if fields.get("message") == "resync done":
        seen.append(fields)
cycles = seen[mark:]
idle = [c for c in cycles if c.get("queued", 0) == 0]
if idle:
    ms = [c["micros"] / 1000 for c in idle]
    print(f"{kind} {n} cycles={len(idle)} median_ms={statistics.median(ms):.1f} max_ms={max(ms):.1f} "
          f"environments={idle[0].get('environments')}")
else:
    print(f"{kind} {n} cycles=0")
PY
  tail -1 "$results"
}

measure_resync() { # N LOG
  local n=$1 log=$2 line attempt
  for attempt in 1 2 3; do
    line=$(measure_resync_window "$n" "$log")
    echo "$line"
    case $line in
      *" reconciles=0 "*) break ;;
      *) [ "$attempt" -lt 3 ] && echo "NOISY ${line#RESYNC }" >> "$results" ;;
    esac
  done
  echo "$line" >> "$results"
}

# One window of resync_cycles cycles; prints one RESYNC line.
measure_resync_window() { # N LOG
  local n=$1 log=$2
  local e0 a0 e1 a1 t0 t1 c0 c1
  e0=$(broker_request_count); a0=$(agent_broker_requests); c0=$(cpu_ticks "$agent_pid")
  sleep 0.5
  t0=$EPOCHREALTIME
  sleep $((resync_cycles * resync_seconds + 1))
  t1=$EPOCHREALTIME
  sleep 0.5
  e1=$(broker_request_count); a1=$(agent_broker_requests); c1=$(cpu_ticks "$agent_pid")
  python3 - "$log.strace" "$t0" "$t1" "$n" "$((e1 - e0))" "$((a1 - a0))" "$c0" "$c1" "$(getconf CLK_TCK)" \
    "$(reconciles_between "$log" "$t0" "$t1")" "$desired" "$state" <<'EOF'
import re, sys
from collections import Counter
trace, t0, t1, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
emulator_requests, agent_requests = int(sys.argv[5]), int(sys.argv[6])
c0, c1 = [int(x) for x in sys.argv[7].split()], [int(x) for x in sys.argv[8].split()]
tck, reconciles = float(sys.argv[9]), int(sys.argv[10])
watched = (sys.argv[11], sys.argv[12])
# "PID TS name(args) = RET", or split in two by another process's call: "PID TS name(args
# <unfinished ...>" then "PID TS <... name resumed>rest) = RET". exit_group returns "?".
whole = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)\)\s+=\s+(-?\d+|\?)")
unfinished = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*) <unfinished \.\.\.>")
resumed = re.compile(r"^(\d+)\s+\d+\.\d+\s+<\.\.\. (\w+) resumed>.*\)\s+=\s+(-?\d+|\?)")
calls, pending = [], {}
for line in open(trace, errors="replace"):
    if m := whole.match(line):
        pid, ts, name, args, ret = m.group(1), float(m.group(2)), m.group(3), m.group(4), m.group(5)
    elif m := unfinished.match(line):
        pending[m.group(1)] = (float(m.group(2)), m.group(3), m.group(4))
        continue
    elif (m := resumed.match(line)) and m.group(1) in pending:
        pid, ret = m.group(1), m.group(3)
        ts, name, args = pending.pop(pid)
    else:
        continue
    calls.append((ts, pid, name, args, ret))
calls.sort()
# An idle agent makes none of these calls: each burst (gaps under 1 s) is one piece of work.
# Bursts are cut from the whole trace, then only those wholly inside the window are kept: a
# resync the window's edge cuts in two would count as a short one that spawned nothing.
bursts = []
for call in calls:
    if bursts and call[0] - bursts[-1][-1][0] < 1.0:
        bursts[-1].append(call)
    else:
        bursts.append([call])
bursts = [b for b in bursts if t0 <= b[0][0] and b[-1][0] <= t1]
def spawned(burst):
    """(pid, start, `program verb`) of each successful execve("path", ["argv0", "argv1", ...])."""
    out = []
    for ts, pid, name, args, ret in burst:
        if name == "execve" and ret == "0":
            strings = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
            argv = strings[1:] or strings
            out.append((pid, ts, " ".join([argv[0].rsplit("/", 1)[-1]] + argv[1:2])))
    return out
def child_ms(burst):
    """Wall time during which at least one spawned process was alive (execve to exit_group)."""
    exits = {pid: ts for ts, pid, name, _, _ in burst if name == "exit_group"}
    spans = sorted((start, exits.get(pid, burst[-1][0])) for pid, start, _ in spawned(burst))
    total, end = 0.0, 0.0
    for start, stop in spans:
        total += max(0.0, stop - max(start, end))
        end = max(end, stop)
    return total * 1000
def opened_watched(burst):
    """The burst opens the desired directory, a manifest or a file of the state directory."""
    for _, _, name, args, _ in burst:
        if name == "openat":
            path = re.findall(r'"((?:[^"\\]|\\.)*)"', args)
            if path and any(path[0] == d or path[0].startswith(d + "/") for d in watched):
                return True
    return False
# A resync reloads the manifests and reads every status file (and, before the Engine API
# port, runs `docker ps`): either marks it, so a resync that spawns nothing is still seen.
resyncs = [b for b in bursts if opened_watched(b) or any(label == "docker ps" for _, _, label in spawned(b))]
if not resyncs:
    print(f"RESYNC {n} none")
    sys.exit()
mean = lambda values: sum(values) / len(values)
walls = [(b[-1][0] - b[0][0]) * 1000 for b in resyncs]
children = [child_ms(b) for b in resyncs]
procs = [len(spawned(b)) for b in resyncs]
kinds = Counter(label for b in resyncs for _, _, label in spawned(b))
kinds = ",".join(f"{k.replace(' ', '+')}*{v / len(resyncs):g}" for k, v in sorted(kinds.items()))
agent_cpu_ms = ((c1[0] + c1[1]) - (c0[0] + c0[1])) / tck * 1000 / len(resyncs)
child_cpu_ms = ((c1[2] + c1[3]) - (c0[2] + c0[3])) / tck * 1000 / len(resyncs)
print(f"RESYNC {n} cycles={len(resyncs)} wall_ms={mean(walls):.0f} wall_max_ms={max(walls):.0f} "
      f"docker_wall_ms={mean(children):.0f} procs={'/'.join(map(str, procs))} "
      f"emulator_requests={emulator_requests} agent_requests={agent_requests} "
      f"agent_cpu_ms={agent_cpu_ms:.0f} docker_cpu_ms={child_cpu_ms:.0f} "
      f"traced_calls={mean([len(b) for b in resyncs]):.0f} other_bursts={len(bursts) - len(resyncs)} "
      f"seen_by_files={sum(map(opened_watched, resyncs))} "
      f"reconciles={reconciles} spawned={kinds} window={t0:.3f}..{t1:.3f} "
      f"other_burst_starts={','.join(f'{b[0][0]:.3f}' for b in bursts if b not in resyncs) or '-'}")
EOF
}

# Measures RSS and CPU of the running plain agent over idle_seconds.
measure_idle() { # N LOG
  local n=$1 log=$2 c0 c1 t0 t1 children
  children=$(pgrep -P "$agent_pid" | tr '\n' ' ' || true)
  c0=$(cpu_ticks "$agent_pid")
  local k0=""; for c in $children; do k0+="$(cpu_ticks "$c") "; done
  t0=$EPOCHREALTIME
  sleep "$idle_seconds"
  t1=$EPOCHREALTIME
  c1=$(cpu_ticks "$agent_pid")
  local k1=""; for c in $children; do k1+="$(cpu_ticks "$c" 2>/dev/null || echo 0 0 0 0) "; done
  local tree; tree=$(tree_rss "$agent_pid")
  python3 - "$agent_pid" "$n" "$t0" "$t1" "$c0" "$c1" "$k0" "$k1" "$(getconf CLK_TCK)" "$children" \
    "$(reconciles_between "$log" "$t0" "$t1")" "$tree" >> "$results" <<'EOF'
import sys
pid, n, t0, t1 = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
c0, c1 = [int(x) for x in sys.argv[5].split()], [int(x) for x in sys.argv[6].split()]
k0, k1 = [int(x) for x in sys.argv[7].split()], [int(x) for x in sys.argv[8].split()]
tck, children, reconciles = float(sys.argv[9]), sys.argv[10].split(), sys.argv[11]
tree_kib, _, descendants, names = sys.argv[12].split()
def kib(p, field):
    try:
        for line in open(f"/proc/{p}/status"):
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
rss = kib(pid, "VmRSS") / 1024
hwm = kib(pid, "VmHWM") / 1024
child_rss = sum(kib(c, "VmRSS") for c in children) / 1024
span = t1 - t0
own = ((c1[0] + c1[1]) - (c0[0] + c0[1])) / tck
reaped = ((c1[2] + c1[3]) - (c0[2] + c0[3])) / tck
live = sum((k1[i] + k1[i + 1]) - (k0[i] + k0[i + 1]) for i in range(0, len(k1), 4)) / tck
print(f"IDLE {n} rss_mib={rss:.1f} hwm_mib={hwm:.1f} children={len(children)} "
      f"children_rss_mib={child_rss:.1f} cpu_pct={own / span * 100:.3f} "
      f"cpu_with_children_pct={(own + reaped + live) / span * 100:.3f} seconds={span:.0f} reconciles={reconciles} "
      f"tree_rss_mib={int(tree_kib) / 1024:.1f} descendants={descendants} descendant_names={names}")
EOF
  tail -1 "$results"
}

# Writes latency_writes service-neutral manifest changes, one environment at a time.
measure_latency() { # N LOG
  local n=$1 log=$2 writes="$work/writes.txt"
  : > "$writes"
  for ((k = 0; k < latency_writes; k++)); do
    local i=$((k % n + 1)) env wait_timeout before deadline
    env="bench-$(index_of "$i")"
    wait_timeout=$([ $((k / n % 2)) -eq 0 ] && echo 21s || echo 20s)
    before=$(grep -F "\"environment\":\"$env\"" "$log" | grep -c '"message":"reconciled"' || true)
    write_manifest "$i" "$wait_timeout" "$work/next.yaml"
    local t=$EPOCHREALTIME
    cat "$work/next.yaml" > "$desired/$(index_of "$i").yaml"
    echo "$t $env" >> "$writes"
    deadline=$((SECONDS + 20))
    while [ "$SECONDS" -lt "$deadline" ]; do
      [ "$(grep -F "\"environment\":\"$env\"" "$log" | grep -c '"message":"reconciled"' || true)" -gt "$before" ] && break
      sleep 0.1
    done
    sleep 0.3
  done
  python3 - "$writes" "$log" "$debounce_ms" "$n" >> "$results" <<'EOF'
import json, sys
from datetime import datetime
writes = [(float(t), env) for t, env in (l.split() for l in open(sys.argv[1]))]
debounce = float(sys.argv[3])
events = []
for line in open(sys.argv[2]):
    try:
        record = json.loads(line)
    except ValueError:
        continue
    ts = datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00")).timestamp()
    events.append((ts, record))
def first_after(t, match):
    return next((ts for ts, r in events if ts >= t and match(r)), None)
marks = {"debounced": [], "started": [], "planned": []}
for t, env in writes:
    fired = first_after(t, lambda r: r.get("message") == "desired directory events")
    started = first_after(t, lambda r: r.get("message") == "desired directory changed"
                          and f'"{env}"' in str(r.get("changed", "")))
    planned = first_after(t, lambda r: r.get("message") == "plan"
                          and r.get("span", {}).get("environment") == env)
    for key, ts in (("debounced", fired), ("started", started), ("planned", planned)):
        if ts is not None:
            marks[key].append((ts - t) * 1000 - debounce)
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")
out = [f"LATENCY {sys.argv[4]} writes={len(writes)} debounce_ms={debounce:.0f}"]
for key, values in marks.items():
    out.append(f"{key}_n={len(values)} {key}_median_ms={pct(values, 50):.0f} {key}_p95_ms={pct(values, 95):.0f}")
print(" ".join(out))
EOF
  tail -1 "$results"
}

previous=0
for n in "${sizes[@]}"; do
  desire "$n"
  log="$work/agent-$n.log"
  echo
  echo "== $n environments: converging ($((n - previous)) new deploys, --parallel $parallel)"
  t_start=$SECONDS
  start_agent plain "${resync_seconds}s" "$work/agent-$n-converge.log"
  wait_converged "$n" "$work/agent-$n-converge.log" $((60 + (n - previous) * 3))
  stop_agent
  echo "converged in $((SECONDS - t_start)) s; restarting the agent under strace"
  # Only the restart (one Noop reconcile per environment) and the window run under strace.
  start_agent traced "${resync_seconds}s" "$log"
  wait_converged "$n" "$log" $((60 + n))
  wait_quiet "$log" $((resync_seconds + 2)) $((30 + n))
  echo "measuring $resync_cycles resyncs of ${resync_seconds}s"
  measure_resync "$n" "$log"
  stop_agent
  echo "measuring $resync_cycles resyncs of ${resync_seconds}s without strace (the agent's own timing)"
  start_agent plain "${resync_seconds}s" "$log.plain"
  wait_converged "$n" "$log.plain" $((60 + n))
  wait_quiet "$log.plain" $((resync_seconds + 2)) $((30 + n))
  measure_resync_plain "$n" "$log.plain"
  stop_agent
  if [ -n "$baseline_bin" ] && [ "$n" -eq "$max_size" ]; then
    # Alternating rounds, baseline then current, on the same converged environments.
    for round in $(seq 1 "$baseline_rounds"); do
      for side in BASE CUR; do
        agent_bin=$([ "$side" = BASE ] && echo "$baseline_bin" || echo "$bin/c2quay")
        echo "round $round: no-op resyncs of the $([ "$side" = BASE ] && echo baseline || echo current) binary"
        start_agent plain "${resync_seconds}s" "$log.$side.$round"
        wait_converged "$n" "$log.$side.$round" $((60 + n))
        wait_quiet "$log.$side.$round" $((resync_seconds + 2)) $((30 + n))
        measure_resync_plain "$n" "$log.$side.$round" "${side}RESYNC"
        stop_agent
      done
    done
    agent_bin="$bin/c2quay"
  fi
  if [ "$n" -eq "$idle_size" ]; then
    log="$work/agent-$n-idle.log"
    echo "== $n environments: idle agent (no strace, default resync 60s) for ${idle_seconds}s"
    start_agent plain 60s "$log"
    wait_converged "$n" "$log" $((60 + n))
    wait_quiet "$log" 5 $((30 + n))
    measure_idle "$n" "$log"
    echo "== $n environments: $latency_writes manifest writes"
    measure_latency "$n" "$log"
    stop_agent
  fi
  previous=$n
done

echo
python3 - "$results" "$resync_seconds" <<'EOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    kind, n, *fields = line.split()
    rows.setdefault(kind, []).append((int(n), dict(f.split("=", 1) for f in fields if "=" in f)))
print("c2quay agent at rest (figures are noisy when other Docker work runs on the host)")
for n, f in rows.get("IDLE", []):
    print(f"FIGURE idle: RSS {f['rss_mib']} MiB (peak {f['hwm_mib']} MiB; + {f['children_rss_mib']} MiB in "
          f"{f['children']} child: docker events), CPU {f['cpu_pct']}% of one core over {f['seconds']} s "
          f"({f['cpu_with_children_pct']}% with its docker children), {n} converged environments, resync 60s, "
          f"{f['reconciles']} reconciles in the window")
    print(f"FIGURE idle_tree: {f['tree_rss_mib']} MiB RSS in total for the agent and its {f['descendants']} "
          f"descendants ({f['descendant_names'].replace(',', ', ')})")
print()
print(f"no-op resync (--resync {sys.argv[2]}s, agent under strace -e execve,openat,exit_group; mean of the cycles seen)")
print(f"{'envs':>5} {'cycles':>6} {'wall ms':>8} {'max ms':>7} {'in docker':>9} {'processes':>10} {'broker req':>10} "
      f"{'agent cpu ms':>12} {'docker cpu ms':>13} {'reconciles':>10}  spawned per resync")
for n, f in rows.get("RESYNC", []):
    if not f:
        print(f"{n:>5} no resync seen in the window")
        continue
    broker = f"{f['emulator_requests']}/{f['agent_requests']}"
    print(f"{n:>5} {f['cycles']:>6} {f['wall_ms']:>8} {f['wall_max_ms']:>7} {f['docker_wall_ms']:>9} {f['procs']:>10} {broker:>10} "
          f"{f['agent_cpu_ms']:>12} {f['docker_cpu_ms']:>13} {f['reconciles']:>10}  {f['spawned'].replace('+', ' ').replace(',', ', ')}"
          + (f" ({f['other_bursts']} other bursts)" if f['other_bursts'] != '0' else ""))
    for noisy_n, noisy in rows.get("NOISY", []):
        if noisy_n == n:
            spawned = noisy.get("spawned", "").replace("+", " ").replace(",", ", ")
            print(f"{'':>5} discarded a window with {noisy.get('reconciles')} reconciles (container events or "
                  f"the resync): processes {noisy.get('procs')}, wall {noisy.get('wall_ms')} ms, spawned {spawned}")
    print(f"FIGURE resync_{n}: wall {f['wall_ms']} ms ({f['docker_wall_ms']} ms in docker), processes {f['procs']}, "
          f"broker requests {broker} (emulator/agent metric)")
for n, f in rows.get("PLAINRESYNC", []):
    if f.get("cycles", "0") != "0":
        print(f"FIGURE resync_plain_{n}: {f['median_ms']} ms median, {f['max_ms']} ms max over {f['cycles']} no-op resyncs "
              f"of {f['environments']} environments, without strace (the agent's own timing)")
import statistics
for side in ("BASE", "CUR"):
    rounds = [f for n, f in rows.get(side + "RESYNC", []) if f.get("cycles", "0") != "0"]
    if rounds:
        rows[side] = (rounds[0]["environments"], statistics.median(float(f["median_ms"]) for f in rounds), len(rounds))
if "BASE" in rows and "CUR" in rows:
    (n, base, k), (_, cur, _) = rows["BASE"], rows["CUR"]
    print(f"FIGURE resync_vs_baseline: no-op resync of {n} environments, current {cur:.1f} ms vs baseline "
          f"{base:.1f} ms = {cur / base:.2f}x (median of {k} alternating rounds each, without strace)")
print("  wall: first to last traced call of the cycle; in docker: while a process it spawned was alive")
print("  processes: successful execve per cycle (a `docker compose` call is 3: docker, the plugin's metadata, the plugin)")
print("  broker req: in the whole window, emulator request log / agent c2quay_broker_requests_total")
print("  cpu: per cycle; reconciles: in the whole window (0 when every resync found nothing to do;")
print("  a window with reconciles is measured again, at most 3 windows, and shown as discarded)")
print()
for n, f in rows.get("LATENCY", []):
    print(f"latency from a manifest write, minus the {f['debounce_ms']} ms debounce ({f['writes']} writes, {n} environments)")
    for key, label in (("debounced", "debouncer fired"), ("started", "reconcile started"), ("planned", "reconcile planned (after observing the project)")):
        print(f"  {label:<45} median {f[key + '_median_ms']:>5} ms   p95 {f[key + '_p95_ms']:>5} ms   (n={f[key + '_n']})")
    print(f"FIGURE latency: write to reconcile start minus debounce: median {f['started_median_ms']} ms, p95 {f['started_p95_ms']} ms")
EOF

# Issue 16's agent figures: idle tree RSS and descendants at the idle size, and the no-op resync
# of the largest size measured (processes: the most any cycle of the window spawned).
python3 - "$results" > "$work/figures.txt" <<'EOF'
import sys
idle, resync, plain = None, None, None
for line in open(sys.argv[1]):
    kind, n, *fields = line.split()
    f = dict(x.split("=", 1) for x in fields if "=" in x)
    if kind == "IDLE":
        idle = (n, f)
    elif kind == "RESYNC" and f:
        resync = (n, f)
    elif kind == "PLAINRESYNC" and f.get("cycles", "0") != "0":
        plain = (n, f)
print(*(("-",) * 3 if idle is None else (idle[0], idle[1]["tree_rss_mib"], idle[1]["descendants"])),
      *(("-",) * 3 if resync is None else (resync[0], resync[1]["wall_ms"], max(int(p) for p in resync[1]["procs"].split("/")))),
      *(("-",) * 2 if plain is None else (plain[0], plain[1]["median_ms"])))
EOF
read -r idle_n tree_mib descendants resync_n resync_ms resync_procs plain_n plain_ms < "$work/figures.txt"
table="$work/table.tsv"
: > "$table"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-") print "-"; else printf "%.2fx\n", a / b }'; }
# A size other than the issue's gets its row but no verdict.
verdict() { [ "$1" = "$2" ] && echo "$3" || echo none; }
figure_row "$table" "idle RSS, agent + all descendants, $idle_n envs (MiB)" "$tree_mib" "20 (target)" \
  "$(ratio "$tree_mib" 20)" "< 20 MiB at 50" "$(verdict "$idle_n" 50 "<1")"
figure_row "$table" "idle child processes, $idle_n envs" "$descendants" "0 (target)" "-" "0 at 50" "$(verdict "$idle_n" 50 -)"
figure_row "$table" "no-op resync wall, $plain_n envs, no strace (ms)" "$plain_ms" "100 (target)" \
  "$(ratio "$plain_ms" 100)" "< 100 ms at 200" "$(verdict "$plain_n" 200 "<1")"
figure_row "$table" "  the same under strace (ms)" "$resync_ms" "100 (target)" \
  "$(ratio "$resync_ms" 100)" "(reference)" none
figure_row "$table" "no-op resync processes spawned, $resync_n envs" "$resync_procs" "0 (target)" "-" "0 at 200" \
  "$(verdict "$resync_n" 200 -)"
print_summary "$table" "issue 16, agent figures (measured in this run; targets: idle at 50 environments, resync at 200)"
