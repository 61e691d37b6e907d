"""The operator API's routes: create a session from your backend, read its trusted result, and
verify a video recorded elsewhere (its work: `webapp.api.video`; the checked fields and errors:
`webapp.api.fields`).

`Authorization: Bearer <key>` with a key of OPERATOR_API_KEYS; errors as
`{"error": {"code": ..., "message": ..., "message_zh"?: ..., "field"?: ...}}` (English, Chinese). The identity goes in once and comes back masked only.
"""
from __future__ import annotations

import hmac
from pathlib import Path

from flask import Blueprint, current_app, g, jsonify, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from werkzeug.exceptions import HTTPException

from .. import best_frames, limits, sessions
from ..delivery import webhooks
from ..extensions import limiter, services
from ..identity import Identity, IdentityError
from ..operator_view import session_json
from ..storage import VerificationSession, isoformat
from . import video
from .fields import (
    CONTROL,
    LIMIT_RE,
    ApiError,
    checked_best_frames,
    checked_embed_origin,
    checked_flag,
    checked_locale,
    checked_mode,
    checked_text,
    checked_url,
    encodable,
    error_response,
    has_category,
    own_session,
    visible,
)

__all__ = ["OPENAPI_PATH", "ApiError", "bp", "error_response", "page_url"]

bp = Blueprint("api", __name__, url_prefix="/api/v1")
limiter.limit(limits.API, key_func=limits.operator_key)(bp)
limiter.limit(limits.API_PER_IP)(bp)
# A video recorded elsewhere (webapp/api/video.py), under this blueprint's key, limits and errors.
bp.post("/sessions/<session_id>/challenge")(video.issue_challenge)
bp.post("/sessions/<session_id>/video")(video.submit_video)

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
FIELDS = {"realname", "idcard", "mode", "reference", "return_url", "callback_url", "embed_origin",
          "best_frames", "action_fallback", "locale"}


@bp.errorhandler(ApiError)
def _api_error(error: ApiError):
    return error_response(error.status, error.code, error.message, error.field, message_zh=error.message_zh)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return _api_error(ApiError(error.code or 500, error.name.lower().replace(" ", "_"),
                               error.description or error.name))


@bp.before_request
def _authenticate():
    if request.endpoint == "api.openapi":
        return
    keys = services().settings.operator_keys
    if not keys:
        raise ApiError(401, "operator_api_off", "The operator API is off: set OPERATOR_API_KEYS.")
    token = limits.bearer_key().encode()
    # Compare against every key, always, so timing tells nothing about which key is close.
    matched = None
    for key in keys:
        if token and hmac.compare_digest(token, key.encode()):
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
        encodable(name, body[name])
    for name in ("realname", "idcard"):
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise ApiError(422, "required", f"{name} is required.", name)
    try:
        identity = Identity.parse(body["realname"], body["idcard"])
    except IdentityError as error:
        raise ApiError(422, f"invalid_{error.field}", error.message, error.field,
                       message_zh=error.message_zh) from None
    new = sessions.NewSession(
        mode=checked_mode(body.get("mode", settings.LIVENESS_MODE)),
        reference=checked_text(body, "reference", 200),
        return_url=checked_url(body, "return_url"),
        callback_url=checked_url(body, "callback_url"),
        embed_origin=checked_embed_origin(body.get("embed_origin"), settings.EMBED_ORIGINS),
        best_frames=checked_best_frames(body.get("best_frames", 0)),
        action_fallback=checked_flag(body, "action_fallback"),
        locale=checked_locale(body.get("locale")))
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
        session = sessions.read_fresh(db, services().settings, id=session_id)
        if session is None or not visible(session):
            raise ApiError(404, "not_found", "No such session.")
        db.commit()
        return jsonify(session_json(session))


@bp.get("/sessions/<session_id>/webhooks")
def session_webhooks(session_id: str):
    """The webhook delivery log of a session: every try, its HTTP status or error."""
    with services().store.session() as db:
        own_session(db, session_id)
        return jsonify({"deliveries": webhooks.deliveries_json(webhooks.deliveries_for(db, session_id))})


@bp.get("/sessions/<session_id>/best-frames")
def session_best_frames(session_id: str):
    """The newest best frames Juhe returned for the session (base64 JPEG), until
    BEST_FRAMES_RETENTION after they came; then 410. Never cached."""
    settings = services().settings
    with services().store.session() as db:
        session = own_session(db, session_id)
        kept = best_frames.newest(session)
        if kept is None:
            if not session.best_frames:
                raise ApiError(404, "no_best_frames", "This session did not ask for best frames "
                               "(best_frames at creation).", message_zh="本会话创建时未请求最佳截图（best_frames）。")
            raise ApiError(404, "no_best_frames", "Juhe has returned no best frames yet: fetch them after a "
                           "passed attempt.", message_zh="聚合尚未返回最佳截图：请在核验通过后再取。")
        sealed = kept.data if best_frames.readable(settings, kept) else None
        if sealed is None:
            raise ApiError(410, "best_frames_expired",
                           "The best frames are past BEST_FRAMES_RETENTION and were deleted; they cannot be "
                           "fetched again.", message_zh="最佳截图已过保存期（BEST_FRAMES_RETENTION）并已删除。")
        try:
            frames = best_frames.vault(settings).open(sealed)
        except best_frames.Unreadable:
            raise ApiError(500, "best_frames_unreadable",
                           "No key of BEST_FRAMES_KEY opens these frames: put the key they were sealed with "
                           "back (after the new one).",
                           message_zh="最佳截图无法解密：BEST_FRAMES_KEY 中已没有加密时的密钥。") from None
        attempt = next(a for a in session.attempts if a.id == kept.attempt_id)
        body = {"session_id": session.id, "orderid": attempt.orderid, "at": isoformat(kept.created_at),
                "expires_at": isoformat(best_frames.deadline(settings, kept)), "frames": frames}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/sessions")
def list_sessions():
    """This operator's sessions, newest first; `?reference=` filters, `?limit=` (≤100) bounds."""
    limit = request.args.get("limit", "20")
    if not LIMIT_RE.fullmatch(limit) or not 1 <= int(limit) <= 100:
        raise ApiError(422, "invalid_limit", "limit must be an integer from 1 to 100.", "limit")
    # One statement for the sessions, one per relation the JSON reads; no lock (a session due a
    # refresh, its lease run out or its time up, is locked and brought up to date on its own).
    query = (select(VerificationSession).where(VerificationSession.operator == g.operator)
             .options(selectinload(VerificationSession.attempts), selectinload(VerificationSession.events),
                      selectinload(VerificationSession.kept_frames))
             .order_by(VerificationSession.created_at.desc()).limit(int(limit)))
    reference = request.args.get("reference")
    if reference:
        if has_category(reference, CONTROL):
            raise ApiError(422, "invalid_reference", "reference must not contain control characters.",
                           "reference")
        query = query.where(VerificationSession.reference == reference)
    with services().store.session() as db:
        found = sessions.brought_up_to_date(db, services().settings, list(db.scalars(query).all()))
        db.commit()
        return jsonify({"sessions": [session_json(s) for s in found]})


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

