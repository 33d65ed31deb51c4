#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests need
# (SIPp with its pcaps, baresip, pkg-config, libopus) when missing, then runs
# every test.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo build --locked --bin redial
# Benchmarks are only compiled here: they print figures (`cargo bench`), and
# under `cargo test` they would run their whole measurement unoptimised.
cargo test --locked --benches --no-run
cargo test --locked --lib --bins --tests -- --test-threads="${TEST_THREADS:-4}"

# --- Browser tests of the web console (tests/browser) -------------------------
# Debian's chromium driven by playwright-core (no browser download); npm only
# installs the test's two packages. `node --test` exits non-zero on a failure.
if ! command -v chromium >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium nodejs npm >/dev/null
fi
if [ ! -d tests/browser/node_modules/playwright-core ] || [ ! -d tests/browser/node_modules/axe-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi
(cd tests/browser && REDIAL_BIN="$PWD/../../target/debug/redial" node --test --test-concurrency=1 console.test.mjs)
# --- end of browser tests ------------------------------------------------------
