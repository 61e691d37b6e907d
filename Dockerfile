# The liveness capture service. Build: docker build -t liveness .
# Run:   docker run -p 8000:8000 -v liveness-data:/data liveness          (sandbox mode)
#        docker run -p 8000:8000 -v liveness-data:/data --env-file .env liveness
# The image installs with the same script as the README (scripts/setup.sh) and serves with the
# README's serve command (scripts/serve.sh: nginx on BIND, buffering whole request bodies, in front
# of gunicorn -c gunicorn.conf.py on a unix socket in /data/run), so what the tests check of those
# is what runs here. serve.sh's own set-up step finds everything installed and does nothing.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml requirements.lock requirements-test.lock README.md wsgi.py gunicorn.conf.py ./
COPY scripts ./scripts
COPY deploy ./deploy
COPY webapp ./webapp
# Debian's ffmpeg (its ffprobe; ffmpeg itself runs imageio-ffmpeg's static build from the lock)
# and nginx, openssl, python3-venv, via the README's own install script.
RUN bash scripts/setup.sh \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data --create-home app \
    && chown -R app:app /data

USER app
ENV PATH=/app/.venv/bin:$PATH \
    INSTANCE_PATH=/data \
    BIND=0.0.0.0:8000
VOLUME ["/data"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"

# bash is PID 1: serve.sh supervises nginx and gunicorn and stops both on docker stop (SIGTERM).
STOPSIGNAL SIGTERM
CMD ["bash", "scripts/serve.sh"]
