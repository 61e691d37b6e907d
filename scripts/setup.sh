#!/usr/bin/env bash
# Install what is needed on a Debian/Ubuntu machine with Python 3.11+:
#   bash scripts/setup.sh        ffmpeg, nginx (scripts/serve.sh puts it in front of gunicorn),
#                                and a virtualenv (.venv) with the service's packages
#   bash scripts/setup.sh test   the same, plus the three browser engines (Chromium, Firefox ESR,
#                                and WebKitGTK in a Debian 13 root that scripts/webkit-root.sh
#                                builds once), CJK fonts, the libraries Playwright's own node
#                                needs (libatomic1), redis-server and PostgreSQL (the tests run
#                                real ones on loopback) and the test packages
# System packages are installed only where missing (with sudo when not root). Python packages
# are installed again only when pyproject.toml or a lock file changed since the last install
# (.venv/.installed).
set -euo pipefail
cd "$(dirname "$0")/.."
extra=${1:-}

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "Python 3.11 or newer is needed (found $("$python" --version 2>&1))" >&2; exit 1; }

sbin_path=$PATH:/usr/sbin:/sbin
has() { PATH=$sbin_path command -v "$1" >/dev/null; }
has_lib() { PATH=$sbin_path ldconfig -p 2>/dev/null | grep "$1" >/dev/null; }

missing=()
has ffmpeg && has ffprobe || missing+=(ffmpeg)
"$python" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
has openssl || missing+=(openssl)   # serve.sh --https makes a certificate
has nginx || missing+=(nginx)       # serve.sh's buffering proxy (and TLS with --https)
if [ "$extra" = test ]; then
  has chromium || missing+=(chromium)
  has firefox-esr || missing+=(firefox-esr)   # driven over WebDriver BiDi (tests/browser/engines)
  { has fc-list && fc-list 2>/dev/null | grep -i 'noto.*cjk' >/dev/null; } || missing+=(fonts-noto-cjk)
  # Playwright's bundled node (its driver) links libatomic, which a bare Debian lacks.
  has_lib libatomic.so.1 || missing+=(libatomic1)
  # Real servers the tests start on loopback ports: Redis (Celery's broker) and PostgreSQL.
  has redis-server || missing+=(redis-server)
  has curl || missing+=(curl)   # the README's examples are run as printed (tests/test_docs.py)
  compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# WebKitGTK records in a Debian 13 root (Debian 12's records empty chunks): built once, reused.
[ "$extra" != test ] || bash scripts/webkit-root.sh

fresh=
[ -x .venv/bin/python ] || { "$python" -m venv .venv; fresh=1; }
want="$(cat pyproject.toml requirements.lock requirements-test.lock | sha256sum | cut -d' ' -f1) $(.venv/bin/python -V 2>&1)"
stamp=.venv/.installed
have=$(cat "$stamp" 2>/dev/null || true)
# The stamp is "<hash of pyproject.toml and the lock files> <python version>" and a last line "test" when the test
# packages are in too; `setup.sh` after `setup.sh test` has nothing to do.
if [ "$(head -n1 <<<"$have")" = "$want" ] && { [ "$extra" != test ] || grep -qx test <<<"$have"; }; then
  exit 0
fi
rm -f "$stamp"
[ -z "$fresh" ] || .venv/bin/python -m pip install -q --upgrade pip >/dev/null
# The pinned, hash-checked versions of requirements*.lock (scripts/lock.sh writes them from
# pyproject.toml), then the service itself without resolving anything again.
if [ "$extra" = test ]; then
  .venv/bin/python -m pip install -q -r requirements-test.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  printf '%s\ntest\n' "$want" > "$stamp"
else
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps -e .
  printf '%s\n' "$want" > "$stamp"
fi
