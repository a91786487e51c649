#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is missing (emulator
# venv with moto and cfn-lint; cargo-nextest is used when present), starts the AWS
# emulator, lints the SAM template, runs every Rust test (unit, provider fakes over
# HTTP, end to end on the emulator), then a tiny benchmark run that checks the
# benchmark code still builds and completes. Idempotent; stops the emulator afterwards
# if it started it.
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
# Tests run in parallel; each end-to-end test provisions its own prefixed resources
# from the template, so they never share state.
mkdir -p .local
log=.local/test-output.log
status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --failure-output final 2>&1 | tee "$log" || status=$?
    summary="$(grep -E 'Summary \[' "$log" | tail -1 || true)"
    passed="$(sed -nE 's/.* ([0-9]+) passed.*/\1/p' <<<"$summary")"
    failed="$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' <<<"$summary")"
    skipped="$(sed -nE 's/.* ([0-9]+) skipped.*/\1/p' <<<"$summary")"
else
    cargo test --workspace --no-fail-fast 2>&1 | tee "$log" || status=$?
    passed="$(grep -E '^test result:' "$log" | sed -nE 's/.* ([0-9]+) passed.*/\1/p' | awk '{s+=$1} END {print s+0}')"
    failed="$(grep -E '^test result:' "$log" | sed -nE 's/.* ([0-9]+) failed.*/\1/p' | awk '{s+=$1} END {print s+0}')"
    skipped="$(grep -E '^test result:' "$log" | sed -nE 's/.* ([0-9]+) ignored.*/\1/p' | awk '{s+=$1} END {print s+0}')"
fi

# The fuzz targets' case counts (their output is shown for passing runs too).
fuzz_lines="$(grep -oE 'fuzz [a-z0-9_]+: [0-9]+ cases' "$log" | sort -u || true)"
if [[ -n $fuzz_lines ]]; then
    echo "fuzz targets: $(wc -l <<<"$fuzz_lines" | tr -d ' ') ran, $(awk '{s+=$3} END {print s}' <<<"$fuzz_lines") cases in all"
    sed 's/^/  /' <<<"$fuzz_lines"
fi

step "openapi: lint, render, schemathesis contract run"; { bash scripts/lint-openapi.sh && bash scripts/contract-test.sh; } || status=1
# The rendered page is committed; rendering it again must not change it.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && ! git diff --quiet -- docs/api.html; then
    echo "openapi: docs/api.html was stale (re-rendered from docs/openapi.yaml): commit the new one"
    status=1
fi

step "benchmarks: tiny run (builds and completes; figures are not judged)"
bench_status=0
bash scripts/bench.sh --tiny || bench_status=$?
if [[ $bench_status != 0 ]]; then
    echo "benchmark tiny run failed (exit $bench_status)"
fi

echo
echo "dispatch tests: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
if [[ $status != 0 || $bench_status != 0 ]]; then
    exit 1
fi
