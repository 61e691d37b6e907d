"""The operator API: create a session from your backend, read its trusted result.

`Authorization: Bearer <key>` with a key of OPERATOR_API_KEYS; errors as
`{"error": {"code": ..., "message": ...}}`. The identity goes in once and comes back masked only.
"""
from __future__ import annotations

import dataclasses
import hmac
import re
import unicodedata
from pathlib import Path
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, jsonify, request, url_for
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from . import (
    best_frames,
    clients,
    limits,
    metrics,
    sessions,
    targets,
    uploads,
    verification,
    video_url,
    webhooks,
)
from .challenges import MODES, describe
from .extensions import json_error, limiter, services
from .guidance import guidance_for
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


@bp.get("/sessions/<session_id>/best-frames")
def session_best_frames(session_id: str):
    """The newest best frames Juhe returned for the session (base64 JPEG), until
    BEST_FRAMES_RETENTION after they came; then 410. Never cached."""
    settings = services().settings
    with services().store.session() as db:
        session = _own_session(db, session_id)
        kept = best_frames.newest(session)
        if kept is None:
            why = ("本会话创建时未请求最佳截图（best_frames）。 This session did not ask for best frames "
                   "(best_frames at creation)." if not session.best_frames else
                   "聚合尚未返回最佳截图：请在核验通过后再取。 Juhe has returned no best frames yet: "
                   "fetch them after a passed attempt.")
            raise ApiError(404, "no_best_frames", why)
        if not best_frames.readable(settings, kept):
            raise ApiError(410, "best_frames_expired",
                           "最佳截图已过保存期（BEST_FRAMES_RETENTION）并已删除。 The best frames are past "
                           "BEST_FRAMES_RETENTION and were deleted; they cannot be fetched again.")
        try:
            frames = best_frames.vault(settings).open(kept.data)
        except best_frames.Unreadable:
            raise ApiError(500, "best_frames_unreadable",
                           "最佳截图无法解密：BEST_FRAMES_KEY 中已没有加密时的密钥。 No key of "
                           "BEST_FRAMES_KEY opens these frames: put the key they were sealed with back "
                           "(after the new one).") from None
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


# -- a video recorded elsewhere (the operator's own app, or a file it stores) ----------------------
@bp.post("/sessions/<session_id>/challenge")
def issue_challenge(session_id: str):
    """Draw the challenge for the session's next attempt, to show in your own app (the digits to
    read, or the actions in order); it replaces any open one, as on the page."""
    s = services()
    with s.store.session() as db:
        session = _own_session(db, session_id, lock=True)
        sessions.refresh(db, s.settings, session)
        try:
            issued = sessions.issue_challenge(db, s.settings, session)
        except sessions.SessionStateError as error:
            db.commit()
            raise _state_error(error) from None
        db.commit()
        return jsonify({"challenge": operator_challenge_json(issued)}), 201


@bp.post("/sessions/<session_id>/video")
def submit_video(session_id: str):
    """Verify a video for the session through the page's own path: multipart (`video` file and
    `challenge`) or JSON (`{"challenge", "video_url"}`, fetched by the service). Juhe always gets
    the normalised video in the body. `challenge` is always needed (POST …/challenge first, in
    silent mode too): a call retried after a lost answer then finds it used, and is never paid
    for twice."""
    s = services()
    file, url, challenge_id = _video_source()
    with s.store.session() as db:
        session = _own_session(db, session_id, lock=True)
        sessions.refresh(db, s.settings, session)
        try:
            sessions.require_open(session)
            current = sessions.open_challenge(session)
            if current is None or current.id != challenge_id:
                raise sessions.SessionStateError(
                    "challenge_invalid", 409, "This challenge is used or expired; draw a new one.",
                    "本次动作/数字已失效，请重新获取挑战（POST …/challenge）后再录制。")
        except sessions.SessionStateError as error:
            db.commit()
            raise _state_error(error) from None
        token, mode = session.page_token, session.mode
        db.commit()
    if url is not None:
        try:
            _fetcher().precheck(url)  # before any work: a URL the service will never fetch
        except video_url.FetchRefused as refused:
            raise _refused_url(refused) from None
    with uploads.workspace(s.uploads) as folder:
        path = folder / "upload"
        if file is not None:
            file.save(path)
            file.close()
        else:
            try:
                _fetcher().fetch(url, path)
            except video_url.FetchRefused as refused:
                raise _refused_url(refused) from None
            except video_url.FetchFailed as failed:
                current_app.logger.info("session %s: video_url not fetched: %s (%s)", session_id,
                                        failed.code, failed.detail)
                metrics.VERIFICATIONS.labels(str(failed.code), mode).inc()
                return _video_answer(session_id, verification.Outcome(
                    "rejected", guidance_for(failed.code), "pending", 0, challenge_id), failed.detail)
        tools = dataclasses.replace(s.tools, tmpdir=str(folder))
        try:
            outcome = verification.verify_upload(
                s.store, s.settings, s.client, tools, token, challenge_id, path,
                on_finished=lambda _id: s.dispatcher.wake(),
                enqueue=_enqueue if s.settings.CELERY_BROKER_URL else None,
                device=clients.operator_api(request.user_agent.string))
        except sessions.SessionStateError as error:
            raise _state_error(error) from None
    return _video_answer(session_id, outcome)


