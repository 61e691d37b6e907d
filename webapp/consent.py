"""The consent receipt: proof, for an operator's auditor, of what the person agreed to (or declined)
on the consent screen, when, in which language, and asked by whom.

Flask-free. The consent screen's text, as rendered for one session (its asker, its retention,
its mode), is kept once per version (`consent_texts`): the version is the first 16 hex digits of
the SHA-256 of the words shown. The page reports the version it showed with the person's answer
(page_events); the session keeps one receipt, returned in the session JSON and the webhook,
shown in the console, and purged with the session. A given consent is never replaced by a later
decline (a video may have been sent under it); the events keep every answer.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from urllib.parse import urlsplit

from sqlalchemy import DateTime, String, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .storage import Base, VerificationSession, isoformat, utcnow

GIVEN, DECLINED = "given", "declined"


class ConsentText(Base):
    """The words of one version of the consent screen, kept for as long as the service runs."""

    __tablename__ = "consent_texts"

    version: Mapped[str] = mapped_column(String(16), primary_key=True)
    language: Mapped[str] = mapped_column(String(5))
    text: Mapped[str] = mapped_column(Text)
    first_shown_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


def words(html: str) -> str:
    """The words a person reads in a rendered piece of HTML: tags dropped, entities read, spaces
    folded (so that a template's indentation is not a new version)."""
    from markupsafe import Markup  # Jinja's own reading of HTML, no Flask
    return re.sub(r"\s+", " ", Markup(html).striptags()).strip()


def version_of(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def keep(db: Session, text: str, language: str) -> str:
    """Keep `text` (the consent screen's words) under its version, once; its version."""
    version = version_of(text)
    if db.get(ConsentText, version) is None:
        try:
            with db.begin_nested():  # another page may be keeping the same version right now
                db.add(ConsentText(version=version, language=language, text=text, first_shown_at=utcnow()))
        except IntegrityError:
            pass
    return version


def asker(session: VerificationSession) -> str | None:
    """Who asks for the verification, as the person can check it: the host of the operator's
    page that frames it or that it returns to (None when neither is known)."""
    for url in (session.embed_origin, session.return_url):
        if url:
            return urlsplit(url).hostname
    return None


def record(db: Session, session: VerificationSession, decision: str, version: str | None,
           language: str | None, via: str = "page") -> bool:
    """Keep the person's answer as the session's receipt (the caller commits). A version this
    service never showed is refused (False), as is a decline after a consent was given."""
    if version is None or db.get(ConsentText, version) is None:
        return False
    current = receipt(session)
    if current is not None and current["decision"] == GIVEN:
        return False
    session.consent_json = json.dumps({
        "decision": decision, "at": isoformat(utcnow()), "language": language,
        "asker": asker(session), "text_version": version, "via": via})
    return True


def receipt(session: VerificationSession) -> dict | None:
    """The session's receipt: {"decision", "at", "language", "asker", "text_version", "via"}."""
    return json.loads(session.consent_json) if session.consent_json else None


def text_of(db: Session, version: str) -> ConsentText | None:
    return db.get(ConsentText, version)
