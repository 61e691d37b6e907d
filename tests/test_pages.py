"""The standalone form, the page endpoints' rules, security headers and rate limits."""
import gzip
import re
from urllib.parse import urlsplit

import pytest

from .conftest import AUTH, idcard


def csrf_token(client, path="/"):
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


@pytest.fixture
def csrf_client(make_app):
    return make_app(WTF_CSRF_ENABLED=True).test_client()


def test_the_capture_page_comes_gzipped_and_the_form_that_echoes_input_does_not(client, new_session):
    _, person = new_session()
    packed = client.get(person.path, headers={"Accept-Encoding": "gzip, deflate, br"})
    plain = client.get(person.path)
    assert packed.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in packed.headers["Vary"]
    html = gzip.decompress(packed.data)
    assert b'id="initial-state"' in html and len(packed.data) < len(html) / 2
    assert "Content-Encoding" not in plain.headers and plain.data == html
    form = client.get("/", headers={"Accept-Encoding": "gzip"})
    assert form.status_code == 200 and "Content-Encoding" not in form.headers


def test_standalone_form_creates_a_session_and_opens_its_page(csrf_client):
    response = csrf_client.post("/", data={"csrf_token": csrf_token(csrf_client), "realname": "张三",
                                           "idcard": idcard(1), "mode": "action"})
    assert response.status_code == 303 and "/v/" in response.headers["Location"]
    page = csrf_client.get(response.headers["Location"])
    assert page.status_code == 200 and idcard(1).encode() not in page.data


def test_standalone_form_shows_errors_beside_the_field(csrf_client):
    response = csrf_client.post("/", data={"csrf_token": csrf_token(csrf_client), "realname": "Zhang",
                                           "idcard": "110101199003071234", "mode": "number"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'id="realname-error"' in html and 'id="idcard-error"' in html and "汉字" in html
    assert 'aria-invalid="true"' in html


def test_standalone_form_needs_its_csrf_token(csrf_client):
    response = csrf_client.post("/", data={"realname": "张三", "idcard": idcard(1), "mode": "number"})
    assert response.status_code == 400


def test_standalone_is_off_with_a_real_key_unless_turned_on(make_app):
    client = make_app(STANDALONE=None).test_client()
    html = client.get("/").get_data(as_text=True)
    assert "<form" not in html and "平台" in html
    response = client.post("/", data={"realname": "张三", "idcard": idcard(1)})
    assert response.status_code != 303 and "Location" not in response.headers


def test_unknown_page_token_is_404(client):
    assert client.get("/v/not-a-real-token").status_code == 404
    assert client.post("/v/not-a-real-token/challenge").status_code == 404


def test_upload_without_file_or_challenge_is_a_clear_400(client, new_session):
    _, person = new_session()
    response = client.post(f"{person.path}/upload", data={}, content_type="multipart/form-data")
    assert response.status_code == 400 and response.get_json()["error"]["message_zh"]


def test_page_never_carries_the_identity_and_needs_no_cookie(client, new_session):
    _created, person = new_session(idcard=idcard(11))
    response = client.get(person.path)
    assert idcard(11).encode() not in response.data and "张三".encode() not in response.data
    assert "Set-Cookie" not in response.headers
    fresh = client.application.test_client()  # no cookie jar shared
    assert fresh.post(f"{person.path}/challenge").status_code == 201


def test_other_pages_refuse_framing_and_send_security_headers(client):
    for path in ("/", "/healthz", "/api/v1/sessions"):
        h = client.get(path, headers=AUTH).headers
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert h["X-Frame-Options"] == "DENY"
        assert h["X-Content-Type-Options"] == "nosniff"
        assert h["Referrer-Policy"] == "no-referrer"
        assert "'unsafe-inline'" not in h["Content-Security-Policy"]


def test_capture_page_may_be_framed_by_embed_origins_only(make_app):
    client = make_app(EMBED_ORIGINS="https://bank.example https://shop.example").test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)}).get_json()
    h = client.get(created["url"].replace("http://localhost", "")).headers
    assert "frame-ancestors 'self' https://bank.example https://shop.example" in h["Content-Security-Policy"]
    assert "X-Frame-Options" not in h
    assert 'camera=(self "https://bank.example" "https://shop.example")' in h["Permissions-Policy"]
    assert h["Cache-Control"] == "no-store"
    one = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1),
                                                               "embed_origin": "https://shop.example"}).get_json()
    h = client.get(one["url"].replace("http://localhost", "")).headers
    assert "frame-ancestors 'self' https://shop.example;" in h["Content-Security-Policy"] + ";"
    assert "bank.example" not in h["Content-Security-Policy"]


