#!/usr/bin/env bash
# Regenerate connector/apiDefinition.swagger.json from shared/openapi.py: the same document the app serves at
# GET /api/openapi.json (tests/test_openapi.py fails when the file is stale).
#   scripts/export-connector.sh           write the file
#   scripts/export-connector.sh --check   exit 1 if the file differs from the code
set -euo pipefail
cd "$(dirname "$0")/.."
target=connector/apiDefinition.swagger.json
fresh=$(mktemp)
trap 'rm -f "$fresh"' EXIT
.venv/bin/python -c 'import sys; from shared.openapi import swagger_json; sys.stdout.write(swagger_json())' >"$fresh"
if [[ "${1:-}" == "--check" ]]; then
    if cmp -s "$fresh" "$target"; then
        echo "$target is up to date"
    else
        echo "$target is stale: run scripts/export-connector.sh" >&2
        exit 1
    fi
else
    cat "$fresh" >"$target"
    echo "wrote $target"
fi
