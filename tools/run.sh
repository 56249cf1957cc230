#!/bin/sh
# `sh tools/run.sh ARGS...` runs `trustledger ARGS...` on a fresh Debian 12 machine: installs
# what is missing (Debian packages python3-venv; the Python packages into .venv/, see
# tools/venv.sh), then runs the command. E.g. `sh tools/run.sh demo`.
set -eu
. "$(dirname "$0")/venv.sh"
TRUSTLEDGER_RUN="sh $0"  # how the demo's hints name the command (engine/demo.py)
export TRUSTLEDGER_RUN
exec "$TL_VENV/bin/trustledger" "$@"
