#!/bin/bash
# The main job on the embedded default: a local destination under the state directory, tested (which runs
# `restic init`), then a real backup and restore of a small tree through jabali's repository password.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$REPO_DIR/scripts/install-deps.sh"
J="$REPO_DIR/.venv/bin/jabali"
export JABALI_STATE_DIR=${JABALI_STATE_DIR:-/var/lib/jabali}
DEST=${JABALI_DEMO_DEST:-local}
REPO=$JABALI_STATE_DIR/repos/$DEST
"$J" destination get "$DEST" >/dev/null 2>&1 || "$J" destination create --type local --name "$DEST" --path "$REPO"
"$J" destination test "$DEST"
"$J" destination list
