"""Log scan: a whole run — operator API, uploads that pass, fail and break, Juhe misbehaving,
webhooks, the standalone form, errors, the app served by a real werkzeug server so its access
log is there too — logs no key, no secret, no full ID number, no clear name and no page token.
And webapp.logs redacts what someone logs directly."""
from __future__ import annotations

import io
import logging
import re
import socket
import threading

import pytest
import requests
from werkzeug.serving import make_server

from webapp.identity import mask_idcard

from .conftest import AUTH, OPERATOR_KEY, STANDIN_KEY, Person, idcard
from .loopback import Receiver

WEBHOOK_SECRET = "whsec-logscan-0123456789"
SECRET_KEY = "test-secret-key-0123456789"   # conftest's make_app
WRONG_JUHE_KEY = "wrong-juhe-key-987654321"

# Distinctive names, so a hit can only be a leak.
PASSER, MISMATCH, SLOWPOKE, STANDALONE, INVALID = "司马相如", "欧阳娜娜", "上官婉儿", "诸葛孔明", "东方不败"
ID_PASS = idcard(77, birth="19770707", region="320102")
ID_X = "32010219770707018X"                       # check digit X (sent lower-case below)
ID_MISMATCH = idcard(78, birth="19770707", region="320102")
ID_SLOW = idcard(79, birth="19770707", region="320102")
ID_STANDALONE = idcard(80, birth="19770707", region="320102")
ID_BAD_CHECK = ID_PASS[:17] + ("0" if ID_PASS[17] != "0" else "1")


def _text(record: logging.LogRecord) -> str:
    """What any handler writes for the record: the message, the traceback, the stack."""
    return logging.Formatter("%(message)s").format(record)


def _forbidden(tokens: list[str]) -> dict[str, str]:
    values = {
        "Juhe key": STANDIN_KEY, "wrong Juhe key": WRONG_JUHE_KEY, "operator key": OPERATOR_KEY,
        "webhook secret": WEBHOOK_SECRET, "SECRET_KEY": SECRET_KEY,
    }
    for number in (ID_PASS, ID_X, ID_MISMATCH, ID_SLOW, ID_STANDALONE, ID_BAD_CHECK):
        values[f"ID {mask_idcard(number)}"] = number
        values[f"ID {mask_idcard(number)} (lower-case)"] = number.lower()
    for name in (PASSER, MISMATCH, SLOWPOKE, STANDALONE, INVALID):
        values[f"name {name[0]}*"] = name
    for token in tokens:
        values[f"page token {token[:4]}…"] = token
    return values


class Served:
    """The app behind a real werkzeug server (its request log included), for `requests`."""

    def __init__(self, app):
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def receiver():
    r = Receiver(statuses=[500], path="/hooks/liveness?order=42")
    yield r
    r.stop()


