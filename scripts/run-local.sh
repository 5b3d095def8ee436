#!/usr/bin/env bash
# Command one: start the emulated stack (Genesys, managed identity, HTTPS Key Vault, the function app on
# http://127.0.0.1:7071), place a demo call and show one rejected request, then keep serving until Ctrl-C.
# Extra arguments go to the stack: --port N, --exit-after-demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python -m emulators.stack "$@"
