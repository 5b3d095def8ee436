#!/usr/bin/env bash
# Prepare a fresh checkout: a virtual environment with the runtime and development dependencies,
# and Azurite from npm; with --checkov (scripts/test.sh), checkov in a venv of its own as well.
# Idempotent and quick when nothing changed. Needs Python 3.10+ (PYTHON=python3.12 to choose one).
set -euo pipefail
cd "$(dirname "$0")/.."

at_least() {  # at_least PYTHON MINOR: a Python 3.MINOR or newer at PYTHON
  "$1" -c "import sys; sys.exit(0 if sys.version_info >= (3, $2) else 1)" 2>/dev/null
}

if [ -n "${PYTHON:-}" ]; then
  candidates=$PYTHON
else
  candidates="python3 python3.13 python3.12 python3.11 python3.10"  # python3 may be older (Debian 11, macOS)
fi
python=""
for candidate in $candidates; do
  if command -v "$candidate" >/dev/null && at_least "$candidate" 10; then
    python=$candidate
    break
  fi
done
[ -n "$python" ] || { echo "Python 3.10 or newer is required (tried: $candidates; set PYTHON=...)" >&2; exit 1; }

venv() {  # venv DIR PYTHON: a virtual environment with pip at DIR, made again when left half-made or too old
  if [ -e "$1" ] && ! { at_least "$1/bin/python" 10 && "$1/bin/python" -m pip --version >/dev/null 2>&1; }; then
    # venv without ensurepip (Debian's python3-venv missing) leaves one without pip
    echo "bootstrap: $1 has no pip or an older Python; making it again"
    rm -rf "$1"
  fi
  if [ ! -x "$1/bin/python" ]; then
    echo "bootstrap: creating $1 with $("$2" --version)"
    "$2" -m venv "$1" || {
      rm -rf "$1"
      echo "bootstrap: '$2 -m venv' failed (on Debian or Ubuntu: apt install python3-venv)" >&2
      exit 1
    }
  fi
}
sha256() {  # GNU coreutils, or macOS's shasum
  if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi
}
pip_install() {  # pip_install DIR FILE [MORE...]: pip install -r FILE into the venv DIR unless these files were installed
  local dir=$1 requirements=$2 stamp=$1/.requirements.sha256 wanted
  shift
  wanted=$(cat "$@" | sha256 | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    # The first run takes a minute or two: pip's own progress shows what it is doing.
    echo "bootstrap: installing $requirements into $dir"
    "$dir/bin/python" -m pip install --disable-pip-version-check --progress-bar on -r "$requirements"
    echo "$wanted" > "$stamp"
  fi
}

in_background() {  # in_background NAME COMMAND...: run it beside the main install, its output kept for a failure
  "${@:2}" > ".venv/$1.log" 2>&1 &
  jobs_started+=("$!:$1")
}
stop_background() {  # a failure or Ctrl-C ends the jobs too: a re-run's npm ci would empty node_modules under one
  local job signal
  for signal in TERM KILL; do  # npm ci outlives a TERM for seconds, still writing node_modules
    for job in ${jobs_started[@]+"${jobs_started[@]}"}; do
      pkill "-$signal" -P "${job%%:*}" 2>/dev/null || true  # a function's own children (pip under checkov_venv)
      kill "-$signal" "${job%%:*}" 2>/dev/null || true
    done
    [ "$signal" = KILL ] || sleep 1
  done
}
finish_background() {  # wait for each job in_background started; a failed one shows its output and fails bootstrap
  local job failed=0
  for job in ${jobs_started[@]+"${jobs_started[@]}"}; do  # (bash 3.2, macOS: an empty array is unset under -u)
    if wait "${job%%:*}"; then
      echo "bootstrap: ${job#*:} done"
    else
      echo "bootstrap: ${job#*:} failed:" >&2
      cat ".venv/${job#*:}.log" >&2
      failed=1
    fi
  done
  return "$failed"
}
checkov_venv() {
  venv .venv/checkov .venv/bin/python
  pip_install .venv/checkov requirements-checkov.txt
}

venv .venv "$python"
jobs_started=()
trap stop_background EXIT
trap 'exit 130' INT TERM  # through the EXIT trap
# checkov and Azurite install beside the main venv's packages: each install is mostly one process waiting on one core
if [ "${1:-}" = --checkov ]; then
  if at_least .venv/bin/python 11; then
    in_background checkov-install checkov_venv
  else
    echo "bootstrap: checkov not installed on $(.venv/bin/python --version) (requirements-checkov.txt says why)"
  fi
fi
# Azurite (Table Storage and queues for idempotency and async mode), pinned in package-lock.json.
if [ ! -x node_modules/.bin/azurite ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  command -v npm >/dev/null || { echo "Node 20 with npm is required for Azurite" >&2; exit 1; }
  echo "bootstrap: installing Azurite (npm ci)"
  in_background azurite-install npm ci --no-audit --no-fund --loglevel=error
fi
pip_install .venv requirements-dev.txt requirements.txt
finish_background
trap - EXIT INT TERM