def test_hsts_on_https(client):
    assert "Strict-Transport-Security" in client.get("/", base_url="https://localhost").headers
    assert "Strict-Transport-Security" not in client.get("/").headers


def test_rate_limits_answer_429_with_retry_after(make_app):
    client = make_app(RATELIMIT_ENABLED=True).test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)}).get_json()
    path = created["url"].replace("http://localhost", "")
    statuses = [client.post(f"{path}/challenge").status_code for _ in range(25)]
    assert statuses[0] == 201 and statuses[-1] == 429
    limited = client.post(f"{path}/challenge")
    assert int(limited.headers["Retry-After"]) > 0
    assert limited.get_json()["error"]["code"] == "rate_limited" and limited.get_json()["error"]["message_zh"]


def test_standalone_form_is_tightly_limited_with_a_real_key(make_app):
    client = make_app(RATELIMIT_ENABLED=True, STANDALONE=True, WTF_CSRF_ENABLED=False).test_client()
    statuses = [client.post("/", data={"realname": "张三", "idcard": "x"}).status_code for _ in range(5)]
    assert statuses[:3] == [422, 422, 422] and statuses[3:] == [429, 429]
    assert "Retry-After" in client.post("/", data={}).headers


def test_api_is_limited_per_operator_key(make_app):
    client = make_app(RATELIMIT_ENABLED=True).test_client()
    codes = [client.get("/api/v1/sessions/ses_x", headers=AUTH).status_code for _ in range(305)]
    assert codes[0] == 404 and codes[-1] == 429


# -- the phase the capture page is painted in (every phase has a screen: browser/test_capture_page)
def first_phase(person) -> str:
    page = person.client.get(person.path).get_data(as_text=True)
    return re.search(r'id="capture" class="capture" data-phase="(\w+)"', page).group(1)


def test_the_page_starts_in_the_consent_screen(client, new_session):
    _, person = new_session()
    assert first_phase(person) == "consent"


def test_a_reload_shows_the_last_verdict_until_a_new_challenge_is_asked_for(client, juhe, new_session, media):
    number = idcard(42)
    _created, person = new_session(idcard=number)
    juhe.script[number] = 267517  # too dark: another try is offered
    person.upload(media("safari_fmp4"))
    assert first_phase(person) == "blank"  # the script draws the verdict from the state
    person.challenge()  # 再试一次: the new attempt's challenge
    assert first_phase(person) == "consent"


def test_the_outcome_and_the_state_name_the_problem_in_a_few_words(client, juhe, new_session, media):
    number = idcard(41)
    _created, person = new_session(idcard=number)
    juhe.script[number] = 267517
    body = person.upload(media("safari_fmp4")).get_json()
    assert body["outcome"]["problem"] == "光线太暗" and body["outcome"]["problem_en"] == "too dark"
    last = person.state()["last"]
    assert last["problem"] == "光线太暗" and last["problem_en"] == "too dark"


