#!/bin/bash
# Installs what jabali needs on Debian/Ubuntu (as root, non-interactive):
#   restic + a Python virtualenv at .venv with jabali installed (editable).
# With --tests, also the test dependencies and every server the test-suite starts (scripts/install.d/*.sh).
# Idempotent: fast when everything is already there.
set -euo pipefail
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_DIR"
export DEBIAN_FRONTEND=noninteractive
WITH_TESTS=0
[ "${1:-}" = "--tests" ] && WITH_TESTS=1

need=()
command -v restic >/dev/null 2>&1 || need+=(restic)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv python3-pip)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if ((${#need[@]})); then
  [ "$(id -u)" -eq 0 ] || { echo "install-deps: run as root to install: ${need[*]}" >&2; exit 1; }
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Release' -mmin -60 2>/dev/null | head -1)" ]; then
    apt-get -o DPkg::Lock::Timeout=600 update -qq
  fi
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extras=""
[ "$WITH_TESTS" = 1 ] && extras="[test]"
stamp=".venv/.jabali-installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$extras"
  touch "$stamp"
fi

if [ "$WITH_TESTS" = 1 ]; then
  export JABALI_PYTHON="$REPO_DIR/.venv/bin/python"
  for script in scripts/install.d/*.sh; do
    bash "$script"
  done
fi
restic version
