"""return_url and callback_url are read as a browser reads them (the WHATWG URL standard) and as
Python's parsers do (urllib, requests); a URL the two read differently is refused, so the host the
consent screen names is the host the browser goes to (issue 19, part 5, fault 3)."""
from __future__ import annotations

import html
import json
import re
import socket
from urllib.parse import urlsplit

import ada_url
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import AUTH, idcard, rows

WEBHOOK_SECRET = "whsec-urls-0123456789"
FAST = {"deadline": None, "database": None,
        "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}

# Each is read differently by a browser and by urllib/requests, or hides where it goes.
TRICKY = [
    "https://evil.example\\@op.example/",       # the attack run's: a browser goes to evil.example
    "https://op.example\\@evil.example/",       # the other way round
    "https:/\\evil.example/", "https:\\\\evil.example/", "https://evil.example\\op.example/",
    "https://op.example/\\evil", "https://op.example/done?next=\\\\evil.example",
    "https:evil.example", "https:/evil.example", "https:///evil.example/", "https:////evil.example/x",
    "https://op.ex\tample/", "https://op.example\n.evil.example/", "https://evil.example\r@op.example/",
    " https://op.example/", "https://op.example/ ", "https://evil.example\u200b.op.example/",
    "https://evil.example%5C@op.example/", "https://evil.example%2f@op.example/", "https://op.example%5C.evil.example/",
    "https://user:pass@op.example/", "https://@op.example/", "https://op.example@evil.example/",
    "https://op.example:443@evil.example/", "https://%65vil.example/", "https://OP.ex%61mple/",
    "https://ｅｖｉｌ．example/", "https://evil.example\u3002op.example/", "https://op.example\u2024evil.example/",
    "https://1.2.3.4./", "https://[::1%25eth0]/", "http://[::1]x/", "https://op.example:99999/",
    "http://op.example:80:80/", "javascript://op.example/%0aalert(1)", "ftp://op.example/", "//evil.example/",
]
# Fine, and spelled by the browser's rules when stored (the host always lower-case ASCII).
PLAIN = {
    "https://bank.example/done?x=1": "https://bank.example/done?x=1",
    "HTTPS://Bank.Example:443/done": "https://bank.example/done",
    "https://银行.example/完成": "https://xn--jn2a72x.example/%E5%AE%8C%E6%88%90",
    "http://[2001:DB8::1]:8080/x": "http://[2001:db8::1]:8080/x",
    "https://op.example/a%5Cb": "https://op.example/a%5Cb",
    "https://op.example#@evil.example": "https://op.example/#@evil.example",
}


def create(client, field: str, url: str):
    body = {"realname": "张三", "idcard": idcard(1), field: url}
    return client.post("/api/v1/sessions", headers=AUTH, data=json.dumps(body), content_type="application/json")


def accepted(client, field: str, url: str) -> dict | None:
    """The created session for a URL the API accepts; None for one refused as it must be: a 422
    naming the field (never another answer)."""
    response = create(client, field, url)
    assert response.status_code in (201, 422), response.status_code
    if response.status_code == 422:
        assert response.get_json()["error"]["field"] == field
        return None
    return response.get_json()


@pytest.fixture
def client(make_app):
    return make_app(WEBHOOK_SECRET=WEBHOOK_SECRET).test_client()


def browser_host(url: str) -> str:
    return ada_url.URL(url).hostname.removeprefix("[").removesuffix("]")


def asker(client, created: dict) -> str:
    """The host the consent screen names."""
    page = client.get(urlsplit(created["url"]).path).get_data(as_text=True)
    return html.unescape(re.search(r"“([^”]*)”请您完成刷脸核验", page).group(1))


def ended_return_url(client, database_url: str, created: dict) -> str:
    """Where the page sends the person once the session ended (the state's return_url)."""
    import sqlalchemy
    engine = sqlalchemy.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text("update sessions set status = 'failed' where id = :id"), {"id": created["id"]})
    engine.dispose()
    return client.get(urlsplit(created["url"]).path + "/state").get_json()["return_url"]


@pytest.mark.parametrize("field", ["return_url", "callback_url"])
@pytest.mark.parametrize("url", TRICKY)
def test_urls_read_differently_by_browsers_and_python_are_refused_naming_the_field(client, field, url):
    response = create(client, field, url)
    assert response.status_code == 422, (url, response.get_json())
    error = response.get_json()["error"]
    assert error["field"] == field and error["code"] == f"invalid_{field}", error
    assert error["message"].startswith(f"{field} must ")


