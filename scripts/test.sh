#!/usr/bin/env bash
# Command two: lint, type-check and run the whole test suite against the emulated stack.
# Extra arguments go to pytest (for example: scripts/test.sh -k caller_ids).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --checkov
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
if [[ -x .venv/checkov/bin/checkov ]]; then
    .venv/checkov/bin/checkov -d infra --framework bicep --skip-download --quiet --compact
else
    echo "checkov skipped: not installed on Python 3.10 (requirements-checkov.txt says why); infra/ is checked on 3.11+"
fi
# Two workers, each with its own emulators and Azurite, a whole file to a worker (module fixtures and the order of a
# file's tests stay as written): most of a test's time is waiting on timers, so this halves the run. `-n 0`: one.
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
