"""Tenant self-service (`jabali tenant ...`, run through sudo): the account is always SUDO_USER, a tenant sees
and touches only its own backups and requests, no option names another account, and the package decides
what is visible (tenant_visible, download)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from helpers import db_dump
from small_account import Panel

SUDOERS = Path(__file__).resolve().parent.parent / "contrib" / "sudoers" / "jabali-tenant"
TENANT_SUBCOMMANDS = {"snapshots", "schedules", "restore", "requests", "cancel", "download"}


def as_user(user: str) -> dict[str, str]:
    return {"SUDO_USER": user}


def test_tenant_sees_and_acts_on_its_own_account_only(panel: Panel, run_cli, state_dir) -> None:
    a, b = panel.account(), panel.account()
    a_backup, b_backup = panel.backup(a), panel.backup(b)
    b_request = json.loads(panel.cli("restore", "request", "--account", b.user, "--snapshot", b_backup,
                                     "--components", "files", "--json").stdout)["id"]

    listing = panel.json("tenant", "snapshots", env=as_user(a.user))
    assert [r["backup_id"] for r in listing] == [a_backup]
    assert listing[0]["status"] == "ok" and "files" in listing[0]["components"]
    assert b_backup not in panel.cli("tenant", "snapshots", env=as_user(a.user)).output
    assert [r["backup_id"] for r in panel.json("tenant", "snapshots", env=as_user(b.user))] == [b_backup]

    # B's backup id, guessed or leaked, is not A's to restore: refused, and no request is stored.
    before = db_dump(state_dir)[1]
    for target in ("staging", "in-place"):
        refused = run_cli("tenant", "restore", "--snapshot", b_backup, "--target", target, env=as_user(a.user))
        assert refused.exit_code == 2 and "--snapshot" in refused.output, refused.output
    assert db_dump(state_dir)[1] == before

    a_request = json.loads(panel.cli("tenant", "restore", "--snapshot", a_backup, "--json",
                                     env=as_user(a.user)).stdout)
    assert a_request["account"] == a.user and a_request["status"] == "pending"
    assert [r["id"] for r in panel.json("tenant", "requests", env=as_user(a.user))] == [a_request["id"]]
    assert [r["id"] for r in panel.json("tenant", "requests", env=as_user(b.user))] == [b_request]

    # A cannot cancel B's request (it does not exist for A), and B's stays pending.
    refused = run_cli("tenant", "cancel", str(b_request), env=as_user(a.user))
    assert refused.exit_code == 2 and "not found" in refused.output, refused.output
    assert panel.json("restore", "show", str(b_request))["status"] == "pending"
    assert panel.json("restore", "show", str(b_request))["history"][-1]["status"] == "requested"

    # The schedules a tenant sees: read-only, with the package's retention.
    panel.cli("schedule", "create", "--name", "nightly-b", "--destination", "local", "--cron", "0 3 * * *",
              "--account", b.user)
    assert panel.json("tenant", "schedules", env=as_user(a.user)) == []
    rows = panel.json("tenant", "schedules", env=as_user(b.user))
    assert [(r["schedule"], r["cron"], r["keep_daily"]) for r in rows] == [("nightly-b", "0 3 * * *", 7)]


def test_no_tenant_option_can_name_an_account() -> None:
    from jabali.commands.tenant import command

    assert set(command.commands) == TENANT_SUBCOMMANDS, "a new tenant subcommand needs a review here"
    suspicious = ("account", "accounts", "user", "users", "tenant", "owner", "login", "uid", "for", "who", "sudo")
    for name, sub in command.commands.items():
        for param in sub.params:
            words = [param.name or "", *getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
            for word in words:
                parts = word.lstrip("-").replace("-", "_").split("_")
                assert not set(parts) & set(suspicious), f"`tenant {name}` has {word!r}"
            if isinstance(param, click.Argument):
                assert (name, param.name) == ("cancel", "rid"), f"`tenant {name}` takes argument {param.name}"


def test_tenant_commands_need_a_sudo_caller_with_an_account(panel: Panel, run_cli) -> None:
    a = panel.account()
    argvs = [["tenant", "snapshots"], ["tenant", "schedules"], ["tenant", "requests"],
             ["tenant", "restore", "--snapshot", "x"], ["tenant", "cancel", "1"], ["tenant", "download"]]
    for env, expect in (({"SUDO_USER": None}, "root is not a tenant"),
                        ({"SUDO_USER": ""}, "root is not a tenant"),
                        ({"SUDO_USER": "root"}, "root is not a tenant"),
                        ({"SUDO_USER": "nobody"}, "not a hosting account")):
        for argv in argvs:
            result = run_cli(*argv, env=env)
            assert result.exit_code == 2 and expect in result.output, (env, argv, result.output)
    assert panel.json("restore", "list") == [] and panel.json("download", "list") == []
    assert panel.json("tenant", "snapshots", env=as_user(a.user)) == []


def test_package_without_tenant_visibility(panel: Panel, run_cli) -> None:
    panel.cli("package", "create", "hidden", "--no-tenant-visible")
    a = panel.account("hidden")
    backup_id = panel.backup(a)
    operator_request = json.loads(panel.cli("restore", "request", "--account", a.user, "--snapshot", backup_id,
                                            "--json").stdout)["id"]
    for argv in (["tenant", "snapshots"], ["tenant", "schedules"], ["tenant", "requests"],
                 ["tenant", "restore", "--snapshot", backup_id], ["tenant", "cancel", str(operator_request)]):
        result = run_cli(*argv, env=as_user(a.user))
        assert result.exit_code == 2, (argv, result.output)
        assert "tenant-visible backups are disabled for your package" in result.output, result.output
        assert "only `jabali tenant download` is available" in result.output, result.output
        assert backup_id not in result.output
    assert [r["id"] for r in panel.json("restore", "list")] == [operator_request]
    assert panel.json("restore", "show", str(operator_request))["status"] == "pending"

    made = panel.json("tenant", "download", env=as_user(a.user))
    assert made["account"] == a.user and Path(made["path"]).is_file()

    panel.cli("package", "update", "hidden", "--no-download")
    for argv in (["tenant", "download"], ["tenant", "snapshots"]):
        result = run_cli(*argv, env=as_user(a.user))
        assert result.exit_code == 2 and "disabled for your package" in result.output, (argv, result.output)
        assert "only `jabali tenant download`" not in result.output
    assert len(panel.json("download", "list")) == 1, "the refused download made no archive"


def test_download_can_be_off_while_snapshots_are_visible(panel: Panel, run_cli) -> None:
    panel.cli("package", "create", "nodl", "--no-download")
    a = panel.account("nodl")
    refused = run_cli("tenant", "download", env=as_user(a.user))
    assert refused.exit_code == 2 and "Backup Download is disabled for your package" in refused.output
    assert panel.json("download", "list") == []
    assert not (panel.downloads / a.user).exists()
    assert panel.json("tenant", "snapshots", env=as_user(a.user)) == []


def test_sudoers_snippet_is_valid() -> None:
    visudo = shutil.which("visudo") or next((p for p in ("/usr/sbin/visudo", "/sbin/visudo") if Path(p).exists()), None)
    if visudo is None:
        pytest.skip("visudo is not installed (package sudo)")
    result = subprocess.run([visudo, "-cf", str(SUDOERS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [line for line in SUDOERS.read_text().splitlines() if line.strip() and not line.startswith("#")]
    commands = [r.split("NOPASSWD:", 1)[1].strip() for r in rules if "NOPASSWD:" in r]
    assert commands == ["/usr/local/bin/jabali tenant *"], "tenants may run `jabali tenant ...` and nothing else"
    assert any("env_reset" in r for r in rules), "the caller's environment (JABALI_*) must not reach jabali"
