#!/usr/bin/env bash
# Lints infra/template.yaml with the pinned cfn-lint from .venv/emulator (installed by
# scripts/emulator.sh install when missing). Extra arguments go to cfn-lint.
# Exits non-zero on any finding (error, warning or informational): keep it clean.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CFN_LINT="$ROOT/.venv/emulator/bin/cfn-lint"

# `install` is idempotent and quick when everything is in place; it also catches a
# venv with the wrong pinned version.
bash "$ROOT/scripts/emulator.sh" install

echo "cfn-lint $("$CFN_LINT" --version 2>&1 | awk '{print $NF}') infra/template.yaml"
cd "$ROOT"
"$CFN_LINT" "$@" -- infra/template.yaml
echo "cfn-lint: no findings"