# -- accessibility of what is served ----------------------------------------------------
def contrast(one: str, other: str) -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours."""
    def luminance(colour: str) -> float:
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b
    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_focus_ring_stands_out_3_to_1_against_the_page_and_the_cards(client):
    html = client.get("/").get_data(as_text=True)
    css = client.get(re.search(r'<link rel="stylesheet" href="([^"]+)"', html).group(1)).get_data(as_text=True)
    colours = {name: value if len(value) == 7 else "#" + "".join(c * 2 for c in value[1:])
               for name, value in re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6}|#[0-9a-fA-F]{3})\s*;", css)}
    rings = re.findall(r"outline:\s*\d+px solid ([^;]+);", css)
    assert rings and all(ring.strip() == "var(--focus)" for ring in rings), rings
    for background in ("bg", "card"):
        assert contrast(colours["focus"], colours[background]) >= 3, background
    assert contrast(colours["focus"], "#ffffff") >= 3  # the halo between ring and element


def test_the_id_field_opens_a_numeric_keypad_that_still_takes_the_final_x(client):
    html = client.get("/").get_data(as_text=True)
    field = re.search(r"<input[^>]*id=\"idcard\"[^>]*>", html).group(0)
    # The numeric keypad comes with the X key (idcard.js): without the script, the full keyboard.
    assert "inputmode" not in field and 'pattern="[0-9]{17}[0-9Xx]"' in field
    assert 'maxlength="18"' in field
    assert re.search(r'<button[^>]*id="x-key"[^>]*>X</button>', html)
    assert re.search(r'<script type="module" src="/static/idcard\.js\?v=\w+">', html)


def test_every_page_links_the_versioned_svg_favicon(client, new_session):
    created, _person = new_session()
    for path in ("/", urlsplit(created["url"]).path, "/v/unknown-link"):
        html = client.get(path).get_data(as_text=True)
        icon = re.search(r'<link rel="icon" type="image/svg\+xml" href="(/static/favicon\.svg\?v=\w+)">', html)
        assert icon, path
    answer = client.get(icon.group(1))
    assert answer.status_code == 200 and answer.mimetype == "image/svg+xml"
    assert "immutable" in answer.headers["Cache-Control"]


def test_an_expired_link_is_a_410_page_that_says_what_to_do_next(client, new_session):
    import datetime as dt

    from webapp.extensions import services
    from webapp.storage import VerificationSession
    created, _person = new_session(idcard=idcard(42))
    with client.application.app_context(), services().store.session() as db:
        db.get(VerificationSession, created["id"]).expires_at = dt.datetime(2000, 1, 1)
        db.commit()
    path = urlsplit(created["url"]).path
    response = client.get(path)
    html = response.get_data(as_text=True)
    assert response.status_code == 410
    assert "链接已过期" in html and "重新发起刷脸核验" in html
    assert '"status": "expired"' in html  # the page's script still tells a framing operator
    english = client.get(path + "?lang=en")
    assert english.status_code == 410 and "This link has expired" in english.get_data(as_text=True)
    assert "Start the face verification again" in english.get_data(as_text=True)


def _attempt_in_flight(app, person, lease_seconds: float) -> None:
    """An upload in flight on `person`'s session, its lease running out in `lease_seconds`."""
    import datetime as dt

    from webapp import sessions
    from webapp.storage import lock_session, utcnow
    challenge = person.challenge()
    with app.extensions["liveness"].store.session() as db:
        session = lock_session(db, token=person.path.rsplit("/", 1)[1])
        _, attempt = sessions.start_attempt(db, session, challenge["id"])
        attempt.lease_until = utcnow() + dt.timedelta(seconds=lease_seconds)
        db.commit()


def test_without_a_broker_a_waiting_state_question_is_answered_at_once(app, client, new_session):
    """Nothing could wake it (no Redis): the page is answered now and polls on its schedule."""
    import time
    _, person = new_session()
    _attempt_in_flight(app, person, lease_seconds=60)
    asked = time.monotonic()
    state = client.get(f"{person.path}/state?wait=15").get_json()
    assert state["in_flight"] and time.monotonic() - asked < 5
    for hostile in ("nan", "-1", "inf", "1e309", "x"):
        assert client.get(f"{person.path}/state?wait={hostile}").get_json()["in_flight"]


def test_the_state_releases_an_attempt_whose_process_died(app, client, new_session):
    """The state is read without a lock, but a lease that ran out is settled by that read."""
    _, person = new_session()
    _attempt_in_flight(app, person, lease_seconds=-1)
    state = client.get(f"{person.path}/state").get_json()
    assert not state["in_flight"] and state["last"]["result"] == "retry" and state["attempts_left"] == 3
    assert state["challenge"] is None  # the used one is gone; the page draws the next
