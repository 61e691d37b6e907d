"""Hostile input, property-based (Hypothesis), bounded in time for CI.

* malformed operator API bodies: never a 5xx, every 4xx in the error format, and what the
  server accepts is what webapp/api/openapi.json documents (and vice versa for what it refuses);
* malformed standalone form posts, with CSRF on and off: never a 5xx;
* malformed uploads (random bytes, truncated videos, random multipart fields, missing or wrong
  challenges): never a 5xx, never an attempt, never a request to Juhe;
* hostile files (playlists, concat lists, AVI GAB2, URLs and paths as content): nothing is
  fetched from a loopback server they name and nothing of /etc/passwd reaches Juhe;
* Juhe answering slowly, with 5xx, HTML, garbage, a dropped connection or not at all: a clear
  message, the attempt recorded honestly, and exactly one request per upload.

Each Hypothesis test builds its app once and runs its examples inside the test (the `@given`
function is nested), so function-scoped fixtures are never shared across examples by surprise.
"""
from __future__ import annotations

import io
import json
import re
import socket
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .conftest import AUTH, Person, idcard
from .media import hls_playlist, make_fixture
from .test_openapi import DOC_PATH, Schemas

# Bounded: the whole file stays well under a minute and a half on two cores. `database=None`:
# no example database is kept between runs; a failure prints how to reproduce it.
FAST = {"deadline": None, "database": None, "suppress_health_check": [
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large,
    HealthCheck.filter_too_much, HealthCheck.large_base_example]}
