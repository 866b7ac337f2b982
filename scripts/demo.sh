#!/usr/bin/env bash
# The c2quay demo, the README's main command: from a fresh clone, on a Debian 12 machine as root.
#
#   bash scripts/demo.sh          # run the demo, then clean up
#   bash scripts/demo.sh --keep   # leave the agent, the broker emulator and the shop running
#
# 1. sets up the world (Docker engine, Compose v2, test images: scripts/test-world.sh);
# 2. starts the broker emulator (a Pact Broker stand-in, NOT for production) on a free
#    127.0.0.1 port, seeded with the shop's pacts and verifications (demo/broker-seed.yaml);
# 3. runs `c2quay agent` on a copy of desired/shop-staging.yaml (its own Compose project,
#    `c2quay-demo-shop`, on free ports) with its endpoints on a free 127.0.0.1 port and waits
#    until the environment is Ready;
# 4. prints `c2quay status`, the broker's view and where to look;
# 5. bumps web to a release that never gets healthy and shows the automatic rollback.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1

work="$root/.demo"
started=$(date +%s)
# The demo's own Compose project: it never touches one it did not create.
project=c2quay-demo-shop

# A free 127.0.0.1 TCP port (the kernel picks it).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
broker_addr=127.0.0.1:$(free_port)
listen=127.0.0.1:$(free_port)
export SHOP_WEB_PORT=$(free_port) SHOP_API_PORT=$(free_port)

# Downs the demo's project, but only when the demo created it (its Compose file is ours).
down_demo_project() {
  local files
  files=$(docker compose ls --all --format json 2>/dev/null | python3 -c '
import json, sys
for p in json.load(sys.stdin):
    if p["Name"] == sys.argv[1]:
        print(p.get("ConfigFiles", ""))' "$project" || true)
  [ -z "$files" ] && return 0
  if [ "${files%%,*}" != "$root/examples/shop/compose.yaml" ]; then
    echo "error: a Compose project named $project exists and was not created by this demo ($files); remove it or rename it" >&2
    return 1
  fi
  docker compose -p "$project" down --remove-orphans >/dev/null 2>&1 || true
}

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
elapsed() { echo "$(( $(date +%s) - started ))s"; }

cleanup() {
  if [ "$keep" = 1 ]; then
    step "left running (stop with: kill \$(cat $work/agent.pid) \$(cat $work/emulator.pid); docker compose -p $project down)"
    return
  fi
  step "cleaning up"
  [ -f "$work/agent.pid" ] && kill "$(cat "$work/agent.pid")" 2>/dev/null || true
  [ -f "$work/emulator.pid" ] && kill "$(cat "$work/emulator.pid")" 2>/dev/null || true
  sleep 1
  down_demo_project || true
  echo "agent and broker emulator stopped, project $project removed; logs and state kept in $work"
}

# Polls the agent's status API until ENV reaches PHASE (bounded).
wait_for_phase() {
  local env=$1 phase=$2 limit=$3 i
  for ((i = 0; i < limit; i++)); do
    got=$(curl -fsS "http://$listen/api/v1/environments/$env" 2>/dev/null \
      | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])' 2>/dev/null || true)
    if [ "$got" = "$phase" ]; then
      echo "$env is $phase after $(elapsed)"
      return 0
    fi
    sleep 1
  done
  echo "error: $env did not reach $phase within ${limit}s (last phase: ${got:-none}); see $work/agent.log" >&2
  return 1
}

step "1. setting up the world (Docker, Compose v2, test images)"
bash scripts/test-world.sh
export PATH="/usr/local/bin:$HOME/.cargo/bin:$PATH"

step "building c2quay"
cargo build --quiet --workspace --bins
bin="$root/target/debug"

# A clean slate for the demo: its own state, a copy of the desired manifest.
if [ -f "$work/agent.pid" ]; then kill "$(cat "$work/agent.pid")" 2>/dev/null || true; fi
if [ -f "$work/emulator.pid" ]; then kill "$(cat "$work/emulator.pid")" 2>/dev/null || true; fi
down_demo_project
rm -rf "$work"
mkdir -p "$work/desired"
chmod 700 "$work"
# The copy points at the example Compose project by absolute path, and waits 20s (not 2m)
# for readiness so the rollback part of the demo is quick.
sed -e "s#directory: ../examples/shop#directory: $root/examples/shop#" \
    -e "s#waitTimeout: 2m #waitTimeout: 20s#" \
    -e "s#project: shop #project: $project #" \
    -e "s#http://127.0.0.1:9292#http://$broker_addr#" \
    -e "s#127.0.0.1:18080#127.0.0.1:$SHOP_WEB_PORT#" \
    -e "s#127.0.0.1:18081#127.0.0.1:$SHOP_API_PORT#" \
    desired/shop-staging.yaml > "$work/desired/shop-staging.yaml"
