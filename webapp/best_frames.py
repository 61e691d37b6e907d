"""Juhe's best frames (`bestBase64`, `bestList`): sealed at rest, readable for a while, purged.

Flask-free. A session created with `best_frames` > 0 asks Juhe for them; what Juhe returns is
sealed with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under BEST_FRAMES_KEY and
stored per attempt (storage.BestFrames). The operator reads the newest set with
`GET /api/v1/sessions/<id>/best-frames` until BEST_FRAMES_RETENTION after it was stored (3 days
by default, as Tencent keeps them); housekeeping then drops the sealed data and keeps only the
fact that there were frames. The frames are never logged and never in a webhook: the session
JSON says whether they exist (`summary`), not what they are.

Keys: BEST_FRAMES_KEY holds one or more Fernet keys (comma-separated); the first seals, every
one opens, so a key can be rotated. Unset, the key is derived from SECRET_KEY (HKDF-SHA256 with
its own label, so it is not the cookie-signing key itself).
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from .settings import Settings
from .storage import Attempt, BestFrames, VerificationSession, isoformat, utcnow

log = logging.getLogger(__name__)
_LABEL = b"liveness-capture best frames v1"


class Unreadable(Exception):
    """Sealed frames that none of the configured keys opens (the key was rotated away)."""


class Vault:
    """Seals and opens frame lists with the configured keys."""

    def __init__(self, keys: list[bytes]):
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def seal(self, frames: list[str]) -> bytes:
        return self._fernet.encrypt(json.dumps(frames).encode())

    def open(self, token: bytes) -> list[str]:
        try:
            return json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            raise Unreadable("no key of BEST_FRAMES_KEY opens these frames") from None


def vault(settings: Settings) -> Vault:
    """The vault for these settings: BEST_FRAMES_KEY, else a key derived from SECRET_KEY."""
    if settings.BEST_FRAMES_KEY:
        return Vault([k.encode() for k in settings.BEST_FRAMES_KEY])
    assert settings.SECRET_KEY, "load_settings always sets SECRET_KEY"
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(
        settings.SECRET_KEY.encode())
    return Vault([base64.urlsafe_b64encode(derived)])


def frames_of(best_base64: str | None, best_list: tuple[str, ...]) -> list[str]:
    """Juhe's answer's frames: the best one (bestBase64=1), or the list (bestFrameNum)."""
    return ([best_base64] if best_base64 else []) + list(best_list)


def keep(db: Session, settings: Settings, session: VerificationSession, attempt: Attempt,
         frames: list[str]) -> None:
    """Seal and store an attempt's frames, if the session asked for them (else they are dropped)."""
    if not frames or not session.best_frames:
        return
    now = utcnow()
    session.kept_frames.append(BestFrames(
        attempt_id=attempt.id, session_id=session.id, count=len(frames), created_at=now,
        expires_at=now + dt.timedelta(seconds=settings.BEST_FRAMES_RETENTION),
        data=vault(settings).seal(frames)))


def newest(session: VerificationSession) -> BestFrames | None:
    return session.kept_frames[-1] if session.kept_frames else None


def deadline(settings: Settings, kept: BestFrames) -> dt.datetime:
    """When a set stops being readable: its expires_at, or sooner if BEST_FRAMES_RETENTION was
    shortened since it was stored."""
    return min(kept.expires_at, kept.created_at + dt.timedelta(seconds=settings.BEST_FRAMES_RETENTION))


def readable(settings: Settings, kept: BestFrames | None, now: dt.datetime | None = None) -> bool:
    return kept is not None and kept.data is not None and (now or utcnow()) < deadline(settings, kept)


def summary(session: VerificationSession, now: dt.datetime | None = None) -> dict:
    """What the session JSON (and so the webhook) says of the frames: whether there are any to
    fetch and until when, never the frames."""
    kept = newest(session)
    available = kept is not None and kept.data is not None and (now or utcnow()) < kept.expires_at
    return {"requested": session.best_frames, "available": available,
            "count": kept.count if kept else 0, "expires_at": isoformat(kept.expires_at) if kept else None}


def purge(db: Session, settings: Settings, now: dt.datetime | None = None) -> int:
    """Drop the sealed data of every set past its deadline; return how many sets."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(seconds=settings.BEST_FRAMES_RETENTION)
    result = db.execute(
        update(BestFrames)
        .where(BestFrames.data.is_not(None), or_(BestFrames.expires_at <= now, BestFrames.created_at <= cutoff))
        .values(data=None, purged_at=now).execution_options(synchronize_session=False))
    purged: int = result.rowcount  # type: ignore[attr-defined]  # an UPDATE's CursorResult
    if purged:
        log.info("best frames of %d attempt(s) purged (BEST_FRAMES_RETENTION)", purged)
    return purged
