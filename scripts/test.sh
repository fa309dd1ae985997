#!/bin/bash
# The test command: installs everything the tests need, then runs the whole suite with the real restic
# and real servers on loopback. Extra arguments go to pytest (e.g. scripts/test.sh -k sftp).
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"
bash scripts/install-deps.sh --tests
exec .venv/bin/python -m pytest -q -ra -p no:cacheprovider "$@"
