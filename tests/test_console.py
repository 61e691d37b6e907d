"""The operator console without a browser (tests/browser/test_console.py drives it in Chromium):
a sign-in lives on the server, so signing out, or the key leaving OPERATOR_API_KEYS, ends it
whatever copies of the cookie exist; sign-in tries are limited per address and for all addresses
together."""
from __future__ import annotations

import re

import pytest

from webapp import sessions
from webapp.web import console

from .conftest import OPERATOR_KEY, idcard, rows
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


# -- an operator can work in the console: search, pages, CSV, status words (issue 22, part 3) ----
def make(client, reference: str | None = None, key: str = OPERATOR_KEY, seq: int = 1) -> str:
    """A session of the operator whose key is `key`; its id."""
    body = {"realname": "张三", "idcard": idcard(seq)}
    if reference is not None:
        body["reference"] = reference
    answer = client.post("/api/v1/sessions", json=body, headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["id"]


def update(database_url: str, sql: str, **params) -> None:
    import sqlalchemy
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(sql), params)
    engine.dispose()


def listed(page: str) -> list[str]:
    """The session ids a list page links to, in its order."""
    return re.findall(r'href="/console/sessions/(ses_[\w]+)"', page)


@pytest.fixture
def two_operators(make_app, database_url):
    """An app with two operator keys; this operator's sessions a (pending, 2026-03-01), b (passed,
    2026-03-02), c (expired, 2026-03-03), and the other operator's own "order-1001" (2026-03-01).
    Yields (client signed in as this operator, {name: id})."""
    app = make_app(OPERATOR_API_KEYS=f"{OPERATOR_KEY},{OTHER_KEY}")
    client = app.test_client()
    ids = {"a": make(client, "order-1001", seq=11), "b": make(client, "order-2002", seq=12),
           "c": make(client, None, seq=13), "other": make(client, "order-1001", key=OTHER_KEY, seq=14)}
    for name, day, status in (("a", 1, "pending"), ("b", 2, "passed"), ("c", 3, "expired"), ("other", 1, "pending")):
        update(database_url, "update sessions set created_at = :at, status = :status where id = :id",
               at=f"2026-03-0{day} 12:00:00", status=status, id=ids[name])
    assert sign_in(client).status_code == 303
    return client, ids


@pytest.mark.parametrize("query, expected", [
    ("", ["c", "b", "a"]),
    ("?reference=1001", ["a"]),
    ("?reference=ORDER-", ["b", "a"]),       # a part of it, any case
    ("?reference=%25", []),                  # a LIKE wildcard is a character like any other
    ("?status=passed", ["b"]),
    ("?status=expired", ["c"]),
    ("?from=2026-03-02", ["c", "b"]),
    ("?to=2026-03-02", ["b", "a"]),          # "to" includes its day
    ("?from=2026-03-01&to=2026-03-01", ["a"]),
    ("?reference=order&status=pending&from=2026-03-01", ["a"]),
])
def test_each_filter_narrows_the_list_to_this_operators_sessions(two_operators, query, expected):
    client, ids = two_operators
    answer = client.get("/console/" + query)
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert listed(page) == [ids[name] for name in expected]
    assert ids["other"] not in page


def test_a_session_id_is_found_by_the_whole_id_or_its_start(two_operators):
    client, ids = two_operators
    for typed in (ids["b"], ids["b"][:9]):
        assert listed(client.get(f"/console/?id={typed}").get_data(as_text=True)) == [ids["b"]]
    assert listed(client.get(f"/console/?id={ids['other']}").get_data(as_text=True)) == []
    assert "没有符合搜索条件的会话" in client.get(f"/console/?id={ids['other']}").get_data(as_text=True)


@pytest.mark.parametrize("query, words", [
    ("?from=2026-13-01", "起始日期“2026-13-01”无法识别"),
    ("?to=yesterday", "To date “yesterday” is not a date"),
    ("?to=9999-12-31", "is not a date"),
    ("?from=2026-03-02&to=2026-03-01", "The from date is after the to date"),
    ("?status=cancelled", "Unknown status “cancelled”"),
    ("?page=abc", "is not a page number"),
    ("?page=0", "is not a page number"),
    ("?page=99999999999999999999", "is not a page number"),
])
def test_a_search_it_cannot_read_is_answered_with_what_is_wrong(two_operators, query, words):
    client, _ids = two_operators
    for path in ("/console/", "/console/sessions.csv"):
        answer = client.get(path + query)
        page = answer.get_data(as_text=True)
        assert answer.status_code == 400 and 'role="alert"' in page and words in page, (path, query)
        assert listed(page) == []


