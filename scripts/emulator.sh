#!/usr/bin/env bash
# Local AWS emulator (moto server) for development and CI.
#
#   scripts/emulator.sh install   create .venv/emulator with moto[server] and cfn-lint (idempotent)
#   scripts/emulator.sh start     start the emulator on 127.0.0.1:4566 in the background (no-op if healthy)
#   scripts/emulator.sh stop      stop the emulator this script started
#   scripts/emulator.sh status    print whether the emulator answers (exit 0 healthy, 3 not)
#   scripts/emulator.sh reset     wipe all emulated state (POST /moto-api/reset)
#   scripts/emulator.sh env       print the export lines for the SDK:  eval "$(scripts/emulator.sh env)"
#   scripts/emulator.sh stats     print "emulator: peak RSS X MiB, 5xx N" (--json: the raw stats)
#   scripts/emulator.sh prove-race  run the lost-write race test against plain moto_server
#                                 (expects it to lose writes) and against the launcher (expects none)
#
# The emulator is moto's server started through scripts/emulator/launch.py, which makes
# moto's DynamoDB linearizable (see README, "The local emulator") and serves its health
# (5xx answered, peak memory) at /_emulator/stats.
#
# Works from any directory: paths are resolved from this script's location. The venv
# lives in <repo>/.venv/emulator, the pid file and log in <repo>/.local/.
#
# An AWS_ENDPOINT_URL that is already set and does not point at 127.0.0.1:4566 /
# localhost:4566 is respected: the user points elsewhere (e.g. LocalStack), so `start`
# does not start moto and `env` keeps that endpoint.
#
# Tunables (environment): EMULATOR_START_TIMEOUT (seconds, default 60); EMULATOR_PORT
# (default 4566; each port has its own pid file and log); EMULATOR_UNPATCHED_PORT (the
# plain moto_server prove-race starts, default EMULATOR_PORT + 15).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv/emulator"
STATE_DIR="$ROOT/.local"
HOST="127.0.0.1"
PORT="${EMULATOR_PORT:-4566}"
[[ "$PORT" =~ ^[0-9]+$ ]] || { echo "emulator: error: EMULATOR_PORT=$PORT is not a port number" >&2; exit 2; }
if [[ $PORT == 4566 ]]; then
    PID_FILE="$STATE_DIR/moto.pid"
    LOG_FILE="$STATE_DIR/moto.log"
else
    PID_FILE="$STATE_DIR/moto-$PORT.pid"
    LOG_FILE="$STATE_DIR/moto-$PORT.log"
fi
LAUNCHER="$ROOT/scripts/emulator/launch.py"
ENDPOINT="http://$HOST:$PORT"

# Pinned tool versions. Bump together with a check that the template still lints and
# the provisioning tests still pass (`pip index versions cfn-lint` lists releases).
MOTO_VERSION="5.2.5"
CFN_LINT_VERSION="1.58.0"
REQUIREMENTS=("moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION")
STAMP="$VENV/.dispatch-requirements"

START_TIMEOUT="${EMULATOR_START_TIMEOUT:-60}"

log() { printf 'emulator: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# True when AWS_ENDPOINT_URL is set to something other than our moto endpoint.
endpoint_is_external() {
    local url="${AWS_ENDPOINT_URL:-}"
    [[ -z "$url" ]] && return 1
    url="${url%/}"
    case "$url" in
        http://127.0.0.1:$PORT | http://localhost:$PORT | http://\[::1\]:$PORT) return 1 ;;
        *) return 0 ;;
    esac
}

http_get() { # url -> body on stdout, non-zero on failure
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 3 "$1"
    else
        python3 - "$1" <<'PY'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
    sys.stdout.write(r.read().decode())
PY
    fi
}

http_post() { # url
    if command -v curl >/dev/null 2>&1; then
        curl -fsS --max-time 10 -X POST "$1" >/dev/null
    else
        python3 - "$1" <<'PY'
import sys, urllib.request
urllib.request.urlopen(urllib.request.Request(sys.argv[1], data=b"", method="POST"), timeout=10).read()
PY
    fi
}

# A cheap request: /moto-api/data.json serialises every resource moto holds, which
# after a test run is slow enough to starve the server when polled in a loop.
healthy() {
    curl -fsS --max-time 3 -X POST \
        -H "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0" \
        --data 'Action=ListQueues&QueueNamePrefix=moto-health-check&Version=2012-11-05' \
        "$ENDPOINT/" >/dev/null 2>&1
}

# The pid from the pid file, if that process is alive and is our emulator.
our_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qE 'moto|emulator/launch\.py'; then
        return 1 # pid reused by an unrelated process
    fi
    printf '%s\n' "$pid"
}

