"""The database and the upload folder as a deployment lives with them: a database made by the
previous release, and uploads left behind by processes that died."""
from __future__ import annotations

import datetime as dt
import os
import subprocess
import time

import pytest
from sqlalchemy import inspect, text

from webapp import migrate, uploads
from webapp.storage import Store

from .conftest import AUTH, Person, idcard, rows

pytestmark = pytest.mark.blank_database  # these tests run the migrations themselves


def release_0_1_database(url: str, tmp_path, *, stamped: bool) -> dict:
    """A database as release 0.1 left it: its schema (revision 0001), a pending session and an
    upload stuck in "processing" (its worker died). `stamped=False`: made by 0.1's create_all,
    before migrations existed."""
    store = Store(url)
    migrate.upgrade(store, tmp_path, revision="0001")
    ids = {"session": "ses_old", "challenge": "ch_old", "token": "tok-old"}
    with store.engine.begin() as db:
        db.execute(text(
            "INSERT INTO sessions (id, page_token, operator, realname, idcard, realname_masked, "
            "idcard_masked, mode, status, best_frames, max_attempts, pass_score, sandbox, created_at, "
            "expires_at) VALUES (:session, :token, 'op', '张三', :idcard, '张*', :masked, 'silent', "
            "'pending', 0, 3, 70, false, :now, :later)"),
            {**ids, "idcard": idcard(23), "masked": idcard(23)[:4] + "*" * 10 + idcard(23)[-4:],
             "now": dt.datetime.utcnow().replace(microsecond=0) - dt.timedelta(minutes=5),
             "later": dt.datetime.utcnow() + dt.timedelta(minutes=10)})
        db.execute(text("INSERT INTO challenges (id, session_id, mode, issued_at, expires_at, used_at) "
                        "VALUES (:challenge, :session, 'silent', :at, :at, :at)"),
                   {**ids, "at": dt.datetime.utcnow() - dt.timedelta(minutes=4)})
        db.execute(text("INSERT INTO attempts (session_id, challenge_id, state, started_at, counts) "
                        "VALUES (:session, :challenge, 'processing', :at, true)"),
                   {**ids, "at": dt.datetime.utcnow() - dt.timedelta(minutes=4)})
        if not stamped:
            db.execute(text("DROP TABLE alembic_version"))
    store.engine.dispose()
    return ids


@pytest.mark.parametrize("stamped", [True, False], ids=["revision-0001", "made-before-migrations"])
def test_a_database_of_the_previous_release_is_upgraded_and_its_stuck_upload_released(
        make_app, database_url, tmp_path, stamped):
    ids = release_0_1_database(database_url, tmp_path, stamped=stamped)
    client = make_app().test_client()  # the new release starts on it
    engine = client.application.extensions["liveness"].store.engine
    assert migrate.current(client.application.extensions["liveness"].store) == migrate.head()
    assert {"lease_until", "owner"} <= {c["name"] for c in inspect(engine).get_columns("attempts")}
    state = client.get(f"/v/{ids['token']}/state").get_json()
    assert not state["in_flight"] and state["attempts_left"] == 3 and state["status"] == "pending"
    # The old session is the operator "op"'s; read what the database holds.
    [(charged, listed_state)] = rows(database_url, "select charged, state from attempts")
    assert charged is None and listed_state == "done"


def test_an_upgrade_from_0005_says_when_each_challenge_finished(make_app, database_url, tmp_path):
    """0006: a challenge used or replaced under 0005 had its moment in used_at or (replaced) in
    expires_at, which the next challenge's issued_at equals; finished_at is filled from them, and
    the one open challenge stays open."""
    store = Store(database_url)
    migrate.upgrade(store, tmp_path, revision="0005")
    now = dt.datetime.utcnow().replace(microsecond=0)
    ago = lambda minutes: now - dt.timedelta(minutes=minutes)  # noqa: E731
    # (id, issued_at, expires_at, used_at) as 0005's code left them, oldest first.
    challenges = [("ch_expired", ago(12), ago(10), None),   # ran out; the next came later
                  ("ch_used", ago(8), ago(6), ago(7)),       # used for an attempt
                  ("ch_replaced", ago(5), ago(3), None),     # replaced at ago(3): expires_at moved there
                  ("ch_open", ago(3), now + dt.timedelta(minutes=2), None)]
    with store.engine.begin() as db:
        db.execute(text(
            "INSERT INTO sessions (id, page_token, operator, realname, idcard, realname_masked, "
            "idcard_masked, mode, status, best_frames, max_attempts, pass_score, sandbox, created_at, "
            "expires_at) VALUES ('ses_05', 'tok-05', 'op', '张三', :idcard, '张*', :masked, 'silent', "
            "'pending', 0, 3, 70, false, :created, :later)"),
            {"idcard": idcard(23), "masked": idcard(23)[:4] + "*" * 10 + idcard(23)[-4:],
             "created": ago(15), "later": now + dt.timedelta(minutes=10)})
        for id_, issued, expires, used in challenges:
            db.execute(text("INSERT INTO challenges (id, session_id, mode, issued_at, expires_at, used_at) "
                            "VALUES (:id, 'ses_05', 'silent', :issued, :expires, :used)"),
                       {"id": id_, "issued": issued, "expires": expires, "used": used})
    store.engine.dispose()

    app = make_app()  # the new release starts on it and upgrades it
    assert migrate.current(app.extensions["liveness"].store) == migrate.head()
    finished = {id_: at if at is None else str(at)  # SQLite answers text, PostgreSQL datetimes
                for id_, at in rows(database_url, "select id, finished_at from challenges")}
    assert finished == {"ch_expired": None, "ch_used": str(ago(7)), "ch_replaced": str(ago(3)),
                        "ch_open": None}
    from webapp.sessions import open_challenge
    from webapp.storage import find_session
    with app.extensions["liveness"].store.session() as db:
        challenge = open_challenge(find_session(db, id="ses_05"))
        assert challenge is not None and challenge.id == "ch_open"


