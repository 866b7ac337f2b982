#!/usr/bin/env bash
# Benchmark of many environments switched by one commit (issue 20), measured side by side in one
# run against a real Docker engine:
#
#   c2quay   a running release-built `c2quay agent --parallel P` watches a desired directory of N
#            manifests (one Compose project each, S services each, every service with a
#            healthcheck); "the commit" renames all N manifests from v1 to v2 into the desired
#            directory in one tight loop (prepared beside it, one rename(2) each, one process)
#   floor    the same N projects switched by bare `docker compose up -d --wait --pull never` with
#            an override pinning v2, P at a time (`xargs -P P`)
#
# Each round both sides start from every environment at v1 (converged and Ready) and switch to v2;
# which side goes first alternates per round. After its switch a side puts everything back at v1
# (untimed): the agent by a commit of v1, the floor by `up --wait` with the v1 pins. The agent is
# stopped while the floor runs (it would otherwise see the floor's switch as a change of what runs),
# and started again afterwards: it is converged and quiet (no reconcile for 2 s) before its commit.
# v1 and v2 are c2quay-test/web:1 and :2 (distinct images, so every switch re-creates every
# container). The healthcheck (busybox wget of /healthz) runs every C2QUAY_SCALE_HEALTH_INTERVAL
# (default 1s), so `--wait` and c2quay's readiness both wait for health; no smoke check and no
# broker (the floor has neither); `init: true`, no published port, pull policy never.
#
# How it measures:
#   wall     c2quay: $EPOCHREALTIME just before the first rename, to the moment the last
#            environment's status said Ready at v2: the `at` of the deploy entry of its status
#            history (written with the status file; the status files are polled, not the HTTP API,
#            so the poll costs the agent nothing). floor: $EPOCHREALTIME around the xargs run.
#            Also printed: the commit to the agent's first `plan` of a deploy (its JSON log), the
#            part of the wall time that is the debounce and the reload of the desired directory.
#   CPU      user + sys of each side's whole process tree, children included. c2quay:
#            utime+stime+cutime+cstime of the agent (and of any live descendant) from /proc, read
#            before the commit and once every environment is Ready (a poll every 0.2 s), so it
#            holds the agent itself and every `docker compose` it ran and reaped. floor: a subshell
#            running xargs that ends with bash's `times` (getrusage of the children it waited for:
#            xargs, every `docker` CLI and compose plugin process). The Docker daemon's CPU is in
#            neither side; dockerd + containerd's utime+stime over each window is printed for
#            context (it includes any other Docker work on the host).
#   processes  a separate, untimed pass per variant: the agent restarted under
#            `strace -f --seccomp-bpf -e trace=execve` (only execve stops), converged, then one
#            commit; every successful execve of its tree from the commit to all Ready, by program
#            (`docker-compose up`, `docker-compose config`, `docker compose version`, any
#            `docker ps`/`inspect`, smoke execs), divided by N; also those in the 3 s after, and
#            every `compose version` over the traced agent's whole life. The floor's: one switch
#            of xargs under the same strace, its own exec left out, divided by N.
#   timeout  one more environment whose v2 (c2quay-test/web:unhealthy) never becomes healthy,
#            with waitTimeout C2QUAY_SCALE_WAIT_TIMEOUT (default 30s), under the traced agent: the
#            readiness step's window comes from its `step done` log line (end time and millis);
#            the agent tree's CPU over that window from /proc sampled every 0.1 s (interpolated),
#            and the processes spawned in it from strace. Then the automatic rollback runs.
#   networks one Compose project is one network: the bench prints how many more the daemon can
#            create (its address pools, less existing networks, host routes and nameservers) and
#            refuses to start when the largest N does not fit.
#
# Usage: bash scripts/bench-scale.sh
# Environment:
#   C2QUAY_SCALE_VARIANTS   NxS list, default "12x1 30x5" (N environments of S services each);
#                           C2QUAY_SCALE_N (default 12) and C2QUAY_SCALE_SERVICES (default 1)
#                           set a single variant instead
#   C2QUAY_SCALE_PARALLEL   P, the agent's --parallel and the floor's xargs -P (default 4)
#   C2QUAY_SCALE_ROUNDS     alternating rounds per variant (default 3, at most 20)
#   C2QUAY_SCALE_TIMEOUT    1 (default) runs the readiness-timeout pass, 0 skips it
#   C2QUAY_SCALE_WAIT_TIMEOUT  its waitTimeout, seconds with an `s` (default 30s)
#   C2QUAY_SCALE_HEALTH_INTERVAL  healthcheck interval of every service (default 1s)
#   C2QUAY_SCALE_DEBOUNCE   the agent's --debounce (default 500ms, the agent's default)
#   C2QUAY_SCALE_BIN        the c2quay binary to measure (default: cargo build --release)
#   C2QUAY_SCALE_KEEP_LOGS  a directory to copy the agent logs, strace output and results to
# Prints one table per variant (medians over the rounds), the per-program process counts, the
# timeout pass and a summary of issue 20's targets. Figures are printed, never asserted: the exit
# code is non-zero only when the bench itself fails. The smallest run (CI):
#   C2QUAY_SCALE_N=2 C2QUAY_SCALE_ROUNDS=1 C2QUAY_SCALE_WAIT_TIMEOUT=3s bash scripts/bench-scale.sh
# Projects, networks and containers are named c2qscale-<pid>-NNN and removed on exit (Ctrl-C too).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
export PATH="/usr/local/bin:$HOME/.cargo/bin:$PATH"
# shellcheck source=scripts/bench-lib.sh
source "$root/scripts/bench-lib.sh"

