"""What both parts of the operator API share: its one error (`ApiError` → `{"error": …}`), the
checks of the fields it accepts, and the rule of which sessions an operator may see.

Kept apart from the endpoints (`webapp.api.views`, `webapp.api.video`) so that both read the same
rules and neither imports the other.
"""
from __future__ import annotations

import ipaddress
import re
import socket
import unicodedata
from urllib.parse import urlsplit

import ada_url
from flask import g

from .. import sessions
from ..delivery import targets
from ..extensions import json_error, services
from ..storage import VerificationSession, find_session, lock_session
from ..vocabulary import Mode

LIMIT_RE = re.compile(r"[0-9]{1,3}")  # ASCII only: str.isdigit() takes "²" and other scripts' digits
# Characters that make no sense in these fields: control characters everywhere (a database may
# refuse NUL); in URLs also format characters (bidi overrides, zero-width) and whitespace.
CONTROL = frozenset({"Cc"})
URL_UNSAFE = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


class ApiError(Exception):
    """An error of the operator API: `message` in English, `message_zh` in Chinese where there
    is one (words the operator may pass on), `field` the request field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, *,
                 message_zh: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.message_zh = message_zh


def error_response(status: int, code: str, message: str, field: str | None = None, *,
                   message_zh: str | None = None):
    """`{"error": {"code", "message", "message_zh"?, "field"?}}` with the status (a bearer
    challenge on 401): the pages' shape (`extensions.json_error`)."""
    response = json_error(status, code, message, message_zh=message_zh, field=field)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="liveness"'
    return response


def state_error(error: sessions.SessionStateError) -> ApiError:
    return ApiError(error.status, error.code, error.message, message_zh=error.message_zh)



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
    """An absolute http(s) URL that a browser (the WHATWG URL standard, `ada_url`) and Python's
    parsers (urllib, and requests, which sends webhooks) read alike, else a 422 naming `name`.
    return_url comes back as the browser spells it (host in lower-case ASCII, IDNA), so the host
    the consent screen names (pages._asker) is the host the browser goes to."""
    value = checked_text(body, name, 2000)
    if value is None:
        return None
    problem, spelled = url_problem(value)
    if problem:
        raise ApiError(422, f"invalid_{name}", f"{name} must be an absolute http(s) URL: {problem}.", name)
    if name == "callback_url":
        checked_callback_target(value)
        return value  # sent by requests, which reads it as checked
    return spelled


def url_problem(value: str) -> tuple[str | None, str]:
    """(what is wrong with `value` as an http(s) URL, or None; the browser's spelling of it).

    Browsers parse URLs by the WHATWG rules, which differ from urllib's and requests': `\\` is
    `/` (`https://evil.example\\@op.example/` goes to evil.example, urllib names op.example),
    tabs and newlines are dropped, `https:evil.example` has a host. So refused: spaces, control
    and format characters, backslashes, user info (`user@`), and any URL whose scheme, host or
    port the two readings do not agree on (numeric hosts compare as addresses: `127.1` is
    127.0.0.1 to both)."""
    if has_category(value, URL_UNSAFE):
        return "no spaces or control characters (percent-encode them)", value
    if "\\" in value:
        return "no backslash (a browser reads it as /; percent-encode it as %5C)", value
    try:
        browser = ada_url.URL(value)
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return "not a URL a browser can open", value
    if browser.protocol not in ("http:", "https:") or parts.scheme.lower() not in ("http", "https"):
        return "only http and https", value
    if not parts.hostname or not parts.netloc:
        return "a host after the scheme's //, as in https://host/path", value
    if browser.username or browser.password or "@" in parts.netloc:
        return "no user name or password before the host (user@host)", value
    try:
        scheme, host, port = targets.split(value)
    except targets.TargetRefused:
        return "its host is not one every client reads alike (write it in ASCII: xn--…)", value
    seen = browser.hostname.removeprefix("[").removesuffix("]")
    named = parts.hostname  # urllib's reading (an ASCII one compares as it is; IDNA: requests' above)
    if (scheme + ":" != browser.protocol or not _same_host(seen, host)
            or (named.isascii() and not _same_host(seen, named))
            or port != (int(browser.port) if browser.port else targets.DEFAULT_PORTS[scheme])):
        return "its host is read differently by browsers and servers", value
    spelled = browser.href
    again = urlsplit(spelled)
    if again.hostname != seen.lower() or "@" in again.netloc:
        return "its host is read differently by browsers and servers", value
    return None, spelled


def _same_host(browser: str, other: str) -> bool:
    """Whether the WHATWG host (an address in canonical form, or an ASCII name) is the host
    requests connects to (the socket layer reads `127.1`, `0x7f000001`… as addresses)."""
    try:
        address = ipaddress.ip_address(browser)
    except ValueError:
        address = None
    try:
        numeric = ipaddress.ip_address(other) if ":" in other else ipaddress.IPv4Address(socket.inet_aton(other))
    except (OSError, ValueError):
        numeric = None
    if address is None or numeric is None:
        return address is None and numeric is None and browser == other.lower()
    return address == numeric


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


LOCALES = ("zh", "en")


def checked_locale(value) -> str | None:
    """The page's language for this session: "zh", "en", or absent/null (the person's)."""
    if value is None:
        return None
    if value not in LOCALES:
        raise ApiError(422, "invalid_locale",
                       "locale must be \"zh\" or \"en\" (or left out: the person's own language).", "locale")
    return value


def checked_best_frames(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10:
        raise ApiError(422, "invalid_best_frames",
                       "best_frames must be 0 (none), 1 (the best frame) or 2-10 (that many frames).",
                       "best_frames")
    return value
