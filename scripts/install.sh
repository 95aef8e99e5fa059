#!/usr/bin/env bash
# Installs txpipe on a fresh Debian/Ubuntu machine, whatever its Python setup (PEP 668 included):
#   bash scripts/install.sh         # the tool
#   bash scripts/install.sh --dev   # plus the test and lint tools
# What it does, and where things go (it prints the same at the end):
#   - PostgreSQL's server binaries from Debian's packages, if missing (the local target runs its own server);
#   - a virtualenv of its own, ./.venv (or $TXPIPE_VENV), with every package at the version constraints.txt
#     pins, txpipe itself installed editable from this checkout; the system's Python is never touched;
#   - `txpipe` linked into a directory on PATH ($TXPIPE_BIN_DIR, else ~/.local/bin if it is on PATH,
#     else /usr/local/bin when run as root), so the shell that ran this script finds it;
#   - with --dev: checkov in a virtualenv of its own (it pins older boto3/botocore than txpipe uses), and
#     Debian's chromium with its chromedriver, if missing (the dashboard's browser test drives them).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
dev=""; [ "${1:-}" = "--dev" ] && dev=1
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"

apt_install() {
  echo "installing $* (apt-get)..." >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  apt_install postgresql
fi

python="${TXPIPE_PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "txpipe needs Python 3.11 or newer; $python is $("$python" -V 2>&1)" >&2
  exit 1
fi

venv="${TXPIPE_VENV:-$repo/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    # Debian and Ubuntu ship the venv module's pip apart: python3-venv (python3.X-venv on some releases).
    minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    apt_install python3-venv "python${minor}-venv" || apt_install python3-venv
    "$python" -m venv "$venv"
  fi
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -U pip
fi

extras=""; [ -n "$dev" ] && extras="[dev]"
# pip's own chatter (setuptools' editable-install banner on stderr) is shown only if the install fails.
pip_log="$(mktemp)"
if ! "$venv/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e ".${extras}" \
    >"$pip_log" 2>&1; then
  cat "$pip_log" >&2
  rm -f "$pip_log"
  echo "installing txpipe into $venv failed (pip's output above)" >&2
  exit 1
fi
rm -f "$pip_log"

# A directory on PATH for the `txpipe` command.
on_path() { case ":$PATH:" in *":$1:"*) return 0 ;; *) return 1 ;; esac; }
bin_dir="${TXPIPE_BIN_DIR:-}"
if [ -z "$bin_dir" ]; then
  if on_path "$HOME/.local/bin"; then
    bin_dir="$HOME/.local/bin"
  elif [ "$(id -u)" -eq 0 ] && on_path /usr/local/bin; then
    bin_dir=/usr/local/bin
  else
    bin_dir="$HOME/.local/bin"
  fi
fi
mkdir -p "$bin_dir"
ln -sf "$venv/bin/txpipe" "$bin_dir/txpipe"

if [ -n "$dev" ]; then
  if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
  fi
  tools="${TXPIPE_TOOLS:-$HOME/.cache/txpipe/tools}"
  if [ ! -x "$tools/checkov/bin/checkov" ]; then
    echo "installing checkov into $tools/checkov..." >&2
    "$python" -m venv "$tools/checkov"
    "$tools/checkov/bin/pip" install -q --disable-pip-version-check checkov==3.3.30
  fi
fi

echo "installed $("$venv/bin/txpipe" --version 2>/dev/null || echo txpipe): virtualenv $venv, command $bin_dir/txpipe" >&2
if ! on_path "$bin_dir"; then
  echo "note: $bin_dir is not on your PATH; add it (export PATH=\"$bin_dir:\$PATH\") or run $venv/bin/txpipe" >&2
  exit 1
fi
