"""The Celery worker's entry point:

    celery -A webapp.worker worker --pool threads --concurrency 16 --loglevel INFO

It reads the settings once, at import: Celery's broker and visibility timeout come from them
(CELERY_BROKER_URL, CELERY_VISIBILITY_SECONDS), and a bad value stops the worker with
Settings' message naming the variable. The app is built from the same settings once per process
(database, Juhe client; no background loop, no web), for the tasks of webapp/delivery/tasks.py. The web
side imports only webapp.delivery.tasks, to queue them."""
from __future__ import annotations

from .app import create_app
from .delivery import tasks
from .settings import read_settings

settings = read_settings()
celery = tasks.configure(settings)
tasks.build_services_with(lambda: create_app(settings=settings).extensions["liveness"])