def test_a_whole_run_logs_no_secret_no_identity_and_no_page_token(make_app, juhe, media, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(WEBHOOK_SECRET=WEBHOOK_SECRET, LOG_LEVEL="DEBUG", WTF_CSRF_ENABLED=True, JUHE_READ_TIMEOUT=1.0)
    caplog.set_level(logging.DEBUG)  # create_app set the root level from LOG_LEVEL; keep DEBUG
    served = Served(app)
    http = requests.Session()
    tokens: list[str] = []
    try:
        base, auth = served.base, {"Authorization": f"Bearer {OPERATOR_KEY}"}

        def create(name, number, **extra):
            response = http.post(f"{base}/api/v1/sessions", headers=auth,
                                 json={"realname": name, "idcard": number, **extra})
            assert response.status_code == 201, response.text
            created = response.json()
            tokens.append(created["url"].rsplit("/", 1)[1])
            return created, created["url"].replace("http://localhost", base)

        def upload(page, path, challenge=None):
            challenge = challenge or http.post(f"{page}/challenge").json()["challenge"]["id"]
            with open(path, "rb") as fh:
                return http.post(f"{page}/upload", data={"challenge": challenge},
                                 files={"video": (path.name, fh, "video/mp4")})

        # 1. A session that passes, with a webhook; a broken file first, a reused challenge after.
        passed, page = create(PASSER, ID_PASS, mode="number", callback_url=receiver.url, reference="loan-7")
        assert http.get(page).status_code == 200
        assert upload(page, media("broken")).json()["outcome"]["result"] == "rejected"
        challenge = http.post(f"{page}/challenge").json()["challenge"]["id"]
        assert upload(page, media("safari_fmp4"), challenge).json()["outcome"]["result"] == "passed"
        assert upload(page, media("safari_fmp4"), challenge).status_code == 409
        assert http.get(f"{page}/state").json()["status"] == "passed"

        # 2. A name that does not match the number: final, charged, webhook-less.
        juhe.script[ID_MISMATCH] = 267509
        _, page = create(MISMATCH, ID_MISMATCH, mode="silent")
        assert upload(page, media("safari_fmp4")).json()["outcome"]["result"] == "failed"

        # 3. Juhe slow, failing, talking HTML and garbage; an ID number with X sent lower-case.
        _, page = create(SLOWPOKE, ID_SLOW, mode="number")
        for mode in (juhe.SLOW, juhe.HTTP_500, juhe.HTML, juhe.GARBAGE, juhe.DROP):
            juhe.mode = mode
            assert upload(page, media("safari_fmp4")).json()["outcome"]["result"] == "retry"
        juhe.mode = None
        _, page = create(SLOWPOKE, ID_X.lower(), mode="action")
        juhe.script[ID_X] = 267517
        assert upload(page, media("safari_fmp4")).json()["outcome"]["result"] == "retry"

        # 4. The operator reads, lists (by the ID number, as a careless operator might) and errs.
        assert http.get(f"{base}/api/v1/sessions/{passed['id']}", headers=auth).json()["status"] == "passed"
        assert http.get(f"{base}/api/v1/sessions", headers=auth, params={"reference": ID_PASS}).status_code == 200
        assert http.get(f"{base}/api/v1/sessions/{passed['id']}/webhooks", headers=auth).status_code == 200
        assert http.post(f"{base}/api/v1/sessions", headers=auth,
                         json={"realname": INVALID, "idcard": ID_BAD_CHECK}).status_code == 422
        assert http.post(f"{base}/api/v1/sessions", headers=auth,
                         json={"realname": INVALID, "idcard": ID_PASS, ID_PASS: INVALID}).status_code == 422
        assert http.post(f"{base}/api/v1/sessions", json={"realname": INVALID, "idcard": ID_PASS},
                         headers={"Authorization": f"Bearer {OPERATOR_KEY}x"}).status_code == 401
        assert http.get(f"{base}/v/{tokens[0]}x/state").status_code == 404
        assert http.post(f"{base}/v/{tokens[0]}/upload", data={"challenge": "ch_nope"},
                         files={"video": ("v.mp4", io.BytesIO(b"x"), "video/mp4")}).status_code == 409

        # 5. The standalone form (CSRF on), with a mistake first.
        form = http.get(f"{base}/").text
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        assert http.post(f"{base}/", data={"csrf_token": csrf, "realname": STANDALONE, "idcard": ID_BAD_CHECK,
                                           "mode": "number"}).status_code == 422
        assert http.post(f"{base}/", data={"realname": STANDALONE, "idcard": ID_STANDALONE}).status_code == 400
        made = http.post(f"{base}/", data={"csrf_token": csrf, "realname": STANDALONE, "idcard": ID_STANDALONE,
                                           "mode": "number"}, allow_redirects=False)
        assert made.status_code == 303
        tokens.append(made.headers["Location"].rsplit("/", 1)[1])
        assert http.get(f"{base}{made.headers['Location']}").status_code == 200

        # 6. The webhook: refused once, then delivered.
        import datetime as dt
        dispatcher = app.extensions["liveness"].dispatcher
        assert dispatcher.deliver_due() == 1
        later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
        assert dispatcher.deliver_due(later) == 1
        assert len(receiver.received) == 2
    finally:
        served.stop()
        http.close()

    # 7. Juhe refusing the key (10001), and Juhe unreachable.
    for overrides in ({"JUHE_KEY": WRONG_JUHE_KEY},
                      {"JUHE_API_URL": f"http://127.0.0.1:{_closed_port()}/antiFaceId/query"}):
        client = make_app(LOG_LEVEL="DEBUG", **overrides).test_client()
        caplog.set_level(logging.DEBUG)
        created = client.post("/api/v1/sessions", headers=AUTH,
                              json={"realname": PASSER, "idcard": ID_PASS}).get_json()
        tokens.append(created["url"].rsplit("/", 1)[1])
        assert Person(client, created["url"]).upload(media("safari_fmp4")).status_code == 200

    records = caplog.records
    texts = [(r, _text(r)) for r in records]
    leaks = [f"{r.name} {r.levelname}: {what} in {text[:300]!r}"
             for r, text in texts for what, value in _forbidden(tokens).items() if value in text]
    assert not leaks, "\n".join(leaks)

    # Not vacuous: the run did log what the scan is about, masked.
    names = {r.name for r in records}
    assert {"webapp.juhe.client", "webapp.verification", "webapp.delivery.webhooks", "webapp.web.pages", "werkzeug"} <= names, names
    joined = "\n".join(text for _, text in texts)
    assert mask_idcard(ID_PASS) in joined and "/v/***" in joined
    assert any(r.name == "werkzeug" and "/v/" in t for r, t in texts)
    assert any(r.levelno >= logging.WARNING for r in records)


def test_direct_logging_of_an_id_number_a_page_token_or_a_key_is_redacted(make_app, caplog):
    make_app(WEBHOOK_SECRET=WEBHOOK_SECRET)  # installs the redaction with this run's secrets
    token = "Ab3_x-" + "k" * 40
    log = logging.getLogger("someone.careless")
    with caplog.at_level(logging.DEBUG):
        log.info("verifying %s for %s", ID_PASS, PASSER[0] + "*")
        log.info("id=%s; lower %s; in text 身份证%s号", ID_X, ID_X.lower(), ID_MISMATCH)
        log.info(f"opened https://verify.example/v/{token}?x=1 and /v/{token}/upload")
        log.warning("juhe key=%s operator=%s webhook=%s secret=%s", STANDIN_KEY, OPERATOR_KEY, WEBHOOK_SECRET,
                    SECRET_KEY)
        log.debug({"idcard": ID_PASS, "url": f"/v/{token}/state"})
        try:
            raise ValueError(f"bad request for {ID_PASS} at /v/{token} with key={STANDIN_KEY}")
        except ValueError:
            log.exception("upload failed")
        log.error("wrapped", exc_info=RuntimeError(f"{ID_MISMATCH} {WEBHOOK_SECRET}"))
    texts = [_text(r) for r in caplog.records if r.name == "someone.careless"]
    assert len(texts) == 7
    joined = "\n".join(texts)
    for value in (ID_PASS, ID_X, ID_X.lower(), ID_MISMATCH, token, STANDIN_KEY, OPERATOR_KEY, WEBHOOK_SECRET,
                  SECRET_KEY):
        assert value not in joined, value
    assert mask_idcard(ID_PASS) in texts[0]
    assert mask_idcard(ID_X) in texts[1] and mask_idcard(ID_MISMATCH) in texts[1] and "身份证" in texts[1]
    assert texts[2].count("/v/***") == 2 and "?x=1" in texts[2]
    assert STANDIN_KEY not in texts[3] and texts[3].count("***") == 4
    assert "ValueError" in texts[5] and "/v/***" in texts[5] and mask_idcard(ID_PASS) in texts[5]
    assert "RuntimeError" in texts[6]
    # What is not an ID number or a token stays readable.
    log.info("order 1234567890123456789012 at /v/short and 2024-05-01")
    assert caplog.records[-1].getMessage() == "order 1234567890123456789012 at /v/short and 2024-05-01"
