#!/bin/bash
# Installs the storage servers the test-suite starts on loopback (tests/srv_storage.py):
#   apt : openssh-server openssh-client rclone openssl restic (+ nodejs npm if npm is missing)
#   npm : azurite@3.35.0 into $JABALI_TEST_TOOLS/node          (default <repo>/.test-tools)
#   pip : moto[server] into $JABALI_PYTHON                     (default python3)
# Idempotent and fast when everything is present. Debian/Ubuntu, run as root, non-interactive.
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
JABALI_TEST_TOOLS=${JABALI_TEST_TOOLS:-$REPO_DIR/.test-tools}
JABALI_PYTHON=${JABALI_PYTHON:-python3}
AZURITE_VERSION=3.35.0
APT_PACKAGES=(openssh-server openssh-client rclone openssl restic)

log() { echo "[20-storage-servers] $*" >&2; }

export DEBIAN_FRONTEND=noninteractive

# --- apt -------------------------------------------------------------------------------------------------
is_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# Another agent/CI step may be running apt or dpkg: wait for it (max 15 min) instead of failing on the lock.
wait_for_apt() {
  local i
  for ((i = 0; i < 900; i++)); do
    if ! pgrep -x 'apt-get|apt|dpkg|aptitude|unattended-upgr' >/dev/null 2>&1; then
      return 0
    fi
    ((i % 30 == 0)) && log "waiting for another apt-get/dpkg to finish ..."
    sleep 1
  done
  log "another apt-get/dpkg is still running after 15 min; trying anyway"
}

# True if the package lists were refreshed less than an hour ago (apt-get update is the slow part).
apt_lists_fresh() {
  local stamp
  for stamp in /var/lib/apt/periodic/update-success-stamp /var/lib/apt/periodic/update-stamp; do
    [ -e "$stamp" ] && [ -n "$(find "$stamp" -mmin -60 2>/dev/null)" ] && return 0
  done
  # No periodic stamp (containers): look at the lists themselves.
  [ -n "$(find /var/lib/apt/lists -maxdepth 1 -type f \( -name '*_InRelease' -o -name '*_Release' \) -mmin -60 2>/dev/null | head -1)" ]
}

missing=()
for p in "${APT_PACKAGES[@]}"; do is_installed "$p" || missing+=("$p"); done
# azurite needs node + npm; only install Debian's if there is no npm at all (keeps e.g. nodesource builds).
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)

if ((${#missing[@]})); then
  command -v apt-get >/dev/null 2>&1 || { log "apt-get not found; install manually: ${missing[*]}"; exit 1; }
  [ "$(id -u)" -eq 0 ] || { log "must run as root to install: ${missing[*]}"; exit 1; }
  wait_for_apt
  if ! apt_lists_fresh; then
    log "apt-get update"
    apt-get -o DPkg::Lock::Timeout=600 update -qq
  fi
  wait_for_apt
  log "apt-get install ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "apt packages present"
fi

# --- azurite (npm, local prefix, not global) -------------------------------------------------------------
AZ_DIR=$JABALI_TEST_TOOLS/node
installed_az=$(node -p "require('$AZ_DIR/node_modules/azurite/package.json').version" 2>/dev/null || true)
if [ -x "$AZ_DIR/node_modules/.bin/azurite-blob" ] && [ "$installed_az" = "$AZURITE_VERSION" ]; then
  log "azurite $installed_az present in $AZ_DIR"
else
  log "npm install azurite@$AZURITE_VERSION into $AZ_DIR"
  mkdir -p "$AZ_DIR"
  npm install --prefix "$AZ_DIR" "azurite@$AZURITE_VERSION" --no-audit --no-fund --loglevel=error >/dev/null
  [ -x "$AZ_DIR/node_modules/.bin/azurite-blob" ] || { log "azurite-blob missing after npm install"; exit 1; }
fi

# --- moto server (pip, into the test interpreter) ---------------------------------------------------------
if "$JABALI_PYTHON" -c 'import moto.server, flask, flask_cors' >/dev/null 2>&1; then
  log "moto[server] importable by $JABALI_PYTHON"
else
  log "pip install 'moto[server]' into $JABALI_PYTHON"
  if ! out=$("$JABALI_PYTHON" -m pip install -q --disable-pip-version-check 'moto[server]' 2>&1); then
    echo "$out" >&2
    if grep -q externally-managed <<<"$out"; then
      log "this python is externally managed (PEP 668): set JABALI_PYTHON to a virtualenv's python"
    fi
    exit 1
  fi
fi

log "done"
