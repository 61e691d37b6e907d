"""Rate limits (Flask-Limiter): per client IP on pages, uploads and the standalone form, per
operator key on the API. A breach answers 429 with Retry-After, in the caller's format.

Storage is RATELIMIT_STORAGE_URI. Unset, the counts live in `ratelimits.sqlite3` in the instance
folder (webapp/ratelimit_storage.py), shared by every gunicorn worker of the machine, so a client
gets the stated budget however many workers serve it; `redis://...` shares them between hosts;
`memory://` counts per process (each worker its own budget). A test app (TESTING) without a
storage of its own counts in memory, so one test's hits never reach the next.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from flask import Flask, request
from limits.errors import ConfigurationError as LimitsConfigurationError

from . import ratelimit_storage
from .extensions import error_answer, limiter
from .settings import ConfigurationError, Settings

PAGE = "60 per minute"
CHALLENGE = "20 per minute;120 per hour"
UPLOAD = "10 per minute;60 per hour"
EVENTS = "60 per minute;600 per hour"  # a page reports a dozen milestones an attempt
API = "300 per minute"
API_PER_IP = "600 per minute"
# The standalone form lets anyone test whether a name matches an ID number (a paid 267509 answer
# says so), so with a real key it is off by default and, when turned on, tightly limited.
STANDALONE_SANDBOX = "10 per minute;60 per hour"
STANDALONE_LIVE = "3 per hour;10 per day"


def bearer_key() -> str:
    """The bearer key this request presents, read as the operator API authenticates it: the
    scheme in any case, spaces around the key dropped ("" when there is none)."""
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return presented.strip() if scheme.lower() == "bearer" else ""


def operator_key() -> str:
    """Count API calls per presented bearer key (hashed; the key is never stored), read as
    authentication reads it: `bearer KEY` or `Bearer  KEY ` spend the same budget as `Bearer KEY`."""
    return "op:" + hashlib.sha256(bearer_key().encode()).hexdigest()[:24]


def storage_uri(app: Flask, settings: Settings) -> str:
    """RATELIMIT_STORAGE_URI, else the instance folder's SQLite file (memory for a test app)."""
    if settings.RATELIMIT_STORAGE_URI and settings.RATELIMIT_STORAGE_URI.strip():
        return settings.RATELIMIT_STORAGE_URI.strip()
    if app.config.get("TESTING"):
        return "memory://"
    return ratelimit_storage.uri_for(Path(app.instance_path) / "ratelimits.sqlite3")


def init_app(app: Flask, settings: Settings) -> None:
    app.config.setdefault("RATELIMIT_STORAGE_URI", storage_uri(app, settings))
    # A shared store that is away (Redis restarting) must not turn every request into a 500:
    # each process counts in memory meanwhile, and goes back to the store once it answers.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    # Flask-Limiter keeps `enabled` from the last app it saw as the next one's default: an app
    # (a test's) that turned limits off would leave them off for the next app in the process.
    limiter.enabled = True
    try:
        limiter.init_app(app)
    except LimitsConfigurationError as exc:
        raise ConfigurationError(f"RATELIMIT_STORAGE_URI: {exc}") from exc

    @app.errorhandler(429)
    def _too_many(_error):
        # Flask-Limiter adds Retry-After (and the X-RateLimit headers) to this response.
        return error_answer(429, "rate_limited", "Too many requests; retry later.", "操作太频繁，请稍等一会儿再试。")
