"""What an account_full backup is made of.

Logical components (what operators and tenants choose for a restore): files, databases, mailboxes, dns, cron.
They travel in few restic snapshots, because every restic process costs ~0.7 s of key derivation:
  - `files` snapshot: home, Maildir, zone files, crontab and the manifest (one `restic backup` of paths);
  - one `--stdin` snapshot per database engine (`mysql.sql`, `postgres.sql`), each a concatenation of
    complete per-database dumps separated by marker comments (see dumps.py).
"""

LOGICAL = ("files", "databases", "mailboxes", "dns", "cron")
