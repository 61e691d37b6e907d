"""The operator API as docs/contract.md describes it: auth, validation, masking, shapes."""
import datetime as dt
import io
import json
import re

import pytest

from .conftest import AUTH, OPERATOR_KEY, idcard


def test_create_answers_the_contract_shape(client):
    response = client.post("/api/v1/sessions", headers=AUTH, json={
        "realname": "张三", "idcard": idcard(1), "mode": "action", "reference": "loan-42"})
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) >= {"id", "url", "mode", "status", "expires_at"}
    assert body["mode"] == "action" and body["status"] == "pending"
    assert body["url"].startswith("http://localhost/v/")
    token = body["url"].rsplit("/", 1)[1]
    assert body["id"] not in body["url"] and len(token) >= 40
    expires = dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert 800 < (expires - dt.datetime.now(dt.UTC)).total_seconds() <= 900


def test_identity_never_comes_back_in_clear(client):
    number = idcard(7)
    created = client.post("/api/v1/sessions", headers=AUTH,
                          json={"realname": "阿依古丽·买买提", "idcard": number}).get_json()
    assert number not in str(created) and "阿依古丽" not in str(created)
    body = client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).get_json()
    assert body["identity"] == {"realname": "阿*******", "idcard": number[:4] + "*" * 10 + number[-4:]}
    assert body["status"] == "pending" and body["attempts"] == [] and body["score"] is None
    assert body["pass_score"] == 70
    page = client.get(created["url"].replace("http://localhost", ""))
    assert number.encode() not in page.data and "阿依古丽".encode() not in page.data


def test_random_mode_is_resolved_at_creation(client):
    modes = {client.post("/api/v1/sessions", headers=AUTH,
                         json={"realname": "张三", "idcard": idcard(1), "mode": "random"}).get_json()["mode"]
             for _ in range(30)}
    assert modes <= {"silent", "number", "action"} and len(modes) >= 2


def test_default_mode_is_the_configured_one(make_app):
    client = make_app(LIVENESS_MODE="silent").test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)})
    assert created.get_json()["mode"] == "silent"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {OPERATOR_KEY}"},
                                     {"Authorization": OPERATOR_KEY}])
def test_bad_or_missing_key_is_401(client, headers):
    response = client.post("/api/v1/sessions", headers=headers, json={"realname": "张三", "idcard": idcard(1)})
    assert response.status_code == 401
    assert response.get_json()["error"]["code"]
    assert client.get("/api/v1/sessions/ses_x", headers=headers).status_code == 401


def test_api_is_off_without_keys_outside_sandbox(make_app):
    client = make_app(OPERATOR_API_KEYS="").test_client()
    response = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)})
    assert response.status_code == 401 and "OPERATOR_API_KEYS" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("body, field", [
    ({"realname": "张三"}, "idcard"),
    ({"idcard": idcard(1)}, "realname"),
    ({"realname": "张三", "idcard": idcard(1)[:-1] + ("0" if idcard(1)[-1] != "0" else "1")}, "idcard"),
    ({"realname": "张三", "idcard": "110101199002301234"}, "idcard"),
    ({"realname": "Zhang San", "idcard": idcard(1)}, "realname"),
    ({"realname": "张三", "idcard": idcard(1), "mode": "dance"}, "mode"),
    ({"realname": "张三", "idcard": idcard(1), "embed_origin": "https://evil.example"}, "embed_origin"),
    ({"realname": "张三", "idcard": idcard(1), "return_url": "javascript:alert(1)"}, "return_url"),
    ({"realname": "张三", "idcard": idcard(1), "callback_url": "https://op.example/hook"}, "callback_url"),
    ({"realname": "张三", "idcard": idcard(1), "best_frames": 11}, "best_frames"),
    ({"realname": "张三", "idcard": idcard(1), "colour": "blue"}, "colour"),
])
def test_invalid_input_is_422_naming_the_field(client, body, field):
    response = client.post("/api/v1/sessions", headers=AUTH, json=body)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == field and error["message"] and error["code"]


def test_non_json_body_is_422(client):
    response = client.post("/api/v1/sessions", headers=AUTH, data="realname=x", content_type="text/plain")
    assert response.status_code == 422 and response.get_json()["error"]["code"] == "invalid_json"


def test_allowed_embed_origin_and_webhook_are_accepted_when_configured(make_app):
    client = make_app(EMBED_ORIGINS="https://bank.example", WEBHOOK_SECRET="whsec-0123456789").test_client()
    response = client.post("/api/v1/sessions", headers=AUTH, json={
        "realname": "张三", "idcard": idcard(1), "embed_origin": "https://bank.example",
        "callback_url": "https://bank.example/hook", "return_url": "https://bank.example/done?x=1"})
    assert response.status_code == 201


