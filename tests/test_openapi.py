"""The OpenAPI document (webapp/api/openapi.json) is valid, served, and in step with the code: every
route of the `api` blueprint is in it and nothing else, and real answers of the app, through
real uploads against the Juhe stand-in, validate against the schemas it documents (with every
object closed, so an undocumented field fails here too)."""
from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from openapi_spec_validator import validate as validate_spec
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from webapp.delivery.webhooks import verify_signature

from .conftest import AUTH, Person, idcard
from .loopback import Receiver

DOC_PATH = Path(__file__).resolve().parent.parent / "webapp" / "api" / "openapi.json"
BASE = "urn:liveness:openapi"
SECRET = "whsec-openapi-0123456789"
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(DOC_PATH.read_text(encoding="utf-8"))


# -- schema helpers ------------------------------------------------------------------------------
def _formats() -> FormatChecker:
    """The default checker plus date-time and uri checks that need no optional package."""
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value) -> bool:
        if not isinstance(value, str):
            return True
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", value):
            raise ValueError(f"not RFC 3339: {value!r}")
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True

    @checker.checks("uri", raises=ValueError)
    def _uri(value) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        if not parts.scheme or not parts.netloc:
            raise ValueError(f"not an absolute URI: {value!r}")
        return True

    return checker


def _closed(schema):
    """A copy where every object schema listing `properties` refuses any other property."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _pointer(*parts: str) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


class Schemas:
    """Validators for the document's schemas, `$ref`s resolved inside the document."""

    def __init__(self, doc: dict, strict: bool = True):
        self.doc = _closed(doc) if strict else doc
        self.registry = Registry().with_resource(BASE, DRAFT202012.create_resource(self.doc))
        self.checker = _formats()

    def at(self, *parts: str) -> Draft202012Validator:
        ref = f"{BASE}#{quote(_pointer(*parts), safe='/~')}"
        return Draft202012Validator({"$ref": ref}, registry=self.registry, format_checker=self.checker)

    def response(self, path: str, method: str, status: int | str) -> Draft202012Validator:
        responses = self.doc["paths"][path][method.lower()]["responses"]
        assert str(status) in responses, f"{method} {path} answered {status}, which the document does not list"
        return self.at("paths", path, method.lower(), "responses", str(status), "content",
                       "application/json", "schema")

    def check(self, path: str, method: str, response) -> dict:
        """Validate a test-client response against the document; return its JSON."""
        assert response.mimetype == "application/json", (path, method, response.status_code, response.data[:200])
        body = response.get_json()
        errors = sorted(self.response(path, method, response.status_code).iter_errors(body), key=str)
        assert not errors, f"{method} {path} {response.status_code}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:5])
        return body


@pytest.fixture(scope="module")
def schemas(doc) -> Schemas:
    return Schemas(doc)


@pytest.fixture
def receiver():
    r = Receiver(statuses=[500, 204], path="/hooks/liveness")
    yield r
    r.stop()


# -- the document itself -------------------------------------------------------------------------
def test_the_document_is_valid_openapi_3_1(doc):
    assert doc["openapi"].startswith("3.1.")
    validate_spec(doc)
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    assert doc["components"]["securitySchemes"]["operatorKey"] == {
        **doc["components"]["securitySchemes"]["operatorKey"], "type": "http", "scheme": "bearer"}


def test_the_app_serves_it_without_a_key(client, doc):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert response.get_json() == doc
    assert "Authorization" not in response.headers.get("Vary", "")


def _flask_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_api_route_is_documented_and_nothing_else(app, doc):
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.split(".", 1)[0] == "api":
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes[(_flask_path(rule.rule), method.lower())] = sorted(rule.arguments)
    documented = {}
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method in METHODS:
            if method in item:
                params = shared + item[method].get("parameters", [])
                documented[(path, method)] = sorted(p["name"] for p in params if p["in"] == "path")
    assert set(routes) == set(documented), {
        "undocumented": sorted(set(routes) - set(documented)),
        "documented but not routed": sorted(set(documented) - set(routes))}
    for key, arguments in routes.items():
        assert documented[key] == arguments, key
        assert set(re.findall(r"{([^}]+)}", key[0])) == set(arguments), key


def test_only_the_document_itself_is_public(client, doc):
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method not in item:
                continue
            operation = item[method]
            public = operation.get("security", doc["security"]) == []
            assert public == (path == "/api/v1/openapi.json"), path
            if not public:
                assert "401" in operation["responses"], (method, path)
                concrete = path.replace("{session_id}", "ses_unknown")
                answer = client.open(concrete, method=method.upper(), json={})
                assert answer.status_code == 401, (method, path)


