"""The application factory: settings → logging → services → extensions → blueprints → commands."""
from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from flask import Flask, Request, request
from sqlalchemy.exc import DBAPIError

from . import (
    commands,
    limits,
    logs,
    migrate,
    outages,
    retention,
    theming,
    uploads,
    verification,
    video,
)
from .api import views as api
from .delivery import webhooks
from .delivery.wakeups import Wakeups
from .extensions import API, Services, audience, csrf, error_answer
from .juhe.client import JuheClient, http_session
from .settings import Settings, load_settings, with_instance_secret
from .storage import Store
from .web import console, pages, security, static_files


def create_app(test_config: dict | None = None, *, settings: Settings | None = None) -> Flask:
    """Build the app. `test_config` overrides settings (by their variable names) and Flask config;
    `settings`, already read (the Celery worker's, webapp/worker.py), are used instead of reading
    the environment again."""
    app = Flask(__name__, instance_relative_config=True,
                instance_path=os.path.abspath(os.environ["INSTANCE_PATH"])
                if os.environ.get("INSTANCE_PATH") else None)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if settings is None:
        overrides = {k: v for k, v in (test_config or {}).items() if k in Settings.model_fields}
        settings = load_settings(app.instance_path, overrides)
    else:
        settings = with_instance_secret(settings, app.instance_path)
    configure_flask(app, settings, {k: v for k, v in (test_config or {}).items()
                                    if k not in Settings.model_fields})
    logs.configure(settings)
    app.extensions["liveness"] = build_services(app, settings)
    app.request_class = _request_class(app.extensions["liveness"].uploads)
    register_extensions(app)
    register_blueprints(app)
    _schema_first(app)
    _database_away_answers(app)
    register_commands(app)
    if settings.CELERY_BROKER_URL:
        from .delivery import tasks
        tasks.configure(settings)
    # The background loop runs where the app serves: gunicorn starts it in each worker
    # (gunicorn.conf.py), not in `flask purge` or a Celery worker. Tests may ask for it.
    if app.config.get("BACKGROUND_TASKS", False):
        app.extensions["liveness_background_stop"] = start_background(
            app.extensions["liveness"], schema=app.extensions["liveness_schema"])
    return app


def start_background(s: Services, interval: float = 5.0, housekeeping_every: float = 300.0,
                     sweep_every: float = 30.0, schema: migrate.Schema | None = None) -> Callable[[], None]:
    """One daemon thread per process: deliver due webhooks, sweep leftover uploads, and now and
    then release dead attempts, expire overdue sessions and purge old ones (and, with a Redis
    broker, the wake-ups' subscriber: webapp/delivery/wakeups.py). Several processes
    may run it: deliveries are leased, sessions locked. Each pass first makes sure of `schema`
    (a process started while the database was away). Returns what stops it."""
    stopping = threading.Event()
    s.wakeups.start()
    log = logging.getLogger(__name__)

    def run() -> None:
        last_housekeeping = last_sweep = 0.0
        while not stopping.is_set():
            try:
                if schema is not None:
                    schema.ensure()
                s.dispatcher.deliver_due()
                if time.monotonic() - last_sweep > sweep_every:
                    uploads.sweep(s.uploads, uploads.max_age(s.settings))
                    last_sweep = time.monotonic()
                if time.monotonic() - last_housekeeping > housekeeping_every:
                    with s.store.session() as db:
                        retention.housekeeping(db, s.settings)
                    last_housekeeping = time.monotonic()
                if s.settings.CELERY_BROKER_URL:
                    from .delivery import tasks
                    tasks.publish_lost(s.store)  # queued attempts whose task Redis lost
            except DBAPIError as error:
                if not outages.database_away(error):
                    log.exception("background pass failed")
                else:  # expected while it restarts: one line, not a traceback every pass
                    log.warning("background pass skipped: the database is away (%s)", type(error.orig).__name__)
            except Exception:
                log.exception("background pass failed")
            s.dispatcher.wait(interval)

    thread = threading.Thread(target=run, name="liveness-background", daemon=True)
    thread.start()

    def stop() -> None:
        stopping.set()
        s.dispatcher.wake()
        thread.join(10)
    return stop


def configure_flask(app: Flask, settings: Settings, extra: dict) -> None:
    app.config.update(
        SECRET_KEY=settings.SECRET_KEY,
        MAX_CONTENT_LENGTH=settings.MAX_UPLOAD_MB * 1024 * 1024,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.PUBLIC_URL and settings.PUBLIC_URL.startswith("https")),
        WTF_CSRF_TIME_LIMIT=3600,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # DefaultJSONProvider's  # names and messages in Chinese as they are (Flask 3 has no JSON_AS_ASCII)
    app.config.update(extra)


def _request_class(folder: Path) -> type[Request]:
    """Requests whose uploaded files are spooled into the private upload folder."""
    class UploadRequest(Request):
        def _get_file_stream(self, total_content_length, content_type, filename=None,
                             content_length=None):
            return uploads.spool_file(folder)
    return UploadRequest