# A failing example with a huge string must still show its failure, not a warning about its repr.
# Bodies are sent as JSON libraries send them (json.dumps: \uXXXX escapes), since a lone
# surrogate cannot be written as UTF-8 and the app itself now answers in UTF-8.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr:hypothesis.errors.HypothesisWarning")
EMBED = "https://bank.example"
WEBHOOK_SECRET = "whsec-fuzz-0123456789"
PASSWD_MARKERS = (b"root:x:0:0", b"/bin/sh", b"/usr/sbin/nologin", b"daemon:")


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    return Schemas(json.loads(DOC_PATH.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def request_schema():
    doc = json.loads(DOC_PATH.read_text(encoding="utf-8"))
    return Schemas(doc, strict=False).at("components", "schemas", "CreateSessionRequest")


def assert_json_error(response, *, page: bool = False) -> dict:
    """A 4xx answered in the documented error format (pages add `message_zh` and `state`)."""
    assert 400 <= response.status_code < 500, response.status_code
    assert response.mimetype == "application/json", (response.status_code, response.data[:200])
    body = response.get_json()
    assert isinstance(body, dict) and "error" in body
    assert set(body) <= ({"error", "state"} if page else {"error"})
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"]
    assert isinstance(error.get("message"), str) and error["message"]
    assert set(error) <= {"code", "message", "field", "message_zh"}
    if "field" in error:
        assert isinstance(error["field"], str)
    if page:
        assert isinstance(error.get("message_zh"), str) and error["message_zh"]
    return error


# -- strategies ----------------------------------------------------------------------------------
json_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**70, 2**70)
                | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
# Strings at the boundaries (reference ≤ 200, URLs ≤ 2000) and far beyond them.
huge = st.builds(lambda c, n: c * n, st.sampled_from(["a", "张", "\x00", "😀", "1", "/", "%", " ", "\u202e"]),
                 st.integers(195, 205) | st.integers(1995, 2005) | st.integers(20_000, 300_000))
junk_text = st.text(max_size=40) | st.text(st.characters(codec="utf-8"), max_size=40) | huge

URL_BITS = ["http://", "https://", "HTTPS://", "ftp://", "javascript:", "data:text/html,", "//", "",
            "file:///etc/passwd", "http://[", "http://[::1]", "https://[::1", "http://]", "http://a\uff03b",
            "http://\u2100/", "http://x:99999", "http://x:abc/", "http://u:p@h", "http://127.0.0.1:9/",
            EMBED, EMBED + "/", EMBED.upper(), "http://%zz", "\\\\host\\share", "http:\\\\x", "http://a b/",
            "https://bank.example/done?x=1#f", "gopher://x"]
url_like = st.builds(lambda a, b, c: a + b + c, st.sampled_from(URL_BITS),
                     st.sampled_from(URL_BITS) | st.text(max_size=8), st.text(max_size=8))

NAMES = ["张三", "阿依古丽·买买提", "欧阳娜娜", "𠀀𠀁", "阿依古丽.买买提", "阿依古丽 • 买买提", "张", "Zhang San",
         "张三😀", "张\x00三", "张" * 30, "张" * 31, "", "   ", "·张三", "张三·", "ｚｈａｎｇ", "张\u200b三",
         "\u202e三张"]
DIGIT_SETS = {"fullwidth": 0xFF10, "arabic_indic": 0x0660, "devanagari": 0x0966, "mathematical": 0x1D7CE}


@st.composite
def id_numbers(draw) -> str:
    """Valid ID numbers and near misses: wrong check digit, bad dates, other scripts' digits..."""
    birth = draw(st.sampled_from(["19850412", "19900307", "20000229", "19000101", "21000101", "19990231",
                                  "18991231", "19850400"]))
    region = draw(st.sampled_from(["110101", "440305", "810000", "990000", "000000"]))
    number = idcard(draw(st.integers(0, 999)), birth=birth, region=region)
    how = draw(st.sampled_from(["as is", "lower x", "spaces", "check", "short", "long", "nul", "old 15",
                                *DIGIT_SETS]))
    if how == "lower x":
        number = number.lower()
    elif how == "spaces":
        number = " ".join((number[:6], number[6:14], number[14:]))
    elif how == "check":
        number = number[:17] + ("0" if number[17] != "0" else "1")
    elif how == "short":
        number = number[:draw(st.integers(0, 17))]
    elif how == "long":
        number += draw(st.sampled_from(["0", "X", "00"]))
    elif how == "nul":
        number = number[:9] + "\x00" + number[9:]
    elif how == "old 15":
        number = number[:6] + number[8:17]
    elif how in DIGIT_SETS:
        # Digits of another script in the body of the number (NFKC keeps most of them as they are).
        base = DIGIT_SETS[how]
        number = number[:6] + "".join(chr(base + int(d)) for d in number[6:17]) + number[17]
    return number


field_values = {
    "realname": st.sampled_from(NAMES) | json_scalars | huge,
    "idcard": id_numbers() | json_scalars | huge,
    "mode": st.sampled_from(["silent", "number", "action", "random", "RANDOM", "", "dance", " number"]) | json_values,
    "reference": junk_text | json_values,
    "return_url": url_like | huge | json_values,
    "callback_url": url_like | huge | json_values,
    "embed_origin": st.sampled_from([EMBED, EMBED + "/", EMBED.upper(), "https://evil.example", "null", "", "*"])
                    | url_like | json_values,
    "best_frames": st.integers(-3, 13) | st.floats(-1, 11) | st.booleans() | st.text(max_size=3) | json_values,
}
random_bodies = st.builds(
    lambda known, extra: {**known, **extra},
    st.fixed_dictionaries({}, optional=field_values),
    st.just({}) | st.dictionaries(st.text(max_size=12), json_values, max_size=3))
# A valid body with one or two fields spoiled: gets past the first checks to the deeper ones.
valid_bodies = st.fixed_dictionaries(
    {"realname": st.sampled_from(["张三", "阿依古丽·买买提", "欧阳娜娜"]), "idcard": st.integers(0, 999).map(idcard)},
    optional={"mode": st.sampled_from(["silent", "number", "action", "random"]), "reference": st.text(max_size=20),
              "return_url": st.just(EMBED + "/done?x=1"), "callback_url": st.just(EMBED + "/hook"),
              "embed_origin": st.just(EMBED), "best_frames": st.integers(0, 10)})
spoilers = st.lists(st.sampled_from(sorted(field_values)).flatmap(
    lambda name: field_values[name].map(lambda value: (name, value))), min_size=1, max_size=2)
api_bodies = random_bodies | st.builds(lambda body, spoilt: {**body, **dict(spoilt)}, valid_bodies, spoilers)


# -- operator API --------------------------------------------------------------------------------
def _api_property(client, schemas, request_schema, body, response) -> None:
    assert response.status_code < 500
    if response.status_code == 201:
        created = schemas.check("/api/v1/sessions", "post", response)
        assert isinstance(body, dict) and request_schema.is_valid(body), body
        got = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH)
        view = schemas.check("/api/v1/sessions/{session_id}", "get", got)
        text = json.dumps({k: v for k, v in view.items() if k != "reference"}, ensure_ascii=False)
        for value in (body["idcard"], body["realname"]):
            assert value.strip() not in text  # the identity comes back masked only
        return
    error = assert_json_error(response)
    assert response.status_code in (413, 422), response.status_code
    schemas.check("/api/v1/sessions", "post", response)
    if isinstance(body, dict) and "field" in error:
        assert error["field"] in body or error["field"] in ("realname", "idcard")


def test_api_survives_arbitrary_json(make_app, schemas, request_schema):
    client = make_app(EMBED_ORIGINS=EMBED, WEBHOOK_SECRET=WEBHOOK_SECRET).test_client()

    @settings(max_examples=500, **FAST)
    @given(body=json_values)
    def run(body):
        response = client.post("/api/v1/sessions", headers=AUTH, data=json.dumps(body), content_type="application/json")
        _api_property(client, schemas, request_schema, body, response)
        if not request_schema.is_valid(body):
            assert response.status_code == 422

    run()