def test_the_migrations_make_exactly_the_models_schema(make_app):
    """A model changed without a revision would be missed by every upgraded database."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from webapp.storage import Base
    engine = make_app().extensions["liveness"].store.engine
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_flask_db_upgrade_and_current(make_app):
    app = make_app()
    runner = app.test_cli_runner()
    assert f"database at revision {migrate.head()}" in runner.invoke(args=["db", "upgrade"]).output
    assert f"newest {migrate.head()}" in runner.invoke(args=["db", "current"]).output


def test_the_sweep_removes_what_no_live_request_holds(tmp_path):
    folder = uploads.prepare_dir(tmp_path / "uploads")
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    live = subprocess.Popen(["sleep", "60"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        held = folder / f"{uploads.HOST}-{live.pid}-abc"
        orphan = folder / f"{uploads.HOST}-{dead.pid}-def"
        elsewhere = folder / f"otherhost-{dead.pid}-ghi"  # another machine's: only its age counts
        old = folder / "stray-file"
        for entry in (held, orphan, elsewhere):
            entry.mkdir()
            (entry / "upload").write_bytes(b"face video")
        old.write_bytes(b"x")
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        assert uploads.sweep(folder, max_age=600) == 2
        assert sorted(p.name for p in folder.iterdir()) == sorted([held.name, elsewhere.name])
        assert uploads.sweep(folder, max_age=600, now=time.time() + 3600) == 2  # too old, held or not
    finally:
        live.kill()
        live.wait()


def test_a_request_body_is_spooled_into_the_private_folder_unnamed(make_app, media):
    app = make_app()
    folder = app.extensions["liveness"].uploads
    seen = []
    original = uploads.spool_file

    def spy(where):
        handle = original(where)
        seen.append((where, os.readlink(f"/proc/self/fd/{handle.fileno()}")))
        return handle
    uploads.spool_file = spy
    try:
        client = app.test_client()
        created = client.post("/api/v1/sessions", headers=AUTH,
                              json={"realname": "张三", "idcard": idcard(22)}).get_json()
        assert Person(client, created["url"]).upload(media("safari_fmp4")).status_code == 200
    finally:
        uploads.spool_file = original
    assert seen and all(where == folder for where, _ in seen)
    assert all(target.startswith(str(folder)) and target.endswith("(deleted)") for _, target in seen), seen
    assert list(folder.iterdir()) == []


def test_a_queued_video_is_kept_uncompressed_on_postgresql(postgres, tmp_path):
    """0007: PostgreSQL stores a queued video as it is. Compressing H.264 (which does not shrink)
    cost about 30 ms of the database's CPU per video (bench/load.py)."""
    url = postgres.new_database()
    store = Store(url)
    migrate.upgrade(store, tmp_path)
    with store.engine.begin() as db:
        db.execute(text("SET session_replication_role = replica"))  # no session or attempt rows needed
        db.execute(text("INSERT INTO queued_videos (attempt_id, data, created_at) VALUES (1, :data, now())"),
                   {"data": bytes(1_000_000)})  # zeros: what pglz would squeeze the most
    assert rows(url, "select pg_column_compression(data), length(data) from queued_videos") == [(None, 1_000_000)]
    assert rows(url, "select attstorage from pg_attribute where attrelid = 'queued_videos'::regclass "
                     "and attname = 'data'") == [("e",)]
    store.engine.dispose()
