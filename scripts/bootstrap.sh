#!/usr/bin/env bash
# Prepare a fresh checkout: a virtual environment with the runtime and development dependencies,
# and Azurite from npm.
# Idempotent and quick when nothing changed. Needs Python 3.10+ (PYTHON=python3.12 to choose one).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" - <<'PY' || { echo "Python 3.10 or newer is required (set PYTHON=...)" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 10) else 1)
PY

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  # The first run takes a minute or two: pip's own progress shows what it is doing.
  echo "bootstrap: installing requirements-dev.txt into .venv"
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi

# Azurite (Table Storage and queues for idempotency and async mode), pinned in package-lock.json.
if [ ! -x node_modules/.bin/azurite ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  command -v npm >/dev/null || { echo "Node 20 with npm is required for Azurite" >&2; exit 1; }
  echo "bootstrap: installing Azurite (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