def test_the_request_examples_validate_and_are_accepted(make_app, doc, schemas):
    client = make_app(EMBED_ORIGINS="https://bank.example", WEBHOOK_SECRET=SECRET).test_client()
    request_schema = Schemas(doc, strict=False).at("components", "schemas", "CreateSessionRequest")
    examples = doc["paths"]["/api/v1/sessions"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert examples
    for name, example in examples.items():
        request_schema.validate(example["value"])
        response = client.post("/api/v1/sessions", headers=AUTH, json=example["value"])
        assert response.status_code == 201, (name, response.get_json())
        schemas.check("/api/v1/sessions", "post", response)


# -- real answers validate against the documented schemas ----------------------------------------
def test_real_answers_of_a_whole_flow_match_the_document(make_app, juhe, media, receiver, schemas):
    app = make_app(WEBHOOK_SECRET=SECRET, EMBED_ORIGINS="https://bank.example")
    client = app.test_client()
    number = idcard(41)

    created = client.post("/api/v1/sessions", headers=AUTH, json={
        "realname": "阿依古丽·买买提", "idcard": number, "mode": "number", "reference": "loan-42",
        "return_url": "https://bank.example/done?x=1", "callback_url": receiver.url,
        "embed_origin": "https://bank.example", "best_frames": 2})
    assert created.status_code == 201
    created = schemas.check("/api/v1/sessions", "post", created)
    path = f"/api/v1/sessions/{created['id']}"
    person = Person(client, created["url"])

    pending = schemas.check("/api/v1/sessions/{session_id}", "get", client.get(path, headers=AUTH))
    assert pending["attempts"] == [] and pending["best_frames"]["available"] is False

    # 1. Juhe's gateway fails (nothing known: the nullable fields are null), 2. a counted
    #    capture failure, 3. a pass with best frames.
    juhe.mode = juhe.HTTP_500
    assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "retry"
    juhe.mode = None
    juhe.script[number] = 267517
    assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "retry"
    juhe.script.clear()
    assert person.upload(media("safari_fmp4")).get_json()["outcome"]["result"] == "passed"
    assert len(juhe.requests) == 3

    view = schemas.check("/api/v1/sessions/{session_id}", "get", client.get(path, headers=AUTH))
    assert [a["error_code"] for a in view["attempts"]] == [None, 267517, 0]
    assert [a["charged"] for a in view["attempts"]] == [None, False, True]
    assert view["status"] == "passed" and view["best_frames"]["count"] == 2
    frames = schemas.check("/api/v1/sessions/{session_id}/best-frames", "get",
                           client.get(f"{path}/best-frames", headers=AUTH))
    assert len(frames["frames"]) == 2
    assert view["identity"] == {"realname": "阿*******", "idcard": number[:4] + "*" * 10 + number[-4:]}

    # A second session without best frames: the optional field is absent, not null.
    plain = client.post("/api/v1/sessions", headers=AUTH, json={"realname": "张三", "idcard": idcard(42),
                                                                "reference": "loan-42"})
    plain = schemas.check("/api/v1/sessions", "post", plain)
    plain_view = schemas.check("/api/v1/sessions/{session_id}", "get",
                               client.get(f"/api/v1/sessions/{plain['id']}", headers=AUTH))
    assert "best_frames" not in plain_view

    listed = schemas.check("/api/v1/sessions", "get",
                           client.get("/api/v1/sessions?reference=loan-42&limit=5", headers=AUTH))
    assert [s["id"] for s in listed["sessions"]] == [plain["id"], created["id"]]
    schemas.check("/api/v1/sessions", "get", client.get("/api/v1/sessions", headers=AUTH))

    # The webhook: first try 500, then delivered; the body is the documented Session.
    dispatcher = app.extensions["liveness"].dispatcher
    assert dispatcher.deliver_due() == 1
    log = schemas.check("/api/v1/sessions/{session_id}/webhooks", "get",
                        client.get(f"{path}/webhooks", headers=AUTH))
    assert log["deliveries"][0]["state"] == "pending" and log["deliveries"][0]["next_try_at"]
    later = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=1)
    assert dispatcher.deliver_due(later) == 1
    log = schemas.check("/api/v1/sessions/{session_id}/webhooks", "get",
                        client.get(f"{path}/webhooks", headers=AUTH))
    [delivery] = log["deliveries"]
    assert delivery["state"] == "delivered" and [t["status_code"] for t in delivery["log"]] == [500, 204]
    assert delivery["log"][0]["error"] == "HTTP 500" and delivery["log"][1]["error"] is None
    schemas.check("/api/v1/sessions/{session_id}/webhooks", "get",
                  client.get(f"/api/v1/sessions/{plain['id']}/webhooks", headers=AUTH))

    hook = schemas.doc["webhooks"]["sessionEnded"]["post"]
    body_schema = schemas.at("webhooks", "sessionEnded", "post", "requestBody", "content",
                             "application/json", "schema")
    headers = {p["name"]: p["schema"]["pattern"] for p in hook["parameters"] if p["in"] == "header"}
    assert len(receiver.received) == 2
    for received in receiver.received:
        body_schema.validate(json.loads(received["body"]))
        for name, pattern in headers.items():
            assert re.fullmatch(pattern, received["headers"][name]), name
        assert verify_signature(SECRET, received["body"], received["headers"]["X-Signature"])
        assert received["headers"]["X-Event-Id"] == delivery["event_id"]


