#!/usr/bin/env bash
# Install everything the tests need (ffmpeg, nginx, Chromium, PostgreSQL, Redis, Python packages;
# for the integration kit Java, Node.js, PHP, Go and Prometheus),
# then run every test on SQLite, and again those that store something on PostgreSQL (a real
# server the tests start on loopback). Extra arguments go to both pytest runs, e.g.
# `bash scripts/test.sh -k video`.
#   bash scripts/test.sh fast   the developer's loop: SQLite only, no browser, ffmpeg, fuzzing or
#                               started services (the markers of tests/conftest.py), one test
#                               process per core (pytest-xdist), about 40 s on 2 cores
# Both first run the linters configured in pyproject.toml: ruff (style, imports, bug patterns)
# and mypy (types of webapp/); either failing fails the run before any test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = fast ]; then
  shift
  bash scripts/setup.sh test
  .venv/bin/ruff check webapp tests bench
  .venv/bin/mypy
  HYPOTHESIS_PROFILE=dev exec .venv/bin/python -m pytest -q -n auto -m "not (browser or video or fuzz or service)" "$@"
fi
bash scripts/setup.sh test
# The integration kit's tools (tests/test_integration_kit.py, marked `service`): the webhook
# signature snippets of docs/integration/ run in Java, Node.js, PHP and Go, and deploy/prometheus/
# runs under promtool and a real Prometheus. Installed only where missing, as setup.sh does.
kit_has() { PATH=$PATH:/usr/sbin:/sbin command -v "$1" >/dev/null; }
kit_missing=()
{ kit_has java && kit_has javac; } || kit_missing+=(openjdk-17-jdk-headless)
kit_has node || kit_missing+=(nodejs)
kit_has php || kit_missing+=(php-cli)
kit_has go || kit_missing+=(golang)
{ kit_has prometheus && kit_has promtool; } || kit_missing+=(prometheus)
if [ ${#kit_missing[@]} -gt 0 ]; then
  sudo=; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing system packages: ${kit_missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${kit_missing[@]}" >/dev/null
fi
.venv/bin/ruff check webapp tests bench
.venv/bin/mypy
status=0
.venv/bin/python -m pytest "$@" || status=$?
echo "--- the tests that store something, on PostgreSQL"
TEST_DATABASE=postgresql .venv/bin/python -m pytest "$@" || {
  code=$?
  [ "$code" -eq 5 ] || status=$code   # 5: the arguments selected none of them
}
exit "$status"
