#!/usr/bin/env bash
# Lints docs/openapi.yaml with Redocly CLI (0 errors required) and renders it to the
# static page docs/api.html. The CLI is pinned in tools/openapi/package-lock.json and
# installed locally with `npm ci` (idempotent; nothing global).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/tools/openapi"
SPEC="$ROOT/docs/openapi.yaml"
HTML="$ROOT/docs/api.html"

if [[ ! -x "$TOOLS/node_modules/.bin/redocly" || "$TOOLS/package-lock.json" -nt "$TOOLS/node_modules/.package-lock.json" ]]; then
    (cd "$TOOLS" && npm ci --no-audit --no-fund --loglevel=error)
fi
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
redocly() { (cd "$TOOLS" && ./node_modules/.bin/redocly "$@"); }

redocly lint --config "$TOOLS/redocly.yaml" --format=summary "$SPEC"

redocly build-docs "$SPEC" --output "$HTML" --title "sms-dispatch API" >/dev/null
echo "openapi: lint clean; docs/api.html rendered"
