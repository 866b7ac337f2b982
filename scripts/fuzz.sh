#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: coverage-guided fuzzing of c2quay's parsers of untrusted text
# (issue 6, item 1), SECONDS per target (default 60).
#
#   manifest  c2quay::manifest::parse_str (YAML, inline-secret scan, typed parse, rules)
#   compose   c2quay::docker::parse::{config, is_leftover_name}
#   broker    c2quay::broker::parse::{parse_matrix, parse_index, parse_environments,
#             error_messages, excerpt}, with the gate safety assertion
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`; installed here when missing) and a C++
# compiler for libFuzzer. On a stable toolchain RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z
# flags. Seeds come from the repo (desired/, tests/fixtures/broken/, src/broker/fixtures/);
# the corpus grows in fuzz/corpus/<target> (git-ignored). A crash leaves its input in
# fuzz/artifacts/<target>/: turn it into a regression test in tests/it/parser_fuzz.rs.
#
# The bounded property-based form of the same fuzzing runs in the test command
# (tests/it/parser_fuzz.rs); this script is the long, coverage-guided form.
#
# Environment: FUZZ_TARGETS="manifest compose broker" to choose targets;
#              FUZZ_SANITIZER=none|address (default address).
# Prints "fuzz: N passed, N failed" (one per target) and exits non-zero on a crash.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SECONDS_PER_TARGET="${1:-60}"
TARGETS="${FUZZ_TARGETS:-manifest compose broker}"
SANITIZER="${FUZZ_SANITIZER:-address}"
export RUSTC_BOOTSTRAP=1

if ! command -v c++ >/dev/null 2>&1; then
  echo "no C++ compiler (libFuzzer needs one): installing g++"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q g++ >/dev/null || { echo "cannot install g++" >&2; exit 1; }
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz missing: installing it (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked || { echo "cannot install cargo-fuzz" >&2; exit 1; }
fi

seed() {
  local target="$1" dir="fuzz/corpus/$1"
  mkdir -p "$dir"
  case "$target" in
    manifest) cp desired/*.yaml tests/fixtures/broken/*.yaml "$dir"/ 2>/dev/null ;;
    broker) cp src/broker/fixtures/*.json "$dir"/ 2>/dev/null ;;
    compose)
      printf '%s\n' '{"name":"shop","services":{"web":{"image":"c2quay-test/web:1","restart":"unless-stopped","healthcheck":{"test":["CMD","true"]}},"api":{"build":{"context":"."}}}}' >"$dir/config"
      ;;
  esac
}

passed=0
failed=0
for target in $TARGETS; do
  seed "$target"
  echo "==> fuzz $target for ${SECONDS_PER_TARGET}s (sanitizer: $SANITIZER)"
  started=$SECONDS
  log="fuzz/artifacts/$target.log"
  mkdir -p fuzz/artifacts
  (cd fuzz && cargo fuzz run --sanitizer "$SANITIZER" "$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
      -max_len=65536) >"$log" 2>&1
  status=$?
  tail -n 15 "$log"
  if ls "fuzz/artifacts/$target"/crash-* "fuzz/artifacts/$target"/timeout-* \
        "fuzz/artifacts/$target"/oom-* >/dev/null 2>&1; then
    status=1
  fi
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1)
    echo "==> fuzz $target: no crash in $((SECONDS - started))s (${runs:-runs unknown}); corpus $(ls "fuzz/corpus/$target" | wc -l) inputs"
  else
    failed=$((failed + 1))
    echo "==> fuzz $target: FAILED (see fuzz/artifacts/$target/)" >&2
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
