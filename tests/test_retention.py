"""Personal data is kept only as long as needed: overdue sessions expire and forget the identity;
finished sessions are deleted with their attempts after RETENTION_DAYS (`flask purge`)."""
import datetime as dt

from webapp.extensions import services
from webapp.storage import VerificationSession

from .conftest import AUTH, Person, idcard, rows


def age(app, session_id, **fields):
    with app.app_context(), services().store.session() as db:
        session = db.get(VerificationSession, session_id)
        for name, value in fields.items():
            setattr(session, name, value)
        db.commit()


def test_purge_expires_overdue_sessions_and_deletes_old_ones(make_app, juhe, media, database_url):
    app = make_app(RETENTION_DAYS=30)
    client = app.test_client()
    finished = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)}).get_json()
    Person(client, finished["url"]).upload(media("safari_fmp4"))
    overdue = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "李四", "idcard": idcard(2)}).get_json()
    fresh = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "王五", "idcard": idcard(3)}).get_json()
    age(app, finished["id"], completed_at=dt.datetime(2000, 1, 1))
    age(app, overdue["id"], expires_at=dt.datetime(2000, 1, 2))

    result = app.test_cli_runner().invoke(args=["purge"])
    assert result.exit_code == 0 and "expired 1" in result.output and "purged 1" in result.output

    # The overdue one ended now: it stays for RETENTION_DAYS, without its clear identity.
    remaining = {r[0]: r[1:] for r in rows(database_url, "select id, status, realname, idcard from sessions")}
    assert remaining == {fresh["id"]: ("pending", "王五", idcard(3)), overdue["id"]: ("expired", None, None)}
    assert rows(database_url, "select count(*) from attempts") == [(0,)]
    assert client.get(f"/api/v1/sessions/{finished['id']}", headers=AUTH).status_code == 404


def test_an_expired_session_keeps_only_the_masked_identity_until_purged(make_app, juhe, database_url):
    app = make_app(RETENTION_DAYS=30)
    client = app.test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "李四", "idcard": idcard(2)}).get_json()
    age(app, created["id"], expires_at=dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(minutes=1))
    app.test_cli_runner().invoke(args=["purge"])
    [(status, realname, number, masked)] = rows(
        database_url, "select status, realname, idcard, idcard_masked from sessions")
    assert (status, realname, number) == ("expired", None, None) and masked.startswith("1101****")
