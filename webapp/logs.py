"""Logging that cannot leak what must not leak: the Juhe key and full ID numbers.

Code logs masked identities on purpose; this is the second line of defence for anything that
slips through (an exception message, a library's debug line). It works at record creation, so
every handler sees the redacted text, including handlers added later (gunicorn's, pytest's).
"""
from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import re

from .identity import mask_idcard
from .settings import Settings

_IDCARD = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_PAGE_TOKEN = re.compile(r"(/v/)[A-Za-z0-9_-]{16,}")   # a capture page's token is a credential
_secrets: set[str] = set()
_installed = False
# The id of the request (or task) being worked on: every log line carries it.
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def redact(text: str) -> str:
    """`text` with ID numbers masked, page tokens and known secrets replaced by `***`."""
    clean = _IDCARD.sub(lambda m: mask_idcard(m.group(0).upper()) or "", text)
    clean = _PAGE_TOKEN.sub(r"\1***", clean)
    for secret in _secrets:
        clean = clean.replace(secret, "***")
    return clean


def _install_factory() -> None:
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:
            return record
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return record

    logging.setLogRecordFactory(factory)
    _installed = True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id (and the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage(),
                "request_id": getattr(record, "request_id", None)}
        if record.exc_info or record.exc_text:
            line["exception"] = record.exc_text or redact(self.formatException(record.exc_info or (None, None, None)))
        return json.dumps(line, ensure_ascii=False)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure(settings: Settings) -> None:
    """Install the redaction and a handler (plain text, or JSON lines when LOG_FORMAT=json) on
    the root logger if it has none."""
    _secrets.update(s for s in (settings.JUHE_KEY, settings.WEBHOOK_SECRET, settings.WEBHOOK_SECRET_PREVIOUS,
                                settings.SECRET_KEY,
                                *settings.OPERATOR_API_KEYS) if s and len(s) >= 6)
    _install_factory()
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.addFilter(_RequestIdFilter())
        if settings.LOG_FORMAT == "json":
            handler.setFormatter(JsonFormatter())
        else:
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(settings.LOG_LEVEL.upper())
