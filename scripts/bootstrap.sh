#!/usr/bin/env bash
# Prepare a fresh checkout: a virtual environment with the runtime and development dependencies,
# and Azurite from npm.
# Idempotent and quick when nothing changed. Needs Python 3.10+ (PYTHON=python3.12 to choose one).
set -euo pipefail
cd "$(dirname "$0")/.."

recent_enough() {  # a Python 3.10 or newer at "$1"
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null
}

if [ -n "${PYTHON:-}" ]; then
  candidates=$PYTHON
else
  candidates="python3 python3.13 python3.12 python3.11 python3.10"  # python3 may be older (Debian 11, macOS)
fi
python=""
for candidate in $candidates; do
  if command -v "$candidate" >/dev/null && recent_enough "$candidate"; then
    python=$candidate
    break
  fi
done
[ -n "$python" ] || { echo "Python 3.10 or newer is required (tried: $candidates; set PYTHON=...)" >&2; exit 1; }

# A .venv left half-made (venv without ensurepip: Debian's python3-venv missing) or too old is made again.
if [ -e .venv ] && ! { recent_enough .venv/bin/python && .venv/bin/python -m pip --version >/dev/null 2>&1; }; then
  echo "bootstrap: .venv has no pip or an older Python; making it again"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $("$python" --version)"
  "$python" -m venv .venv || {
    rm -rf .venv
    echo "bootstrap: '$python -m venv' failed (on Debian or Ubuntu: apt install python3-venv)" >&2
    exit 1
  }
fi
sha256() {  # GNU coreutils, or macOS's shasum
  if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi
}
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256 | cut -d' ' -f1)
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
