#!/usr/bin/env bash
# Regenerate connector/apiDefinition.swagger.json from shared/openapi.py: the same document the app serves at
# GET /api/openapi.json (tests/test_openapi.py fails when the file is stale).
#   scripts/export-connector.sh                          write the file (placeholder host)
#   scripts/export-connector.sh --check                  exit 1 if the file differs from the code
#   scripts/export-connector.sh --host HOST [--out FILE] write the document for a deployed app's host to FILE
#                                                        (default build/connector/apiDefinition.swagger.json);
#                                                        connector/ keeps the placeholder
set -euo pipefail
cd "$(dirname "$0")/.."
target=connector/apiDefinition.swagger.json
mode=write
host=""
out=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --check) mode=check; shift ;;
        --host) host=${2:?--host needs a host name such as func-api-abc123.azurewebsites.net}; shift 2 ;;
        --out) out=${2:?--out needs a file name}; shift 2 ;;
        *) echo "unknown argument: $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
if [[ -n "$out" && -z "$host" ]]; then
    echo "--out needs --host (without a host the file is $target)" >&2
    exit 2
fi
if [[ -n "$host" ]]; then
    if [[ "$mode" == check ]]; then
        echo "--check compares $target, which has the placeholder host; leave out --host" >&2
        exit 2
    fi
    # A bare host name (and optional port), as Swagger 2.0's `host` field wants: no scheme, path or user-info.
    if ! [[ "$host" =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$ ]]; then
        echo "--host must be a host name such as func-api-abc123.azurewebsites.net (no https://, no path)" >&2
        exit 2
    fi
fi
# The project's environment: .venv/bin on Linux and macOS, .venv/Scripts where the README's Windows steps made it.
python=.venv/bin/python
[[ -x "$python" ]] || python=.venv/Scripts/python.exe
if [[ ! -x "$python" ]]; then
    echo "No .venv here: create it first (scripts/bootstrap.sh, or the README's Windows steps)" >&2
    exit 2
fi
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
SWAGGER_HOST="$host" "$python" -c '
import os, sys
from shared.openapi import DEFAULT_HOST, swagger_json
sys.stdout.buffer.write(swagger_json(os.environ["SWAGGER_HOST"] or DEFAULT_HOST).encode())  # LF on Windows too
' >"$fresh"
if [[ "$mode" == check ]]; then
    if cmp -s "$fresh" "$target"; then
        echo "$target is up to date"
    else
        echo "$target is stale: run scripts/export-connector.sh" >&2
        exit 1
    fi
elif [[ -n "$host" ]]; then
    out=${out:-build/connector/apiDefinition.swagger.json}
    mkdir -p "$(dirname "$out")"
    cat "$fresh" >"$out"
    echo "wrote $out for https://$host (import it with connector/apiProperties.json)"
else
    cat "$fresh" >"$target"
    echo "wrote $target"
fi
