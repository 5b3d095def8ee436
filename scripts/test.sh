#!/usr/bin/env bash
# Command two: lint, type-check and run the whole test suite against the emulated stack.
# Extra arguments go to pytest (for example: scripts/test.sh -k caller_ids).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/checkov -d infra --framework bicep --skip-download --quiet --compact
exec .venv/bin/python -m pytest "$@"