if [ -n "${C2QUAY_SCALE_VARIANTS:-}" ]; then
  read -r -a variants <<< "$C2QUAY_SCALE_VARIANTS"
elif [ -n "${C2QUAY_SCALE_N:-}${C2QUAY_SCALE_SERVICES:-}" ]; then
  variants=("${C2QUAY_SCALE_N:-12}x${C2QUAY_SCALE_SERVICES:-1}")
else
  variants=(12x1 30x5)
fi
parallel=${C2QUAY_SCALE_PARALLEL:-4}
rounds=${C2QUAY_SCALE_ROUNDS:-3}
timeout_pass=${C2QUAY_SCALE_TIMEOUT:-1}
wait_timeout=${C2QUAY_SCALE_WAIT_TIMEOUT:-30s}
health_interval=${C2QUAY_SCALE_HEALTH_INTERVAL:-1s}
debounce=${C2QUAY_SCALE_DEBOUNCE:-500ms}
[[ $rounds =~ ^[0-9]+$ ]] && [ "$rounds" -ge 1 ] || { echo "C2QUAY_SCALE_ROUNDS: a number >= 1" >&2; exit 2; }
[ "$rounds" -gt 20 ] && rounds=20
max_n=0
for v in "${variants[@]}"; do
  [[ $v =~ ^([0-9]+)x([0-9]+)$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] && [ "${BASH_REMATCH[1]}" -le 200 ] \
    && [ "${BASH_REMATCH[2]}" -ge 1 ] && [ "${BASH_REMATCH[2]}" -le 10 ] \
    || { echo "bad variant '$v': NxS, N environments (1-200) of S services (1-10)" >&2; exit 2; }
  [ "${BASH_REMATCH[1]}" -gt "$max_n" ] && max_n=${BASH_REMATCH[1]}
done
[[ $wait_timeout =~ ^([0-9]+)s$ ]] && [ "${BASH_REMATCH[1]}" -ge 1 ] \
  || { echo "C2QUAY_SCALE_WAIT_TIMEOUT: seconds with an s, e.g. 30s" >&2; exit 2; }
wait_seconds=${BASH_REMATCH[1]}
[[ $parallel =~ ^[0-9]+$ ]] && [ "$parallel" -ge 1 ] || { echo "C2QUAY_SCALE_PARALLEL: a number >= 1" >&2; exit 2; }

docker info >/dev/null 2>&1 || { echo "docker is not reachable: bash scripts/test-world.sh" >&2; exit 1; }
for image in c2quay-test/web:1 c2quay-test/web:2 c2quay-test/web:unhealthy; do
  docker image inspect "$image" >/dev/null 2>&1 || { echo "image $image is missing: bash scripts/test-world.sh" >&2; exit 1; }
done
tracing=1
command -v strace >/dev/null || { tracing=0; echo "strace is missing (apt-get install strace): no process counts"; }

# One network per project: refuse before creating anything when the largest variant does not fit.
read -r networks_fit networks_text <<< "$(networks_free)"
echo "networks: this daemon can create $networks_fit more bridge networks ($networks_text); the largest variant needs $max_n"
if [ "$max_n" -gt "$networks_fit" ]; then
  cat >&2 <<EOF
refusing: $max_n Compose projects need $max_n networks and only $networks_fit fit in the daemon's address pools.
Widen them as hosts with many projects do, in /etc/docker/daemon.json (then restart dockerd;
existing networks keep their subnets), for example 4096 + 256 networks of /24:
  { "default-address-pools": [ { "base": "172.16.0.0/12", "size": 24 }, { "base": "192.168.0.0/16", "size": 24 } ] }
(pick ranges that no network of the host uses), or run a smaller variant (C2QUAY_SCALE_VARIANTS).
EOF
  exit 1
fi

if [ -n "${C2QUAY_SCALE_BIN:-}" ]; then
  agent_bin=$(realpath "$C2QUAY_SCALE_BIN")
  [ -x "$agent_bin" ] || { echo "C2QUAY_SCALE_BIN is not an executable: $C2QUAY_SCALE_BIN" >&2; exit 1; }
else
  echo "building (release)"
  cargo build --quiet --release -p c2quay
  agent_bin="$root/target/release/c2quay"
fi
work=$(mktemp -d /tmp/c2quay-bench-scale.XXXXXX)
prefix="c2qscale-$$"
results="$work/results.txt"
: > "$results"
tck=$(getconf CLK_TCK)

agent_pid=""
tracer_pid=""
sampler_pid=""
agent_started=0

# Stops the agent: SIGTERM, then SIGKILL after 15 s; then its tracer, if any.
stop_agent() {
  if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
    kill -TERM "$agent_pid" 2>/dev/null || true
    for _ in $(seq 1 150); do kill -0 "$agent_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$agent_pid" 2>/dev/null || true
  fi
  if [ -n "$tracer_pid" ]; then
    for _ in $(seq 1 50); do kill -0 "$tracer_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$tracer_pid" 2>/dev/null || true
    wait "$tracer_pid" 2>/dev/null || true
  fi
  [ -n "$agent_pid" ] && { wait "$agent_pid" 2>/dev/null || true; }
  agent_pid=""
  tracer_pid=""
}

# Removes every container and network of this run's projects (c2qscale-<pid>-*), and nothing else.
remove_projects() {
  local ids
  ids=$(timeout 60 docker ps -a --filter "label=com.docker.compose.project" --format '{{.ID}} {{.Label "com.docker.compose.project"}}' | awk -v p="$prefix-" 'index($2, p) == 1 { print $1 }')
  # shellcheck disable=SC2086
  [ -z "$ids" ] || timeout 180 docker rm -f $ids >/dev/null 2>&1
  docker network ls --format '{{.Name}}' | grep "^$prefix-" | xargs -r timeout 60 docker network rm >/dev/null 2>&1
}

cleanup() {
  set +e
  [ -n "$sampler_pid" ] && kill "$sampler_pid" 2>/dev/null && wait "$sampler_pid" 2>/dev/null
  stop_agent
  if [ -n "${C2QUAY_SCALE_KEEP_LOGS:-}" ]; then
    # Kept with their variant's directory (12x1/agent.log, timeout/agent.log.strace, ...).
    mkdir -p "$C2QUAY_SCALE_KEEP_LOGS" && (cd "$work" && find . -path ./\*/state -prune -o \
      \( -name '*.log' -o -name '*.strace' -o -name '*.txt' \) -exec cp --parents {} "$C2QUAY_SCALE_KEEP_LOGS"/ \;)
  fi
  remove_projects
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- one variant's files -------------------------------------------------------------------------

# Writes the Compose files, floor pins and manifests of environments FIRST..LAST (S services each)
# under DIR, and DIR/names.txt. VERSIONS: the versions a manifest is prepared for.
write_envs() { # DIR FIRST LAST S WAIT_TIMEOUT VERSIONS...
  local dir=$1 first=$2 last=$3 s=$4 timeout=$5 i k name v
  shift 5
  : > "$dir/names.txt"
  for ((i = first; i <= last; i++)); do
    name=$(printf '%s-%03d' "$prefix" "$i")
    echo "$name" >> "$dir/names.txt"
    mkdir -p "$dir/compose/$name"
    {
      echo "services:"
      for ((k = 1; k <= s; k++)); do
        cat <<EOF
  web$k:
    image: c2quay-test/web:1
    pull_policy: never
    init: true
    stop_grace_period: 3s
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/healthz"]
      interval: $health_interval
      timeout: 2s
      start_period: 1s
      retries: 2
EOF
      done
    } > "$dir/compose/$name/compose.yaml"
    for v in "$@"; do
      mkdir -p "$dir/manifests/$v"
      { echo "services:"; for ((k = 1; k <= s; k++)); do printf '  web%d:\n    image: c2quay-test/web:%s\n' "$k" "$v"; done; } \
        > "$dir/compose/$name/pin-$v.yaml"
      {
        cat <<EOF
apiVersion: c2quay.dev/v1
kind: Environment
metadata:
  name: $name
spec:
  compose:
    directory: $dir/compose/$name
    waitTimeout: $timeout
    pull: never
  services:
EOF
        for ((k = 1; k <= s; k++)); do printf '    web%d: { version: "%s", image: "c2quay-test/web:{version}" }\n' "$k" "$v"; done
      } > "$dir/manifests/$v/$name.yaml"
    done
  done
}

# "The commit": every manifest of VERSION, copied beside the desired directory first, then
# renamed into it in one tight loop by one process. Prints the time just before the first rename.
commit() { # DIR VERSION
  rm -rf "$1/next" && cp -r "$1/manifests/$2" "$1/next"
  python3 - "$1/next" "$1/desired" <<'EOF'
import os, sys, time
src, dst = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(src))
t0 = time.time()
for name in names:
    os.rename(os.path.join(src, name), os.path.join(dst, name))
print(f"{t0:.6f}")
EOF
}

# Starts the agent on DIR/desired and DIR/state in the background; MODE plain or traced.
start_agent() { # DIR MODE LOG
  local dir=$1 mode=$2 log=$3
  : > "$log"
  local -a agent=(env RUST_LOG=info C2QUAY_LOG_FORMAT=json "$agent_bin" agent
    --desired "$dir/desired" --state-dir "$dir/state" --listen "127.0.0.1:$(free_port)"
    --parallel "$parallel" --debounce "$debounce")
  agent_started=$EPOCHREALTIME
  if [ "$mode" = traced ]; then
    strace -f --seccomp-bpf -qq -ttt -s 256 -e trace=execve -e signal=none -o "$log.strace" \
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

# Waits (bounded) until every environment of DIR/names.txt has reconciled since SINCE and its status
# says Ready with every service at VERSION (and the applied generation is the observed one).
# With PHASE other than Ready, waits for that phase instead. Prints the latest `at` among the
# environments' first deploy entries since SINCE (or "-" when one has none: a restart's no-op).
# Fails at once when a status says RolledBack, Degraded, Drifted, Invalid or HostBlocked (with its
# message), or the agent dies.
wait_status() { # DIR VERSION SINCE TIMEOUT_S [PHASE]
  python3 - "$1/state" "$1/names.txt" "$2" "$3" "$4" "${5:-Ready}" "$agent_pid" <<'EOF'
import json, os, sys, time
from datetime import datetime
state, names, version, since, timeout, want, pid = sys.argv[1:8]
names, since = open(names).read().split(), float(since)
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
deadline = time.time() + float(timeout)
bad = {"RolledBack", "Degraded", "Drifted", "Invalid", "HostBlocked"} - {want}
while True:
    waiting, times = {}, []
    for name in names:
        try:
            st = json.load(open(f"{state}/envs/{name}/status.json"))
        except (OSError, ValueError):
            waiting[name] = "no status yet"
            continue
        phase, last = st.get("phase"), st.get("lastReconcileAt")
        fresh = last is not None and ts(last) >= since
        if fresh and phase in bad:
            sys.exit(f"{name} is {phase}: {st.get('message')}")
        releases = st.get("releases") or {}
        if not fresh or phase != want:
            waiting[name] = f"{phase}, last reconcile {last}"
            continue
        if want == "Ready" and not (releases and all(r.get("version") == version for r in releases.values())
                                    and st.get("observedGeneration") == st.get("appliedGeneration")):
            waiting[name] = "Ready at another version"
            continue
        deploys = [ts(h["at"]) for h in st.get("history", []) if h.get("result") == "deployed"
                   and h.get("generation") == st.get("appliedGeneration") and ts(h["at"]) >= since]
        times.append(min(deploys) if deploys else None)
    if not waiting:
        print("-" if None in times or not times else f"{max(times):.6f}")
        sys.exit()
    if not os.path.exists(f"/proc/{pid}"):
        sys.exit("the agent died")
    if time.time() > deadline:
        sys.exit(f"timed out after {timeout} s waiting for {want} at {version}: "
                 + "; ".join(f"{k}: {v}" for k, v in sorted(waiting.items())[:5]))
    time.sleep(0.2)
EOF
}

# Waits (bounded) until the agent logged no reconcile for QUIET_S seconds.
wait_quiet() { # LOG QUIET_S TIMEOUT_S
  python3 - "$@" <<'EOF'
import sys, time
log, quiet, timeout = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
start = last_change = time.time()
last = -1
while time.time() - start < timeout:
    count = sum('"message":"reconciled"' in line for line in open(log, errors="replace"))
    if count != last:
        last, last_change = count, time.time()
    elif time.time() - last_change >= quiet:
        sys.exit()
    time.sleep(0.2)
print(f"warning: the agent still reconciled something every few seconds after {timeout:.0f} s", file=sys.stderr)
EOF
}

# Starts the agent when it is not running and waits until it converged at v1 and is quiet.
ensure_agent() { # DIR N MODE LOG
  if [ -z "$agent_pid" ]; then
    start_agent "$1" "$3" "$4"
    wait_status "$1" 1 "$agent_started" $((120 + 10 * $2)) > /dev/null
  fi
  wait_quiet "$4" 2 $((30 + $2))
}

# The floor's switch of every project of DIR to VERSION: bare `docker compose up -d --wait`,
# P at a time. PREFIX: a command prefix (strace).
floor_switch() { # DIR VERSION [PREFIX...]
  local dir=$1 v=$2
  shift 2
  "$@" xargs -P "$parallel" -I{} docker compose -p {} --project-directory "$dir/compose/{}" \
    -f "$dir/compose/{}/compose.yaml" -f "$dir/compose/{}/pin-$v.yaml" \
    up -d --wait --wait-timeout 300 --pull never < "$dir/names.txt" >> "$dir/floor.log" 2>&1 \
    || { echo "the floor's docker compose up failed:" >&2; tail -20 "$dir/floor.log" >&2; exit 1; }
}

# utime + stime (clock ticks) of PID alone, without its children.
own_cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }
# Milliseconds from T0 to the agent's first `plan` line that decided a deploy after T0 (the
# debounce and the reload of the desired directory come before it).
first_deploy_ms() { # LOG T0
  python3 - "$1" "$2" <<'EOF'
import json, sys
from datetime import datetime
t0 = float(sys.argv[2])
for line in open(sys.argv[1], errors="replace"):
    if '"message":"plan"' not in line:
        continue
    r = json.loads(line)
    t = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
    if t >= t0 and r.get("action") == "deploy":
        print(f"{(t - t0) * 1000:.0f}")
        sys.exit()
print("-")
EOF
}
# The agent's steps between T0 and T1 (its `step done` log lines): "step=mean_ms/count ...".
steps_between() { # LOG T0 T1
  python3 - "$@" <<'EOF'
import json, sys
from datetime import datetime
t0, t1, steps = float(sys.argv[2]), float(sys.argv[3]) + 0.001, {}
for line in open(sys.argv[1], errors="replace"):
    if '"message":"step done"' not in line:
        continue
    r = json.loads(line)
    t = datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00")).timestamp()
    if t0 <= t <= t1:
        steps.setdefault(r.get("step"), []).append(r.get("millis", 0))
print(" ".join(f"{k}={sum(v) / len(v):.0f}/{len(v)}" for k, v in steps.items()) or "-")
EOF
}
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%d", (b - a) * 1000 + 0.5 }'; }
ticks_ms() { awk -v t="$1" -v k="$tck" 'BEGIN { printf "%d", t * 1000 / k + 0.5 }'; }

# One timed switch of the agent side (v1 -> v2), then back to v1 (untimed).
measure_agent() { # DIR N S ROUND
  local dir=$1 n=$2 round=$4 c0 c1 o0 o1 d0 d1 t0 ready
  ensure_agent "$dir" "$n" plain "$dir/agent.log"
  c0=$(tree_cpu_ticks "$agent_pid"); o0=$(own_cpu_ticks "$agent_pid"); d0=$(named_cpu_ticks dockerd containerd)
  t0=$(commit "$dir" 2)
  ready=$(wait_status "$dir" 2 "$t0" $((120 + 10 * n)))
  c1=$(tree_cpu_ticks "$agent_pid"); o1=$(own_cpu_ticks "$agent_pid"); d1=$(named_cpu_ticks dockerd containerd)
  [ "$ready" != "-" ] || { echo "an environment became Ready at v2 without a deploy entry in its history" >&2; exit 1; }
  echo "SWITCH $n $3 agent $round $(ms_between "$t0" "$ready") $(ticks_ms $((c1 - c0))) $(ticks_ms $((d1 - d0))) $(ticks_ms $((o1 - o0))) $(first_deploy_ms "$dir/agent.log" "$t0")" >> "$results"
  echo "STEPS $n $3 $round $(steps_between "$dir/agent.log" "$t0" "$ready")" >> "$results"
  wait_quiet "$dir/agent.log" 2 $((30 + n))
  t0=$(commit "$dir" 1)
  wait_status "$dir" 1 "$t0" $((120 + 10 * n)) > /dev/null
}

# One timed switch of the floor (v1 -> v2), then back to v1 (untimed), with the agent stopped.
measure_floor() { # DIR N S ROUND
  local dir=$1 n=$2 round=$4 d0 d1 t0 t1
  stop_agent
  d0=$(named_cpu_ticks dockerd containerd)
  t0=$EPOCHREALTIME
  ( floor_switch "$dir" 2; times ) > "$dir/times.txt"
  t1=$EPOCHREALTIME
  d1=$(named_cpu_ticks dockerd containerd)
  echo "SWITCH $n $3 floor $round $(ms_between "$t0" "$t1") $(times_ms "$dir/times.txt") $(ticks_ms $((d1 - d0))) - -" >> "$results"
  floor_switch "$dir" 1
}

# Counts of PROGRAM in STRACE between T0 and T1 (epoch seconds), as "program*count,..." ("-": none).
programs_between() { # STRACE T0 T1 [SKIP_FIRST]
  execve_programs "$1" | awk -v a="$2" -v b="$3" -v skip="${4:-0}" '
    NR <= skip { next }
    $1 >= a && $1 <= b { $1 = ""; sub(/^ /, ""); gsub(/ /, "+"); n[$0]++ }
    END { sep = ""; for (k in n) { printf "%s%s*%d", sep, k, n[k]; sep = "," } if (sep == "") printf "-"; print "" }'
}

# The untimed process-count pass of a variant: the traced agent's switch v1 -> v2, then the
# floor's traced switch back to v1.
count_processes() { # DIR N S
  local dir=$1 n=$2 log="$dir/agent-traced.log" t0 ready t2
  stop_agent
  ensure_agent "$dir" "$n" traced "$log"
  t0=$(commit "$dir" 2)
  ready=$(wait_status "$dir" 2 "$t0" $((120 + 10 * n)))
  sleep 3
  t2=$EPOCHREALTIME
  stop_agent
  if grep -q "Function not implemented" "$log"; then
    echo "strace stopped tracing the agent (its calls failed with ENOSYS): process counts void" >&2
    echo "PROCS $n $3 void" >> "$results"
    return
  fi
  echo "PROCS $n $3 agent window=$(programs_between "$log.strace" "$t0" "$ready") after=$(programs_between "$log.strace" "$ready" "$t2")" >> "$results"
  floor_switch "$dir" 1 strace -f --seccomp-bpf -qq -ttt -s 256 -e trace=execve -e signal=none -o "$dir/floor.strace"
  echo "PROCS $n $3 floor window=$(programs_between "$dir/floor.strace" 0 9999999999 1)" >> "$results"
}

run_variant() { # N S
  local n=$1 s=$2 dir="$work/$1x$2" round side
  mkdir -p "$dir/desired" "$dir/state"
  chmod 700 "$dir/state"
  : > "$dir/floor.log"
  write_envs "$dir" 1 "$n" "$s" 2m 1 2
  echo
  echo "== $n environments x $s service(s), --parallel $parallel: converging at v1 through the agent"
  cp "$dir/manifests/1/"*.yaml "$dir/desired/"
  local t=$SECONDS mode=plain
  # The first agent process, on an empty state directory, is traced when strace is there (this
  # converge is not timed): its whole life counts `compose version` and the first scan's renders.
  [ "$tracing" = 1 ] && mode=traced
  ensure_agent "$dir" "$n" "$mode" "$dir/agent-first.log"
  echo "converged in $((SECONDS - t)) s"
  if [ "$mode" = traced ]; then
    stop_agent
    # The first two execs are the launch: env, then c2quay.
    echo "PROCS $n $s first life=$(programs_between "$dir/agent-first.log.strace" 0 9999999999 2)" >> "$results"
  fi
  for ((round = 1; round <= rounds; round++)); do
    local order="agent floor"
    [ $((round % 2)) -eq 0 ] && order="floor agent"
    for side in $order; do "measure_$side" "$dir" "$n" "$s" "$round"; done
    grep "^SWITCH $n $s [a-z]* $round " "$results" | awk -v r="$round" -v k="$rounds" '{ w[$4] = $6; c[$4] = $7 }
      END { printf "round %d/%d (wall, cpu ms): floor %d, %d   c2quay %d, %d\n", r, k, w["floor"], c["floor"], w["agent"], c["agent"] }'
  done
  if [ "$tracing" = 1 ]; then
    echo "counting processes (untimed: the agent and the floor under strace, one switch each)"
    count_processes "$dir" "$n" "$s"
  fi
  stop_agent
  remove_projects
}

# The readiness-timeout pass: one environment whose v2 never becomes healthy.
run_timeout() {
  local dir="$work/timeout" log="$work/timeout/agent.log" t0 mode=plain
  [ "$tracing" = 1 ] && mode=traced
  mkdir -p "$dir/desired" "$dir/state"
  chmod 700 "$dir/state"
  write_envs "$dir" 0 0 1 "$wait_timeout" 1 unhealthy
  echo
  echo "== readiness timeout: one environment whose v2 (c2quay-test/web:unhealthy) never becomes healthy, waitTimeout $wait_timeout"
  cp "$dir/manifests/1/"*.yaml "$dir/desired/"
  ensure_agent "$dir" 1 "$mode" "$log"
  # The agent tree's CPU every 0.1 s, bounded by the wait and the rollback's own.
  python3 - "$agent_pid" $((wait_seconds * 2 + 180)) "$dir/cpu.txt" <<'EOF' &
import os, sys, time
root, limit, out = sys.argv[1], float(sys.argv[2]), open(sys.argv[3], "w", buffering=1)
end = time.time() + limit
while time.time() < end and os.path.exists(f"/proc/{root}"):
    stat = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            text = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        stat[pid] = text[text.rindex(")") + 2:].split()
    children = {}
    for pid, f in stat.items():
        children.setdefault(f[1], []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += sum(int(x) for x in stat.get(pid, [0] * 15)[11:15])
        todo.extend(children.get(pid, []))
    own = sum(int(x) for x in stat.get(root, [0] * 15)[11:13])
    out.write(f"{time.time():.6f} {total} {own}\n")
    time.sleep(0.1)
EOF
  sampler_pid=$!
  t0=$(commit "$dir" unhealthy)
  wait_status "$dir" unhealthy "$t0" $((wait_seconds * 2 + 120)) RolledBack > /dev/null
  local t1=$EPOCHREALTIME
  sleep 0.3
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
  stop_agent
  local execs="-"
  if [ "$mode" = traced ]; then
    execs="$dir/execs.txt"
    execve_programs "$log.strace" > "$execs"
  fi
  python3 - "$log" "$dir/cpu.txt" "$t0" "$t1" "$tck" "$execs" >> "$results" <<'EOF'
import json, sys
from datetime import datetime
log, samples, t0, t1, tck, execs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
steps = []
for line in open(log, errors="replace"):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("message") == "step done" and ts(r["timestamp"]) >= t0:
        steps.append((ts(r["timestamp"]), r.get("step"), r.get("ok"), r.get("millis")))
wait = next((s for s in steps if s[1] == "readiness"), None)
if wait is None:
    sys.exit("no readiness step in the agent's log after the commit")
w1 = wait[0]
w0 = w1 - wait[3] / 1000
rows = [tuple(map(float, l.split())) for l in open(samples) if l.strip()]
def inner(t, u):
    """The first sample at or after t and the last at or before u: the window's CPU without its
    edges (the `up` before the wait, the rollback after it)."""
    inside = [r for r in rows if t <= r[0] <= u]
    return (inside[0], inside[-1]) if inside else (rows[0], rows[0])
def ms(t, u, k):
    a, b = inner(t, u)
    return (b[k] - a[k]) * 1000 / tck
def span(t, u):
    a, b = inner(t, u)
    return b[0] - a[0]
def programs(a, b):
    if execs == "-":
        return "untraced"
    counts = {}
    for line in open(execs):
        t, name = line.rstrip("\n").split(" ", 1)
        if a <= float(t) <= b:
            counts[name] = counts.get(name, 0) + 1
    return ",".join(f"{k.replace(' ', '+')}*{v}" for k, v in sorted(counts.items())) or "-"
rollback = next((s for s in steps if s[1] == "rollback"), None)
print(f"TIMEOUT wait_ms={wait[3]} ok={wait[2]} wait_tree_cpu_ms={ms(w0, w1, 1):.0f} wait_own_cpu_ms={ms(w0, w1, 2):.0f} "
      f"wait_sampled_ms={span(w0, w1) * 1000:.0f} "
      f"wait_procs={programs(w0, w1)} total_ms={(t1 - t0) * 1000:.0f} total_tree_cpu_ms={ms(t0, t1, 1):.0f} "
      f"total_procs={programs(t0, t1)} rollback_ms={rollback[3] if rollback else '-'} "
      f"steps={','.join(f'{s[1]}:{s[3]}' for s in steps)}")
EOF
  remove_projects
}

for v in "${variants[@]}"; do run_variant "${v%x*}" "${v#*x}"; done
[ "$timeout_pass" = 1 ] && run_timeout

# --- figures -----------------------------------------------------------------------------------
echo
python3 - "$results" "$parallel" "$rounds" "$debounce" "$health_interval" "$wait_timeout" "$work/figures.txt" <<'EOF'
import statistics, sys
results, parallel, rounds, debounce, interval, wait_timeout, figures = sys.argv[1:8]
switches, procs, timeout, steps = {}, {}, None, {}
for line in open(results):
    kind, *rest = line.split()
    if kind == "SWITCH":
        n, s, side, rnd, wall, cpu, daemon, own, start = rest
        switches.setdefault((int(n), int(s)), {}).setdefault(side, []).append(
            (int(wall), int(cpu), int(daemon), int(own) if own != "-" else 0, int(start) if start != "-" else 0))
    elif kind == "PROCS":
        n, s, side, *fields = rest
        if side == "void":
            procs[(int(n), int(s))] = None
        elif procs.get((int(n), int(s)), {}) is not None:
            procs.setdefault((int(n), int(s)), {})[side] = dict(f.split("=", 1) for f in fields if "=" in f)
    elif kind == "STEPS":
        n, s, rnd, *fields = rest
        for f in fields:
            if "=" in f:
                name, value = f.split("=", 1)
                steps.setdefault((int(n), int(s)), {}).setdefault(name, []).append(float(value.split("/")[0]))
    elif kind == "TIMEOUT":
        timeout = dict(f.split("=", 1) for f in rest)
def counts(text):
    out = {}
    for item in (text or "-").split(","):
        if item and item != "-" and item != "untraced":
            name, k = item.rsplit("*", 1)
            out[name.replace("+", " ")] = int(k)
    return out
fig = open(figures, "w")
for (n, s), sides in switches.items():
    med = {side: [statistics.median(r[i] for r in rows) for i in range(5)] for side, rows in sides.items()}
    f, a = med["floor"], med["agent"]
    print(f"{n} environments x {s} service(s), --parallel {parallel} (floor: xargs -P {parallel}); median of "
          f"{len(sides['agent'])} alternating round(s); healthcheck every {interval}, agent debounce {debounce}")
    rows = [("", "floor", "c2quay", "c2quay/floor")]
    rows.append(("commit to all Ready (ms)", f"{f[0]:.0f}", f"{a[0]:.0f}", f"{a[0] / f[0]:.2f}x"))
    rows.append(("  of which until the first deploy began", "", f"{a[4]:.0f}", ""))
    rows.append(("CPU, process tree (ms)", f"{f[1]:.0f}", f"{a[1]:.0f}", f"{a[1] / f[1]:.2f}x" if f[1] else "-"))
    rows.append(("  of which the agent process itself", "", f"{a[3]:.0f}", ""))
    p = procs.get((n, s))
    pf = pa = None
    if p is None and (n, s) in procs:
        rows.append(("processes per deploy", "void", "void", ""))
    elif p:
        pf = sum(counts(p["floor"]["window"]).values()) / n
        pa = sum(counts(p["agent"]["window"]).values()) / n
        rows.append(("processes per deploy", f"{pf:g}", f"{pa:g}", ""))
    rows.append(("dockerd+containerd CPU (ms, context)", f"{f[2]:.0f}", f"{a[2]:.0f}", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    if (n, s) in steps:
        print("  c2quay's steps, mean per deploy (ms; median over the rounds): " + ", ".join(
            f"{k} {statistics.median(v):.0f}" for k, v in steps[(n, s)].items()))
    print("  per round (wall ms / cpu ms): " + "   ".join(
        f"{k + 1}: floor {sf[0]}/{sf[1]}, c2quay {sa[0]}/{sa[1]}" for k, (sf, sa) in enumerate(zip(sides["floor"], sides["agent"]))))
    observe = version = life_version = "-"
    if p:
        agent, floor = counts(p["agent"]["window"]), counts(p["floor"]["window"])
        print("  processes per deploy, by program (c2quay, from the commit to all Ready): "
              + (", ".join(f"{k} {v / n:g}" for k, v in sorted(agent.items())) or "none"))
        after = counts(p["agent"]["after"])
        print("    in the 3 s after all Ready: " + (", ".join(f"{k} {v}" for k, v in sorted(after.items())) or "none"))
        life = counts(p.get("first", {}).get("life"))
        # Each `compose version` ends in the plugin, whether the docker CLI ran it or the agent did.
        life_version = life.get("docker-compose version", 0)
        print(f"    over the life of the first agent process (empty state directory; first scan, {n} deploys "
              f"from nothing, stop): " + ", ".join(f"{k} {v}" for k, v in sorted(life.items())))
        observe = sum(v for k, v in agent.items() if k.split()[0] == "docker" and (k.split() + [""])[1] != "compose")
        print("  processes per deploy, by program (floor): "
              + ", ".join(f"{k} {v / n:g}" for k, v in sorted(floor.items())))
    fig.write(f"VARIANT {n} {s} {f[0]:.0f} {a[0]:.0f} {f[1]:.0f} {a[1]:.0f} {observe} {life_version}\n")
    print()
if timeout:
    t = timeout
    print(f"readiness timeout (waitTimeout {wait_timeout}, c2quay-test/web:unhealthy, one environment, one service)")
    print(f"  readiness waited {int(t['wait_ms']) / 1000:.1f} s (ok={t['ok']}); CPU of the agent tree during the wait "
          f"{t['wait_tree_cpu_ms']} ms (the agent itself {t['wait_own_cpu_ms']} ms), sampled over "
          f"{int(t['wait_sampled_ms']) / 1000:.1f} s of it")
    print(f"  processes spawned during the wait: " + (", ".join(f"{k} {v}" for k, v in sorted(counts(t["wait_procs"]).items()))
          or ("not counted (no strace)" if t["wait_procs"] == "untraced" else "none")))
    print(f"  the whole failed deploy, commit to RolledBack ({int(t['total_ms']) / 1000:.1f} s, rollback step "
          f"{t['rollback_ms']} ms): CPU {t['total_tree_cpu_ms']} ms, processes: "
          + (", ".join(f"{k} {v}" for k, v in sorted(counts(t["total_procs"]).items())) or "-"))
    print(f"  steps (ms): {t['steps'].replace(',', ', ').replace(':', ' ')}")
    fig.write(f"TIMEOUT {t['wait_ms']} {t['wait_tree_cpu_ms']}\n")
EOF

# Issue 20's targets, beside the figures; a verdict only for the issue's own configurations.
table="$work/table.tsv"
: > "$table"
limit() { [ "$issue" = yes ] && echo "$1" || echo none; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == 0) print "-"; else printf "%.2fx\n", a / b }'; }
while read -r kind a b c d e f g h; do
  if [ "$kind" = VARIANT ]; then
    n=$a s=$b
    issue=none
    { [ "$n" = 12 ] && [ "$s" = 1 ]; } || { [ "$n" = 30 ] && [ "$s" = 5 ]; } && issue=yes
    figure_row "$table" "${n}x${s}: commit to all Ready (ms)" "$d" "$c (floor)" "$(ratio "$d" "$c")" "<= 1.10x" "$(limit 1.10)"
    figure_row "$table" "${n}x${s}: CPU, process tree (ms)" "$f" "$e (floor)" "$(ratio "$f" "$e")" "<= 1.5x" "$(limit 1.5)"
    if [ "$g" != "-" ]; then
      figure_row "$table" "${n}x${s}: docker CLI processes observing" "$g" "0 (target)" "-" "0" -
      figure_row "$table" "${n}x${s}: compose version per agent process" "$h" "1 (target)" "$h" "<= 1" 1
    fi
  elif [ "$kind" = TIMEOUT ]; then
    figure_row "$table" "readiness wait of $((a / 1000)) s: CPU (ms)" "$b" "200 (target, 30 s)" "$(ratio "$b" 200)" \
      "<= 0.2 s" "$([ "$wait_seconds" = 30 ] && echo 1 || echo none)"
  fi
done < "$work/figures.txt"
print_summary "$table" "issue 20 targets (measured in this run; a verdict only for 12x1 and 30x5 and a 30 s wait)"