def test_api_survives_malformed_fields(make_app, schemas, request_schema):
    client = make_app(EMBED_ORIGINS=EMBED, WEBHOOK_SECRET=WEBHOOK_SECRET).test_client()

    @settings(max_examples=1000, **FAST)
    @given(body=api_bodies)
    @example(body={"realname": "张三", "idcard": idcard(1), "return_url": "http://[x"})
    @example(body={"realname": "张三", "idcard": idcard(1), "callback_url": "http://a\uff03b/"})
    @example(body={"realname": "张三", "idcard": "110101" + "".join(chr(0x660 + int(d)) for d in idcard(1)[6:17])
                   + idcard(1)[17]})
    def run(body):
        response = client.post("/api/v1/sessions", headers=AUTH, data=json.dumps(body), content_type="application/json")
        _api_property(client, schemas, request_schema, body, response)
        if not request_schema.is_valid(body):
            assert response.status_code in (413, 422)

    run()


def test_api_survives_raw_bodies(make_app, schemas):
    client = make_app().test_client()
    content_types = st.sampled_from(["application/json", "application/json; charset=latin-1", "text/plain",
                                     "application/x-www-form-urlencoded", "multipart/form-data",
                                     "multipart/form-data; boundary=x", "application/json; charset=utf-16", ""])

    @settings(max_examples=200, **FAST)
    @given(data=st.binary(max_size=300) | st.text(max_size=100).map(str.encode), content_type=content_types)
    @example(data=b'{"realname": "\xff\xfe", "idcard": 1}', content_type="application/json")
    @example(data=b'{"realname": "\\ud800", "idcard": "x"}', content_type="application/json")
    @example(data=b'{"a": NaN, "b": -Infinity, "c": 1e999}', content_type="application/json")
    def run(data, content_type):
        response = client.post("/api/v1/sessions", headers=AUTH, data=data, content_type=content_type or None)
        assert response.status_code in (413, 422), response.status_code
        assert_json_error(response)

    run()


# -- odd Unicode: lone surrogates, other numbers, other scripts' digits (issue 7, item 9) -----------
# Cs: lone surrogates (JSON carries them as "\ud800" escapes; they cannot be stored or sent as
# UTF-8); No: "²", "½", "①"...; Nd outside ASCII: "١", "६", "１"... (str.isdigit() takes all three).
odd_chars = st.characters(categories=["Cs", "No", "Nd"], exclude_characters="0123456789")
odd_text = st.text(odd_chars, min_size=1, max_size=6)
odd_or_control = st.text(odd_chars | st.characters(categories=["Cc", "Cf", "Zs"]) | st.characters(), min_size=1,
                         max_size=8)
VALID = {"realname": "张三", "idcard": idcard(1), "mode": "number", "reference": "loan-42",
         "return_url": "https://bank.example/done?x=1", "callback_url": "https://bank.example/hooks/liveness",
         "embed_origin": EMBED}


@st.composite
def spliced(draw, base: str) -> str:
    """`base` with odd text put in somewhere (or in place of it)."""
    odd = draw(odd_text | odd_or_control)
    where = draw(st.integers(0, len(base)))
    return draw(st.sampled_from([base[:where] + odd + base[where:], odd, base + odd]))


odd_field_values = {name: spliced(value) for name, value in VALID.items()}
odd_field_values["best_frames"] = odd_text | st.builds(lambda t: "1" + t, odd_text)


@st.composite
def odd_bodies(draw) -> tuple[dict, set]:
    """A valid body (every field) with one to three fields made odd; and which ones."""
    spoilt = draw(st.sets(st.sampled_from(sorted(odd_field_values)), min_size=1, max_size=3))
    body = dict(VALID, best_frames=1)
    for name in spoilt:
        body[name] = draw(odd_field_values[name])
    return body, spoilt


def test_api_odd_unicode_in_any_field_is_a_4xx_naming_that_field(make_app, schemas, request_schema):
    client = make_app(EMBED_ORIGINS=EMBED, WEBHOOK_SECRET=WEBHOOK_SECRET).test_client()

    @settings(max_examples=400, **FAST)
    @given(case=odd_bodies())
    @example(case=({**VALID, "reference": "loan-\ud800"}, {"reference"}))
    @example(case=({**VALID, "return_url": "https://bank.example/\udfff"}, {"return_url"}))
    @example(case=({**VALID, "callback_url": "https://bank.example/\ud800"}, {"callback_url"}))
    @example(case=({**VALID, "best_frames": "²"}, {"best_frames"}))
    @example(case=({**VALID, "reference": "a\x00b"}, {"reference"}))
    def run(case):
        body, spoilt = case
        response = client.post("/api/v1/sessions", headers=AUTH, data=json.dumps(body), content_type="application/json")
        _api_property(client, schemas, request_schema, body, response)
        if response.status_code != 201:
            error = response.get_json()["error"]
            assert error.get("field") in spoilt, (error, spoilt)

    run()


def _fuzz_resolver(host, port):
    """Numeric hosts as the socket layer reads them (every inet_aton spelling); any name: public."""
    try:
        return [info[4][0] for info in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0,
                                                           socket.AI_NUMERICHOST)]
    except socket.gaierror:
        return ["93.184.215.14"]


