"""gunicorn settings, used by the README's serve command and the Docker image alike.

An upload's request runs ffmpeg and then waits for Juhe, whose liveness engine can take tens of
seconds: gthread workers keep other requests flowing meanwhile, and the worker timeout is longer
than FFMPEG_TIMEOUT + JUHE_READ_TIMEOUT so a slow upstream is answered, not killed.
"""
import multiprocessing
import os

from webapp.settings import read_settings

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() + 1)))
worker_class = "gthread"
# The app's Settings read GUNICORN_THREADS (environment or .env): the app sizes its waiting state
# requests by the same number (webapp/app.py build_services).
threads = read_settings().GUNICORN_THREADS
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 180))
graceful_timeout = 60
keepalive = 5
# Uploads come from phones on slow links, and a worker thread reads a request's body itself: a
# few clients sending slowly would hold every thread. scripts/serve.sh (and the Docker image) put
# nginx in front, which buffers whole bodies first; gunicorn then listens on a unix socket.
limit_request_field_size = 16384
accesslog = "-"
errorlog = "-"
# The page token in /v/<token> is a credential; the app's logging redacts it (webapp/logs.py).
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
if bind.startswith("unix:"):
    # Behind scripts/serve.sh's nginx (which keeps no access log): the client is X-Forwarded-For.
    access_log_format = '%({x-forwarded-for}i)s "%(r)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
certfile = os.environ.get("TLS_CERTFILE") or None
keyfile = os.environ.get("TLS_KEYFILE") or None

# Metrics: every worker writes its own files and /metrics adds them up (prometheus-client's
# multiprocess mode); the folder is emptied when the master starts, a dead worker's gauges dropped.
metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", os.path.join(os.environ.get("INSTANCE_PATH", "instance"), "metrics"))


def on_starting(server):
    import shutil
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir, mode=0o700, exist_ok=True)


def post_worker_init(worker):
    """Each serving worker runs the app's background loop: due webhooks, the upload sweep,
    housekeeping (webapp.app.start_background). Commands and Celery workers do not. The line
    logged last says the worker has loaded the app and takes requests (gunicorn's own "Booting
    worker" comes before the app is loaded)."""
    from webapp.app import start_background
    app = worker.wsgi
    app.extensions["liveness_background_stop"] = start_background(app.extensions["liveness"],
                                                                  schema=app.extensions["liveness_schema"])
    worker.log.info("Worker serving (pid: %s)", worker.pid)


def child_exit(server, worker):
    from prometheus_client import multiprocess
    multiprocess.mark_process_dead(worker.pid)

# gunicorn 25+ opens a control socket in ~/.gunicorn, one path for every gunicorn the user runs;
# several instances on one machine would fight over it, and nothing here uses it.
control_socket_disable = True