def test_error_answers_match_the_document(make_app, schemas):
    client = make_app(MAX_UPLOAD_MB=1).test_client()
    sessions, one = "/api/v1/sessions", "/api/v1/sessions/{session_id}"
    hooks = "/api/v1/sessions/{session_id}/webhooks"
    bad = {"Authorization": "Bearer not-the-key"}
    checks = [
        (sessions, "post", client.post(sessions, json={"realname": "张三", "idcard": idcard(1)}), 401),
        (sessions, "post", client.post(sessions, headers=bad, json={}), 401),
        (sessions, "get", client.get(sessions, headers=bad), 401),
        (one, "get", client.get("/api/v1/sessions/ses_x", headers=bad), 401),
        (hooks, "get", client.get("/api/v1/sessions/ses_x/webhooks"), 401),
        (one, "get", client.get("/api/v1/sessions/ses_nope", headers=AUTH), 404),
        (hooks, "get", client.get("/api/v1/sessions/ses_nope/webhooks", headers=AUTH), 404),
        (sessions, "get", client.get(f"{sessions}?limit=0", headers=AUTH), 422),
        (sessions, "get", client.get(f"{sessions}?limit=abc", headers=AUTH), 422),
        (sessions, "post", client.post(sessions, headers=AUTH, data="x", content_type="text/plain"), 422),
        (sessions, "post", client.post(sessions, headers=AUTH, json=[1]), 422),
        (sessions, "post", client.post(sessions, headers=AUTH, json={"realname": "张三"}), 422),
        (sessions, "post", client.post(sessions, headers=AUTH, json={"realname": "张三", "idcard": idcard(1),
                                                                     "extra": 1}), 422),
        (sessions, "post", client.post(sessions, headers=AUTH, json={"realname": "张三", "idcard": idcard(1),
                                                                     "callback_url": "https://x.example/h"}), 422),
        (sessions, "post", client.post(sessions, headers=AUTH, data=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                                       content_type="application/json"), 413),
    ]
    for path, method, response, status in checks:
        assert response.status_code == status, (path, method, response.status_code, response.get_data()[:200])
        body = schemas.check(path, method, response)
        assert body["error"]["code"] and body["error"]["message"]
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    field = client.post(sessions, headers=AUTH, json={"realname": "张三", "idcard": "123"}).get_json()
    assert field["error"] == {**field["error"], "code": "invalid_idcard", "field": "idcard"}


def test_rate_limited_answers_match_the_document(make_app, schemas):
    client = make_app(RATELIMIT_ENABLED=True).test_client()
    key = {"Authorization": "Bearer rate-limit-probe-key"}
    statuses = [client.get("/api/v1/sessions", headers=key).status_code for _ in range(301)]
    assert set(statuses[:300]) == {401}
    limited = client.get("/api/v1/sessions", headers=key)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    body = schemas.check("/api/v1/sessions", "get", limited)
    assert body["error"]["code"]


@pytest.mark.parametrize("method, path", [("PUT", "/api/v1/sessions"), ("DELETE", "/api/v1/sessions/ses_x"),
                                          ("POST", "/api/v1/openapi.json"), ("GET", "/api/v1/nothing-here")])
def test_unrouted_methods_and_paths_answer_in_the_error_format(client, method, path):
    """docs/contract.md: every API error is `{"error": {"code", "message"}}` — 404 and 405 included."""
    response = client.open(path, method=method, headers=AUTH)
    assert response.status_code in (404, 405)
    assert response.mimetype == "application/json", response.data[:80]
    error = response.get_json()["error"]
    assert error["code"] and error["message"]