installed_ok() {
    [[ -x "$VENV/bin/python" && -x "$VENV/bin/moto_server" && -x "$VENV/bin/cfn-lint" ]] || return 1
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "${REQUIREMENTS[*]}" ]] || return 1
    "$VENV/bin/python" - "$MOTO_VERSION" "$CFN_LINT_VERSION" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
assert version("moto") == sys.argv[1], version("moto")
assert version("cfn-lint") == sys.argv[2], version("cfn-lint")
import moto.server  # noqa: F401  (the [server] extra: flask, werkzeug, ...)
PY
}

cmd_install() {
    if installed_ok; then
        log "already installed in ${VENV#"$ROOT"/} (${REQUIREMENTS[*]})"
        return 0
    fi
    command -v python3 >/dev/null 2>&1 || die "python3 not found (Debian: apt-get install -y python3 python3-venv)"
    if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import pip' >/dev/null 2>&1; then
        log "creating venv ${VENV#"$ROOT"/}"
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            # Debian splits venv/ensurepip into a separate package.
            if command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
                log "python3 -m venv failed; installing python3-venv"
                rm -rf "$VENV"
                apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
                python3 -m venv "$VENV"
            else
                die "python3 -m venv failed (install python3-venv)"
            fi
        fi
    fi
    log "installing ${REQUIREMENTS[*]}"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q "${REQUIREMENTS[@]}"
    printf '%s' "${REQUIREMENTS[*]}" >"$STAMP"
    installed_ok || die "installation in ${VENV#"$ROOT"/} is incomplete"
    log "installed ${REQUIREMENTS[*]}"
}

cmd_start() {
    if endpoint_is_external; then
        log "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL points elsewhere (e.g. LocalStack); not starting moto"
        return 0
    fi
    if healthy; then
        log "already running at $ENDPOINT"
        if ! http_get "$ENDPOINT/_emulator/stats" >/dev/null 2>&1; then
            log "warning: the server at $ENDPOINT is not scripts/emulator/launch.py (a plain moto_server loses"
            log "DynamoDB writes under concurrency); stop it and run scripts/emulator.sh start again"
        fi
        return 0
    fi
    cmd_install
    mkdir -p "$STATE_DIR"
    local pid
    if pid="$(our_pid)"; then
        log "moto (pid $pid) is running but not answering yet; waiting"
    else
        log "starting the emulator (moto $MOTO_VERSION, linearizable DynamoDB) on $ENDPOINT (log: ${LOG_FILE#"$ROOT"/})"
        # setsid + nohup: the server outlives this script and its caller's job control.
        # Its working directory is .local so nothing it writes lands in the source tree.
        (cd "$STATE_DIR" && exec setsid nohup "$VENV/bin/python" "$LAUNCHER" -H "$HOST" -p "$PORT" \
            >>"$LOG_FILE" 2>&1 </dev/null) &
        pid=$!
        printf '%s\n' "$pid" >"$PID_FILE"
    fi
    local waited=0
    until healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            log "the emulator exited during startup; last log lines:"
            tail -n 20 "$LOG_FILE" >&2 || true
            die "moto did not start (is port $PORT already used by something else?)"
        fi
        if ((waited >= START_TIMEOUT * 4)); then
            log "last log lines:"
            tail -n 20 "$LOG_FILE" >&2 || true
            die "the emulator did not answer at $ENDPOINT within ${START_TIMEOUT}s"
        fi
        sleep 0.25
        waited=$((waited + 1))
    done
    log "moto is up at $ENDPOINT (pid $pid)"
}

cmd_stop() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        if healthy; then
            log "something answers at $ENDPOINT but was not started by this script; leaving it alone"
        else
            log "not running"
        fi
        return 0
    fi
    log "stopping moto (pid $pid)"
    kill "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 40; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.25
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "moto (pid $pid) did not exit on TERM; sending KILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
}

cmd_status() {
    if endpoint_is_external; then
        log "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL points elsewhere (e.g. LocalStack); moto not used"
    fi
    local pid=""
    pid="$(our_pid || true)"
    if healthy; then
        echo "running: $ENDPOINT${pid:+ (pid $pid)}"
        return 0
    fi
    if [[ -n "$pid" ]]; then
        echo "starting or unresponsive: pid $pid, $ENDPOINT does not answer"
    else
        echo "stopped"
    fi
    return 3
}

cmd_reset() {
    if endpoint_is_external; then
        log "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL points elsewhere (e.g. LocalStack); reset only applies to moto, skipping"
        return 0
    fi
    healthy || die "moto is not running at $ENDPOINT (scripts/emulator.sh start)"
    http_post "$ENDPOINT/moto-api/reset"
    log "moto state reset"
}

