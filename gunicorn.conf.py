"""gunicorn settings, used by the README's serve command and the Docker image alike.

An upload's request runs ffmpeg and then waits for Juhe, whose liveness engine can take tens of
seconds: gthread workers keep other requests flowing meanwhile, and the worker timeout is longer
than FFMPEG_TIMEOUT + JUHE_READ_TIMEOUT so a slow upstream is answered, not killed.
"""
import multiprocessing
import os

bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", min(4, multiprocessing.cpu_count() + 1)))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 8))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", 180))
graceful_timeout = 60
keepalive = 5
# Uploads come from phones on slow links; the body is read by the worker thread, not the arbiter.
limit_request_field_size = 16384
accesslog = "-"
errorlog = "-"
# The page token in /v/<token> is a credential; the app's logging redacts it (webapp/logs.py).
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
certfile = os.environ.get("TLS_CERTFILE") or None
keyfile = os.environ.get("TLS_KEYFILE") or None
