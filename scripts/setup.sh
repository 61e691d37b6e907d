#!/usr/bin/env bash
# Install what the service needs on a Debian/Ubuntu machine with Python 3.11+:
#   bash scripts/setup.sh        ffmpeg, and a virtualenv (.venv) with the service's packages
#   bash scripts/setup.sh test   the same, plus Chromium, CJK fonts and the test packages
# System packages are installed only where missing (with sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-}

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11 or newer is needed (found $("$python" --version 2>&1))" >&2; exit 1; }

missing=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || missing+=(ffmpeg)
"$python" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v openssl >/dev/null || missing+=(openssl)   # serve.sh --https makes a certificate
if [ "$extra" = test ]; then
  command -v chromium >/dev/null || missing+=(chromium)
  { command -v fc-list >/dev/null && fc-list | grep -qi 'noto.*cjk'; } || missing+=(fonts-noto-cjk)
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
if [ "$extra" = test ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
else
  .venv/bin/python -m pip install -q -e .
fi
