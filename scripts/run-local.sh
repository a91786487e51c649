#!/usr/bin/env bash
# Runs the whole service on this machine: installs and starts the AWS emulator
# (moto, no Docker needed), provisions it from infra/template.yaml, starts the
# sandbox provider, serves the API on :8080 and the webhook URL on :8081, runs every
# function's handler, and seeds a demo PSAP tenant. Ctrl-C stops it.
# To use LocalStack instead, export AWS_ENDPOINT_URL (and credentials) first.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/emulator.sh install
bash scripts/emulator.sh start
eval "$(bash scripts/emulator.sh env)"
export RUST_LOG="${RUST_LOG:-info}"
# On the way out (Ctrl-C included): "emulator: peak RSS X MiB, 5xx N" for the session.
trap 'bash scripts/emulator.sh stats || true' EXIT
cargo run -p dispatch-local --bin dispatch-local
