#!/usr/bin/env bash
# Install everything the tests need (ffmpeg, Chromium, Python packages), then run every test.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k video`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
