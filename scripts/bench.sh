#!/usr/bin/env bash
# Benchmarks (BENCHMARKS.md has the method, the commands and the measured numbers).
#
#   scripts/bench.sh          full run: release builds (fat LTO, slow on 2 cores), every
#                             measurement at full size; results in target/bench/full/
#   scripts/bench.sh --tiny   CI smoke run: debug builds, a few iterations and messages
#                             through each measurement (a couple of minutes once the
#                             debug build exists); results in target/bench/tiny/
#
# Measurements: hot path throughput (in-process), cold start per function against a
# local Runtime API stub (sizes, init time vs a hello-world binary, peak RSS, no network
# at init), and the whole pipeline on the AWS emulator through a counting proxy (AWS
# requests and DynamoDB units per delivered message, cost, latency percentiles).
#
# Nothing is judged on time: the script fails only if a build fails, a function does
# not start or answer, init touches the network, or a message is not delivered.
# Extra arguments per measurement: BENCH_HOTPATH_ARGS, BENCH_COLDSTART_ARGS,
# BENCH_PIPELINE_ARGS (appended to the defaults below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODE=full
case "${1:-}" in
    "") ;;
    --tiny) MODE=tiny ;;
    -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "usage: scripts/bench.sh [--tiny]" >&2; exit 2 ;;
esac

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ $MODE == tiny ]]; then
    CARGO_PROFILE=(); BIN_DIR="$TARGET_DIR/debug"
    HOTPATH_ARGS=(--secs 0.05 --runs 2)
    COLDSTART_ARGS=(--runs 2 --sdk-runs 1 --breakdown-runs 2)
    PIPELINE_ARGS=(--sequential 3 --messages 6 --concurrency 2 --quiet-ms 1000)
else
    CARGO_PROFILE=(--release); BIN_DIR="$TARGET_DIR/release"
    HOTPATH_ARGS=(--secs 2 --runs 7)
    COLDSTART_ARGS=(--runs 21 --sdk-runs 5 --breakdown-runs 11)
    PIPELINE_ARGS=(--sequential 50 --messages 1000 --concurrency 8)
fi
# shellcheck disable=SC2206
HOTPATH_ARGS+=(${BENCH_HOTPATH_ARGS:-}); COLDSTART_ARGS+=(${BENCH_COLDSTART_ARGS:-}); PIPELINE_ARGS+=(${BENCH_PIPELINE_ARGS:-})
OUT="$TARGET_DIR/bench/$MODE"
mkdir -p "$OUT/logs"
BENCH="$BIN_DIR/dispatch-bench"

step() { printf '\n==> %s\n' "$*"; }

step "build the functions (${CARGO_PROFILE[*]:-dev profile})"
cargo build "${CARGO_PROFILE[@]}" -p dispatch-submit -p dispatch-route -p dispatch-send -p dispatch-webhook -p dispatch-retry
step "build the benchmark driver and the hello-world baseline"
cargo build "${CARGO_PROFILE[@]}" -p dispatch-benches

step "hot path: validate_submit + route + build_send, single thread"
"$BENCH" hotpath "${HOTPATH_ARGS[@]}" >"$OUT/hotpath.json"

step "emulator"
bash scripts/emulator.sh install
started_here=0
if ! bash scripts/emulator.sh status >/dev/null 2>&1; then
    bash scripts/emulator.sh start
    started_here=1
fi
cleanup() { if [[ $started_here == 1 ]]; then bash scripts/emulator.sh stop || true; fi; }
trap cleanup EXIT
eval "$(bash scripts/emulator.sh env)"

step "cold start: sizes, init vs hello-world, peak RSS, no network at init"
"$BENCH" coldstart --bin-dir "$BIN_DIR" --log-dir "$OUT/logs" --emulator "$AWS_ENDPOINT_URL" "${COLDSTART_ARGS[@]}" >"$OUT/coldstart.json"

step "pipeline on the emulator through the counting proxy"
"$BENCH" pipeline "${PIPELINE_ARGS[@]}" >"$OUT/pipeline.json"

step "summary ($MODE; JSON in ${OUT#"$ROOT"/})"
"$BENCH" summary "$OUT" | tee "$OUT/summary.txt"
