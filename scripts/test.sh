#!/usr/bin/env bash
# Install everything the tests need (ffmpeg, nginx, Chromium, PostgreSQL, Redis, Python packages),
# then run every test on SQLite, and again those that store something on PostgreSQL (a real
# server the tests start on loopback). Extra arguments go to both pytest runs, e.g.
# `bash scripts/test.sh -k video`.
#   bash scripts/test.sh fast   the developer's loop: SQLite only, no browser, ffmpeg, fuzzing or
#                               started services (the markers of tests/conftest.py), about a minute
# Both first run the linters configured in pyproject.toml: ruff (style, imports, bug patterns)
# and mypy (types of webapp/); either failing fails the run before any test.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = fast ]; then
  shift
  bash scripts/setup.sh test
  .venv/bin/ruff check webapp tests bench
  .venv/bin/mypy
  HYPOTHESIS_PROFILE=dev exec .venv/bin/python -m pytest -q -m "not (browser or video or fuzz or service)" "$@"
fi
bash scripts/setup.sh test
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
