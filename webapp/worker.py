"""The Celery worker's entry point:

    celery -A webapp.worker worker --pool threads --concurrency 16 --loglevel INFO

It builds the app once per process (settings, database, Juhe client; no background loop, no
web) and gives its services to the tasks of webapp/tasks.py. The web side imports only
webapp.tasks, to queue them."""
from __future__ import annotations

from . import tasks
from .app import create_app

celery = tasks.celery
tasks.build_services_with(lambda: create_app().extensions["liveness"])
