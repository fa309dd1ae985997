"""Retention: the keep set (unit tests against an independently written expectation), a simulated year of
daily `run-due` against two destinations (fake restic: fast, counts forget/prune calls), and a small run
with the real restic (the repository ends up holding exactly the kept backups)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import fake_restic
from account_data import ensure_account_user
from helpers import out_json
from jabali import destination_ops, restic, settings
from jabali.app import App
from jabali.retention import Policy, keep_set, to_forget

USER = "jbsched"
UTC = timezone.utc


# -- the expectation, written independently of jabali.retention ------------------------------------------------
def expected_keep(backups: list[tuple[str, datetime]], daily: int, weekly: int, monthly: int) -> set[str]:
    """The newest backup of each of the `daily` newest days, `weekly` newest ISO weeks and `monthly` newest
    months that have backups; all-zero keeps everything."""
    if not (daily or weekly or monthly):
        return {b for b, _ in backups}
    keep: set[str] = set()
    for count, bucket in (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    ):
        newest: dict[object, tuple[datetime, str]] = {}
        for backup_id, at in backups:
            key = bucket(at)
            if key not in newest or (at, backup_id) > newest[key]:
                newest[key] = (at, backup_id)
        for key in sorted(newest, reverse=True)[:count]:
            keep.add(newest[key][1])
    return keep


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _daily(start: datetime, days: int) -> list[tuple[str, datetime]]:
    return [(f"b{i:04d}", start + timedelta(days=i)) for i in range(days)]


# -- unit tests ----------------------------------------------------------------------------------------------
def test_daily_backups_for_400_days() -> None:
    backups = _daily(datetime(2029, 1, 1, 2, 30, tzinfo=UTC), 400)  # the last one is 2030-02-04 (a Monday)
    kept = keep_set([(b, _iso(t)) for b, t in backups], Policy(7, 4, 12))
    assert kept == expected_keep(backups, 7, 4, 12)
    days = sorted(t.date().isoformat() for b, t in backups if b in kept)
    assert days == [
        # the newest of each of the 12 newest months (2029-03 ... 2030-02) ...
        "2029-03-31", "2029-04-30", "2029-05-31", "2029-06-30", "2029-07-31", "2029-08-31",
        "2029-09-30", "2029-10-31", "2029-11-30", "2029-12-31",
        # ... of the 4 newest ISO weeks (2030-W03 ends on Sunday 01-20; W06 holds only 02-04) ...
        "2030-01-20",
        # ... and the 7 newest days (01-31 is also January's newest, 01-27 and 02-03 the newest of W04, W05)
        "2030-01-27", "2030-01-29", "2030-01-30", "2030-01-31", "2030-02-01", "2030-02-02", "2030-02-03",
        "2030-02-04",
    ]
    forgotten = to_forget([(b, _iso(t), "ok") for b, t in backups], Policy(7, 4, 12))
    assert set(forgotten) == {b for b, _ in backups} - kept and len(forgotten) == len(set(forgotten))


@pytest.mark.parametrize("policy", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (3, 2, 0), (0, 5, 5), (10, 10, 10), (2, 9, 30)])
def test_keep_set_matches_expectation(policy: tuple[int, int, int]) -> None:
    # Irregular times: gaps, several a day, a year boundary inside an ISO week (2029-12-31 is in 2030-W01).
    start = datetime(2029, 10, 1, 0, 5, tzinfo=UTC)
    backups = []
    t = start
    for i in range(300):
        t += timedelta(hours=[5, 7, 29, 71, 1, 13][i % 6])
        backups.append((f"x{i:03d}", t))
    kept = keep_set([(b, _iso(t)) for b, t in reversed(backups)], Policy(*policy))
    assert kept == expected_keep(backups, *policy)


def test_iso_week_across_new_year() -> None:
    # Mon 2029-12-31 and Sun 2030-01-06 share ISO week 2030-W01; Sun 2029-12-30 is 2029-W52.
    backups = [("sun", datetime(2029, 12, 30, 12, tzinfo=UTC)), ("mon", datetime(2029, 12, 31, 12, tzinfo=UTC)),
               ("fri", datetime(2030, 1, 4, 12, tzinfo=UTC))]
    assert keep_set([(b, _iso(t)) for b, t in backups], Policy(0, 2, 0)) == {"fri", "sun"}


def test_several_backups_a_day_keep_only_the_newest_of_the_day() -> None:
    backups = [(f"d{d:02d}h{h:02d}", datetime(2030, 3, 1 + d, h, tzinfo=UTC)) for d in range(20) for h in (1, 9, 17)]
    kept = keep_set([(b, _iso(t)) for b, t in backups], Policy(7, 0, 0))
    assert kept == {f"d{d:02d}h17" for d in range(13, 20)}
    assert kept == expected_keep(backups, 7, 0, 0)


def test_all_zero_policy_keeps_everything() -> None:
    backups = _daily(datetime(2030, 1, 1, tzinfo=UTC), 50)
    assert keep_set([(b, _iso(t)) for b, t in backups], Policy(0, 0, 0)) == {b for b, _ in backups}
    copies = [(b, _iso(t), "ok") for b, t in backups] + [("old-partial", "2029-01-01T00:00:00+00:00", "partial")]
    assert to_forget(copies, Policy(0, 0, 0)) == ["old-partial"], "only the superseded partial backup goes"


def test_partial_and_failed_backups_go_once_a_newer_good_one_exists() -> None:
    policy = Policy(7, 4, 12)
    day = lambda d: f"2030-05-{d:02d}T02:30:00+00:00"  # noqa: E731
    # A partial backup that is the newest is kept (it is all there is) ...
    assert to_forget([("good1", day(1), "ok"), ("part2", day(2), "partial")], policy) == []
    # ... and forgotten once a newer complete one (ok or warning) exists, even inside the daily window.
    copies = [("good1", day(1), "ok"), ("part2", day(2), "partial"), ("fail3", day(3), "failed"),
              ("warn4", day(4), "warning")]
    assert sorted(to_forget(copies, policy)) == ["fail3", "part2"]
    # Partial backups never count as a day's backup: day 4's newest good backup is kept, the partial one
    # taken later that day stays (nothing good is newer).
    copies = [("good4", day(4), "ok"), ("part4", "2030-05-04T23:00:00+00:00", "partial")]
    assert to_forget(copies, policy) == []
    # Without any good backup nothing is forgotten.
    assert to_forget([("p1", day(1), "partial"), ("p2", day(2), "partial")], policy) == []


# -- a simulated year with the fake restic -------------------------------------------------------------------
@pytest.fixture
def fake_restic_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "bin").mkdir()
    path = fake_restic.install(tmp_path / "bin")
    monkeypatch.setenv("JABALI_RESTIC", path)
    restic.version.cache_clear()
    yield path
    restic.version.cache_clear()


def _account(tmp_path: Path, with_database: bool) -> Path:
    """The Linux user (shared, created once), a tiny home, and a settings file: crontabs in the temp dir,
    /bin/echo as a stand-in for mariadb-dump (its output is a fine "dump")."""
    home = tmp_path / "home"
    (home / "public_html").mkdir(parents=True)
    (home / "public_html" / "index.html").write_text("<h1>hello</h1>\n")
    ensure_account_user(USER, Path("/nonexistent"))
    conf = Path(os.environ["JABALI_CONFIG"])
    lines = ["[paths]", f"crontab_dir = {tmp_path / 'crontabs'}", "hostname = panel-test"]
    if with_database:
        lines += ["[mysql]", "dump = /bin/echo"]
    conf.write_text("\n".join(lines) + "\n")
    settings._load.cache_clear()
    return home


def _drop_defaults(run_cli, env: dict[str, str]) -> None:
    """run-due creates the embedded default (local destination + nightly schedule) once accounts exist;
    these tests want only their own schedule."""
    assert run_cli("run-due", env=env).exit_code == 0
    assert run_cli("schedule", "delete", "nightly").exit_code == 0
    assert run_cli("destination", "delete", "local").exit_code == 0


def test_a_year_of_daily_runs(run_cli, tmp_path: Path, fake_restic_bin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    home = _account(tmp_path, with_database=True)
    # Daily destination re-tests would be 8 more restic calls a day; they are tested in test_run_due.py.
    monkeypatch.setattr(destination_ops, "RETEST_AFTER", timedelta(days=10000))
    start = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    env0 = {"JABALI_NOW": _iso(start)}
    repos = {"d1": tmp_path / "r1", "d2": tmp_path / "r2"}
    for name, repo in repos.items():
        assert run_cli("destination", "create", "--type", "local", "--name", name, "--path", str(repo), env=env0).exit_code == 0
        assert run_cli("destination", "test", name, env=env0).exit_code == 0
    assert run_cli("package", "create", "yearly", "--keep-daily", "7", "--keep-weekly", "4", "--keep-monthly", "12").exit_code == 0
    assert run_cli("account", "create", USER, "--package", "yearly", "--home", str(home), "--database", "shopdb",
                   env=env0).exit_code == 0
    _drop_defaults(run_cli, env0)
    created = run_cli("schedule", "create", "--name", "daily", "--destination", "d1", "--destination", "d2",
                      "--cron", "45 2 * * *", "--package", "yearly", env=env0)
    assert created.exit_code == 0, created.output

    # On 2030-12-28 the files snapshot to d2 fails: that day's d2 copy is partial (its mysql snapshot exists).
    fault_day = datetime(2030, 12, 28, tzinfo=UTC).date()
    logs = {name: fake_restic.CallLog(repo) for name, repo in repos.items()}
    for log in logs.values():
        log.new()
    made: dict[str, list[tuple[str, datetime, str]]] = {"d1": [], "d2": []}
    for day in range(365):
        now = start + timedelta(days=day, hours=2, minutes=50)
        if now.date() == fault_day:
            fake_restic.set_faults(repos["d2"], [{"command": "backup", "match": "component=files", "exit": 1,
                                                  "stderr": "Fatal: unable to save snapshot: disk full", "times": 1}])
        result = run_cli("run-due", "--json", env={"JABALI_NOW": _iso(now)})
        report = json.loads(result.stdout)
        assert result.exit_code == (3 if now.date() == fault_day else 0), (now, result.output)
        for item in report["items"]:
            if item["kind"] == "backup":
                dest = item["target"].rsplit(" -> ", 1)[1]
                status, backup_id = item["message"].split()[:2]
                made[dest].append((backup_id, now, status))
            else:
                assert item["kind"] == "retention" and item["ok"], item
        # One run: at most one forget and one prune per destination; a prune exactly when something was forgotten.
        for name, log in logs.items():
            commands = [fake_restic.command_of(argv) for argv in log.new()]
            assert commands.count("prune") <= 1 and commands.count("forget") <= 1, (now, name, commands)
            assert commands.count("prune") == commands.count("forget"), (now, name, commands)
            if "forget" in commands:
                assert commands.index("forget") < commands.index("prune")
        if (now + timedelta(days=1)).day == 1:  # at each month's end the catalog already matches the policy
            listed = out_json(run_cli("snapshot", "list", "--destination", "d1", "--json"))
            assert {c["backup_id"] for c in listed} == expected_keep([(b, t) for b, t, _ in made["d1"]], 7, 4, 12)
    assert [len(v) for v in made.values()] == [365, 365]
    assert [s for _, t, s in made["d2"] if t.date() == fault_day] == ["partial"]

    # The catalog holds exactly the expected backups per destination ...
    literal_d1 = {"2030-01-31", "2030-02-28", "2030-03-31", "2030-04-30", "2030-05-31", "2030-06-30", "2030-07-31",
                  "2030-08-31", "2030-09-30", "2030-10-31", "2030-11-30", "2030-12-15", "2030-12-22",
                  *(f"2030-12-{d}" for d in range(25, 32))}
    app = App()
    try:
        for name, repo in repos.items():
            good = [(b, t) for b, t, s in made[name] if s == "ok"]
            expected = expected_keep(good, 7, 4, 12)
            listed = out_json(run_cli("snapshot", "list", "--destination", name, "--json"))
            assert {c["backup_id"] for c in listed} == expected, name
            assert all(c["status"] == "ok" for c in listed)
            days = {t.date().isoformat() for b, t in good if b in expected}
            if name == "d1":
                assert days == literal_d1
            else:  # the partial 12-28 backup went once 12-29 succeeded; 12-24 takes its daily slot
                assert days == literal_d1 - {"2030-12-28"} | {"2030-12-24"}

            # ... and the repository exactly their snapshots: two (files, mysql) per kept backup.
            dest = app.store.destination(name)
            catalog_ids = {s.snapshot_id for b in expected for s in app.store.snapshots_of(b, dest.id)}
            state = fake_restic.load_state(repo)
            repo_ids = {s["id"] for s in state["snapshots"]}
            assert catalog_ids == repo_ids and len(repo_ids) == 2 * len(expected)
            by_backup: dict[str, set[str]] = {}
            for snap in state["snapshots"]:
                by_backup.setdefault(dict(t.partition("=")[::2] for t in snap["tags"])["backup"], set()).add(snap["id"])
            assert set(by_backup) == expected

            # Every forget removed whole backups: all snapshots of a backup in one call, none left behind.
            calls_by_number: dict[str, set[int]] = {}
            for gone in state["forgotten"]:
                backup = dict(t.partition("=")[::2] for t in gone["tags"])["backup"]
                calls_by_number.setdefault(backup, set()).add(gone["forget"])
            assert all(len(numbers) == 1 for numbers in calls_by_number.values())
            assert set(calls_by_number) == {b for b, _, _ in made[name]} - expected
            snapshots_made = {b: 2 if s == "ok" else 1 for b, _, s in made[name]}  # partial: mysql only
            forgotten_count: dict[str, int] = {}
            for gone in state["forgotten"]:
                backup = dict(t.partition("=")[::2] for t in gone["tags"])["backup"]
                forgotten_count[backup] = forgotten_count.get(backup, 0) + 1
            assert forgotten_count == {b: n for b, n in snapshots_made.items() if b not in expected}
            forget_argvs = [c for c in fake_restic.calls(repo) if "forget" in c]
            assert len(forget_argvs) == state["forgets"]
            for number, argv in enumerate(forget_argvs, start=1):
                ids = argv[argv.index("forget") + 1:]
                assert sorted(ids) == sorted(g["id"] for g in state["forgotten"] if g["forget"] == number)
            assert state["prunes"] == state["forgets"]
    finally:
        app.close()


def test_prune_once_per_destination_when_schedules_share_it(run_cli, tmp_path: Path, fake_restic_bin: str) -> None:
    """Two schedules due in the same run, both writing to d1 (s1: d1 + d2, s2: d1): one forget and one prune
    for d1 in that run, covering the backups of both schedules."""
    home = _account(tmp_path, with_database=True)
    env0 = {"JABALI_NOW": "2030-04-01T00:00:00+00:00"}
    repos = {"d1": tmp_path / "r1", "d2": tmp_path / "r2"}
    for name, repo in repos.items():
        assert run_cli("destination", "create", "--type", "local", "--name", name, "--path", str(repo), env=env0).exit_code == 0
        assert run_cli("destination", "test", name, env=env0).exit_code == 0
    assert run_cli("package", "create", "one", "--keep-daily", "1", "--keep-weekly", "0", "--keep-monthly", "0").exit_code == 0
    assert run_cli("account", "create", USER, "--package", "one", "--home", str(home), "--database", "shopdb",
                   env=env0).exit_code == 0
    _drop_defaults(run_cli, env0)
    for name, dests in (("s1", ["d1", "d2"]), ("s2", ["d1"])):
        args = [a for d in dests for a in ("--destination", d)]
        assert run_cli("schedule", "create", "--name", name, *args, "--cron", "0 2 * * *", env=env0).exit_code == 0
    logs = {name: fake_restic.CallLog(repo) for name, repo in repos.items()}
    for log in logs.values():
        log.new()

    expected_forgets = {"2030-04-01": {"d1": 1, "d2": 0}, "2030-04-02": {"d1": 2, "d2": 1}}
    for day, forgets in expected_forgets.items():
        ran = run_cli("run-due", "--json", env={"JABALI_NOW": f"{day}T02:30:00+00:00"})
        assert ran.exit_code == 0, ran.output
        items = json.loads(ran.stdout)["items"]
        assert len([i for i in items if i["kind"] == "backup"]) == 3
        for name, log in logs.items():
            new = log.new()
            commands = [fake_restic.command_of(argv) for argv in new]
            want = 1 if forgets[name] else 0
            assert (commands.count("forget"), commands.count("prune")) == (want, want), (day, name, commands)
            if want:
                forget = next(argv for argv in new if fake_restic.command_of(argv) == "forget")
                # two snapshots (files, mysql) per forgotten backup, all in that one call
                assert len(forget) - forget.index("forget") - 1 == 2 * forgets[name]
        for name in repos:
            listed = out_json(run_cli("snapshot", "list", "--destination", name, "--json"))
            assert len(listed) == 1 and listed[0]["time"] == f"{day}T02:30:00+00:00", (day, name)


# -- the real restic -----------------------------------------------------------------------------------------
def test_real_restic_repository_keeps_exactly_the_kept_backups(run_cli, tmp_path: Path, plain_restic) -> None:
    home = _account(tmp_path, with_database=False)
    repo = tmp_path / "repo"
    day = lambda d: datetime(2030, 6, d, 2, 30, tzinfo=UTC)  # noqa: E731
    env1 = {"JABALI_NOW": _iso(day(1) - timedelta(hours=2))}
    assert run_cli("destination", "create", "--type", "local", "--name", "disk", "--path", str(repo), env=env1).exit_code == 0
    assert run_cli("destination", "test", "disk", env=env1).exit_code == 0
    assert run_cli("package", "create", "short", "--keep-daily", "2", "--keep-weekly", "0", "--keep-monthly", "0").exit_code == 0
    assert run_cli("account", "create", USER, "--package", "short", "--home", str(home), env=env1).exit_code == 0
    assert run_cli("schedule", "create", "--name", "s", "--destination", "disk", "--cron", "30 2 * * *",
                   "--account", USER, env=env1).exit_code == 0

    # Four backups by hand on four days (no retention runs for those) ...
    for d in (1, 2, 3, 4):
        (home / f"day{d}.txt").write_text(f"day {d}\n")
        done = run_cli("backup", USER, "--destination", "disk", "--json", env={"JABALI_NOW": _iso(day(d))})
        assert done.exit_code == 0, done.output
    assert len(out_json(run_cli("snapshot", "list", "--json"))) == 4
    # ... then day 6's run-due: its backup, then retention keeps days 6 and 4 (2 daily), forgets 1-3.
    ran = run_cli("run-due", "--json", env={"JABALI_NOW": _iso(day(6))})
    assert ran.exit_code == 0, ran.output
    retention = [i for i in json.loads(ran.output)["items"] if i["kind"] == "retention"]
    assert [(i["target"], i["ok"]) for i in retention] == [("disk", True)]
    assert "forgot 3" in retention[0]["message"]

    listed = out_json(run_cli("snapshot", "list", "--destination", "disk", "--json"))
    assert sorted(c["time"] for c in listed) == [_iso(day(4)), _iso(day(6))]
    password = out_json(run_cli("destination", "get", "disk", "--show-password", "--json"))["password"]
    shown = plain_restic(str(repo), password, "snapshots", "--json")
    assert shown.returncode == 0, shown.stderr
    in_repo = json.loads(shown.stdout)
    assert sorted(s["time"] for s in in_repo) == ["2030-06-04T02:30:00Z", "2030-06-06T02:30:00Z"]
    # restic 0.14's backup summary gives the short id; either way it must name exactly these snapshots.
    catalog_ids = _catalog_snapshot_ids("disk")
    assert len(catalog_ids) == 2
    assert sorted(next(s["id"] for s in in_repo if s["id"].startswith(cid)) for cid in catalog_ids) == \
        sorted(s["id"] for s in in_repo)
    tags = sorted(next(t for t in s["tags"] if t.startswith("backup=")) for s in in_repo)
    assert tags == sorted(f"backup={c['backup_id']}" for c in listed)

    # Rebuilding the catalog from the repository finds the same two backups and snapshots, nothing twice.
    assert run_cli("snapshot", "sync", "--destination", "disk").exit_code == 0
    assert sorted(c["backup_id"] for c in out_json(run_cli("snapshot", "list", "--destination", "disk", "--json"))) \
        == sorted(c["backup_id"] for c in listed)
    assert _catalog_snapshot_ids("disk") == catalog_ids


def _catalog_snapshot_ids(destination: str) -> list[str]:
    app = App()
    try:
        return sorted(app.store.snapshot_ids(app.store.destination(destination).id))
    finally:
        app.close()
