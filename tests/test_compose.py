"""compose.yaml, the many-machine deployment (no Docker engine runs here): its services run the
commands the README gives and the tests run (the serve command; the worker command, which
tests/servers.CeleryWorker starts from this very file), with settings the service knows."""
from __future__ import annotations

from pathlib import Path

import yaml

from webapp.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
README = (ROOT / "README.md").read_text()


def test_the_services_of_the_real_deployment():
    assert set(COMPOSE["services"]) == {"web", "worker", "postgres", "redis"}
    for name in ("web", "worker"):
        service = COMPOSE["services"][name]
        assert service["build"] == "." and set(service["environment"]) <= set(Settings.model_fields)
        assert service["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert service["environment"]["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert {"postgres", "redis"} <= set(service["depends_on"])


def test_web_runs_the_readme_serve_command_and_the_image_cmd():
    command = COMPOSE["services"]["web"]["command"]
    assert " ".join(command) == "bash scripts/serve.sh" and "bash scripts/serve.sh" in README
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'CMD ["bash", "scripts/serve.sh"]' in dockerfile


def test_worker_runs_the_readme_worker_command():
    command = " ".join(COMPOSE["services"]["worker"]["command"])
    assert command.startswith("celery -A webapp.worker worker") and command in README


def test_the_worker_is_restarted_and_its_healthcheck_asks_it_alone():
    """`celery inspect ping` passes while any worker answers: the healthcheck names this one
    (celery's default node name, celery@ the container's hostname), so a worker that runs but
    is not connected to Redis is reported unhealthy (tests/test_broker_outage.py runs it)."""
    worker = COMPOSE["services"]["worker"]
    assert worker["restart"] == "unless-stopped"
    kind, command = worker["healthcheck"]["test"]
    assert kind == "CMD-SHELL" and command.startswith("celery -A webapp.worker inspect ping ")
    assert "--destination celery@$$HOSTNAME" in command and "-n " not in " ".join(worker["command"])