def build_services(app: Flask, settings: Settings) -> Services:
    """Database, ffmpeg and the Juhe client; in sandbox mode the client talks to the simulator."""
    store = Store(settings.DATABASE_URL or f"sqlite:///{Path(app.instance_path) / 'liveness.sqlite3'}")
    app.extensions["liveness_schema"] = schema = migrate.Schema(store, lock_dir=app.instance_path)
    schema.at_start()  # a worker starting while the database is away starts all the same
    folder = uploads.prepare_dir(settings.UPLOAD_DIR or Path(app.instance_path) / "uploads")
    uploads.sweep(folder, uploads.max_age(settings))
    tools = video.Tools(ffmpeg=settings.FFMPEG_BINARY, ffprobe=settings.FFPROBE_BINARY,
                        timeout=settings.FFMPEG_TIMEOUT, tmpdir=str(folder))
    if settings.sandbox:
        from .juhe.sandbox import sandbox_session
        http, key = sandbox_session(tools), "sandbox"
    else:
        assert settings.JUHE_KEY, "no key is sandbox mode"
        http, key = http_session(), settings.JUHE_KEY
    client = JuheClient(http, key=key, url=settings.JUHE_API_URL,
                        timeout=(settings.JUHE_CONNECT_TIMEOUT, settings.JUHE_READ_TIMEOUT))
    if settings.sandbox:
        logging.getLogger(__name__).warning(
            "SANDBOX MODE: no JUHE_KEY set; Juhe is simulated and no paid call is made")
    dispatcher = webhooks.Dispatcher(store, settings.WEBHOOK_SECRET,
                                     previous_secret=settings.WEBHOOK_SECRET_PREVIOUS,
                                     allow_private=settings.webhook_allow_private)
    # A waiting state request holds one of gunicorn's threads: at most half of them wait.
    wakeups = Wakeups(settings.CELERY_BROKER_URL, max_waiters=max(1, settings.GUNICORN_THREADS // 2))
    verifier = verification.Verifier(store, settings, client, verification.ffmpeg_normaliser(tools), folder,
                                     enqueue=_enqueue if settings.CELERY_BROKER_URL else None,
                                     on_finished=lambda _session_id: dispatcher.wake())
    return Services(settings, store, verifier, tools, dispatcher, folder, wakeups)


def _enqueue(attempt_id: int) -> None:
    """Hand a prepared video to a Celery worker (webapp/delivery/tasks.py), with this request's id."""
    from .delivery import tasks
    tasks.verify.delay(attempt_id, logs.request_id.get())


def _request_ids(app: Flask) -> None:
    """Every request has an id (the caller's X-Request-Id if it is sane, else a new one): in
    each log line of its work, and in the answer's X-Request-Id."""
    @app.before_request
    def _start():
        given = request.headers.get("X-Request-Id", "")
        logs.request_id.set(given if logs.REQUEST_ID.fullmatch(given) else uuid.uuid4().hex)

    @app.after_request
    def _tag(response):
        response.headers["X-Request-Id"] = logs.request_id.get() or ""
        return response


def register_extensions(app: Flask) -> None:
    settings = app.extensions["liveness"].settings
    _request_ids(app)
    static_files.init_app(app)  # versioned, gzipped once, cached for a year
    csrf.init_app(app)
    limits.init_app(app, settings)
    security.init_app(app, settings.PROXY_HOPS,
                      https_public_url=bool(settings.PUBLIC_URL and settings.PUBLIC_URL.startswith("https:")),
                      img_origins=theming.logo_origins(settings.OPERATOR_THEMES))


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    console.init_app(app)  # the operator console, with a cookie of its own under /console
    csrf.exempt(api.bp)  # bearer-key API: no cookies, so no CSRF

    @app.errorhandler(404)
    @app.errorhandler(405)
    def _routing_error(error):
        """Unknown paths and methods under /api/ answer in the API's JSON error format."""
        if audience() == API:
            asked = f"{request.method} {request.path}"
            if error.code == 404:
                what, what_zh = "No such endpoint", "没有这个接口"
            else:
                what, what_zh = f"{request.method} is not allowed here", f"此处不接受 {request.method}"
            return api.error_response(error.code, error.name.lower().replace(" ", "_"),
                                      f"{what}: {asked} (see /api/v1/openapi.json).",
                                      message_zh=f"{what_zh}：{asked}（见 /api/v1/openapi.json）。")
        return error


# What answers without the database: liveness, readiness (which asks the database itself), assets.
_NO_DATABASE = frozenset({"pages.healthz", "pages.readyz", "static", "favicon"})


def _schema_first(app: Flask) -> None:
    """In a process started while the database was away, no request reaches the database before
    the schema is brought up: until then each tries it first, and is answered 503 (below) while
    the database is still away."""
    schema: migrate.Schema = app.extensions["liveness_schema"]

    @app.before_request
    def _bring_up_schema():
        if not schema.ready and request.endpoint not in _NO_DATABASE:
            schema.ensure()


def _database_away_answers(app: Flask) -> None:
    """While the database is away (restarted, failing over), every request that needs it is
    answered 503 with Retry-After, never a 500: the API in its JSON error format, the page's
    calls in theirs (the page tries again), a page or the console as a message to read."""
    @app.errorhandler(DBAPIError)
    def _database_away(error: DBAPIError):
        if not outages.database_away(error):
            raise error
        logging.getLogger(__name__).warning("%s %s: the database is away (%s); answered 503",
                                            request.method, request.path, type(error.orig).__name__)
        return error_answer(503, "service_unavailable", "The service is recovering; try again in a few seconds.",
                            "服务正在恢复，请稍等几秒；本次不计入次数。",
                            api=("database_unavailable", "The database is briefly unavailable; try again in a "
                                 "few seconds.", "数据库暂时不可用，请几秒后重试。"), retry_after=5)


def register_commands(app: Flask) -> None:
    commands.init_app(app)
