"""Shared fixtures: the app on a temporary SQLite file, the loopback Juhe stand-in, real videos.

Every contract setting is given explicitly, and the process environment's are removed first,
so a developer's shell or `.env` cannot change what the tests see.
"""
from __future__ import annotations

import os
from pathlib import Path

import hypothesis
import pytest

from webapp.identity import check_digit
from webapp.settings import Settings

from .juhe_standin import JuheStandIn
from .loopback import recording_server
from .media import make_fixture

for _name in Settings.model_fields:
    os.environ.pop(_name, None)

STANDIN_KEY = "standin-key-0123456789"
OPERATOR_KEY = "op-key-abcdef"
AUTH = {"Authorization": f"Bearer {OPERATOR_KEY}"}


# Hypothesis: "ci" (the full run) tries more and prints how to reproduce a failure; "dev" (the
# fast tier, HYPOTHESIS_PROFILE=dev) tries fewer. Tests that set max_examples keep their own.
hypothesis.settings.register_profile("ci", max_examples=100, print_blob=True, deadline=None)
hypothesis.settings.register_profile("dev", max_examples=15, deadline=None)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def idcard(seq: int, birth: str = "19850412", region: str = "110101") -> str:
    """A valid ID number (check digit computed) with the given 3-digit sequence."""
    first17 = f"{region}{birth}{seq:03d}"
    return first17 + check_digit(first17)


@pytest.fixture(scope="session")
def standin():
    """The loopback Juhe stand-in, one server for the whole run."""
    server = JuheStandIn(key=STANDIN_KEY, slow_seconds=4.0).start()
    yield server
    server.stop()


@pytest.fixture
def juhe(standin):
    """The stand-in, with no canned answers and an empty request log for this test."""
    standin.script.clear()
    standin.mode = None
    standin.slow_seconds, standin.trickle_seconds = 4.0, 0.5
    standin.requests.clear()
    yield standin
    standin.script.clear()
    standin.mode = None


@pytest.fixture
def loopback():
    """A real HTTP server on 127.0.0.1 that records every connection and request: hostile files
    point ffmpeg at it, and it must see nothing."""
    server = recording_server()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def media(media_dir):
    """`media("safari_fmp4")` → the path of that fixture video, made once per run."""
    return lambda kind: make_fixture(kind, media_dir)


# The database engine the suite runs against: `TEST_DATABASE=postgresql` runs it on a real
# PostgreSQL server (scripts/test.sh does both runs).
ENGINE = os.environ.get("TEST_DATABASE", "sqlite")


@pytest.fixture(scope="session")
def postgres():
    from .pg import PostgresServer
    server = PostgresServer().start()
    yield server
    server.stop()


