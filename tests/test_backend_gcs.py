"""A gcs destination end to end: restic 0.14's native gs: backend only talks to storage.googleapis.com, so
jabali itself runs inside the gcs_netns namespace (tests/srv_gcs.py: fake-gcs-server and a token endpoint
behind a private /etc/hosts, certificates from a test CA). The state directory lives outside the namespace,
so it persists across `gcs_netns.run` calls and in-process CLI calls see the same destination."""

from __future__ import annotations

import json
import os
import sys

from helpers import out_json

BUCKET = "jabali-backups"


def test_gcs_lifecycle(gcs_netns, run_cli, restic_version) -> None:
    env = {"JABALI_STATE_DIR": os.environ["JABALI_STATE_DIR"], "JABALI_KEY_FILE": os.environ["JABALI_KEY_FILE"]}
    jabali = [sys.executable, "-m", "jabali", "destination"]
    create, first, second = gcs_netns.run(
        [
            jabali + ["create", "--type", "gcs", "--name", "gcs", "--bucket", BUCKET, "--credentials",
                      gcs_netns.credentials_json, "--cacert", gcs_netns.ca_cert, "--path", "panel1"],
            jabali + ["test", "gcs"],
            jabali + ["test", "gcs"],
        ],
        env,
    )
    assert create.returncode == 0, create.stderr
    assert first.returncode == 0, first.stdout + first.stderr
    assert "initialised" in first.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert "initialised" not in second.stdout
    # restic authenticated with the service-account key: a signed JWT was exchanged for a token
    assert gcs_netns.token_requests and all(t.get("jwt_valid") for t in gcs_netns.token_requests)

    got = out_json(run_cli("destination", "get", "gcs", "--show-password", "--json"))
    assert got["last_test"] == "ok" and got["location"] == f"gs:{BUCKET}:/panel1"
    (opened,) = gcs_netns.run(
        [["restic", "--no-cache", "--cacert", gcs_netns.ca_cert, "-r", f"gs:{BUCKET}:/panel1", "snapshots", "--json"]],
        gcs_netns.env(RESTIC_PASSWORD=got["password"]),
    )
    assert opened.returncode == 0, opened.stderr
    assert json.loads(opened.stdout) == []

    assert run_cli("destination", "delete", "gcs").exit_code == 0
    assert out_json(run_cli("destination", "list", "--json")) == []
