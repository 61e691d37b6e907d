"""The operator API's second half: a video recorded elsewhere (the operator's own app, or a
file it stores), verified through the page's own path (`webapp.verification`).

Its two views are routed by the API's blueprint (`webapp.api.views`: `api.issue_challenge`,
`api.submit_video`), so they share its authentication, limits and error handling.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from flask import current_app, jsonify, request

from .. import clients, metrics, sessions, uploads
from ..challenges import describe
from ..extensions import services
from ..guidance import guidance_for
from ..operator_view import session_json
from ..outcome import Outcome, after, outcome_json
from ..storage import isoformat
from . import video_url
from .fields import ApiError, checked_url, own_session, state_error


def issue_challenge(session_id: str):
    """Draw the challenge for the session's next attempt, to show in your own app (the digits to
    read, or the actions in order); it replaces any open one, as on the page."""
    s = services()
    with s.store.session() as db:
        session = own_session(db, session_id, lock=True)
        sessions.refresh(db, s.settings, session)
        try:
            issued = sessions.issue_challenge(db, s.settings, session)
        except sessions.SessionStateError as error:
            db.commit()
            raise state_error(error) from None
        db.commit()
        return jsonify({"challenge": operator_challenge_json(issued)}), 201


def submit_video(session_id: str):
    """Verify a video for the session through the page's own path: multipart (`video` file and
    `challenge`) or JSON (`{"challenge", "video_url"}`, fetched by the service). Juhe always gets
    the normalised video in the body. `challenge` is always needed (POST …/challenge first, in
    silent mode too): a call retried after a lost answer then finds it used, and is never paid
    for twice."""
    s = services()
    file, url, challenge_id = _video_source()
    token, mode = _open_for(session_id, challenge_id)
    if url is not None:
        try:
            _fetcher().precheck(url)  # before any work: a URL the service will never fetch
        except video_url.FetchRefused as refused:
            raise _refused_url(refused) from None
    save = uploads.from_file(file) if url is None else _fetched_to(url)
    try:
        outcome = s.verifier.verify(token, challenge_id, save,
                                    device=clients.operator_api(request.user_agent.string))
    except sessions.SessionStateError as error:
        raise state_error(error) from None
    except video_url.FetchRefused as refused:
        raise _refused_url(refused) from None
    except video_url.FetchFailed as failed:  # nothing claimed: no attempt used
        current_app.logger.info("session %s: video_url not fetched: %s (%s)", session_id, failed.code, failed.detail)
        metrics.VERIFICATIONS.labels(str(failed.code), mode).inc()
        with s.store.session() as db:
            outcome = after(own_session(db, session_id), guidance_for(failed.code), challenge_id, rejected=True)
        return _video_answer(session_id, outcome, failed.detail)
    return _video_answer(session_id, outcome)


def _fetched_to(url: str) -> Callable[[Path], None]:
    """`save` for a video_url: fetched by the service into the upload's folder."""
    def save(path: Path) -> None:
        _fetcher().fetch(url, path)
    return save


def _open_for(session_id: str, challenge_id: str) -> tuple[str, str]:
    """(page token, mode) of the operator's session if it takes a video with this challenge
    now; else the 4xx that says why (before anything is fetched or saved)."""
    s = services()
    with s.store.session() as db:
        session = own_session(db, session_id, lock=True)
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
            raise state_error(error) from None
        token, mode = session.page_token, session.mode
        db.commit()
    return token, mode


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
            raise ApiError(422, "required", "The video file is missing: send it in the multipart field video.",
                           "video", message_zh="缺少视频文件：请在 multipart 字段 video 中上传。")
        return file, None, _challenge_field(request.form.get("challenge"))
    body = request.get_json(silent=True) if request.is_json else None
    if not isinstance(body, dict):
        raise ApiError(422, "invalid_body",
                       "The body must be multipart (video, challenge) or a JSON object (video_url, challenge).",
                       message_zh="请求体须为 multipart（video、challenge）或 JSON（video_url、challenge）。")
    unknown = sorted(set(body) - {"challenge", "video_url"})
    if unknown:
        raise ApiError(422, "unknown_field", f"Unknown field: {unknown[0]}.", unknown[0],
                       message_zh=f"未知字段 {unknown[0]}。")
    if not isinstance(body.get("video_url"), str) or not body["video_url"].strip():
        raise ApiError(422, "required", "video_url is required (or upload the file as multipart).", "video_url",
                       message_zh="缺少 video_url：请给出视频的 http(s) 地址，或以 multipart 上传文件。")
    return None, checked_url(body, "video_url"), _challenge_field(body.get("challenge"))


def _refused_url(refused: video_url.FetchRefused) -> ApiError:
    return ApiError(422, "invalid_video_url",
                    f"video_url cannot be fetched: {refused.reason}. Give a public URL or upload the file as "
                    "multipart.", "video_url",
                    message_zh=f"video_url 不可下载：{refused.reason}。请提供公网可访问的地址，或以 multipart 上传。")


def _challenge_field(value) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", value):
        raise ApiError(422, "invalid_challenge", "challenge must be the id that POST …/challenge returned.",
                       "challenge", message_zh="challenge 须为 POST …/challenge 返回的 id。")
    return value


def _fetcher() -> video_url.Fetcher:
    """The app's video_url fetcher (tests may put their own in app.extensions)."""
    extensions = current_app.extensions
    if "liveness_video_url" not in extensions:
        extensions["liveness_video_url"] = video_url.Fetcher(
            allow_private=services().settings.video_url_allow_private)
    return extensions["liveness_video_url"]


def _video_answer(session_id: str, outcome: Outcome | None, detail: str | None = None):
    """The outcome (None: a worker has the video, 202) beside the session's trusted state."""
    with services().store.session() as db:
        session = own_session(db, session_id)
        body = {"outcome": None if outcome is None else outcome_json(outcome, operator=True, detail=detail),
                "session": session_json(session)}
    return jsonify(body), 202 if outcome is None else 200