def test_unknown_session_is_404_in_the_error_format(client):
    response = client.get("/api/v1/sessions/ses_doesnotexist", headers=AUTH)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"


def test_another_operator_cannot_read_a_session(make_app):
    client = make_app(OPERATOR_API_KEYS=f"{OPERATOR_KEY},other-operator-key").test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)}).get_json()
    other = {"Authorization": "Bearer other-operator-key"}
    assert client.get(f"/api/v1/sessions/{created['id']}", headers=other).status_code == 404
    assert client.get(f"/api/v1/sessions/{created['id']}", headers=AUTH).status_code == 200


def test_list_filters_by_reference(client):
    for ref in ("a", "b", "a"):
        client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1), "reference": ref})
    listed = client.get("/api/v1/sessions?reference=a", headers=AUTH).get_json()["sessions"]
    assert [s["reference"] for s in listed] == ["a", "a"]



def test_sessions_made_within_one_second_list_newest_first(client):
    """Whole-second creation times left sessions made in one second in any order (seen in CI)."""
    made = [client.post("/api/v1/sessions", headers=AUTH, json={
        "realname": "张三", "idcard": idcard(1), "reference": "burst"}).get_json()["id"] for _ in range(8)]
    listed = client.get("/api/v1/sessions?reference=burst", headers=AUTH).get_json()["sessions"]
    assert [s["id"] for s in listed] == made[::-1]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", s["created_at"]) for s in listed)

def test_public_url_builds_page_links(make_app):
    client = make_app(PUBLIC_URL="https://verify.example.com/").test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(1)}).get_json()
    assert re.fullmatch(r"https://verify\.example\.com/v/[A-Za-z0-9_-]{40,}", created["url"])


def test_sandbox_mode_says_so_everywhere(tmp_path):
    from webapp import create_app
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'sb.sqlite3'}", "BACKGROUND_TASKS": False,
                      "RATELIMIT_ENABLED": False})
    client = app.test_client()
    sandbox_auth = {"Authorization": "Bearer sandbox-operator-key"}
    created = client.post("/api/v1/sessions", headers=sandbox_auth, json={"realname": "张三", "idcard": idcard(1)})
    assert created.status_code == 201 and created.get_json()["sandbox"] is True
    got = client.get(f"/api/v1/sessions/{created.get_json()['id']}", headers=sandbox_auth).get_json()
    assert got["sandbox"] is True
    assert "沙箱" in client.get("/").get_data(as_text=True)
    assert "沙箱" in client.get(created.get_json()["url"].replace("http://localhost", "")).get_data(as_text=True)
    assert client.get("/readyz").get_json()["sandbox"] is True


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "https://localhost/hook", "http://10.0.0.5/h",
                                 "http://[::1]/h", "http://169.254.169.254/latest", "http://[x"])
def test_production_refuses_webhooks_to_internal_addresses(make_app, url):
    client = make_app(WEBHOOK_SECRET="whsec-0123456789", WEBHOOK_ALLOW_PRIVATE=None).test_client()
    response = client.post("/api/v1/sessions", headers=AUTH,
                           json={"realname": "张三", "idcard": idcard(1), "callback_url": url})
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "callback_url"


def test_unknown_api_paths_and_methods_answer_json(client):
    for response in (client.get("/api/v1/nope", headers=AUTH), client.put("/api/v1/sessions", headers=AUTH)):
        assert response.status_code in (404, 405) and response.get_json()["error"]["code"]


def test_deeply_nested_json_is_a_422_not_a_crash(client):
    body = "[" * 5000 + "]" * 5000
    response = client.post("/api/v1/sessions", headers=AUTH, data=body, content_type="application/json")
    assert response.status_code == 422


def test_standalone_sessions_are_not_readable_by_operators_outside_sandbox(make_app):
    client = make_app(WTF_CSRF_ENABLED=False).test_client()
    page = client.post("/", data={"realname": "张三", "idcard": idcard(1), "mode": "number"})
    token = page.headers["Location"].rsplit("/", 1)[1]
    session_id = client.get(f"/v/{token}/state").get_json()["session_id"]
    assert client.get(f"/api/v1/sessions/{session_id}", headers=AUTH).status_code == 404


# -- callback_url targets (issue 7, item 8) ------------------------------------------------------
LOOPBACK_SPELLINGS = ["http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
                      "http://0/", "http://127.0.0.1/", "http://localhost./", "http://[::1]/",
                      "http://[::ffff:127.0.0.1]/", "http://[::]/"]