LOOPBACK_HOSTS = ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0", "127.0.0.1", "[::1]", "[::ffff:7f00:1]",
                  "0x7f.1", "017700000001", "localhost", "LOCALHOST.", "a.localhost", "10.1", "0xa9fea9fe",
                  "[fe80::1]", "224.1", "[::]", "１２７．０．０．１", "①②⑦.0.0.1", "ｌｏｃａｌｈｏｓｔ", "bank.example",
                  "93.184.215.14"]


def test_production_refuses_callback_urls_that_reach_internal_addresses(make_app, schemas, request_schema):
    """Outside WEBHOOK_ALLOW_PRIVATE: whatever the spelling, an accepted callback_url is one the
    dispatcher would send to (its host resolves to public addresses only)."""
    from webapp.delivery import targets
    app = make_app(WEBHOOK_SECRET=WEBHOOK_SECRET, WEBHOOK_ALLOW_PRIVATE=False)
    app.extensions["liveness"].dispatcher.resolver = _fuzz_resolver
    client = app.test_client()

    @settings(max_examples=300, **FAST)
    @given(scheme=st.sampled_from(["http://", "https://", "HTTP://"]), host=st.sampled_from(LOOPBACK_HOSTS) | odd_text,
           port=st.sampled_from(["", ":80", ":8080", ":0", ":99999"]), tail=st.sampled_from(["/", "/hook?x=1", ""]))
    def run(scheme, host, port, tail):
        url = scheme + host + port + tail
        body = {"realname": "张三", "idcard": idcard(1), "callback_url": url}
        response = client.post("/api/v1/sessions", headers=AUTH, data=json.dumps(body), content_type="application/json")
        _api_property(client, schemas, request_schema, body, response)
        if response.status_code == 201:
            targets.check(url, allow_private=False, resolver=_fuzz_resolver)  # raises if internal
            # Odd text becomes an IDNA name (a DNS lookup, here public); the listed spellings are internal.
            assert host not in LOOPBACK_HOSTS or host in ("bank.example", "93.184.215.14"), url
        else:
            assert response.get_json()["error"]["field"] == "callback_url"

    run()


