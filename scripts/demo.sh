#!/bin/bash
# The main job on the embedded default, end to end on this machine:
#   a demo hosting account (Linux user + home) -> `jabali backup` to the default local destination
#   (created and initialised on first use) -> `jabali restore` of a deleted file, in place.
# Safe to run again. State: $JABALI_STATE_DIR (default /var/lib/jabali).
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$REPO_DIR/scripts/install-deps.sh" >/dev/null
J="$REPO_DIR/.venv/bin/jabali"
export JABALI_STATE_DIR=${JABALI_STATE_DIR:-/var/lib/jabali}
USER_NAME=${JABALI_DEMO_USER:-jabalidemo}
HOME_DIR=${JABALI_DEMO_HOME:-/home/$USER_NAME}

id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --home-dir "$HOME_DIR" --shell /usr/sbin/nologin "$USER_NAME"
mkdir -p "$HOME_DIR/public_html"
echo "<?php echo 'hello from $USER_NAME';" > "$HOME_DIR/public_html/index.php"
chown -R "$USER_NAME:" "$HOME_DIR"

"$J" account get "$USER_NAME" >/dev/null 2>&1 || "$J" account create "$USER_NAME" --home "$HOME_DIR"
echo "== backup (the default local destination is created and initialised on first use)"
"$J" backup "$USER_NAME"
"$J" snapshot list --account "$USER_NAME" --limit 3
BACKUP=$("$J" snapshot list --account "$USER_NAME" --json --limit 1 | "$REPO_DIR/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)[0]["backup_id"])')

echo "== lose a file, then restore it in place from $BACKUP"
rm -f "$HOME_DIR/public_html/index.php"
RID=$("$J" restore request --account "$USER_NAME" --snapshot "$BACKUP" --components files --target in-place --json \
      | "$REPO_DIR/.venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["id"])')
"$J" restore approve "$RID"
"$J" restore run "$RID"
cat "$HOME_DIR/public_html/index.php"
echo
echo "== restored. Next: add an off-host destination (jabali destination create ...), and install contrib/cron/jabali"