cmd_env() {
    local url="$ENDPOINT"
    if endpoint_is_external; then
        log "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL points elsewhere (e.g. LocalStack); keeping it"
        url="$AWS_ENDPOINT_URL"
    fi
    printf 'export AWS_ENDPOINT_URL=%q\n' "$url"
    echo "export AWS_REGION=us-east-1"
    echo "export AWS_DEFAULT_REGION=us-east-1"
    echo "export AWS_ACCESS_KEY_ID=test"
    echo "export AWS_SECRET_ACCESS_KEY=test"
}

# Health under load: the launcher's counters. Prints one line (or the JSON with --json);
# exits 3 when the endpoint does not serve them (not running, or not our launcher).
cmd_stats() {
    local url="$ENDPOINT"
    endpoint_is_external && url="${AWS_ENDPOINT_URL%/}"
    local json
    if ! json="$(http_get "$url/_emulator/stats" 2>/dev/null)"; then
        echo "emulator: no stats at $url/_emulator/stats (not running, or not scripts/emulator/launch.py)"
        return 3
    fi
    if [[ "${1:-}" == --json ]]; then
        printf '%s\n' "$json"
        return 0
    fi
    python3 -c 'import json, sys
s = json.loads(sys.argv[1])
line = "emulator: peak RSS %.0f MiB, 5xx %d" % (s["peak_rss_bytes"] / 1048576, s["responses_5xx"])
if s["responses_5xx_by_action"]:
    line += " (" + ", ".join("%s: %d" % kv for kv in sorted(s["responses_5xx_by_action"].items())) + ")"
print(line)' "$json"
}

# Shows the upstream defect and the fix with the same Rust test (tests/tests/it/emulator.rs):
# against a plain moto_server it must detect lost writes (the loss is probabilistic, so
# up to EMULATOR_PROVE_TRIES runs, default 5), against the launcher it must pass.
cmd_prove_race() {
    cmd_install
    local plain_port="${EMULATOR_UNPATCHED_PORT:-$((PORT + 15))}"
    local test_cmd=(cargo test -p dispatch-tests --test it -- --exact emulator::concurrent_writes_are_never_lost --nocapture)
    mkdir -p "$STATE_DIR"
    log "building the race test"
    (cd "$ROOT" && cargo test -p dispatch-tests --test it --no-run -q) || die "the race test does not build"

    log "starting plain moto_server $MOTO_VERSION on 127.0.0.1:$plain_port (unpatched)"
    (cd "$STATE_DIR" && exec "$VENV/bin/moto_server" -H "$HOST" -p "$plain_port" \
        >"$STATE_DIR/moto-unpatched-$plain_port.log" 2>&1 </dev/null) &
    local plain_pid=$!
    # shellcheck disable=SC2064
    trap "kill $plain_pid 2>/dev/null || true" EXIT
    local i
    for ((i = 0; i < 120; i++)); do
        http_get "http://$HOST:$plain_port/moto-api/data.json" >/dev/null 2>&1 && break
        kill -0 "$plain_pid" 2>/dev/null || die "moto_server did not start on port $plain_port"
        sleep 0.25
    done
    local tries="${EMULATOR_PROVE_TRIES:-5}" detected=0 out
    for ((i = 1; i <= tries; i++)); do
        log "unpatched, run $i/$tries: expecting lost writes"
        if out="$(cd "$ROOT" && AWS_ENDPOINT_URL="http://$HOST:$plain_port" "${test_cmd[@]}" 2>&1)"; then
            log "no loss detected in this run"
        elif grep -q "acknowledged writes are missing" <<<"$out"; then
            grep -E "acknowledged writes are missing|race summary" <<<"$out" | sed 's/^/    /' >&2
            detected=1
            break
        else
            printf '%s\n' "$out" | tail -n 30 >&2
            die "the race test failed against plain moto for another reason"
        fi
    done
    kill "$plain_pid" 2>/dev/null || true
    wait "$plain_pid" 2>/dev/null || true
    trap - EXIT
    ((detected)) || die "plain moto_server did not lose a write in $tries runs (the race is probabilistic; raise EMULATOR_PROVE_TRIES)"

    local started=0
    if ! healthy; then cmd_start; started=1; fi
    log "patched (scripts/emulator/launch.py on $ENDPOINT): expecting no loss"
    local status=0
    (cd "$ROOT" && AWS_ENDPOINT_URL="$ENDPOINT" "${test_cmd[@]}" 2>&1 | grep -E "race summary|test result|panicked" >&2) || status=$?
    ((started)) && cmd_stop
    ((status == 0)) || die "the race test failed against the launcher"
    log "proved: plain moto $MOTO_VERSION loses acknowledged writes; the launcher does not"
}

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    env) cmd_env ;;
    stats) cmd_stats "${2:-}" ;;
    prove-race) cmd_prove_race ;;
    *) usage ;;
esac