# Not valid IDNA, so the sender could never send there (requests refuses them): 422 in any mode.
UNSENDABLE = ["http://１２７．０．０．１/", "http://①②⑦.1/", "http://ｌｏｃａｌｈｏｓｔ:8000/", "http://x:99999/"]
OTHER_INTERNAL = ["http://10.1.2.3/", "http://172.16.0.1/", "http://192.168.1.1/", "http://100.64.0.1/",
                  "http://169.254.169.254/", "http://[fe80::1]/", "http://[fc00::1]/", "http://224.0.0.1/",
                  "http://224.0.1.1/", "http://240.0.0.1/", "http://255.255.255.255/", "http://[ff02::1]/",
                  "http://[2002:7f00:1::]/", "http://[64:ff9b::7f00:1]/", "http://0xa.0.0.1:8080/h"]


def _resolving(table: dict):
    """A resolver for `host -> [addresses]`; names not in it do not resolve."""
    def resolve(host, port):
        if host not in table:
            raise OSError(f"{host} does not resolve")
        return table[host]
    return resolve


def _create_with_callback(app, url):
    return app.test_client().post("/api/v1/sessions", headers=AUTH,
                                  json={"realname": "张三", "idcard": idcard(1), "callback_url": url})


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS + OTHER_INTERNAL + UNSENDABLE)
def test_internal_callback_urls_in_any_spelling_are_refused(make_app, url):
    app = make_app(WEBHOOK_SECRET="whsec-0123456789", WEBHOOK_ALLOW_PRIVATE=False)
    response = _create_with_callback(app, url)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == "callback_url" and error["code"] == "invalid_callback_url"


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
def test_internal_callback_urls_are_allowed_with_webhook_allow_private(make_app, url):
    app = make_app(WEBHOOK_SECRET="whsec-0123456789", WEBHOOK_ALLOW_PRIVATE=True)
    assert _create_with_callback(app, url).status_code == 201
    for url in UNSENDABLE:
        response = _create_with_callback(app, url)
        assert response.status_code == 422 and response.get_json()["error"]["field"] == "callback_url"


def test_a_public_name_is_accepted_and_one_internal_address_among_public_ones_is_refused(make_app):
    app = make_app(WEBHOOK_SECRET="whsec-0123456789", WEBHOOK_ALLOW_PRIVATE=False)
    app.extensions["liveness"].dispatcher.resolver = _resolving({
        "hooks.bank.example": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
        "mixed.bank.example": ["93.184.215.14", "10.0.0.7"],
        "mapped.bank.example": ["::ffff:10.0.0.7"]})
    assert _create_with_callback(app, "https://hooks.bank.example/hook").status_code == 201
    for host in ("mixed.bank.example", "mapped.bank.example"):
        response = _create_with_callback(app, f"https://{host}/hook")
        assert response.status_code == 422 and response.get_json()["error"]["field"] == "callback_url"
        assert "private" in response.get_json()["error"]["message"]


def test_a_callback_host_that_does_not_resolve_is_refused_naming_the_field(make_app):
    app = make_app(WEBHOOK_SECRET="whsec-0123456789", WEBHOOK_ALLOW_PRIVATE=False)
    app.extensions["liveness"].dispatcher.resolver = _resolving({})
    response = _create_with_callback(app, "https://nowhere.bank.example/hook")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "callback_url" and "resolve" in error["message"]


# -- text that cannot be stored (issue 7, item 9) ------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("reference", "loan-\ud800"), ("reference", "\udfff"), ("reference", "loan\x00"), ("reference", "a\nb"),
    ("reference", "a\x9bb"),
    ("return_url", "https://bank.example/\ud800"), ("return_url", "https://bank.example/\x00"),
    ("return_url", "https://bank.example/a b"), ("return_url", "https://bank.example/\u202e"),
    ("callback_url", "https://bank.example/\ud800"), ("callback_url", "https://bank.example/\r\nX-A: b"),
    ("realname", "张\ud800三"), ("idcard", idcard(1)[:-1] + "\ud800"), ("mode", "\ud800"),
    ("embed_origin", "https://bank.example\ud800"), ("embed_origin", "https://bank.example\x00"),
])
def test_lone_surrogates_and_control_characters_are_422_naming_the_field(make_app, field, value):
    client = make_app(EMBED_ORIGINS="https://bank.example", WEBHOOK_SECRET="whsec-0123456789").test_client()
    # As a client's JSON library sends them: \ud800 escapes (UTF-8 cannot carry a lone surrogate).
    body = json.dumps({"realname": "张三", "idcard": idcard(1), field: value})
    response = client.post("/api/v1/sessions", headers=AUTH, data=body, content_type="application/json")
    assert response.status_code == 422, response.status_code
    error = response.get_json()["error"]
    assert error["field"] == field and error["code"] and error["message"]


