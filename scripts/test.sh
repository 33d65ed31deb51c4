#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs what the tests need
# when missing (SIPp with its pcaps, baresip, pkg-config, libopus, libssl (str0m's DTLS); chromium,
# PostgreSQL, Kamailio with its WebSocket modules and Node for the browser and
# cluster tests), installs the browser tests' npm packages when there are any,
# then runs every test.
#
# Tests start redial on port 0 and read the bound ports from its
# `--ready-file`, so any number of them can run at once on one machine;
# TEST_THREADS (default 4) sets how many.
set -euo pipefail
cd "$(dirname "$0")/.."

# A Debian package is needed when none of its files is installed.
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

need=()
command -v sipp >/dev/null || need+=(sip-tester)
command -v baresip >/dev/null || need+=(baresip)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists opus 2>/dev/null || need+=(libopus-dev)
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev)
# The openssl command makes the TLS tests' certificates (sip_tls, the wss browser test).
command -v openssl >/dev/null || need+=(openssl)
command -v chromium >/dev/null || need+=(chromium)
installed postgresql || need+=(postgresql)
command -v kamailio >/dev/null || [ -x /usr/sbin/kamailio ] || need+=(kamailio)
installed kamailio-websocket-modules || need+=(kamailio-websocket-modules)
command -v npm >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The browser tests' packages, when that suite is present: `npm ci` with a
# lock file (exact versions), else `npm install`.
if [ -f tests/browser/package.json ]; then
  if [ -f tests/browser/package-lock.json ]; then
    (cd tests/browser && npm ci --no-audit --no-fund)
  else
    (cd tests/browser && npm install --no-audit --no-fund)
  fi
fi

cargo build --locked --bin redial
# Benchmarks are only compiled here: they print figures (`cargo bench`), and
# under `cargo test` they would run their whole measurement unoptimised.
cargo test --locked --benches --no-run
cargo test --locked --lib --bins --tests -- --test-threads="${TEST_THREADS:-4}"

# Browser tests of the web console: Debian's chromium driven by playwright-core
# (installed above; no browser download). `node --test` exits non-zero on a failure.
(cd tests/browser && REDIAL_BIN="$PWD/../../target/debug/redial" node --test --test-concurrency=1 console.test.mjs)
# SIP over WebSocket against a bare JsSIP page (vendored in src/console/static).
(cd tests/browser && REDIAL_BIN="$PWD/../../target/debug/redial" node --test --test-concurrency=1 sipws.test.mjs)
# The WebRTC leg against chromium (ICE-lite, DTLS-SRTP, G.711 both ways on loopback).
cargo build --locked --example webrtc_leg_peer
(cd tests/browser && node --test --test-concurrency=1 webrtc_leg.test.mjs)
# Browser agents carrying calls: JsSIP in chromium answers WebRTC calls bridged to a
# SIPp carrier (customer-first with DTMF, agent-first, inbound, WebSocket closed mid-call).
(cd tests/browser && REDIAL_BIN="$PWD/../../target/debug/redial" node --test --test-concurrency=1 webrtc_call.test.mjs)
# The agent workspace's softphone (JsSIP served by redial) against a SIPp carrier, and
# its re-registration after a restart.
(cd tests/browser && REDIAL_BIN="$PWD/../../target/debug/redial" node --test --test-concurrency=1 softphone.test.mjs)
