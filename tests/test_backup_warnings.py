"""restic exit 3 (some source files could not be read) is a warning with the list, not a silent success.

As root nothing is unreadable here, so a wrapper fakes only `restic backup` (fault injection: it prints
restic's own JSON error and summary lines and exits 3); every other call runs the real restic."""

from __future__ import annotations

import json
import pwd
import subprocess
from pathlib import Path

from helpers import out_json

WRAPPER = """#!/bin/sh
for a in "$@"; do
  if [ "$a" = backup ]; then
    cat <<'JSON'
{"message_type":"error","error":{"Op":"open","Path":"UNREADABLE","Err":13},"during":"archival","item":"UNREADABLE"}
{"message_type":"summary","snapshot_id":"0a1b2c3d","total_files_processed":3,"total_bytes_processed":42}
JSON
    echo "Warning: at least one source file could not be read" >&2
    exit 3
  fi
done
exec restic "$@"
"""


def test_unreadable_files_are_a_warning_with_the_list(run_cli, tmp_path: Path, monkeypatch, restic_version) -> None:
    user = "jbwarn"
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", user], check=True)
    home = tmp_path / "home"
    home.mkdir()
    unreadable = f"{home}/locked.db"
    wrapper = tmp_path / "restic-wrapper"
    wrapper.write_text(WRAPPER.replace("UNREADABLE", unreadable))
    wrapper.chmod(0o755)
    assert run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(tmp_path / "r")).exit_code == 0
    assert run_cli("destination", "test", "disk").exit_code == 0
    assert run_cli("account", "create", user, "--home", str(home)).exit_code == 0

    monkeypatch.setenv("JABALI_RESTIC", str(wrapper))
    result = run_cli("backup", user, "--destination", "disk", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "warning"
    assert unreadable in report["destinations"][0]["message"]
    listed = out_json(run_cli("snapshot", "list", "--account", user, "--json"))
    assert listed[0]["status"] == "warning" and "could not be read" in listed[0]["message"]
