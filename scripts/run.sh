#!/usr/bin/env bash
# Runs redial on a fresh Debian machine: installs the one system library the
# build links (libopus, via pkg-config) when missing, then
# `cargo run --release -- serve` (built-in defaults, or ./redial.toml if present).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! { command -v pkg-config >/dev/null && pkg-config --exists opus; }; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq pkg-config libopus-dev >/dev/null
fi
exec cargo run --release --bin redial -- serve "$@"
