#!/bin/sh
# The whole test suite on a fresh Debian machine: the peers, the Python packages, then pytest.
set -eu
cd "$(dirname "$0")/.."
sh tools/install-peers.sh
python3 -m pip install -q -e '.[dev,bench]'
exec python3 -m pytest "$@"
