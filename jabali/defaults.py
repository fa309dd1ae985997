"""The embedded default: a local destination on the panel host and a nightly schedule for all accounts,
created (and the repository initialised) on first use, once. An operator who deletes them is not
overruled: a marker in the `meta` table records that the defaults were made.
"""

from __future__ import annotations

from . import accounts, destination_ops, schedules, settings
from .app import App

DEFAULT_DESTINATION = "local"
DEFAULT_SCHEDULE = "nightly"
DEFAULT_CRON = "0 2 * * *"
MARKER = "defaults_created"


def ensure(app: App) -> None:
    """Create the default package, local destination (tested = initialised) and nightly schedule once."""
    if app.store.meta(MARKER):
        return
    accounts.ensure_default_package(app)
    dest = app.store.destination(DEFAULT_DESTINATION)
    if dest is None:
        repo = settings.load().default_repository
        repo.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        dest = destination_ops.create(app, "local", DEFAULT_DESTINATION, {"path": str(repo)})
    if not dest.last_test_ok:
        dest, _ = destination_ops.test(app, str(dest.id))
    if dest.last_test_ok and app.store.schedule(DEFAULT_SCHEDULE) is None:
        sched = schedules.create(app, DEFAULT_SCHEDULE, DEFAULT_CRON, [str(dest.id)])
        app.store.set_schedule_targets(sched.id, [("all", "")])
    if dest.last_test_ok:
        app.store.set_meta(MARKER, "1")
