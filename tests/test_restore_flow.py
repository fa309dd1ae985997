"""The restore request state machine with real restic and small accounts (home files only):

    pending --approve--> approved --(run-due | restore run)--> running --> done | failed
    pending --reject--> rejected          pending|approved --cancel--> cancelled

Every transition is recorded with who and when; a request runs at most once; a package may auto-approve.
Malformed requests exit 2 naming the field and store nothing.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from helpers import db_dump
from small_account import HOME_FILES, Panel

OPERATOR = {"SUDO_USER": "opalice"}  # the operator acting through sudo, as recorded in the history


def show(p: Panel, rid: int) -> dict:
    return p.json("restore", "show", str(rid))


def rid_of(result) -> int:
    assert result.exit_code == 0, result.output
    return int(json.loads(result.stdout)["id"])


def restore_items(report: dict) -> list[dict]:
    return [i for i in report["items"] if i["kind"] == "restore"]


def damage(home: Path) -> None:
    (home / "notes.txt").write_bytes(b"overwritten by mistake\n")
    (home / "public_html" / "about.html").unlink()
    (home / "public_html" / "index.html").write_bytes(b"<h1>defaced</h1>\n")


def assert_restored(home: Path, uid: int) -> None:
    for rel, data in HOME_FILES.items():
        path = home / rel
        assert path.read_bytes() == data, rel
        st = path.lstat()
        assert stat.S_ISREG(st.st_mode) and st.st_uid == uid, rel


def test_approved_request_runs_once_through_run_due_with_full_history(panel: Panel, run_cli) -> None:
    acc = panel.account()
    backup_id = panel.backup(acc)
    damage(acc.home)
    (acc.home / "new-since-backup.txt").write_text("keep me")

    rid = rid_of(run_cli("tenant", "restore", "--snapshot", backup_id, "--components", "files", "--target",
                         "in-place", "--json", env={"SUDO_USER": acc.user}))
    assert show(panel, rid)["status"] == "pending"

    # Pending requests wait for the operator: run-due does not touch them.
    report = panel.json("run-due")
    assert restore_items(report) == []
    assert show(panel, rid)["status"] == "pending"
    assert (acc.home / "notes.txt").read_bytes() == b"overwritten by mistake\n"

    panel.cli("restore", "approve", str(rid), env=OPERATOR)
    assert show(panel, rid)["status"] == "approved"

    report = panel.json("run-due")
    assert [(i["target"], i["ok"]) for i in restore_items(report)] == [(f"{rid} ({acc.user})", True)], report
    view = show(panel, rid)
    assert view["status"] == "done", view
    assert view["undo_backup_id"], "an in-place restore takes a pre-restore backup for undo"
    assert_restored(acc.home, acc.uid)
    assert (acc.home / "new-since-backup.txt").read_text() == "keep me", "a restore adds back; it does not prune"

    history = view["history"]
    assert [(h["status"], h["actor"]) for h in history] == [
        ("requested", f"tenant:{acc.user}"),
        ("approved", "opalice"),
        ("running", "run-due"),
        ("done", "run-due"),
    ]
    times = [h["at"] for h in history]
    assert all(t for t in times) and times == sorted(times)

    # A request runs once: neither `restore run` nor another run-due runs it again.
    again = run_cli("restore", "run", str(rid))
    assert again.exit_code == 2 and "done" in again.output, again.output
    assert restore_items(panel.json("run-due")) == []
    assert show(panel, rid)["history"] == history


def test_rejected_request_never_runs(panel: Panel, run_cli) -> None:
    acc = panel.account()
    backup_id = panel.backup(acc)
    damage(acc.home)
    rid = rid_of(run_cli("restore", "request", "--account", acc.user, "--snapshot", backup_id, "--components",
                         "files", "--target", "in-place", "--json", env=OPERATOR))

    empty = run_cli("restore", "reject", str(rid), "--reason", "  ")
    assert empty.exit_code == 2 and "--reason" in empty.output
    assert show(panel, rid)["status"] == "pending"

    panel.cli("restore", "reject", str(rid), "--reason", "restore the database instead", env={"SUDO_USER": "opbob"})
    view = show(panel, rid)
    assert view["status"] == "rejected" and view["message"] == "restore the database instead"
    assert [(h["status"], h["actor"]) for h in view["history"]] == [("requested", "opalice"), ("rejected", "opbob")]
    assert view["history"][-1]["note"] == "restore the database instead"

    assert restore_items(panel.json("run-due")) == []
    for args in (("restore", "run", str(rid)), ("restore", "approve", str(rid)), ("restore", "cancel", str(rid))):
        refused = run_cli(*args)
        assert refused.exit_code == 2 and "rejected" in refused.output, (args, refused.output)
    view = show(panel, rid)
    assert view["status"] == "rejected" and len(view["history"]) == 2
    assert (acc.home / "notes.txt").read_bytes() == b"overwritten by mistake\n", "nothing was restored"


def test_auto_approve_package_runs_without_an_operator(panel: Panel, run_cli) -> None:
    panel.cli("package", "create", "selfservice", "--auto-approve-restores")
    acc = panel.account("selfservice")
    backup_id = panel.backup(acc)
    damage(acc.home)

    created = run_cli("tenant", "restore", "--snapshot", backup_id, "--components", "files", "--json",
                      env={"SUDO_USER": acc.user})
    rid = rid_of(created)
    assert json.loads(created.stdout)["status"] == "approved"
    assert json.loads(created.stdout)["target"] == "staging", "staging is the default target"
    assert [(h["status"], h["actor"]) for h in show(panel, rid)["history"]] == [
        ("requested", f"tenant:{acc.user}"), ("approved", f"tenant:{acc.user}")]

    report = panel.json("run-due")
    assert [i["ok"] for i in restore_items(report)] == [True], report
    view = show(panel, rid)
    assert view["status"] == "done"
    assert [h["status"] for h in view["history"]] == ["requested", "approved", "running", "done"]
    staging = Path(view["staging_dir"])
    assert staging.parent == panel.staging and staging.name.startswith(f"{acc.user}-restore-")
    assert staging.stat().st_uid == acc.uid
    assert_restored(staging / "home", acc.uid)
    # Staging touches nothing live.
    assert (acc.home / "notes.txt").read_bytes() == b"overwritten by mistake\n"


def test_cancel_only_before_running(panel: Panel, run_cli) -> None:
    acc = panel.account()
    backup_id = panel.backup(acc)

    def request() -> int:
        return rid_of(run_cli("restore", "request", "--account", acc.user, "--snapshot", backup_id,
                              "--components", "files", "--json"))

    pending, approved, finished = request(), request(), request()
    panel.cli("restore", "approve", str(approved))
    panel.cli("restore", "approve", str(finished))
    ran = run_cli("restore", "run", str(finished), env=OPERATOR)
    assert ran.exit_code == 0, ran.output
    assert show(panel, finished)["status"] == "done"
    assert [(h["status"], h["actor"]) for h in show(panel, finished)["history"]][2:] == [
        ("running", "opalice"), ("done", "opalice")]

    # The tenant cancels the pending one, the operator the approved one.
    tenant_cancel = run_cli("tenant", "cancel", str(pending), env={"SUDO_USER": acc.user})
    assert tenant_cancel.exit_code == 0, tenant_cancel.output
    panel.cli("restore", "cancel", str(approved), env=OPERATOR)
    last = show(panel, pending)["history"][-1]
    assert (last["status"], last["actor"]) == ("cancelled", f"tenant:{acc.user}")
    assert show(panel, approved)["history"][-1]["actor"] == "opalice"

    refused = run_cli("restore", "cancel", str(finished))
    assert refused.exit_code == 2 and "done" in refused.output
    for rid in (pending, approved):
        assert show(panel, rid)["status"] == "cancelled"
        for args in (("restore", "run", str(rid)), ("restore", "approve", str(rid)), ("restore", "cancel", str(rid))):
            again = run_cli(*args)
            assert again.exit_code == 2 and "cancelled" in again.output, (args, again.output)
    assert restore_items(panel.json("run-due")) == []
    assert show(panel, finished)["status"] == "done"
    unknown = run_cli("restore", "cancel", "99999")
    assert unknown.exit_code == 2 and "not found" in unknown.output


def test_malformed_requests_exit_2_naming_the_field_and_store_nothing(panel: Panel, run_cli, state_dir) -> None:
    acc = panel.account()
    other = panel.account()
    backup_id = panel.backup(acc)
    others_backup = panel.backup(other)
    cases = [
        # (the options after the account / snapshot, the field the error must name)
        (["--components", "files,bogus"], "--components"),
        (["--components", ""], "--components"),
        (["--components", "all,files"], "--components"),
        (["--target", "elsewhere"], "--target"),
        (["--target", "/tmp"], "--target"),
        (["--path", "../etc"], "--path"),
        (["--path", "public_html/../../../etc/passwd"], "--path"),
        (["--path", "/../etc"], "--path"),
        (["--path", ""], "--path"),
        (["--path", "public_html", "--components", "dns"], "--path"),
        (["--snapshot", others_backup], "--snapshot"),
        (["--snapshot", "20310101T000000Z-000000"], "--snapshot"),
        (["--destination", "nowhere"], "--destination"),
    ]
    before = db_dump(state_dir)[1]
    for extra, field in cases:
        opts = dict(zip(extra[::2], extra[1::2]))
        snapshot = opts.pop("--snapshot", backup_id)
        rest = [x for k, v in opts.items() for x in (k, v)]
        for who, argv, env in (
            ("operator", ["restore", "request", "--account", acc.user, "--snapshot", snapshot, *rest], None),
            ("tenant", ["tenant", "restore", "--snapshot", snapshot, *rest], {"SUDO_USER": acc.user}),
        ):
            # (The tenant command has no --destination: click refuses the unknown option, also exit 2.)
            result = run_cli(*argv, env=env)
            assert result.exit_code == 2, (who, extra, result.output)
            assert field in result.output or (who == "tenant" and field == "--destination"
                                              and "No such option" in result.output), (who, extra, result.output)
            assert len(result.output.strip().splitlines()) <= 4, result.output  # one line (plus click's usage)
    unknown = run_cli("restore", "request", "--account", "nosuchuser", "--snapshot", backup_id)
    assert unknown.exit_code == 2 and "not found" in unknown.output
    assert db_dump(state_dir)[1] == before, "a refused request stores nothing"
    assert panel.json("restore", "list") == []
    assert not any(panel.staging.iterdir())


def test_run_due_defers_busy_accounts_and_skips_requests_cancelled_meanwhile(panel: Panel, run_cli,
                                                                              monkeypatch) -> None:
    from jabali import restores
    from jabali.app import App
    from jabali.backups import account_lock

    acc = panel.account()
    backup_id = panel.backup(acc)
    first, second = (rid_of(run_cli("restore", "request", "--account", acc.user, "--snapshot", backup_id,
                                    "--components", "files", "--json")) for _ in range(2))
    for rid in (first, second):
        panel.cli("restore", "approve", str(rid))

    # A backup or download of the account holds its lock: the restores wait for the next run-due, and the
    # rest of run-due still happens (exit 3, not "busy" 4, which means another run-due).
    lock = account_lock(acc.user)
    lock.acquire()
    try:
        busy = run_cli("run-due", "--json")
    finally:
        lock.release()
    assert busy.exit_code == 3, busy.output
    items = restore_items(json.loads(busy.stdout))
    assert [(i["ok"], "try again later" in i["message"]) for i in items] == [(False, True), (False, True)], items
    assert [show(panel, rid)["status"] for rid in (first, second)] == ["approved", "approved"]

    # The tenant cancels the second while run-due is busy with the first: run-due skips it quietly.
    real_execute = restores.execute

    def execute_after_a_cancel(app, rid, actor):
        if rid == first:
            other = App()
            try:
                restores.cancel(other, second, f"tenant:{acc.user}", account=acc.user)
            finally:
                other.close()
        return real_execute(app, rid, actor)

    monkeypatch.setattr(restores, "execute", execute_after_a_cancel)
    result = run_cli("run-due", "--json")
    assert result.exit_code == 0, result.output
    assert [i["target"] for i in restore_items(json.loads(result.stdout))] == [f"{first} ({acc.user})"]
    assert [show(panel, rid)["status"] for rid in (first, second)] == ["done", "cancelled"]


def test_request_defaults_to_a_complete_copy(panel: Panel, run_cli, state_dir) -> None:
    """A backup on two destinations whose first copy is incomplete (its repository is even gone): the
    request restores from the complete one, as `--destination`'s help promises."""
    import shutil
    import sqlite3

    acc = panel.account()
    panel.cli("destination", "create", "--type", "local", "--name", "second", "--path", str(panel.tmp_path / "repo2"))
    panel.cli("destination", "test", "second")
    report = panel.json("backup", acc.user, "--destination", "local", "--destination", "second")
    assert report["status"] == "ok", report
    conn = sqlite3.connect(state_dir / "jabali.db")
    with conn:
        conn.execute("UPDATE backup_copies SET status = 'partial' WHERE destination_id ="
                     " (SELECT id FROM destinations WHERE name = 'local')")
    conn.close()
    shutil.rmtree(panel.repo)
    damage(acc.home)

    rid = rid_of(run_cli("restore", "request", "--account", acc.user, "--snapshot", report["backup_id"],
                         "--components", "files", "--target", "in-place", "--json"))
    panel.cli("restore", "approve", str(rid))
    ran = run_cli("restore", "run", str(rid))
    assert ran.exit_code == 0, ran.output
    assert_restored(acc.home, acc.uid)
