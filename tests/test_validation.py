"""Malformed input: every case exits 2 with one line naming the field, and the database is unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import db_dump
from keys import service_account, ssh_key

AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    f = {
        "key": str(ssh_key(tmp_path / "id_ok")),
        "key_enc": str(ssh_key(tmp_path / "id_enc", b"passphrase")),
        "garbage": str(tmp_path / "garbage"),
        "open_key": str(ssh_key(tmp_path / "id_open")),
        "sa": str(service_account(tmp_path / "sa.json")),
        "sa_user": str(service_account(tmp_path / "sa_user.json", type="authorized_user")),
        "sa_badkey": str(service_account(tmp_path / "sa_bad.json", private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")),
    }
    Path(f["garbage"]).write_text("not a key\n")
    Path(f["open_key"]).chmod(0o644)
    return f


def S3(*extra: str) -> list[str]:
    base = {"--bucket": "jabali-bucket", "--access-key": "AKIAEXAMPLE123", "--secret-key": "s3cr3t-value", "--endpoint": "http://127.0.0.1:9000"}
    out = ["--type", "s3", "--name", "s3x"]
    overrides = dict(zip(extra[::2], extra[1::2]))
    base.update(overrides)
    for k, v in base.items():
        out += [k, v]
    return out


CASES: list[tuple[str, list[str], str]] = [
    # (id, argv after `destination create`, the field the error must name)
    ("name-empty", ["--type", "local", "--name", "", "--path", "/srv/r"], "--name"),
    ("name-slash", ["--type", "local", "--name", "a/b", "--path", "/srv/r"], "--name"),
    ("name-shell", ["--type", "local", "--name", "x;rm -rf /", "--path", "/srv/r"], "--name"),
    ("name-newline", ["--type", "local", "--name", "a\nb", "--path", "/srv/r"], "--name"),
    ("name-digits", ["--type", "local", "--name", "123", "--path", "/srv/r"], "--name"),
    ("local-relative", ["--type", "local", "--name", "l", "--path", "srv/r"], "--path"),
    ("local-space", ["--type", "local", "--name", "l", "--path", "/srv/my repo"], "--path"),
    ("local-subst", ["--type", "local", "--name", "l", "--path", "/srv/$(id)"], "--path"),
    ("local-dotdot", ["--type", "local", "--name", "l", "--path", "/srv/../etc"], "--path"),
    ("local-missing", ["--type", "local", "--name", "l"], "--path"),
    ("local-foreign-option", ["--type", "local", "--name", "l", "--path", "/srv/r", "--bucket", "b"], "--bucket"),
    ("sftp-host", ["--type", "sftp", "--name", "s", "--host", "bad_host!", "--user", "u", "--key", "{key}", "--path", "/r"], "--host"),
    ("sftp-host-option-injection", ["--type", "sftp", "--name", "s", "--host", "-oProxyCommand=x", "--user", "u", "--key", "{key}", "--path", "/r"], "--host"),
    ("sftp-user", ["--type", "sftp", "--name", "s", "--host", "h.example", "--user", "Root User", "--key", "{key}", "--path", "/r"], "--user"),
    ("sftp-port-zero", ["--type", "sftp", "--name", "s", "--host", "h.example", "--user", "u", "--key", "{key}", "--port", "0", "--path", "/r"], "--port"),
    ("sftp-port-big", ["--type", "sftp", "--name", "s", "--host", "h.example", "--user", "u", "--key", "{key}", "--port", "70000", "--path", "/r"], "--port"),
    ("sftp-key-missing", ["--type", "sftp", "--name", "s", "--host", "h.example", "--user", "u", "--key", "/nonexistent/key", "--path", "/r"], "--key"),
    ("sftp-key-garbage", ["--type", "sftp", "--name", "s", "--host", "h.example", "--user", "u", "--key", "{garbage}", "--path", "/r"], "--key"),
    ("sftp-key-encrypted", ["--type", "sftp", "--name", "s", "--host", "h.example", "--user", "u", "--key", "{key_enc}", "--path", "/r"], "--key"),
    ("sftp-key-world-readable", ["--type", "sftp", "--name", "s", "--host", "h.example", "--user", "u", "--key", "{open_key}", "--path", "/r"], "--key"),
    ("sftp-path-quote", ["--type", "sftp", "--name", "s", "--host", "h.example", "--user", "u", "--key", "{key}", "--path", "/r'x"], "--path"),
    ("s3-bucket-upper", S3("--bucket", "Jabali_Bucket"), "--bucket"),
    ("s3-bucket-short", S3("--bucket", "ab"), "--bucket"),
    ("s3-bucket-ip", S3("--bucket", "192.168.1.1"), "--bucket"),
    ("s3-endpoint-ftp", S3("--endpoint", "ftp://x.example"), "--endpoint"),
    ("s3-endpoint-path", S3("--endpoint", "https://x.example/some/path"), "--endpoint"),
    ("s3-endpoint-port", S3("--endpoint", "https://x.example:99999"), "--endpoint"),
    ("s3-region", S3("--region", "US East"), "--region"),
    ("s3-access-key", S3("--access-key", "has space"), "--access-key"),
    ("s3-secret-newline", S3("--secret-key", "abc\ndef"), "--secret-key"),
    ("s3-no-secret", ["--type", "s3", "--name", "s3x", "--bucket", "jabali-bucket", "--access-key", "AKIAEXAMPLE123"], "--secret-key"),
    ("b2-account", ["--type", "b2", "--name", "b", "--account-id", "xyz", "--application-key", "K" * 31, "--bucket", "jabali-b2"], "--account-id"),
    ("b2-bucket-prefix", ["--type", "b2", "--name", "b", "--account-id", "0123456789ab", "--application-key", "K" * 31, "--bucket", "b2-reserved"], "--bucket"),
    ("b2-key-short", ["--type", "b2", "--name", "b", "--account-id", "0123456789ab", "--application-key", "short", "--bucket", "jabali-b2"], "--application-key"),
    ("azure-account", ["--type", "azure", "--name", "a", "--account-name", "Bad-Name", "--account-key", AZ_KEY, "--container", "backups"], "--account-name"),
    ("azure-key-not-base64", ["--type", "azure", "--name", "a", "--account-name", "acct", "--account-key", "not*base64!", "--container", "backups"], "--account-key"),
    ("azure-container-double-dash", ["--type", "azure", "--name", "a", "--account-name", "acct", "--account-key", AZ_KEY, "--container", "bad--name"], "--container"),
    ("azure-container-upper", ["--type", "azure", "--name", "a", "--account-name", "acct", "--account-key", AZ_KEY, "--container", "Backups"], "--container"),
    ("gcs-bucket-google", ["--type", "gcs", "--name", "g", "--bucket", "my-google-bucket", "--credentials", "{sa}"], "--bucket"),
    ("gcs-creds-missing", ["--type", "gcs", "--name", "g", "--bucket", "jabali-gcs", "--credentials", "/nonexistent.json"], "--credentials"),
    ("gcs-creds-not-json", ["--type", "gcs", "--name", "g", "--bucket", "jabali-gcs", "--credentials", "{garbage}"], "--credentials"),
    ("gcs-creds-wrong-type", ["--type", "gcs", "--name", "g", "--bucket", "jabali-gcs", "--credentials", "{sa_user}"], "--credentials"),
    ("gcs-creds-bad-key", ["--type", "gcs", "--name", "g", "--bucket", "jabali-gcs", "--credentials", "{sa_badkey}"], "--credentials"),
    ("rest-scheme", ["--type", "rest", "--name", "r", "--url", "ftp://h.example/repo"], "--url"),
    ("rest-query", ["--type", "rest", "--name", "r", "--url", "https://h.example/repo?x=1"], "--url"),
    ("rest-space", ["--type", "rest", "--name", "r", "--url", "https://h.example/my repo"], "--url"),
    ("rest-token-and-userinfo", ["--type", "rest", "--name", "r", "--url", "https://u:p@h.example/repo", "--token", "abcdefgh12345"], "--token"),
    ("rest-token-short", ["--type", "rest", "--name", "r", "--url", "https://h.example/repo", "--token", "abc"], "--token"),
    ("cacert-garbage", ["--type", "rest", "--name", "r", "--url", "https://h.example/repo", "--cacert", "{garbage}"], "--cacert"),
    ("duplicate-name", ["--type", "local", "--name", "existing", "--path", "/srv/other"], "--name"),
]


@pytest.mark.parametrize("case_id,argv,field", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_is_refused(run_cli, files, state_dir: Path, case_id: str, argv: list[str], field: str) -> None:
    assert run_cli("destination", "create", "--type", "local", "--name", "existing", "--path", "/srv/existing").exit_code == 0
    before = db_dump(state_dir)
    result = run_cli("destination", "create", *[a.format(**files) for a in argv])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert field in lines[0], lines[0]
    assert db_dump(state_dir) == before


def test_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30


def test_update_refuses_bad_value_and_changes_nothing(run_cli, state_dir: Path) -> None:
    run_cli("destination", "create", "--type", "local", "--name", "d", "--path", "/srv/r")
    before = db_dump(state_dir)
    result = run_cli("destination", "update", "d", "--path", "relative/path")
    assert result.exit_code == 2 and "--path" in result.output
    assert run_cli("destination", "update", "d", "--bucket", "x-y-z").exit_code == 2
    assert run_cli("destination", "update", "nope", "--path", "/x").exit_code == 2
    assert db_dump(state_dir) == before


def test_secret_flags_from_environment(run_cli, state_dir: Path) -> None:
    env = {"JABALI_S3_ACCESS_KEY": "AKIAFROMENV0001", "JABALI_S3_SECRET_KEY": "secret-from-env", "JABALI_REST_TOKEN": "ignored-for-s3"}
    result = run_cli("destination", "create", "--type", "s3", "--name", "envs3", "--bucket", "jabali-bucket", env=env)
    assert result.exit_code == 0, result.output
    assert b"secret-from-env" not in (state_dir / "jabali.db").read_bytes()