def test_thirty_sessions_make_two_pages_whose_links_keep_the_search(app, database_url):
    client = app.test_client()
    made = [make(client, f"bulk-{n:02d}", seq=100 + n) for n in range(30)]
    make(client, "unrelated", seq=200)
    # One second for all: the order is still stable (ties broken by id, newest first).
    update(database_url, "update sessions set created_at = '2026-04-01 08:00:00'")
    sign_in(client)
    first = client.get("/console/?reference=bulk&status=pending").get_data(as_text=True)
    assert "第 1–25 条，共 30 条" in first and "1–25 of 30" in first
    assert len(listed(first)) == 25 and 'rel="prev"' not in first
    following = re.search(r'<a rel="next" id="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    assert set(following.split("?", 1)[1].split("&")) == {"reference=bulk", "status=pending", "page=2"}
    second = client.get(following).get_data(as_text=True)
    assert "第 26–30 条，共 30 条" in second and 'rel="next"' not in second
    back = re.search(r'<a rel="prev" id="prev" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    assert set(back.split("?", 1)[1].split("&")) == {"reference=bulk", "status=pending"}
    assert listed(first) + listed(second) == sorted(made, reverse=True)
    # Past the last page: the last page.
    assert listed(client.get("/console/?reference=bulk&page=9").get_data(as_text=True)) == listed(second)


def read_csv(answer) -> list[dict]:
    import csv
    import io
    body = answer.get_data()
    assert body.startswith("\ufeff".encode()), "a BOM, so Excel reads UTF-8"
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def test_the_csv_holds_every_page_of_the_search_masked_and_guarded(app, database_url):
    client = app.test_client()
    references = ["=HYPERLINK(\"http://x\",\"y\")", "+1", "-2", "@SUM(A1)", "订单 甲"] + [f"plain-{n}" for n in range(26)]
    made = {make(client, ref, seq=300 + n): ref for n, ref in enumerate(references)}
    other = make(client, "elsewhere", seq=400)
    update(database_url, "update sessions set status = 'passed', completed_at = created_at where id = :id",
           id=next(iter(made)))
    sign_in(client)
    page = client.get("/console/").get_data(as_text=True)
    link = re.search(r'<a id="export" href="([^"]+)"', page).group(1)
    answer = client.get(link)
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "attachment" in answer.headers["Content-Disposition"]
    body = answer.get_data(as_text=True)
    assert idcard(300) not in body and "张三" not in body     # never the identity in clear
    everything = read_csv(answer)
    assert len(everything) == 32 > 25                         # every page, not just the first
    assert list(everything[0]) == ["id", "reference", "name_masked", "idcard_masked", "status", "created_utc",
                                   "finished_utc", "attempts", "last_outcome_code", "score", "charged"]
    by_id = {row["id"]: row for row in everything}
    assert {by_id[i]["reference"] for i in made} == {"'=HYPERLINK(\"http://x\",\"y\")", "'+1", "'-2", "'@SUM(A1)",
                                                    "订单 甲", *(f"plain-{n}" for n in range(26))}
    first = by_id[next(iter(made))]
    assert (first["status"], first["attempts"], first["charged"]) == ("passed", "0", "0")
    assert first["finished_utc"].endswith("Z") and first["created_utc"].endswith("Z")
    assert first["name_masked"] == "张*" and first["idcard_masked"] == idcard(300)[:4] + "*" * 10 + idcard(300)[-4:]
    assert other in by_id
    # The search narrows the file as it narrows the list.
    narrowed = read_csv(client.get("/console/sessions.csv?reference=plain-1&status=pending"))
    assert sorted(row["reference"] for row in narrowed) == sorted(["plain-1"] + [f"plain-1{n}" for n in range(10)])


def test_the_csv_says_when_it_stops_at_its_cap(app, database_url):
    """The cap (EXPORT_CAP, 10,000) made small: the file says how many it left out."""
    import sqlalchemy
    from sqlalchemy.orm import Session

    from webapp.web import console_search
    client = app.test_client()
    for n in range(4):
        make(client, f"capped-{n}", seq=500 + n)
    engine = sqlalchemy.create_engine(database_url)
    try:
        with Session(engine) as db:
            text = console_search.export(db, sessions.operator_fingerprint(OPERATOR_KEY),
                                         console_search.Search(), cap=3)
    finally:
        engine.dispose()
    lines = text.splitlines()
    assert len(lines) == 1 + 3 + 1 and lines[-1].startswith("# 只导出了前 3 条，共 4 条")
    assert "Only the first 3 of 4 sessions" in lines[-1]


def test_statuses_are_shown_in_the_consoles_words(two_operators):
    client, ids = two_operators
    page = client.get("/console/").get_data(as_text=True)
    for zh, en in (("待完成", "pending"), ("已通过", "passed"), ("已过期", "expired")):
        assert f'{zh} <span lang="en">{en}</span></td>' in page
    for zh, en in (("待完成", "pending"), ("已通过", "passed"), ("未通过", "failed"), ("已过期", "expired")):
        assert f">{zh} · {en}</option>" in page
    assert not re.search(r">(pending|passed|failed|expired)</td>", page)   # never the raw value alone
    detail = client.get(f"/console/sessions/{ids['b']}").get_data(as_text=True)
    assert '<dd id="status" class="status-passed">已通过 <span lang="en">passed</span></dd>' in detail


def test_the_funnels_tables_come_as_csv_for_the_period(app, juhe, media):
    from .conftest import create_session
    client = app.test_client()
    _, person = create_session(client, mode="silent")
    person.client.environ_base["HTTP_USER_AGENT"] = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.1 Mobile/15E148 Safari/604.1")
    assert person.upload(media("safari_fmp4")).status_code == 200
    sign_in(client)
    page = client.get("/console/funnel?days=30").get_data(as_text=True)
    assert 'href="/console/funnel.csv?days=30"' in page
    answer = client.get("/console/funnel.csv?days=30")
    assert answer.status_code == 200 and "funnel-30d-" in answer.headers["Content-Disposition"]
    table = read_csv(answer)
    assert [(r["table"], r["name"], r["attempts"], r["passed"], r["paid"]) for r in table] == [
        ("code", "0", "1", "", "1"), ("browser_os", "Safari · iOS", "1", "1", ""), ("os", "iOS", "1", "1", "")]
    assert table[0]["label"]


def test_the_console_and_the_site_have_a_favicon(app, client):
    sign_in(client)
    page = client.get("/console/").get_data(as_text=True)
    icon = re.search(r'<link rel="icon" type="image/svg\+xml" href="(/static/favicon\.svg\?v=\w+)">', page).group(1)
    answer = client.get("/favicon.ico")
    assert answer.status_code == 302 and answer.headers["Location"] == icon
    svg = client.get(icon)
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
