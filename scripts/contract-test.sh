#!/usr/bin/env bash
# Contract test: runs schemathesis (pinned, in .venv/contract) from docs/openapi.yaml
# against the local service (dispatch-local: every function, the sandbox provider and
# a seeded demo tenant), authenticated with the demo admin key, with the spec's links
# for stateful sequences (submit -> get -> legal hold, create media -> get -> complete,
# create key -> revoke). Fails on any server error, response that violates the spec, or
# undocumented status code.
#
#   scripts/contract-test.sh                       bounded run (a few hundred cases; scripts/test.sh)
#   CONTRACT_MAX_EXAMPLES=200 scripts/contract-test.sh   longer run (thousands of cases)
#
# Uses the emulator AWS_ENDPOINT_URL points at (scripts/emulator.sh env by default).
# Ports: CONTRACT_API_PORT (default 18080) and the two after it (webhook URL, sandbox).
#
# `positive_data_acceptance` is not checked: the spec cannot express the semantic checks
# (a string that is no phone number, a configuration that fails validation) that
# rightly answer 4xx to schema-valid input.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv/contract"
SCHEMATHESIS="schemathesis==4.32.5"
MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-10}"
PORT="${CONTRACT_API_PORT:-18080}"

if [[ ! -x "$VENV/bin/st" ]] || ! grep -qx "$SCHEMATHESIS" "$VENV/.dispatch-requirements" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$SCHEMATHESIS"
    echo "$SCHEMATHESIS" >"$VENV/.dispatch-requirements"
fi

if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
    bash scripts/emulator.sh install
    bash scripts/emulator.sh start
    eval "$(bash scripts/emulator.sh env)"
fi

cargo build --quiet -p dispatch-local --bin dispatch-local
bin="${CARGO_TARGET_DIR:-$ROOT/target}/debug/dispatch-local"

work="$(mktemp -d)"
pid=""
cleanup() {
    if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
# The runner writes .local/demo.env relative to its working directory.
(cd "$work" && DISPATCH_API_PORT="$PORT" DISPATCH_WEBHOOK_PORT="$((PORT + 1))" DISPATCH_SANDBOX_PORT="$((PORT + 2))" \
    RUST_LOG="${RUST_LOG:-warn}" exec "$bin" >"$work/service.log" 2>&1) &
pid=$!
for _ in $(seq 1 120); do
    [[ -s "$work/.local/demo.env" ]] && break
    if ! kill -0 "$pid" 2>/dev/null; then cat "$work/service.log" >&2; echo "contract: the local service exited" >&2; exit 1; fi
    sleep 1
done
[[ -s "$work/.local/demo.env" ]] || { cat "$work/service.log" >&2; echo "contract: the local service did not start" >&2; exit 1; }
# shellcheck disable=SC1091
source "$work/.local/demo.env"

status=0
# From the scratch directory, so schemathesis's own cache stays out of the repository.
(cd "$work" && "$VENV/bin/st" run "$ROOT/docs/openapi.yaml" --url "$DISPATCH_API" \
    -H "Authorization: Bearer $DISPATCH_ADMIN_KEY" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "$MAX_EXAMPLES" --seed "${CONTRACT_SEED:-1}" --no-color) || status=$?
if grep -q "panicked" "$work/service.log"; then
    echo "contract: the service panicked:" >&2; grep -A5 panicked "$work/service.log" >&2; status=1
fi
exit "$status"
