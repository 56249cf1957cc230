#!/bin/sh
# The whole test suite on a fresh Debian machine: the peers, the Python packages, the linters
# (ruff, mypy --strict on engine/, events/, projections/), then pytest.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-peers.sh
python3 -m pip install -q -e '.[dev,bench]'
python3 -m ruff check .
python3 -m mypy
exec python3 -m pytest "$@"
