"""Every setting of the service, read from the environment (and `.env`) in one place.

The names and defaults are the product's contract (docs/contract.md, "Configuration"); a few
settings of our own (upload size, ffmpeg paths, timeouts, retention) follow them. Values are
typed and checked here, so a misconfigured deployment stops at start with a message naming the
variable, not at the first request.
"""
from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .theming import Theme, parse_themes
from .video import static_ffmpeg
from .vocabulary import Mode

DEFAULT_JUHE_URL = "https://apis.juhe.cn/antiFaceId/query"
SANDBOX_OPERATOR_KEY = "sandbox-operator-key"

class ConfigurationError(RuntimeError):
    """The environment does not describe a usable deployment."""


def _origin(value: str) -> str:
    """Normalise `https://Host:port/` to `https://host:port`; reject anything else."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") \
            or parts.query or parts.fragment:
        raise ValueError(f"{value!r} is not an origin like https://example.com")
    return f"{parts.scheme}://{parts.netloc.lower()}"


class Settings(BaseSettings):
    """The service's configuration. Field names are the environment variables' names."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore",
                                      case_sensitive=True)

    JUHE_KEY: str | None = None
    JUHE_API_URL: str = DEFAULT_JUHE_URL
    SECRET_KEY: str | None = None
    DATABASE_URL: str | None = None
    OPERATOR_API_KEYS: Annotated[tuple[str, ...], NoDecode] = ()
    EMBED_ORIGINS: Annotated[tuple[str, ...], NoDecode] = ()
    PASS_SCORE: float = Field(70.0, ge=0, le=100)
    LIVENESS_MODE: Mode = Mode.NUMBER
    MAX_ATTEMPTS: int = Field(3, ge=1, le=20)
    SESSION_TTL: int = Field(900, ge=60, le=7 * 24 * 3600)
    STANDALONE: bool | None = None
    WEBHOOK_SECRET: str | None = None
    # During a rotation: the secret being retired. Webhooks then carry a second v1= made with it.
    WEBHOOK_SECRET_PREVIOUS: str | None = None
    WEBHOOK_ALLOW_PRIVATE: bool | None = None   # callback_url on loopback/private hosts
    PUBLIC_URL: str | None = None

    # Our own settings (not in the contract; documented in README and .env.example).
    MAX_UPLOAD_MB: int = Field(50, ge=1, le=500)
    FFMPEG_BINARY: str = "auto"   # auto: the static ffmpeg of imageio-ffmpeg, else ffmpeg on PATH
    FFPROBE_BINARY: str = "ffprobe"
    FFMPEG_TIMEOUT: float = Field(60.0, gt=0)
    UPLOAD_DIR: str | None = None   # private folder for uploads in progress (default: instance/uploads)
    # Below this free space (MB) in UPLOAD_DIR (or a SQLite database's folder) /readyz answers 503;
    # an upload at MAX_UPLOAD_MB takes about twice that while it is verified. 0: no check.
    UPLOAD_MIN_FREE_MB: int = Field(256, ge=0)
    JUHE_CONNECT_TIMEOUT: float = Field(5.0, gt=0)
    JUHE_READ_TIMEOUT: float = Field(60.0, gt=0)
    CHALLENGE_TTL: int = Field(300, ge=30)
    ACTION_FALLBACK: bool = True  # number mode may become action mode when the microphone fails
    RETENTION_DAYS: int = Field(30, ge=1)
    CELERY_BROKER_URL: str | None = None   # e.g. redis://…: verifications and webhooks run in Celery workers
    # Seconds after which a dead Celery worker's unacknowledged tasks go to another worker (the
    # Redis transport's visibility timeout, webapp.delivery.tasks.configure). A task still running then is
    # delivered again too, and that copy does nothing. Below sessions.QUEUE_SECONDS (180 s), after
    # which a queued attempt no worker took is released.
    CELERY_VISIBILITY_SECONDS: int = Field(20, ge=1, le=120)
    RATELIMIT_STORAGE_URI: str | None = None   # unset: SQLite file in the instance folder (limits.py)
    PROXY_HOPS: int = Field(0, ge=0, le=5)   # reverse proxies in front (X-Forwarded-* trusted)
    # Your proxies in front of scripts/serve.sh's nginx (addresses or networks, comma-separated):
    # its per-address limits count the client they name in X-Forwarded-For (deploy/nginx.conf).
    PROXY_ADDRESSES: Annotated[tuple[str, ...], NoDecode] = ()
    # gunicorn's threads per worker (gunicorn.conf.py reads it from the environment for gunicorn
    # itself): at most half of them wait for a verdict in a state request (webapp.delivery.wakeups).
    GUNICORN_THREADS: int = Field(8, ge=1, le=1024)
    LOG_LEVEL: str = "INFO"
    LOG_FORMAT: Literal["text", "json"] = "text"   # json: one object per line, with the request id
    # Bearer key for /metrics, whose counts are service-wide (every operator's traffic); unset,
    # the operator key reads them only when it is the one configured (operators_read_metrics).
    METRICS_KEY: str | None = Field(None, min_length=16)
    VIDEO_URL_ALLOW_PRIVATE: bool | None = None   # video_url on loopback/private hosts (sandbox: on)
    # Fernet keys sealing best frames at rest, comma-separated: the first seals, all open (rotation).
    # Unset: one derived from SECRET_KEY (webapp.best_frames).
    BEST_FRAMES_KEY: Annotated[tuple[str, ...], NoDecode] = ()
    BEST_FRAMES_RETENTION: int = Field(3 * 24 * 3600, ge=60)   # seconds; "3d", "72h", "90m" accepted
    # JSON: operator key, its fingerprint or "standalone" → {"color", "logo", "name"} (webapp.theming).
    OPERATOR_THEMES: Annotated[dict[str, Theme], NoDecode] = Field(default_factory=dict)

    @field_validator("JUHE_KEY", "SECRET_KEY", "DATABASE_URL", "WEBHOOK_SECRET", "WEBHOOK_SECRET_PREVIOUS",
                     "PUBLIC_URL",
                     "UPLOAD_DIR", "CELERY_BROKER_URL", "STANDALONE", "WEBHOOK_ALLOW_PRIVATE",
                     "VIDEO_URL_ALLOW_PRIVATE", "METRICS_KEY", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("FFMPEG_BINARY")
    @classmethod
    def _ffmpeg(cls, value: str) -> str:
        return static_ffmpeg() if value.strip() in ("", "auto") else value

    @field_validator("OPERATOR_API_KEYS", mode="before")
    @classmethod
    def _split_keys(cls, value):
        if isinstance(value, str):
            return tuple(k.strip() for k in value.split(",") if k.strip())
        return value

    @field_validator("BEST_FRAMES_KEY", mode="before")
    @classmethod
    def _fernet_keys(cls, value):
        if isinstance(value, str):
            value = tuple(k.strip() for k in value.split(",") if k.strip())
        from cryptography.fernet import Fernet
        for key in value:
            try:
                Fernet(key)
            except (ValueError, TypeError):
                raise ValueError("each key must be a Fernet key (32 bytes, url-safe base64): make one with "
                                 "python -c 'from cryptography.fernet import Fernet; "
                                 "print(Fernet.generate_key().decode())'") from None
        return tuple(value)

    @field_validator("BEST_FRAMES_RETENTION", mode="before")
    @classmethod
    def _duration(cls, value):
        """Seconds, or a number with s, m, h or d ("3d")."""
        if isinstance(value, str):
            text = value.strip().lower()
            unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}.get(text[-1:])
            number = text[:-1] if unit else text
            if not number.isascii() or not number.isdigit():
                raise ValueError(f"{value!r} is not a duration like 3d, 72h, 90m or 3600")
            return int(number) * (unit or 1)
        return value

    @field_validator("PROXY_ADDRESSES", mode="before")
    @classmethod
    def _networks(cls, value):
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network (10.0.0.0/8, 2001:db8::1)") from None
        return tuple(value)

    @field_validator("OPERATOR_THEMES", mode="before")
    @classmethod
    def _themes(cls, value):
        return parse_themes(value)

    @field_validator("EMBED_ORIGINS", mode="before")
    @classmethod
    def _split_origins(cls, value):
        if isinstance(value, str):
            value = value.split()
        return tuple(_origin(v) for v in value)

    @field_validator("JUHE_API_URL", "PUBLIC_URL")
    @classmethod
    def _http_url(cls, value):
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"{value!r} is not an http(s) URL")
            value = value.rstrip("/")
        return value

    @field_validator("LIVENESS_MODE", mode="before")
    @classmethod
    def _lower_mode(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _production_needs(self):
        if self.JUHE_KEY is not None:
            if not self.SECRET_KEY:
                raise ValueError("SECRET_KEY is required when JUHE_KEY is set")
            if len(self.SECRET_KEY) < 16:
                raise ValueError("SECRET_KEY must be at least 16 characters")
        if self.WEBHOOK_SECRET_PREVIOUS is not None:
            if not self.WEBHOOK_SECRET:
                raise ValueError("WEBHOOK_SECRET_PREVIOUS needs WEBHOOK_SECRET (the new secret) to be set")
            if self.WEBHOOK_SECRET_PREVIOUS == self.WEBHOOK_SECRET:
                raise ValueError("WEBHOOK_SECRET_PREVIOUS must differ from WEBHOOK_SECRET")
        return self

    # -- derived values -------------------------------------------------------------------
    @property
    def sandbox(self) -> bool:
        """No Juhe key: no paid call is ever made."""
        return self.JUHE_KEY is None

    @property
    def operator_keys(self) -> tuple[str, ...]:
        if self.OPERATOR_API_KEYS:
            return self.OPERATOR_API_KEYS
        return (SANDBOX_OPERATOR_KEY,) if self.sandbox else ()

    @property
    def operators_read_metrics(self) -> bool:
        """Whether an operator key may read the service-wide counts (/metrics, the console's
        table of every upload's outcome): only when it is the one key configured, since with
        several they mix other operators' traffic (then /metrics wants METRICS_KEY)."""
        return len(self.operator_keys) == 1

    @property
    def webhook_allow_private(self) -> bool:
        """Sandbox tries webhooks on a local receiver; production refuses internal targets."""
        return self.sandbox if self.WEBHOOK_ALLOW_PRIVATE is None else self.WEBHOOK_ALLOW_PRIVATE

    @property
    def video_url_allow_private(self) -> bool:
        """The operator API's video_url: sandbox may fetch from a local server; production
        refuses internal addresses (the service must not be a way into its own network)."""
        return self.sandbox if self.VIDEO_URL_ALLOW_PRIVATE is None else self.VIDEO_URL_ALLOW_PRIVATE

    @property
    def standalone(self) -> bool:
        return self.sandbox if self.STANDALONE is None else self.STANDALONE


def read_settings(overrides: dict | None = None) -> Settings:
    """The settings as the environment (and `.env`) give them, checked; ConfigurationError naming
    every bad variable. `overrides` (tests) take precedence over the environment. SECRET_KEY may
    still be unset: `load_settings` (or `with_instance_secret`) completes it."""
    try:
        return Settings(**(overrides or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'configuration'}: {err['msg']}"
            for err in exc.errors())
        raise ConfigurationError(f"invalid configuration: {problems}") from None


def with_instance_secret(settings: Settings, instance_path: str | Path) -> Settings:
    """`settings`, with the instance folder's secret when no SECRET_KEY was given (sandbox)."""
    if settings.SECRET_KEY is None:
        settings.SECRET_KEY = _instance_secret(Path(instance_path))
    return settings


def load_settings(instance_path: str | Path, overrides: dict | None = None) -> Settings:
    """Read the settings; raise ConfigurationError naming every bad variable.

    `overrides` (tests) take precedence over the environment. In sandbox mode a missing
    SECRET_KEY is made once and kept in the instance folder, so restarts keep sessions valid.
    """
    return with_instance_secret(read_settings(overrides), instance_path)


def _instance_secret(instance_path: Path) -> str:
    """The instance's secret, made once: several workers starting together all read the one
    that was written first (written whole, then linked into place, so never read half-made)."""
    path = instance_path / "secret_key"
    if not path.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        fd, draft = tempfile.mkstemp(dir=instance_path, prefix=".secret_key-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another worker was first: use its key
        finally:
            os.unlink(draft)
    return path.read_text().strip()
