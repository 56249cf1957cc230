#!/bin/sh
# The whole test suite on a fresh Debian machine: the peers (Debian packages), the Python
# environment (tools/venv.sh), the linters (ruff, mypy --strict on engine/, events/,
# projections/, lint-imports: the one direction of imports in pyproject.toml), then pytest
# with the arguments given.
set -eu
. "$(dirname "$0")/venv.sh"
cd "$TL_ROOT"
sh tools/install-peers.sh
python -m ruff check .
python -m mypy
lint-imports
exec python -m pytest "$@"