def operator_challenge_json(challenge) -> dict:
    """A challenge as the operator's app shows it: Juhe's livenessType/validateData, and the
    digits or the actions (Chinese and English names) in order."""
    return {"id": challenge.id, "mode": challenge.mode, "expires_at": isoformat(challenge.expires_at),
            "liveness_type": challenge.liveness_type, "validate_data": challenge.validate_data,
            **describe(challenge.mode, challenge.validate_data)}


def _video_source():
    """(file, url, challenge id) from a multipart or JSON body; a 422 for anything else."""
    if request.mimetype == "multipart/form-data":
        file = request.files.get("video")
        if file is None:
            raise ApiError(422, "required", "缺少视频文件：请在 multipart 字段 video 中上传。 "
                           "The video file is missing: send it in the multipart field video.", "video")
        return file, None, _challenge_field(request.form.get("challenge"))
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body", "请求体须为 multipart（video、challenge）或 JSON（video_url、challenge）。 "
                       "The body must be multipart (video, challenge) or a JSON object (video_url, challenge).")
    unknown = sorted(set(body) - {"challenge", "video_url"})
    if unknown:
        raise ApiError(422, "unknown_field", f"未知字段 {unknown[0]}。 Unknown field: {unknown[0]}.", unknown[0])
    if not isinstance(body.get("video_url"), str) or not body["video_url"].strip():
        raise ApiError(422, "required", "缺少 video_url：请给出视频的 http(s) 地址，或以 multipart 上传文件。 "
                       "video_url is required (or upload the file as multipart).", "video_url")
    return None, _url(body, "video_url"), _challenge_field(body.get("challenge"))


def _refused_url(refused: video_url.FetchRefused) -> ApiError:
    return ApiError(422, "invalid_video_url",
                    f"video_url 不可下载：{refused.reason}。请提供公网可访问的地址，或以 multipart 上传。 "
                    f"video_url cannot be fetched: {refused.reason}. Give a public URL or upload "
                    "the file as multipart.", "video_url")


def _challenge_field(value) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", value):
        raise ApiError(422, "invalid_challenge", "challenge 须为 POST …/challenge 返回的 id。 "
                       "challenge must be the id that POST …/challenge returned.", "challenge")
    return value


def _fetcher() -> video_url.Fetcher:
    """The app's video_url fetcher (tests may put their own in app.extensions)."""
    extensions = current_app.extensions
    if "liveness_video_url" not in extensions:
        extensions["liveness_video_url"] = video_url.Fetcher(
            allow_private=services().settings.video_url_allow_private)
    return extensions["liveness_video_url"]


def _enqueue(attempt_id: int) -> None:
    from . import logs, tasks
    tasks.verify.delay(attempt_id, logs.request_id.get())


def _state_error(error: sessions.SessionStateError) -> ApiError:
    return ApiError(error.status, error.code, f"{error.message_zh} {error.message}")


def _video_answer(session_id: str, outcome: verification.Outcome | None, detail: str | None = None):
    """The outcome (None: a worker has the video, 202) beside the session's trusted state."""
    with services().store.session() as db:
        session = find_session(db, id=session_id)
        body = {"outcome": None if outcome is None else outcome_json(outcome, detail),
                "session": sessions.session_json(session)}
    return jsonify(body), 202 if outcome is None else 200


def outcome_json(outcome: verification.Outcome, detail: str | None = None) -> dict:
    """What became of one video, for the operator: the code, the words to show the person, and
    what the operator should know. `rejected`: refused before Juhe, no attempt used."""
    g = outcome.guidance
    body = {"result": outcome.result, "code": str(g.code), "category": str(g.category),
            "final": g.final, "retry": outcome.session_status == "pending",
            "score": outcome.score, "challenge_id": outcome.challenge_id,
            "message": g.person_zh, "message_en": g.person_en, "operator": g.operator}
    if detail:
        body["detail"] = detail
    return body


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
