#!/usr/bin/env bash
# Refreshes constraints.txt: every package txpipe and its tests install, at the newest versions
# PyPI offers today, resolved in a throwaway virtualenv. Run it, run the tests, commit both.
# Resolve with the oldest Python txpipe supports (Debian 12's 3.11.2: some newest releases need a later
# 3.11.x), so that the pins install everywhere:
#   TXPIPE_PYTHON=/usr/bin/python3 bash scripts/lock.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
"${TXPIPE_PYTHON:-python3}" -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -U pip
"$venv/bin/pip" install -q --disable-pip-version-check -e ".[dev]"
{
  echo "# Every package txpipe and its tests install, pinned: scripts/install.sh installs with -c this file."
  echo "# Refreshed by scripts/lock.sh ($(date -u +%Y-%m-%d), $("$venv/bin/python" -V))."
  "$venv/bin/pip" freeze --exclude-editable | sort -f
} > constraints.txt.new
if [ -f constraints.txt ]; then diff <(grep -v '^#' constraints.txt) <(grep -v '^#' constraints.txt.new) || true; fi
mv constraints.txt.new constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)" >&2