def _migrate(url: str, lock_dir: Path) -> None:
    from webapp import migrate
    from webapp.storage import Store
    store = Store(url)
    migrate.upgrade(store, lock_dir)
    store.engine.dispose()  # every connection closed (SQLite: its write-ahead log is in the file)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """One SQLite file the migrations made, once a run: each test's database starts as a copy
    (the migrations themselves are tested from an empty database: `blank_database`)."""
    path = tmp_path_factory.mktemp("migrated") / "template.sqlite3"
    _migrate(f"sqlite:///{path}", path.parent)
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def migrated_postgres(postgres, tmp_path_factory) -> str:
    """The same on the PostgreSQL server: a database the migrations made, for others to copy."""
    return postgres.template_database(lambda url: _migrate(url, tmp_path_factory.mktemp("pg-lock")))


def new_database(request, folder: Path) -> str:
    """A fresh database: a copy of the migrated one (SQLite: a file in `folder`; PostgreSQL: a new
    database on the server), or empty for a test marked `blank_database`."""
    blank = request.node.get_closest_marker("blank_database") is not None
    if ENGINE == "postgresql":
        template = "template0" if blank else request.getfixturevalue("migrated_postgres")
        return request.getfixturevalue("postgres").new_database(template)
    path = folder / "test.sqlite3"
    if not blank:
        path.write_bytes(request.getfixturevalue("migrated_sqlite").read_bytes())
    return f"sqlite:///{path}"


@pytest.fixture
def database_url(request, tmp_path) -> str:
    """A fresh database for this test."""
    return new_database(request, tmp_path)


def rows(database_url: str, sql: str, **params) -> list[tuple]:
    """What the database itself holds (not what the app says): `rows(url, "select …", id=…)`."""
    import sqlalchemy
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sqlalchemy.text(sql), params)]
    finally:
        engine.dispose()


# Modules whose tests start real processes (gunicorn, serve.sh, Celery, Redis, a second Python).
SERVICE_MODULES = {"test_celery", "test_database_outage", "test_deploy", "test_docs", "test_faults", "test_races", "test_serve",
                   "test_wakeups"}


def _stores(item) -> bool:
    return ("database_url" in item.fixturenames or item.get_closest_marker("database") is not None) \
        and item.get_closest_marker("sqlite_only") is None


def _kinds(item) -> set[str]:
    """The markers a test earns by what it uses (pyproject.toml lists them): `-m "not video"`."""
    module = item.module.__name__.rpartition(".")[2] if item.module else ""
    kinds = set()
    if "browser" in item.path.parts:
        kinds.add("browser")
    if {"media", "media_dir"} & set(item.fixturenames) or module in {"test_video", "test_media_bombs"}:
        kinds.add("video")
    if module == "test_fuzz" or getattr(item.obj, "is_hypothesis_test", False):
        kinds.add("fuzz")
    if module in SERVICE_MODULES or {"serve", "gunicorn", "gunicorn_alone", "postgres", "redis"} & set(item.fixturenames):
        kinds.add("service")
    if _stores(item):
        kinds.add("postgres")
    return kinds


def pytest_collection_modifyitems(config, items):
    """Marks each test by what it uses (browser, video, fuzz, service, postgres), so that
    `bash scripts/test.sh fast` can leave the slow kinds out. The PostgreSQL run
    (TEST_DATABASE=postgresql) takes the tests that store something: those using the
    `database_url` fixture (directly or through make_app, app, client) or marked `database`;
    the rest were run on SQLite already."""
    for item in items:
        for kind in _kinds(item):
            item.add_marker(kind)
    if ENGINE == "postgresql":
        stores = _stores
        config.hook.pytest_deselected(items=[i for i in items if not stores(i)])
        items[:] = [i for i in items if stores(i)]


@pytest.fixture
def make_app(database_url, juhe, tmp_path):
    """Build an app talking to the stand-in; keyword arguments override settings/config."""
    def build(**overrides):
        from webapp import create_app
        config = {
            "DATABASE_URL": database_url, "UPLOAD_DIR": str(tmp_path / "uploads"),
            "SECRET_KEY": "test-secret-key-0123456789",
            "JUHE_KEY": STANDIN_KEY, "JUHE_API_URL": juhe.url,
            "JUHE_READ_TIMEOUT": 20.0,
            "OPERATOR_API_KEYS": OPERATOR_KEY,
            "WEBHOOK_ALLOW_PRIVATE": True,  # the tests' webhook receivers are on loopback
            "STANDALONE": True,
            "TESTING": True, "BACKGROUND_TASKS": False, "RATELIMIT_ENABLED": False,
        }
        config.update(overrides)
        return create_app(config)
    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


class Person:
    """Drives a session the way the capture page does: challenge, upload, state."""

    def __init__(self, client, url: str):
        self.client = client
        self.path = url.split("://", 1)[1].split("/", 1)[1]
        self.path = "/" + self.path

    def challenge(self) -> dict:
        response = self.client.post(f"{self.path}/challenge")
        assert response.status_code == 201, response.get_json()
        return response.get_json()["challenge"]

    def upload(self, video: Path, challenge_id: str | None = None):
        challenge_id = challenge_id or self.challenge()["id"]
        with open(video, "rb") as fh:
            return self.client.post(f"{self.path}/upload", data={"challenge": challenge_id,
                                                                "video": (fh, video.name)},
                                    content_type="multipart/form-data")

    def state(self) -> dict:
        return self.client.get(f"{self.path}/state").get_json()


def create_session(client, **body):
    """(session JSON, Person) for a session made through the operator API with `client`."""
    body.setdefault("realname", "张三")
    body.setdefault("idcard", idcard(1))
    response = client.post("/api/v1/sessions", json=body, headers=AUTH)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    return created, Person(client, created["url"])


@pytest.fixture
def new_session(client):
    """`new_session(idcard=..., mode=...)` → (session JSON, Person) via the operator API."""
    return lambda **body: create_session(client, **body)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test is a failing test here: ffmpeg, Chromium and the rest are installed by
    scripts/test.sh, so a skip can only mean something is missing."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, which this suite treats as a failure: {report.longrepr}"
