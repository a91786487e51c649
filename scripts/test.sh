#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is missing (emulator
# venv with moto and cfn-lint, cargo-nextest if absent), starts the AWS emulator,
# lints the SAM template, then runs every Rust test (unit, provider fakes over HTTP,
# end to end on the emulator) and builds the benchmarks. Idempotent; stops the
# emulator afterwards if it started it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n==> %s\n' "$*"; }

step "emulator: install and start"
bash scripts/emulator.sh install
started_here=0
if ! bash scripts/emulator.sh status >/dev/null 2>&1; then
    bash scripts/emulator.sh start
    started_here=1
fi
cleanup() { if [[ $started_here == 1 ]]; then bash scripts/emulator.sh stop || true; fi; }
trap cleanup EXIT
eval "$(bash scripts/emulator.sh env)"

step "cfn-lint infra/template.yaml"
bash scripts/lint-template.sh

step "cargo tests (workspace)"
# Tests run in parallel threads; each end-to-end test provisions its own prefixed
# resources, so they never share state.
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --failure-output final
    # nextest does not run doctests.
    cargo test --workspace --doc
else
    cargo test --workspace --no-fail-fast
fi
