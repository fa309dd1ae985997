"""Proves the GCS emulation (tests/srv_gcs.py) with plain restic and its native gs: backend."""

from __future__ import annotations

import json
import shutil

import pytest

pytest_plugins = ["srv_gcs"]

REPO = "gs:jabali-bucket:/acct"


@pytest.fixture
def restic_env(gcs_netns):
    if not shutil.which("restic"):
        pytest.skip("restic not installed")
    return gcs_netns.env(RESTIC_PASSWORD="x")


def test_restic_gs_init_snapshots_persist(gcs_netns, restic_env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello gcs\n")
    restic = ["restic", "--cacert", gcs_netns.ca_cert, "-r", REPO]

    res = gcs_netns.run(
        [
            restic + ["init"],
            restic + ["snapshots", "--json"],
            restic + ["backup", "--json", str(src)],
        ],
        restic_env,
    )
    init, snaps, backup = res
    init.check()
    assert "created restic repository" in init.stdout
    snaps.check()
    assert json.loads(snaps.stdout) == []
    backup.check()

    # the service-account path was used: a signed JWT was exchanged at the fake oauth2 endpoint
    assert gcs_netns.token_requests, "no token request: credentials file not used?"
    assert all(t.get("jwt_valid") for t in gcs_netns.token_requests)
    assert gcs_netns.token_requests[0]["iss"].endswith(".iam.gserviceaccount.com")

    # a second, separate namespace sees the same bucket (filesystem backend in the fixture's temp dir)
    (snaps2, init_again, ls) = gcs_netns.run(
        [restic + ["snapshots", "--json"], restic + ["init"], restic + ["ls", "latest"]], restic_env
    )
    snaps2.check()
    assert len(json.loads(snaps2.stdout)) == 1
    # restic 0.14 gs: "Fatal: create key in repository at gs:...: repository master key and config already
    # initialized" (local backend says "config file already exists")
    assert init_again.returncode == 1 and "already initialized" in init_again.stderr
    ls.check()
    assert "a.txt" in ls.stdout


def test_gs_errors_are_realistic(gcs_netns, restic_env):
    restic = ["restic", "--cacert", gcs_netns.ca_cert]
    no_repo, no_ca = gcs_netns.run(
        [
            restic + ["-r", "gs:jabali-bucket:/nothing-here", "snapshots"],
            ["restic", "-r", REPO, "snapshots"],  # without --cacert: TLS must fail
        ],
        restic_env,
    )
    assert no_repo.returncode == 1
    assert "object doesn't exist" in no_repo.stderr
    assert no_ca.returncode == 1
    assert "x509: certificate signed by unknown authority" in no_ca.stderr
