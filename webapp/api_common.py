"""What both parts of the operator API share: its one error (`ApiError` → `{"error": …}`), the
checks of the fields it accepts, and the rule of which sessions an operator may see.

Kept apart from the endpoints (`webapp.api`, `webapp.api_video`) so that both read the same
rules and neither imports the other.
"""
from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

from flask import g

from . import sessions, targets
from .extensions import json_error, services
from .storage import VerificationSession, find_session, lock_session
from .vocabulary import Mode

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



def state_error(error: sessions.SessionStateError) -> ApiError:
    return ApiError(error.status, error.code, f"{error.message_zh} {error.message}")



def own_session(db, session_id: str, lock: bool = False) -> VerificationSession:
    """The session with this id if this operator may see it; else a 404. `lock`: locked for
    this request (before it is refreshed, which may change it)."""
    session = (lock_session if lock else find_session)(db, id=session_id)
    if session is None or not visible(session):
        raise ApiError(404, "not_found", "No such session.")
    return session


def visible(session: VerificationSession) -> bool:
    """Operators see their own sessions; standalone ones only in sandbox (for trying things)."""
    if session.operator == "standalone":
        return services().settings.sandbox
    return session.operator == g.operator


def checked_mode(value) -> str:
    if value not in tuple(Mode):
        raise ApiError(422, "invalid_mode", "mode must be silent, number, action or random.", "mode")
    return value


def encodable(name: str, value) -> None:
    """Refuse a string that cannot be stored or sent as UTF-8 (a lone surrogate, which JSON's
    `\\ud800` escapes can carry). Nested values are refused by each field's own type check."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(422, f"invalid_{name}",
                           f"{name} must be valid Unicode text (it holds a lone surrogate).", name) from None


def has_category(value: str, categories: frozenset[str]) -> bool:
    return any(unicodedata.category(c) in categories for c in value)


def checked_text(body: dict, name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError(422, f"invalid_{name}", f"{name} must be a string of at most {limit} characters.", name)
    encodable(name, value)
    if has_category(value, CONTROL):
        raise ApiError(422, f"invalid_{name}", f"{name} must not contain control characters.", name)
    return value


def checked_url(body: dict, name: str) -> str | None:
    value = checked_text(body, name, 2000)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        host = parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not host
            or has_category(value, URL_UNSAFE)):
        raise ApiError(422, f"invalid_{name}",
                       f"{name} must be an absolute http(s) URL (no spaces or control characters).", name)
    if name == "callback_url":
        checked_callback_target(value)
    return value


def checked_callback_target(url: str) -> None:
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


def checked_embed_origin(value, allowed: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    origin = value.rstrip("/").lower() if isinstance(value, str) else None
    if origin not in allowed:
        raise ApiError(422, "invalid_embed_origin", "embed_origin must be one of EMBED_ORIGINS.", "embed_origin")
    return origin


def checked_flag(body: dict, name: str) -> bool | None:
    """An optional true/false field (None when absent)."""
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise ApiError(422, f"invalid_{name}", f"{name} must be true or false.", name)
    return value


def checked_best_frames(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ApiError(422, "invalid_best_frames",
                       "best_frames must be 0 (none), 1 (the best frame) or 2-10 (that many frames).",
                       "best_frames")
    return value
