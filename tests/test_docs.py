"""The README's commands, run as printed on a sandbox service (only the port differs)."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from .servers import Gunicorn, request

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def shell_blocks() -> list[str]:
    """The ```sh blocks of the README, comments and all."""
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def sandbox_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("JUHE_", "OPERATOR_", "DATABASE_", "CELERY_", "RATELIMIT_", "WEBHOOK_", "EMBED_"))}
    return {**env, "INSTANCE_PATH": str(tmp_path / "instance")}


@pytest.fixture
def sandbox(tmp_path):
    service = Gunicorn(tmp_path / "instance", {}, workers=1)
    service.env = {**sandbox_env(tmp_path), **{k: v for k, v in service.env.items() if k in ("BIND", "WEB_CONCURRENCY")}}
    service.start()
    yield service
    service.stop()


def test_the_readme_create_session_example_works_in_sandbox_as_printed(sandbox):
    create = next(block for block in shell_blocks() if "curl -s http://127.0.0.1:8000/api/v1/sessions" in block)
    command = create.replace("127.0.0.1:8000", f"127.0.0.1:{sandbox.port}")
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and done.stdout.startswith("{"), (done.stdout, done.stderr)
    created = json.loads(done.stdout)
    assert "error" not in created, created
    assert created["sandbox"] is True and created["mode"] == "number" and "/v/" in created["url"]
    # Read back as the README says: Chinese as it is (not \u escapes), masked.
    view = request("GET", f"{sandbox.url}/api/v1/sessions/{created['id']}",
                   headers={"Authorization": "Bearer sandbox-operator-key"})
    assert view.status == 200 and "张*".encode() in view.body and b"\\u" not in view.body
    assert view.json()["reference"] == "order-42"


def test_an_unknown_endpoint_says_which_and_where_the_list_is(sandbox):
    reply = request("GET", f"{sandbox.url}/api/v1/sesions", headers={"Authorization": "Bearer sandbox-operator-key"})
    assert reply.status == 404
    message = reply.json()["error"]["message"]
    assert "GET /api/v1/sesions" in message and "openapi.json" in message and "manually" not in message


@pytest.mark.parametrize("command, expect", [
    (".venv/bin/flask --app wsgi sandbox-ids", "110101199003075170"),
    (".venv/bin/flask --app wsgi db current", "0"),
    (".venv/bin/flask --app wsgi db upgrade", "upgrade"),
])
def test_the_readme_flask_commands_run_as_printed(tmp_path, command, expect):
    assert f"`{command}`" in README.replace("\n", " ").replace("--app wsgi  ", "--app wsgi ")
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=sandbox_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout + done.stderr
