"""The operator console without a browser (tests/browser/test_console.py drives it in Chromium):
a sign-in lives on the server, so signing out, or the key leaving OPERATOR_API_KEYS, ends it
whatever copies of the cookie exist; sign-in tries are limited per address and for all addresses
together."""
from __future__ import annotations

import re

import pytest

from webapp import console, sessions

from .conftest import OPERATOR_KEY, rows
from .servers import Gunicorn, address, request

OTHER_KEY = "other-operator-key"


def csrf_token(client) -> str:
    page = client.get("/console/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


def sign_in(client, key: str = OPERATOR_KEY, **kwargs):
    return client.post("/console/login", data={"key": key, "csrf_token": csrf_token(client)}, **kwargs)


def cookie(client) -> str:
    return client.get_cookie(console.COOKIE, path=console.PREFIX).value


def with_cookie(app, value: str):
    client = app.test_client()
    client.set_cookie(console.COOKIE, value, path=console.PREFIX)
    return client


def sign_out(client):
    page = client.get("/console/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    return client.post("/console/logout", data={"csrf_token": token})


# -- sign-out ends the sign-in on the server (issue 19, part 5, fault 1) -------------------------
def test_a_cookie_copied_before_sign_out_opens_nothing_after(app, database_url):
    client = app.test_client()
    assert sign_in(client).status_code == 303
    copied = cookie(client)
    assert with_cookie(app, copied).get("/console/").status_code == 200  # the copy works while signed in

    assert sign_out(client).status_code == 303
    assert client.get("/console/").status_code == 302
    for path in ("/console/", "/console/funnel", "/console/sessions/ses_x"):
        answer = with_cookie(app, copied).get(path)
        assert answer.status_code == 302 and answer.headers["Location"].endswith("/console/login"), path
    assert rows(database_url, "select id from console_sign_ins") == []


def test_the_server_keeps_a_hash_of_the_cookies_id_never_the_id(app, database_url):
    client = app.test_client()
    sign_in(client)
    [(stored,)] = rows(database_url, "select id from console_sign_ins")
    assert len(stored) == 64 and stored not in cookie(client)


def test_signing_out_ends_only_that_sign_in(app):
    first, second = app.test_client(), app.test_client()
    sign_in(first), sign_in(second)
    sign_out(first)
    assert first.get("/console/").status_code == 302
    assert second.get("/console/").status_code == 200


def test_a_key_rotated_or_removed_ends_its_sign_ins_for_good(make_app, database_url):
    both = make_app(OPERATOR_API_KEYS=f"{OPERATOR_KEY},{OTHER_KEY}")
    client = both.test_client()
    sign_in(client, OTHER_KEY)
    copied = cookie(client)
    assert with_cookie(both, copied).get("/console/").status_code == 200
    # OTHER_KEY rotated away: its sign-in ends (the row goes), ...
    rotated = make_app(OPERATOR_API_KEYS=f"{OPERATOR_KEY},new-other-key")
    assert with_cookie(rotated, copied).get("/console/").status_code == 302
    # ... so putting the old key back does not bring the old cookie back to life.
    assert with_cookie(both, copied).get("/console/").status_code == 302
    assert rows(database_url, "select operator from console_sign_ins where operator = :op",
                op=sessions.operator_fingerprint(OTHER_KEY)) == []


def test_a_sign_in_lapses_with_the_cookies_lifetime(app, database_url):
    client = app.test_client()
    sign_in(client)
    import sqlalchemy
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("update console_sign_ins set expires_at = created_at"))
    engine.dispose()
    assert client.get("/console/").status_code == 302
    # The next sign-in clears lapsed rows away.
    sign_in(app.test_client())
    assert len(rows(database_url, "select id from console_sign_ins")) == 1


# -- sign-in tries from many addresses (issue 19, part 5, fault 4) -------------------------------
def test_sign_in_tries_from_many_addresses_meet_an_overall_limit(make_app):
    app = make_app(RATELIMIT_ENABLED=True)
    client = app.test_client()
    token = csrf_token(client)
    answers = [client.post("/console/login", data={"key": f"guess-{n}", "csrf_token": token},
                           environ_overrides={"REMOTE_ADDR": address(n)}) for n in range(60)]
    codes = [a.status_code for a in answers]
    assert 429 in codes, "60 tries from 60 addresses, all answered"
    overall = codes.index(429)
    assert codes == [401] * overall + [429] * (60 - overall) and overall <= 30
    assert console.SIGN_IN_OVERALL == f"{overall} per minute"
    refused = answers[-1]
    text = refused.get_data(as_text=True)
    assert "all addresses together" in text and "登录尝试过多" in text and 'role="alert"' in text
    assert 0 < int(refused.headers["Retry-After"]) <= 60   # a minute at most once the tries stop
    # Meanwhile the operator is asked to wait too (the price of the limit), for a minute at most.
    waiting = client.post("/console/login", data={"key": OPERATOR_KEY, "csrf_token": token},
                          environ_overrides={"REMOTE_ADDR": address(200)})
    assert waiting.status_code == 429 and int(waiting.headers["Retry-After"]) <= 60


def test_the_per_address_limit_still_holds_and_says_so(make_app):
    app = make_app(RATELIMIT_ENABLED=True)
    client = app.test_client()
    token = csrf_token(client)
    answers = [client.post("/console/login", data={"key": "guess", "csrf_token": token},
                           environ_overrides={"REMOTE_ADDR": address(7)}) for _ in range(11)]
    assert [a.status_code for a in answers] == [401] * 10 + [429]
    assert "from this address" in answers[-1].get_data(as_text=True) and "all addresses" not in answers[-1].get_data(as_text=True)


def test_successful_sign_ins_do_not_use_up_the_overall_limit(make_app):
    app = make_app(RATELIMIT_ENABLED=True)
    for n in range(40):   # more than the overall limit of failed tries
        client = app.test_client()
        assert sign_in(client, environ_overrides={"REMOTE_ADDR": address(n)}).status_code == 303


@pytest.mark.service
def test_under_gunicorn_the_overall_limit_holds_across_workers(tmp_path):
    """Three workers share the count (the SQLite rate-limit storage of the instance folder):
    40 tries from 40 loopback addresses, 30 answered, then 429 with the reason."""
    service = Gunicorn(tmp_path / "instance", {"RATELIMIT_ENABLED": "true", "OPERATOR_API_KEYS": OPERATOR_KEY},
                       workers=3).start()
    try:
        page = request("GET", service.url + "/console/login")
        jar = page.headers["Set-Cookie"].split(";", 1)[0]
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.body.decode()).group(1)
        codes = []
        for n in range(40):
            reply = request("POST", service.url + "/console/login", source=address(300 + n),
                            headers={"Cookie": jar}, fields={"key": f"guess-{n}", "csrf_token": token})
            codes.append(reply.status)
        assert codes == [401] * 30 + [429] * 10, codes
        assert "all addresses together" in reply.body.decode()
    finally:
        service.stop()


# -- a charge that is not known is explained where the operator reads it (issue 19) -------------
def test_an_attempt_whose_answer_never_came_is_marked_charge_unknown_with_what_to_do(make_app, juhe, media):
    from .conftest import create_session
    app = make_app(JUHE_READ_TIMEOUT=1.0)
    client = app.test_client()
    juhe.mode, juhe.slow_seconds = juhe.SLOW, 3.0  # past the read deadline: sent, never answered
    lost, person = create_session(client, mode="silent")
    person.upload(media("safari_fmp4"))
    juhe.mode = None
    passed, other = create_session(client, mode="silent")
    other.upload(media("safari_fmp4"))
    assert sign_in(client).status_code == 303

    page = client.get(f"/console/sessions/{lost['id']}").get_data(as_text=True)
    assert "收费未知" in page and "未知 unknown" in page
    assert "its time in Juhe's console" in page
    assert "收费未知" not in client.get(f"/console/sessions/{passed['id']}").get_data(as_text=True)
