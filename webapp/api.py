"""The operator API: create a session from your backend, read its trusted result.

`Authorization: Bearer <key>` with a key of OPERATOR_API_KEYS; errors as
`{"error": {"code": ..., "message": ...}}`. The identity goes in once and comes back masked only.
"""
from __future__ import annotations

import hmac
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, jsonify, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from . import limits, sessions, targets, webhooks
from .extensions import json_error, limiter, services
from .challenges import MODES
from .identity import Identity, IdentityError
from .storage import VerificationSession, find_session, isoformat, lock_session

bp = Blueprint("api", __name__, url_prefix="/api/v1")
limiter.limit(limits.API, key_func=limits.operator_key)(bp)
limiter.limit(limits.API_PER_IP)(bp)

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
FIELDS = {"realname", "idcard", "mode", "reference", "return_url", "callback_url", "embed_origin",
          "best_frames"}
LIMIT_RE = re.compile(r"[0-9]{1,3}")  # ASCII only: str.isdigit() takes "²" and other scripts' digits
# Characters that make no sense in these fields: control characters everywhere (a database may
# refuse NUL); in URLs also format characters (bidi overrides, zero-width) and whitespace.
CONTROL = frozenset({"Cc"})
URL_UNSAFE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(status: int, code: str, message: str, field: str | None = None):
    """`{"error": {"code", "message", "field"?}}` with the status (a bearer challenge on 401)."""
    response = json_error(status, code, message, field=field)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="liveness"'
    return response


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    return error_response(error.status, error.code, error.message, error.field)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return _api_error(ApiError(error.code or 500, error.name.lower().replace(" ", "_"), error.description))


@bp.before_request
def _authenticate():
    if request.endpoint == "api.openapi":
        return
    keys = services().settings.operator_keys
    if not keys:
        raise ApiError(401, "operator_api_off", "The operator API is off: set OPERATOR_API_KEYS.")
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    presented = presented.strip().encode()
    # Compare against every key, always, so timing tells nothing about which key is close.
    matched = None
    for key in keys:
        if hmac.compare_digest(presented, key.encode()) and scheme.lower() == "bearer":
            matched = key
    if matched is None:
        raise ApiError(401, "unauthorized", "Missing or invalid bearer key.")
    g.operator = sessions.operator_fingerprint(matched)


@bp.post("/sessions")
def create_session():
    """Create a pending session and return the page URL to open or frame."""
    settings = services().settings
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # absurdly deep nesting
        body = None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_json", "The body must be a JSON object.")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise ApiError(422, "unknown_field", f"Unknown field: {unknown[0]}.", unknown[0])
    for name in sorted(body):
        _encodable(name, body[name])
    for name in ("realname", "idcard"):
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise ApiError(422, "required", f"{name} is required.", name)
    try:
        identity = Identity.parse(body["realname"], body["idcard"])
    except IdentityError as error:
        raise ApiError(422, f"invalid_{error.field}", error.message, error.field) from None
    new = sessions.NewSession(
        mode=_mode(body.get("mode", settings.LIVENESS_MODE)),
        reference=_text(body, "reference", 200),
        return_url=_url(body, "return_url"),
        callback_url=_url(body, "callback_url"),
        embed_origin=_embed_origin(body.get("embed_origin"), settings.EMBED_ORIGINS),
        best_frames=_best_frames(body.get("best_frames", 0)))
    if new.callback_url and not settings.WEBHOOK_SECRET:
        raise ApiError(422, "webhooks_off", "callback_url needs WEBHOOK_SECRET to be configured.",
                       "callback_url")
    store = services().store
    with store.session() as db:
        session = sessions.create(db, settings, identity, new, operator=g.operator)
        db.commit()
        answer = {"id": session.id, "url": page_url(session.page_token), "mode": session.mode,
                  "status": session.status, "expires_at": isoformat(session.expires_at),
                  "sandbox": session.sandbox}
    return jsonify(answer), 201


@bp.get("/sessions/<session_id>")
def get_session(session_id: str):
    """The trusted state of a session."""
    with services().store.session() as db:
        session = _own_session(db, session_id, lock=True)
        sessions.refresh(db, services().settings, session)
        db.commit()
        return jsonify(sessions.session_json(session))


@bp.get("/sessions/<session_id>/webhooks")
def session_webhooks(session_id: str):
    """The webhook delivery log of a session: every try, its HTTP status or error."""
    with services().store.session() as db:
        _own_session(db, session_id)
        return jsonify({"deliveries": webhooks.deliveries_json(webhooks.deliveries_for(db, session_id))})


