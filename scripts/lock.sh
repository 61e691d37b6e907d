#!/usr/bin/env bash
# Pin every package the service and its tests install, with hashes, from pyproject.toml:
#   bash scripts/lock.sh        after changing pyproject.toml's dependencies (tests/test_lock.py
#                               fails until the lock files name every dependency again)
# scripts/setup.sh installs from these files, so every machine (CI, the Docker image, yours) gets
# the same versions. uv resolves for every platform and Python ≥ 3.11 at once (--universal).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install -q uv
common=(--universal --python-version 3.11 --generate-hashes --quiet --no-header)
.venv/bin/uv pip compile pyproject.toml "${common[@]}" -o requirements.lock
.venv/bin/uv pip compile pyproject.toml --extra test "${common[@]}" -o requirements-test.lock
echo "wrote requirements.lock and requirements-test.lock"