for expected in "project: $project" "$broker_addr" "$SHOP_WEB_PORT" "$SHOP_API_PORT"; do
  grep -q "$expected" "$work/desired/shop-staging.yaml" || { echo "error: the demo copy of the manifest lacks $expected" >&2; exit 1; }
done
trap cleanup EXIT

step "2. starting the broker emulator on $broker_addr (seeded with demo/broker-seed.yaml)"
"$bin/c2quay-broker-emulator" --listen "$broker_addr" --seed demo/broker-seed.yaml > "$work/emulator.log" 2>&1 &
echo $! > "$work/emulator.pid"
for _ in $(seq 1 50); do curl -fsS "http://$broker_addr/" >/dev/null 2>&1 && break; sleep 0.2; done

step "3. starting c2quay agent (endpoints on http://$listen)"
"$bin/c2quay" agent --desired "$work/desired" --state-dir "$work/state" --listen "$listen" \
  --resync 10s --debounce 300ms > "$work/agent.log" 2>&1 &
echo $! > "$work/agent.pid"
wait_for_phase shop-staging Ready 180

step "4. what runs now"
"$bin/c2quay" status --state-dir "$work/state"
echo
"$bin/c2quay" status shop-staging --state-dir "$work/state"
echo
echo "the shop answers: $(curl -fsS "http://127.0.0.1:$SHOP_WEB_PORT/")"
echo
echo "the broker's view (currently deployed in staging):"
curl -fsS "http://$broker_addr/_emulator/state" | python3 -c '
import json, sys
for d in json.load(sys.stdin)["deployments"]:
    if d["currently_deployed"]:
        print("  %s %s -> %s" % (d["pacticipant"], d["version"], d["environment_name"]))'
echo
echo "where to look:"
echo "  metrics:    curl http://$listen/metrics | grep ^c2quay_"
echo "  status API: curl http://$listen/api/v1/environments"
echo "  dashboard:  grafana/c2quay-dashboard.json (import into Grafana), alerts: grafana/alerts.yaml"
echo "  state:      $work/state/envs/shop-staging/ (status.json, audit.jsonl, snapshots/, reports/)"

step "5. a bad release: web 2 with an image that never becomes healthy"
python3 - "$work/desired/shop-staging.yaml" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
# web: version 1 -> 2, image pinned to the unhealthy test image.
text = re.sub(r'(pacticipant: shop-web[^\n]*\n\s+version: )"1"', r'\1"2"', text)
text = re.sub(r'(version: "2"[^\n]*\n\s+image: )c2quay-test/web:\{version\}', r'\1c2quay-test/web:unhealthy', text)
open(path, "w").write(text)
EOF
grep -A3 "^    web:" "$work/desired/shop-staging.yaml" | head -4
echo "(the agent notices the file change, gates, applies, waits for readiness, and rolls back)"
wait_for_phase shop-staging RolledBack 120
"$bin/c2quay" status shop-staging --state-dir "$work/state"
echo
echo "the shop still answers: $(curl -fsS "http://127.0.0.1:$SHOP_WEB_PORT/")"
report=$(ls -t "$work"/state/envs/shop-staging/reports/*rollback* 2>/dev/null | head -1 || true)
if [ -n "$report" ]; then
  echo "rollback report: $report"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  failed step: %s\n  result: %s\n  restored: %s" % (r["failedStep"], r["result"], r["restored"]))' "$report"
fi
echo
echo "the broker still shows web 1 in staging (nothing is recorded before smoke passes):"
curl -fsS "http://$broker_addr/_emulator/state" | python3 -c '
import json, sys
for d in json.load(sys.stdin)["deployments"]:
    if d["currently_deployed"]:
        print("  %s %s -> %s" % (d["pacticipant"], d["version"], d["environment_name"]))'
step "demo done in $(elapsed)"