@bp.get("/sessions")
def list_sessions():
    """This operator's sessions, newest first; `?reference=` filters, `?limit=` (≤100) bounds."""
    limit = request.args.get("limit", "20")
    if not LIMIT_RE.fullmatch(limit) or not 1 <= int(limit) <= 100:
        raise ApiError(422, "invalid_limit", "limit must be an integer from 1 to 100.", "limit")
    query = (select(VerificationSession).where(VerificationSession.operator == g.operator)
             .order_by(VerificationSession.created_at.desc()).limit(int(limit)))
    reference = request.args.get("reference")
    if reference:
        if _has(reference, CONTROL):
            raise ApiError(422, "invalid_reference", "reference must not contain control characters.",
                           "reference")
        query = query.where(VerificationSession.reference == reference)
    with services().store.session() as db:
        found = [sessions.refresh(db, services().settings, lock_session(db, id=s.id))
                 for s in db.scalars(query).all()]
        db.commit()
        return jsonify({"sessions": [sessions.session_json(s) for s in found]})


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API (public: it holds no secret)."""
    return current_app.response_class(OPENAPI_PATH.read_bytes(), mimetype="application/json")


def page_url(token: str) -> str:
    """The capture page's absolute URL, on PUBLIC_URL when set (behind a TLS proxy)."""
    base = services().settings.PUBLIC_URL
    if base:
        return base + url_for("pages.capture", token=token)
    return url_for("pages.capture", token=token, _external=True)


def _own_session(db, session_id: str, lock: bool = False) -> VerificationSession:
    """The session with this id if this operator may see it; else a 404. `lock`: locked for
    this request (before it is refreshed, which may change it)."""
    session = (lock_session if lock else find_session)(db, id=session_id)
    if session is None or not _visible(session):
        raise ApiError(404, "not_found", "No such session.")
    return session


def _visible(session: VerificationSession) -> bool:
    """Operators see their own sessions; standalone ones only in sandbox (for trying things)."""
    if session.operator == "standalone":
        return services().settings.sandbox
    return session.operator == g.operator


def _mode(value) -> str:
    if value not in (*MODES, "random"):
        raise ApiError(422, "invalid_mode", "mode must be silent, number, action or random.", "mode")
    return value


def _encodable(name: str, value) -> None:
    """Refuse a string that cannot be stored or sent as UTF-8 (a lone surrogate, which JSON's
    `\\ud800` escapes can carry). Nested values are refused by each field's own type check."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, f"invalid_{name}",
                           f"{name} must be valid Unicode text (it holds a lone surrogate).", name) from None


def _has(value: str, categories: frozenset[str]) -> bool:
    return any(unicodedata.category(c) in categories for c in value)


def _text(body: dict, name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(422, f"invalid_{name}", f"{name} must be a string of at most {limit} characters.", name)
    _encodable(name, value)
    if _has(value, CONTROL):
        raise ApiError(422, f"invalid_{name}", f"{name} must not contain control characters.", name)
    return value


def _url(body: dict, name: str) -> str | None:
    value = _text(body, name, 2000)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not host
            or _has(value, URL_UNSAFE)):
        raise ApiError(422, f"invalid_{name}",
                       f"{name} must be an absolute http(s) URL (no spaces or control characters).", name)
    if name == "callback_url":
        _callback_target(value)
    return value


def _callback_target(url: str) -> None:
    """A callback_url the webhook sender could never reach, or, outside sandbox (unless
    WEBHOOK_ALLOW_PRIVATE), one whose host resolves to any internal address, is a 422. The
    dispatcher checks again at every try, on the address it then connects to."""
    allow_private = services().settings.webhook_allow_private
    try:
        if allow_private:
            targets.split(url)  # no lookup: any address will do, but requests must be able to send it
        else:
            targets.check(url, allow_private=False, resolver=services().dispatcher.resolver)
    except targets.TargetRefused as refused:
        rule = "be a URL webhooks can be sent to" if allow_private else "resolve to public addresses only"
        raise ApiError(422, "invalid_callback_url", f"callback_url must {rule}: {refused.reason}.",
                       "callback_url") from None


def _embed_origin(value, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    origin = value.rstrip("/").lower() if isinstance(value, str) else None
    if origin not in allowed:
        raise ApiError(422, "invalid_embed_origin", "embed_origin must be one of EMBED_ORIGINS.", "embed_origin")
    return origin


def _best_frames(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ApiError(422, "invalid_best_frames",
                       "best_frames must be 0 (none), 1 (the best frame) or 2-10 (that many frames).",
                       "best_frames")
    return value