def test_the_attack_runs_url_is_refused_saying_why(client):
    error = create(client, "return_url", "https://evil.example\\@op.example/").get_json()["error"]
    assert "backslash" in error["message"]
    error = create(client, "return_url", "https://u:p@op.example/").get_json()["error"]
    assert "user name or password" in error["message"]


@pytest.mark.parametrize("given, spelled", PLAIN.items())
def test_a_plain_return_url_is_kept_as_the_browser_spells_it_and_named_on_the_consent_screen(
        client, database_url, given, spelled):
    response = create(client, "return_url", given)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert rows(database_url, "select return_url from sessions where id = :id", id=created["id"]) == [(spelled,)]
    assert asker(client, created) == browser_host(given)
    back = ended_return_url(client, database_url, created)
    assert browser_host(back) == urlsplit(back).hostname == browser_host(given)
    assert back.startswith(spelled.split("#")[0].split("?")[0])


def test_numeric_callback_hosts_that_both_read_as_one_address_are_still_accepted(make_app):
    """127.1 is 127.0.0.1 to the browser's rules and to the socket layer alike (sandbox-like
    WEBHOOK_ALLOW_PRIVATE): not a disagreement."""
    client = make_app(WEBHOOK_SECRET=WEBHOOK_SECRET, WEBHOOK_ALLOW_PRIVATE=True).test_client()
    for url in ("http://127.1/hook", "http://2130706433/hook", "http://[::ffff:127.0.0.1]/hook"):
        assert create(client, "callback_url", url).status_code == 201, url


# -- fuzzing: pieces put together in every order ---------------------------------------------------
schemes = st.sampled_from(["https://", "http://", "HTTPS://", "https:", "https:/", "https:\\\\", "https:/\\", "https:///",
                           "https:\t//", "javascript://"])
userinfo = st.sampled_from(["", "", "evil.example@", "evil.example\\@", "u:p@", "@", "evil.example%40", "op.example:443@"])
hosts = st.sampled_from(["op.example", "OP.Example", "evil.example\\", "op.example\\.evil.example", "[::1]",
                         "[::ffff:127.0.0.1]", "127.1", "0x7f000001", "1.2.3.4.", "银行.example", "ｏｐ.example",
                         "op.example%5C.evil.example", "op.ex\tample", "op.example\n", "%6fp.example", "xn--jn2a72x.example",
                         "op.example.", "evil.example\u3002op.example", "evil.example#", "evil.example?", ""])
ports = st.sampled_from(["", "", ":443", ":0443", ":8443", ":99999", ":", ":80:80", ":\\"])
tails = st.sampled_from(["/", "", "/done?x=1", "\\@op.example/", "#@evil.example", "/\\evil.example", "?@evil.example",
                         "/%5C@evil.example", "/a/../../b", "/\u00e9"])


@settings(max_examples=300, **FAST)
@given(scheme=schemes, user=userinfo, host=hosts, port=ports, tail=tails)
@example(scheme="https://", user="evil.example\\@", host="op.example", port="", tail="/")
@example(scheme="https:", user="", host="evil.example", port="", tail="")
def test_an_accepted_return_url_names_where_the_browser_goes(client, database_url, scheme, user, host, port, tail):
    url = scheme + user + host + port + tail
    created = accepted(client, "return_url", url)
    if created is None:
        return
    goes = browser_host(url)   # where a browser given the operator's URL would go
    assert asker(client, created) == goes, url
    assert "\\" not in url and "@" not in urlsplit(url).netloc and not user
    [(stored,)] = rows(database_url, "select return_url from sessions where id = :id", id=created["id"])
    assert browser_host(stored) == urlsplit(stored).hostname == goes, url
    back = ended_return_url(client, database_url, created)
    assert browser_host(back) == urlsplit(back).hostname == goes, url


@settings(max_examples=200, **FAST)
@given(scheme=schemes, user=userinfo, host=hosts, port=ports, tail=tails)
def test_an_accepted_callback_url_is_sent_where_a_browser_would_go(client, scheme, user, host, port, tail):
    from webapp.delivery import targets
    url = scheme + user + host + port + tail
    if accepted(client, "callback_url", url) is None:
        return
    _scheme, sent_to, _port = targets.split(url)   # where requests connects
    assert "\\" not in url and "@" not in urlsplit(url).netloc and not user
    assert socket_reads(sent_to) == socket_reads(browser_host(url)), url


def socket_reads(host: str) -> str:
    """An address as the socket layer reads it (`127.1` is 127.0.0.1), else the name."""
    try:
        return socket.getaddrinfo(host, None, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0][4][0]
    except (socket.gaierror, UnicodeError):
        return host.lower()
