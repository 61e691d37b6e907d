"""The README's commands, run as printed on a sandbox service (only the port differs)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
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
    if not (ROOT / ".venv").exists():  # a git worktree: the virtualenv running these tests
        command = command.replace(".venv/bin/", f"{Path(sys.executable).parent}/", 1)
    done = subprocess.run(["bash", "-c", command], cwd=ROOT, env=sandbox_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout + done.stderr


def test_the_readme_two_commands_exist_and_ci_runs_the_test_command():
    """The two commands as printed, the scripts they name, and CI calling the printed test command."""
    commands = re.findall(r"^(bash scripts/[\w-]+\.sh)\b", "\n".join(shell_blocks()), flags=re.M)
    assert commands[:2] == ["bash scripts/serve.sh", "bash scripts/test.sh"], commands
    for command in commands:
        assert (ROOT / command.split()[1]).is_file(), command
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_the_two_minute_try_names_sandbox_ids_that_do_what_it_says():
    """The README's try: one ID number that passes, one too dark (a retry), one that fails."""
    from webapp.guidance import guidance_for
    from webapp.juhe.sandbox import DEFAULT_SCORE, TEST_IDS, _outcome
    try_section = README.split("## A two-minute try", 1)[1].split("\n## ", 1)[0]
    ids = re.findall(r"\*\*`(\d{17}[\dX])`\*\*", try_section)
    assert len(ids) == 3, ids
    passing, dark, mismatch = ids
    assert _outcome(passing) == ("score", DEFAULT_SCORE) and f"score {DEFAULT_SCORE:g}" in try_section
    assert _outcome(dark) == ("service", 267517) and guidance_for(267517).person_zh in try_section
    assert _outcome(mismatch) == ("service", 267509) and guidance_for(267509).final
    assert {dark, mismatch} <= {idcard for idcard, _ in TEST_IDS}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    heading = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", heading).replace(" ", "-")


DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=[str(d.relative_to(ROOT)) for d in DOCUMENTS])
def test_every_relative_link_resolves_to_a_file_and_heading_in_the_repository(document):
    """Links in README.md and docs/*.md: `[text](target)` and `<target>`, web addresses aside."""
    text = re.sub(r"```.*?```", "", document.read_text(), flags=re.S)  # code is not links
    text = re.sub(r"`[^`\n]*`", "", text)
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"<([^<>\s]+)>", text)
    broken = []
    for target in targets:
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or not re.search(r"[/.#]", target):
            continue  # http(s):, mailto:, or a placeholder such as <id> in the prose
        path, _, anchor = target.partition("#")
        resolved = (document.parent / path).resolve() if path else document
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            broken.append(target)
        elif anchor and resolved.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", resolved.read_text(), flags=re.S), re.M)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert not broken, broken
    assert targets or document.name in ("risk-signals.md", "threat-model.md"), "no links found: is the pattern right?"
