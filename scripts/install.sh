#!/usr/bin/env bash
# Installs txpipe and what it needs on a fresh Debian/Ubuntu machine:
# the PostgreSQL server binaries (the local target runs its own server) and the package.
#   bash scripts/install.sh         # the tool
#   bash scripts/install.sh --dev   # plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "installing the PostgreSQL server (apt-get install postgresql)..." >&2
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
fi

extras=""; [ "${1:-}" = "--dev" ] && extras="[dev]"
# Versions pinned by constraints.txt (refreshed by scripts/lock.sh), so a fresh machine gets what the tests passed with.
python3 -m pip install -q --disable-pip-version-check -c constraints.txt -e ".${extras}"

if [ "${1:-}" = "--dev" ]; then
  # checkov pins older boto3/botocore than txpipe uses, so it lives in its own virtualenv.
  tools="${TXPIPE_TOOLS:-$HOME/.cache/txpipe/tools}"
  if [ ! -x "$tools/checkov/bin/checkov" ]; then
    echo "installing checkov into $tools/checkov..." >&2
    python3 -m venv "$tools/checkov"
    "$tools/checkov/bin/pip" install -q --disable-pip-version-check checkov==3.3.30
  fi
fi
