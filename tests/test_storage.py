"""The database and the upload folder as a deployment lives with them: a database made by the
previous release, and uploads left behind by processes that died."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import time

from webapp import uploads

from .conftest import AUTH, Person, idcard


def test_a_database_of_the_previous_release_is_extended_and_its_stuck_upload_released(make_app, tmp_path):
    path = tmp_path / "test.sqlite3"  # make_app's database
    client = make_app().test_client()
    created = client.post("/api/v1/sessions", headers=AUTH,
                          json={"realname": "张三", "idcard": idcard(21)}).get_json()
    person = Person(client, created["url"])
    challenge = person.challenge()
    client.application.extensions["liveness"].store.engine.dispose()
    # The previous release's attempts table: no lease, an upload stuck in "processing".
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE attempts DROP COLUMN lease_until")
        db.execute("ALTER TABLE attempts DROP COLUMN owner")
        db.execute("INSERT INTO attempts (session_id, challenge_id, state, started_at, counts) "
                   "VALUES (?, ?, 'processing', '2026-01-01 00:00:00', 1)", (created["id"], challenge["id"]))
    client = make_app().test_client()  # the new release starts on it
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(attempts)")}
    assert {"lease_until", "owner"} <= columns
    state = Person(client, created["url"]).state()
    assert not state["processing"] and state["attempts_left"] == 3
    [attempt] = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()["attempts"]
    assert attempt["charged"] is None


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