def _raw(value: str | bytes) -> bytes:
    """What a client can send: any bytes; a lone surrogate as its 3 raw bytes."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def _query(params: list[tuple[str, str | bytes]]) -> str:
    return "&".join(f"{quote(_raw(k), safe='')}={quote(_raw(v), safe='')}" for k, v in params)


query_values = (odd_text | st.text(max_size=6) | st.integers(-5, 200).map(str) | st.binary(max_size=6)
                | st.builds(lambda a, b: a + b, st.integers(0, 100).map(str), odd_or_control))


def test_api_list_odd_query_parameters_are_a_4xx_naming_the_parameter(make_app, schemas):
    client = make_app().test_client()
    client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1), "reference": "r"})

    @settings(max_examples=300, **FAST)
    @given(params=st.lists(st.tuples(st.sampled_from(["limit", "reference"]) | st.text(max_size=5), query_values),
                           max_size=3))
    @example(params=[("limit", "²")])
    @example(params=[("limit", "١٢")])
    @example(params=[("limit", "\ud800")])
    @example(params=[("reference", "\x00")])
    @example(params=[("limit", b"\xff")])
    def run(params):
        response = client.get("/api/v1/sessions?" + _query(params), headers=AUTH)
        assert response.status_code < 500, (params, response.status_code)
        schemas.check("/api/v1/sessions", "get", response)
        if response.status_code == 200:
            limits = [_raw(v).decode("utf-8", "replace") for k, v in params if k == "limit"]
            if limits:  # the first value counts: ASCII digits only, 1 to 100
                assert re.fullmatch(r"[0-9]{1,3}", limits[0]) and 1 <= int(limits[0]) <= 100, limits
        else:
            error = assert_json_error(response)
            assert error.get("field") in ("limit", "reference"), error

    run()


def test_api_odd_session_ids_are_a_4xx(client):
    @settings(max_examples=150, **FAST)
    @given(session_id=st.text(odd_chars | st.characters(), min_size=1, max_size=12) | st.binary(min_size=1, max_size=8),
           suffix=st.sampled_from(["", "/webhooks"]))
    def run(session_id, suffix):
        response = client.get(f"/api/v1/sessions/{quote(_raw(session_id), safe='')}{suffix}", headers=AUTH)
        assert response.status_code < 500, response.status_code
        if response.status_code >= 400:
            assert_json_error(response)

    run()


@pytest.mark.parametrize("depth", [100, 5_000, 200_000])
def test_api_survives_deeply_nested_json(client, depth):
    for body in ("[" * depth + "]" * depth, '{"a":' * depth + "1" + "}" * depth):
        response = client.post("/api/v1/sessions", headers=AUTH, data=body, content_type="application/json")
        assert response.status_code == 422, response.status_code
        assert_json_error(response)


# -- the standalone form -------------------------------------------------------------------------
def _csrf_token(client) -> str:
    html = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


form_values = (st.sampled_from(NAMES) | id_numbers() | junk_text
               | st.sampled_from(["number", "action", "silent", "random", ""]))
form_fields = st.fixed_dictionaries({}, optional={
    "realname": form_values | st.lists(form_values, min_size=2, max_size=3),
    "idcard": form_values | st.lists(form_values, min_size=2, max_size=3),
    "mode": form_values,
}).flatmap(lambda known: st.dictionaries(st.text(max_size=10), form_values, max_size=3)
           .map(lambda extra: {**extra, **known}))


def _standalone_property(client, response) -> None:
    assert response.status_code in (200, 303, 400, 413, 422), response.status_code
    if response.status_code == 303:
        location = urlsplit(response.headers["Location"])
        assert re.fullmatch(r"/v/[A-Za-z0-9_-]{40,}", location.path) and location.query in ("", "lang=en"), location
        state = client.get(f"{location.path}/state").get_json()
        # Outside sandbox (these apps have a JUHE_KEY) standalone sessions are not the operator
        # API's to read; the identity is stored in the documented form (ASCII digits, `X`).
        view = client.get(f"/api/v1/sessions/{state['session_id']}", headers=AUTH)
        assert view.status_code == 404
        from webapp.storage import find_session
        with client.application.extensions["liveness"].store.session() as db:
            stored = find_session(db, id=state["session_id"])
            assert re.fullmatch(r"[0-9]{17}[0-9X]", stored.idcard), stored.idcard
            assert re.fullmatch(r"[0-9]{4}\*{10}[0-9]{3}[0-9X]", stored.idcard_masked), stored.idcard_masked


@pytest.mark.parametrize("csrf", [False, True])
def test_standalone_form_survives_malformed_posts(make_app, csrf):
    client = make_app(WTF_CSRF_ENABLED=csrf).test_client()
    token = _csrf_token(client) if csrf else None

    @settings(max_examples=150, **FAST)
    @given(fields=form_fields, with_token=st.sampled_from(["valid", "none", "junk"]),
           lang=st.sampled_from(["", "?lang=en", "?lang=%00", "?lang=" + "x" * 500]))
    @example(fields={"realname": "张三", "idcard": "110101" + "".join(chr(0x660 + int(d)) for d in idcard(1)[6:17])
                     + idcard(1)[17], "mode": "number"}, with_token="valid", lang="")
    @example(fields={"realname": "张三", "idcard": idcard(1), "mode": "number"}, with_token="valid", lang="")
    def run(fields, with_token, lang):
        data = dict(fields)
        if csrf and with_token == "valid":
            data["csrf_token"] = token
        elif with_token == "junk":
            data["csrf_token"] = "junk" + "x" * 40
        response = client.post("/" + lang, data=data)
        _standalone_property(client, response)
        if csrf and with_token != "valid":
            assert response.status_code in (400, 413)  # 413: a field over the form memory limit

    run()


def test_standalone_form_survives_raw_bodies(make_app):
    client = make_app(WTF_CSRF_ENABLED=False).test_client()

    @settings(max_examples=150, **FAST)
    @given(data=st.binary(max_size=200), content_type=st.sampled_from([
        "application/x-www-form-urlencoded", "multipart/form-data", "multipart/form-data; boundary=--x",
        "application/json", "text/plain", "application/x-www-form-urlencoded; charset=utf-16"]))
    @example(data=b"realname=%FF%FE&idcard=%00&mode=%E5", content_type="application/x-www-form-urlencoded")
    def run(data, content_type):
        _standalone_property(client, client.post("/", data=data, content_type=content_type))

    run()


@pytest.mark.parametrize("csrf", [False, True])
def test_standalone_form_survives_json_bodies(make_app, csrf):
    """A JSON body (Flask-WTF reads one as form data), with the CSRF token in its header."""
    client = make_app(WTF_CSRF_ENABLED=csrf).test_client()
    headers = {"X-CSRFToken": _csrf_token(client)} if csrf else {}

    @settings(max_examples=100, **FAST)
    @given(body=json_values | st.fixed_dictionaries({}, optional={"realname": form_values, "idcard": form_values,
                                                                   "mode": form_values}))
    @example(body=0)
    @example(body=[["realname", "张三"]])
    @example(body={"realname": ["张三", 1], "idcard": {"a": 1}})
    def run(body):
        _standalone_property(client, client.post("/", data=json.dumps(body), content_type="application/json", headers=headers))

    run()


# -- uploads that are not videos -----------------------------------------------------------------
def _operator_view(client, session_id) -> dict:
    return client.get(f"/api/v1/sessions/{session_id}", headers=AUTH).get_json()


def _assert_untouched(client, juhe, session_id) -> None:
    view = _operator_view(client, session_id)
    assert view["attempts"] == [] and view["attempts_left"] == view["max_attempts"] == 3
    assert view["status"] == "pending"
    assert juhe.requests == []


@pytest.fixture(scope="module")
def moov_last_mp4(media_dir, media) -> tuple[bytes, int]:
    """safari_fmp4 remuxed with its moov box last, and where that box starts: every prefix that
    ends before the moov is complete is a video with no index (what an interrupted upload is)."""
    path = media_dir / "fuzz-moov-last.mp4"
    if not path.exists():
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", str(media("safari_fmp4")), "-c", "copy",
                        "-f", "mp4", str(path)], check=True, timeout=120, capture_output=True)
    data = path.read_bytes()
    offset = 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        if data[offset + 4:offset + 8] == b"moov":
            return data, offset
        offset += size
    raise AssertionError("no moov box")


MAGIC = [b"", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", b"\x00\x00\x00\x08moov", b"\x00\x00\x00\x00mdat",
         b"\x1a\x45\xdf\xa3", b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm",
         b"RIFF\xff\xff\xff\x7fAVI LIST", b"FLV\x01\x05\x00\x00\x00\x09", b"#EXTM3U\n", b"ffconcat version 1.0\n",
         b"\x89PNG\r\n\x1a\n", b"GIF89a", b"OggS", b"ID3"]


@st.composite
def broken_files(draw, moov_last: tuple[bytes, int]) -> bytes:
    data, moov_at = moov_last
    kind = draw(st.sampled_from(["random", "magic", "truncated", "truncated junk"]))
    if kind == "random":
        return draw(st.binary(max_size=4096))
    if kind == "magic":
        return draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=2048))
    cut = draw(st.integers(0, moov_at + 64))
    if kind == "truncated":
        return data[:cut]
    return data[:cut] + draw(st.binary(min_size=1, max_size=512))


def test_broken_uploads_are_answered_locally_and_consume_nothing(make_app, juhe, moov_last_mp4):
    client = make_app().test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1),
                                                                  "mode": "silent"}).get_json()
    person = Person(client, created["url"])

    @settings(max_examples=80, **FAST)
    @given(data=broken_files(moov_last_mp4), filename=st.sampled_from(
        ["video.webm", "", "../../etc/passwd", "a.mp4\x00.exe", "视频.mp4", "x" * 300, "/dev/zero", "con"]),
        mimetype=st.sampled_from(["video/webm", "video/mp4", "application/octet-stream", "text/html", "x/y"]))
    @example(data=moov_last_mp4[0][:moov_last_mp4[1] + 8], filename="video.mp4", mimetype="video/mp4")
    @example(data=b"", filename="video.webm", mimetype="video/webm")
    def run(data, filename, mimetype):
        challenge = person.challenge()["id"]
        response = client.post(f"{person.path}/upload", content_type="multipart/form-data", data={
            "challenge": challenge, "video": (io.BytesIO(data), filename, mimetype)})
        assert response.status_code == 200, (response.status_code, response.data[:300])
        outcome = response.get_json()["outcome"]
        assert outcome["result"] == "rejected" and outcome["retry"] and outcome["attempts_left"] == 3
        assert outcome["message"]
        _assert_untouched(client, juhe, created["id"])
        # The challenge was used: it cannot carry a second upload.
        again = client.post(f"{person.path}/upload", content_type="multipart/form-data", data={
            "challenge": challenge, "video": (io.BytesIO(data), filename, mimetype)})
        assert again.status_code == 409 and assert_json_error(again, page=True)["code"] == "challenge_invalid"

    run()


field_names = st.sampled_from(["video", "challenge", "Video", "video[]", "challenge ", "file", "upload",
                               "videoBase64", "videoUrl", ""]) | st.text(max_size=12)


def test_malformed_upload_requests_consume_nothing(make_app, juhe, media):
    client = make_app().test_client()
    make = lambda: client.post("/api/v1/sessions", headers=AUTH, json={  # noqa: E731
        "realname": "张三", "idcard": idcard(1), "mode": "silent"}).get_json()
    created, other = make(), make()
    person, stranger = Person(client, created["url"]), Person(client, other["url"])
    used = person.challenge()["id"]
    client.post(f"{person.path}/upload", data={"challenge": used, "video": (io.BytesIO(b"junk"), "v.mp4")},
                content_type="multipart/form-data")
    foreign = stranger.challenge()["id"]  # valid, but for another session
    real_video = media("safari_fmp4").read_bytes()
    challenge_ids = (st.sampled_from([used, foreign, "", " ", "ch_", used + " ", used.upper(), "%", "null",
                                      "' OR '1'='1", "ch_" + "A" * 5000]) | st.text(max_size=20))
    contents = st.sampled_from([real_video, b"", b"\x00" * 64]) | st.binary(max_size=256)

    @st.composite
    def forms(draw):
        data = {}
        for _ in range(draw(st.integers(0, 4))):
            name = draw(field_names)
            if draw(st.booleans()):
                data[name] = (io.BytesIO(draw(contents)), draw(st.text(max_size=10)), "video/mp4")
            else:
                data[name] = draw(challenge_ids | st.text(max_size=30))
        return data

    @settings(max_examples=200, **FAST)
    @given(data=forms(), encoding=st.sampled_from(["multipart/form-data", "application/x-www-form-urlencoded",
                                                    "raw"]))
    @example(data={"video": (io.BytesIO(real_video), "v.mp4", "video/mp4")}, encoding="multipart/form-data")
    @example(data={"video": (io.BytesIO(real_video), "v.mp4", "video/mp4"), "challenge": foreign},
             encoding="multipart/form-data")
    @example(data={"video": (io.BytesIO(real_video), "v.mp4", "video/mp4"), "challenge": used},
             encoding="multipart/form-data")
    @example(data={"video": "not a file", "challenge": foreign}, encoding="multipart/form-data")
    @example(data={"challenge": (io.BytesIO(b"ch_x"), "c.txt", "text/plain"),
                   "video": (io.BytesIO(real_video), "v.mp4", "video/mp4")}, encoding="multipart/form-data")
    def run(data, encoding):
        # Never a valid (video file, open challenge of this session) pair: nothing may be sent.
        if encoding == "multipart/form-data":
            response = client.post(f"{person.path}/upload", data=data, content_type=encoding)
        elif encoding == "raw":
            response = client.post(f"{person.path}/upload", data=real_video[:1000], content_type="video/mp4")
        else:
            texts = {k: v for k, v in data.items() if isinstance(v, str)}
            response = client.post(f"{person.path}/upload", data=texts, content_type=encoding)
        # 413: a huge text field (a video sent as a plain field) exceeds the form memory limit.
        assert response.status_code in (400, 409, 413), (response.status_code, response.data[:300])
        assert_json_error(response, page=True)
        _assert_untouched(client, juhe, created["id"])

    run()


def test_an_upload_over_the_size_limit_is_a_clear_413_and_no_attempt(make_app, juhe):
    client = make_app(MAX_UPLOAD_MB=1).test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)}).get_json()
    person = Person(client, created["url"])
    response = client.post(f"{person.path}/upload", content_type="multipart/form-data", data={
        "challenge": person.challenge()["id"], "video": (io.BytesIO(b"\x1a\x45\xdf\xa3" * 300_000), "v.webm")})
    assert response.status_code == 413
    assert assert_json_error(response, page=True)["code"] == "upload_too_large"
    _assert_untouched(client, juhe, created["id"])


def test_a_video_tool_failure_is_no_5xx_and_does_not_lock_the_session(make_app, juhe, media):
    """ffmpeg running out of its budget (what a decompression bomb does) is the server's problem:
    the person gets a clear answer, no attempt is recorded, and the next upload is possible."""
    client = make_app(FFMPEG_TIMEOUT=0.01).test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)}).get_json()
    person = Person(client, created["url"])
    response = person.upload(media("safari_fmp4"))
    assert response.status_code < 500
    if response.status_code >= 400:
        assert_json_error(response, page=True)
    else:
        assert response.get_json()["outcome"]["message"]
    _assert_untouched(client, juhe, created["id"])
    assert not person.state()["in_flight"]
    assert client.post(f"{person.path}/challenge").status_code == 201


# -- hostile files -------------------------------------------------------------------------------
@pytest.fixture
def sent_videos(juhe, monkeypatch) -> list[bytes]:
    """The video bytes the stand-in received (it records only their size and hash itself)."""
    sent: list[bytes] = []
    original = juhe._check_video

    def spy(video, liveness, record):
        sent.append(video)
        return original(video, liveness, record)

    monkeypatch.setattr(juhe, "_check_video", spy)
    return sent


def test_control_the_loopback_server_sees_a_permissive_ffprobe(loopback, tmp_path):
    """The hostile playlists do reach the loopback server when ffmpeg is not locked down, so the
    'no request' assertions below mean something."""
    playlist = tmp_path / "control.m3u8"
    playlist.write_text(hls_playlist(loopback.server_address[1], with_passwd=False))
    subprocess.run(["ffprobe", "-v", "quiet", "-protocol_whitelist", "file,http,tcp,crypto,data", str(playlist)],
                   timeout=60, capture_output=True)
    assert loopback.requests


def _stream_types(data: bytes, tmp_path: Path) -> list[str]:
    path = tmp_path / "sent.mp4"
    path.write_bytes(data)
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-show_streams", str(path)],
                         capture_output=True, check=True, timeout=60).stdout
    return sorted(s["codec_type"] for s in json.loads(out)["streams"])


def _hostile_contents(port: int) -> list[tuple[str, bytes]]:
    url = f"http://127.0.0.1:{port}/direct.mp4"
    ftyp = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2"
    avi = b"RIFF\x00\x01\x00\x00AVI LIST"
    playlist = hls_playlist(port).encode()
    return [
        ("url", url.encode()), ("file url", b"file:///etc/passwd"), ("path", b"/etc/passwd"),
        ("concat protocol", b"concat:/etc/passwd|/etc/passwd"), ("subfile", b"subfile,,start,0,end,0,,:/etc/passwd"),
        ("playlist behind ftyp", ftyp + b"\n" + playlist), ("playlist behind EBML", b"\x1a\x45\xdf\xa3\n" + playlist),
        ("playlist behind AVI", avi + b"\n" + playlist), ("url behind FLV", b"FLV\x01\x05" + url.encode()),
        ("ffconcat behind ftyp", ftyp + f"\nffconcat version 1.0\nfile '{url}'\nfile /etc/passwd\n".encode()),
    ]


@pytest.mark.parametrize("kind", ["hls_m3u8", "hls_as_mp4", "ffconcat", "avi_gab2_hls", "avi_gab2_srt", "mov_dref"])
def test_hostile_files_open_nothing_and_leak_nothing(make_app, juhe, sent_videos, loopback, media_dir, tmp_path,
                                                     kind):
    client = make_app().test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1),
                                                                  "mode": "silent"}).get_json()
    person = Person(client, created["url"])
    path = make_fixture(kind, media_dir, port=loopback.server_address[1])
    response = person.upload(path)
    assert response.status_code == 200
    outcome = response.get_json()["outcome"]
    assert loopback.connections == [] and loopback.requests == []
    if kind in ("hls_m3u8", "hls_as_mp4", "ffconcat"):
        assert outcome["result"] == "rejected"
        _assert_untouched(client, juhe, created["id"])
        return
    # A real picture behind the trick: it may be verified, but only its picture is sent.
    assert len(juhe.requests) <= 1 and len(sent_videos) == len(juhe.requests)
    for record, data in zip(juhe.requests, sent_videos):
        assert "videoUrl" not in record["form"] and record["video_bytes"] == len(data)
        assert not any(marker in data for marker in PASSWD_MARKERS)
        assert _stream_types(data, tmp_path) == ["video"]


def test_urls_and_paths_as_content_open_nothing(make_app, juhe, loopback):
    client = make_app().test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)}).get_json()
    person = Person(client, created["url"])
    for name, content in _hostile_contents(loopback.server_address[1]):
        for filename in ("video.mp4", "video.m3u8", "/etc/passwd", "http://127.0.0.1/x.mp4"):
            response = client.post(f"{person.path}/upload", content_type="multipart/form-data", data={
                "challenge": person.challenge()["id"], "video": (io.BytesIO(content), filename, "video/mp4")})
            assert response.status_code == 200, name
            assert response.get_json()["outcome"]["result"] == "rejected", name
    assert loopback.connections == [] and loopback.requests == []
    _assert_untouched(client, juhe, created["id"])


# -- Juhe misbehaving ----------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("behaviour, charged, error_code, key_words", [
    ("slow", None, None, "time"),
    ("http_500", None, None, "500"),
    ("http_502", None, None, "502"),
    ("html", None, None, "json"),
    ("garbage", None, None, "json"),
    ("drop", None, None, "connection"),
    (10014, False, 10014, ""),
    ("unreachable", False, None, "connect"),
])
def test_juhe_misbehaving_is_told_clearly_recorded_honestly_and_never_resent(
        make_app, juhe, media, behaviour, charged, error_code, key_words):
    overrides = {"JUHE_READ_TIMEOUT": 1.0}
    if behaviour == "unreachable":
        overrides["JUHE_API_URL"] = f"http://127.0.0.1:{_closed_port()}/antiFaceId/query"
    client = make_app(**overrides).test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1),
                                                                  "mode": "number"}).get_json()
    person = Person(client, created["url"])
    if behaviour != "unreachable":
        juhe.mode = behaviour
    response = person.upload(media("safari_fmp4"))
    assert response.status_code == 200
    outcome = response.get_json()["outcome"]
    # The person: a clear message, told to try again, and the attempt not held against them.
    assert outcome["result"] == "retry" and outcome["retry"] and outcome["attempts_left"] == 3
    assert re.search(r"[\u4e00-\u9fff]", outcome["message"]) and re.search("重新|再", outcome["message"])
    assert outcome["message_en"] and not re.search(r"\b(500|502|10014|json|key)\b", outcome["message"], re.I)
    assert person.state()["last"]["message"] == outcome["message"]
    # The operator: the attempt listed as it happened; unknown charge is None, not a guess.
    view = _operator_view(client, created["id"])
    [attempt] = view["attempts"]
    assert attempt["charged"] is charged and attempt["error_code"] == error_code
    assert attempt["score"] is None and key_words.lower() in (attempt["reason"] or "").lower()
    assert view["status"] == "pending" and view["attempts_left"] == 3
    # Juhe: exactly one request per upload (none when nothing could connect), never a re-send.
    assert len(juhe.requests) == (0 if behaviour == "unreachable" else 1)
    if behaviour == "unreachable":
        return
    juhe.mode = None
    assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "passed"
    assert len(juhe.requests) == 2
    assert [a["charged"] for a in _operator_view(client, created["id"])["attempts"]] == [charged, True]
