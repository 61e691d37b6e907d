"""What the blueprints share, made before any app exists: the app's services, CSRF protection
and the rate limiter. Views import these from here, never from the application factory
(webapp/app.py imports the views), so the import graph has no circle."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flask import Response, current_app, jsonify, render_template, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect

from . import video
from .delivery import webhooks
from .delivery.wakeups import Wakeups
from .settings import Settings
from .storage import Store
from .verification import Verifier

csrf = CSRFProtect()
# Rules and storage are set by limits.init_app; the views name their limits (limits.PAGE, ...).
limiter = Limiter(key_func=get_remote_address, default_limits=["300 per minute"],
                  headers_enabled=True, strategy="moving-window")


@dataclass
class Services:
    """What the views use, built once per app: settings, database, ffmpeg, one video's path."""

    settings: Settings
    store: Store
    verifier: Verifier  # one video's path: normaliser, Juhe client, queue (webapp/verification.py)
    tools: video.Tools
    dispatcher: webhooks.Dispatcher
    uploads: Path  # the private folder where uploads live while they are verified
    wakeups: Wakeups  # a settled attempt wakes the page's waiting state request (Redis broker only)


def json_error(status: int, code: str, message: str, *, message_zh: str | None = None,
               field: str | None = None, **extra) -> Response:
    """The one error shape of every JSON answer, API and page alike:
    `{"error": {"code", "message", "message_zh"?, "field"?}, **extra}` with the status;
    `message` in English, `message_zh` in Chinese."""
    error = {"code": code, "message": message}
    if message_zh:
        error["message_zh"] = message_zh
    if field:
        error["field"] = field
    response = jsonify({"error": error, **extra})
    response.status_code = status
    return response


def services() -> Services:
    """The current app's services (inside a request or app context)."""
    return current_app.extensions["liveness"]


# Who an answer is for (`audience`).
API, PAGE_CALL, PAGE = "api", "page_call", "page"


def audience() -> str:
    """Who reads this request's answer: the operator API's caller (`/api/…`), the capture page's
    script (its JSON calls: `/v/<token>/…`, and any but a GET of the page itself), or a person's
    browser showing a page (the capture page, the standalone form, the console)."""
    path = request.path
    if path.startswith("/api/"):
        return API
    if path.startswith("/v/") and (request.method not in ("GET", "HEAD") or path.rstrip("/").count("/") > 2):
        return PAGE_CALL
    return PAGE


def error_answer(status: int, code: str, message: str, message_zh: str, *,
                 api: tuple[str, str, str] | None = None, title: str = "请稍后再试",
                 retry_after: int | None = None) -> Response:
    """An error answered in the form its asker reads (`audience`), the one place that decides:
    the API and the page's script get `json_error` (`message` English, `message_zh` Chinese),
    a page the message to read (`title`, `message_zh`). `api`: (code, message, message_zh) for
    the operator API where its words differ from the person's. Retry-After when given."""
    asker = audience()
    if asker == PAGE:
        response = current_app.make_response(render_template("message.html", title=title, message=message_zh))
        response.status_code = status
    else:
        if asker == API and api is not None:
            code, message, message_zh = api
        response = json_error(status, code, message, message_zh=message_zh)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