@pytest.mark.parametrize("limit", ["²", "١٢", "１０", "5\u0660", "", " 5", "5 ", "+5", "0", "101", "5.0", "%ED%A0%80",
                                   "99999999999999999999999"])
def test_limit_must_be_ascii_digits_from_1_to_100(client, limit):
    response = client.get(f"/api/v1/sessions?limit={limit}", headers=AUTH)
    assert response.status_code == 422, response.status_code
    assert response.get_json()["error"]["field"] == "limit"


def test_odd_reference_filters_are_answered_not_crashed(client):
    for reference in ("%ED%A0%80", "%FF", "%C2%B2", "x" * 300):  # undecodable bytes become U+FFFD
        response = client.get(f"/api/v1/sessions?reference={reference}&limit=100", headers=AUTH)
        assert response.status_code == 200 and response.get_json()["sessions"] == []
    for reference in ("%00", "a%0Ab", "%C2%9B"):
        response = client.get(f"/api/v1/sessions?reference={reference}", headers=AUTH)
        assert response.status_code == 422 and response.get_json()["error"]["field"] == "reference"


CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def test_api_errors_give_english_and_chinese_apart(client):
    """The pages' error shape: `message` in English, `message_zh` in Chinese, never joined."""
    bad_id = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": "123"})
    created = client.post("/api/v1/sessions", headers=AUTH,
                          json={"realname": "张三", "idcard": idcard(1), "mode": "silent"}).get_json()
    video = f"/api/v1/sessions/{created['id']}/video"
    no_file = client.post(video, headers=AUTH, data={"challenge": "abc"}, content_type="multipart/form-data")
    bad_body = client.post(video, headers=AUTH, data="x", content_type="text/plain")
    stale = client.post(video, headers=AUTH, content_type="multipart/form-data",
                        data={"challenge": "abc", "video": (io.BytesIO(b"not a video"), "v.mp4")})
    no_frames = client.get(f"/api/v1/sessions/{created['id']}/best-frames", headers=AUTH)
    unrouted = client.get("/api/v1/nope", headers=AUTH)
    answers = {"invalid_idcard": bad_id, "required": no_file, "invalid_body": bad_body,
               "challenge_invalid": stale, "no_best_frames": no_frames, "not_found": unrouted}
    for code, response in answers.items():
        error = response.get_json()["error"]
        assert error["code"] == code, (code, error)
        assert error["message"] and not CJK.search(error["message"]), error
        assert CJK.search(error["message_zh"]), error
    assert stale.status_code == 409 and no_file.get_json()["error"]["field"] == "video"
    only_english = client.get("/api/v1/sessions/ses_nothing", headers=AUTH).get_json()["error"]
    assert only_english == {"code": "not_found", "message": "No such session."}


def test_errors_take_the_form_of_their_asker(make_app):
    """One function (extensions.error_answer) answers the API and the page's script in JSON, a
    person's browser with a page to read: here a body over MAX_UPLOAD_MB and a rate limit."""
    client = make_app(MAX_UPLOAD_MB=1, WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=True).test_client()
    created = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(2)}).get_json()
    page = created["url"].replace("http://localhost", "")
    big = b"x" * (1024 * 1024 + 1)
    api = client.post("/api/v1/sessions", headers=AUTH, data=big, content_type="application/json")
    assert api.status_code == 413 and api.get_json()["error"] == {
        "code": "too_large", "message": "The request body is too large.", "message_zh": "请求体太大。"}
    upload = client.post(f"{page}/upload", data={"video": (io.BytesIO(big), "v.mp4")},
                         content_type="multipart/form-data")
    assert upload.status_code == 413 and upload.get_json()["error"]["code"] == "upload_too_large"
    assert CJK.search(upload.get_json()["error"]["message_zh"])
    form = client.post("/", data={"realname": "张三", "idcard": "x" * len(big)})
    assert form.status_code == 413 and form.mimetype == "text/html" and "上传的内容太大" in form.get_data(as_text=True)
    statuses = [client.get(page).status_code for _ in range(61)]
    assert statuses[0] == 200 and statuses[-1] == 429
    limited = client.get(page)   # the capture page itself: a page to read, not the script's JSON
    assert limited.mimetype == "text/html" and "操作太频繁" in limited.get_data(as_text=True)
    assert int(limited.headers["Retry-After"]) > 0   # its script's calls: JSON (test_pages)
