"""Where sessions, challenges and attempts live: SQLAlchemy models and the database handle.

SQLite (a file in the instance folder) by default, any SQLAlchemy `DATABASE_URL` otherwise.
Times are stored as naive UTC.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    CursorResult,
    DateTime,
    Executable,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    select,
    text,
    true,
)
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    joinedload,
    mapped_column,
    relationship,
    sessionmaker,
)

from .vocabulary import IN_FLIGHT, LIVENESS_TYPE, AttemptState, SessionStatus

__all__ = ["Attempt", "Base", "BestFrames", "Challenge", "ConsoleSignIn", "QueuedVideo", "Store",
           "VerificationSession", "affected", "file_lock", "find_session", "isoformat", "lock_session",
           "precise_utcnow", "utcnow"]


def precise_utcnow() -> dt.datetime:
    """The time to the microsecond, for orderings that must hold within one second (newest first)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def utcnow() -> dt.datetime:
    """The time in whole seconds (naive UTC, as every column stores it)."""
    return precise_utcnow().replace(microsecond=0)


def isoformat(value: dt.datetime | None) -> str | None:
    """Whole seconds, UTC, `Z`: what the API and webhooks print."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC, microsecond=0).isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    pass


class VerificationSession(Base):
    """One person proving one identity, created by an operator or the standalone form."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    page_token: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    operator: Mapped[str] = mapped_column(String(40))          # key fingerprint or "standalone"
    # The identity is kept only while the session can still be attempted; the masked form stays.
    realname: Mapped[str | None] = mapped_column(String(64))
    idcard: Mapped[str | None] = mapped_column(String(18))
    realname_masked: Mapped[str] = mapped_column(String(64))
    idcard_masked: Mapped[str] = mapped_column(String(18))
    mode: Mapped[str] = mapped_column(String(10))
    # Number mode may become action mode when the person's microphone is refused or silent
    # (sessions.switch_to_action): whether it may, and, once it did, when and why.
    action_fallback: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    requested_mode: Mapped[str | None] = mapped_column(String(10))
    mode_changed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    mode_change_reason: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default=SessionStatus.PENDING, index=True)
    reference: Mapped[str | None] = mapped_column(String(200))
    return_url: Mapped[str | None] = mapped_column(String(2000))
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    embed_origin: Mapped[str | None] = mapped_column(String(200))
    best_frames: Mapped[int] = mapped_column(Integer, default=0)  # 0 none, 1 best frame, 2-10 list
    # The page's language chosen by the operator ("zh", "en"); None: the person's (pages.page_language).
    locale: Mapped[str | None] = mapped_column(String(5))
    max_attempts: Mapped[int] = mapped_column(Integer)
    # The person's answer on the consent screen (webapp.consent): given or declined, when, in
    # which language, to whom, and the version of the text they were shown.
    consent_json: Mapped[str | None] = mapped_column(Text)
    pass_score: Mapped[float] = mapped_column(Float)
    sandbox: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="session", order_by="Attempt.id", cascade="all, delete-orphan")
    challenges: Mapped[list[Challenge]] = relationship(
        back_populates="session", order_by="Challenge.issued_at", cascade="all, delete-orphan")
    kept_frames: Mapped[list[BestFrames]] = relationship(
        order_by="BestFrames.attempt_id", cascade="all, delete-orphan")
    # The page's milestones (webapp.page_events).
    events: Mapped[list[PageEvent]] = relationship(
        order_by="PageEvent.id", cascade="all, delete-orphan", passive_deletes=True)

    @property
    def counted_attempts(self) -> int:
        return sum(1 for a in self.attempts if a.counts)

    @property
    def attempts_left(self) -> int:
        """How many more attempts may count: none once the session is over."""
        if self.status != SessionStatus.PENDING:
            return 0
        return max(0, self.max_attempts - self.counted_attempts)

    @property
    def in_flight(self) -> bool:
        """A video of this session is being prepared, queued or sent: it takes no other upload."""
        return any(a.in_flight for a in self.attempts)

    def is_expired(self, now: dt.datetime | None = None) -> bool:
        return (now or utcnow()) >= self.expires_at

    def forget_identity(self) -> None:
        """Drop the clear identity once no attempt can use it; the masked form remains."""
        self.realname = None
        self.idcard = None


class Challenge(Base):
    """What the person was asked to do for one attempt; used once, expires. It is open (the next
    upload may use it) until `finished_at` (used, or replaced by a new one) or `expires_at`."""

    __tablename__ = "challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(10))
    validate_data: Mapped[str | None] = mapped_column(String(8))
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)  # used or replaced

    session: Mapped[VerificationSession] = relationship(back_populates="challenges")

    def is_open(self, now: dt.datetime) -> bool:
        return self.finished_at is None and self.expires_at > now

    @property
    def liveness_type(self) -> int:
        return LIVENESS_TYPE[self.mode]


class Attempt(Base):
    """One request to Juhe (or one we tried to make) and what came of it."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    challenge_id: Mapped[str] = mapped_column(String(40))
    # vocabulary.AttemptState (IN_FLIGHT: not yet done or abandoned); see sessions.py.
    state: Mapped[str] = mapped_column(String(12), default=AttemptState.PREPARING, index=True)
    started_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # While in flight, the process working on the attempt renews this lease; a lapsed lease
    # means that process died, and the attempt stops blocking the session.
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime)
    owner: Mapped[str | None] = mapped_column(String(80))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    error_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[str | None] = mapped_column(String(40))     # guidance key (code or name)
    score: Mapped[float | None] = mapped_column(Float)
    orderid: Mapped[str | None] = mapped_column(String(64))
    charged: Mapped[bool | None] = mapped_column(Boolean)       # None: unknown (no answer came)
    counts: Mapped[bool] = mapped_column(Boolean, default=True)  # reserved while processing
    timings_json: Mapped[str | None] = mapped_column(Text)
    video_json: Mapped[str | None] = mapped_column(Text)
    # Where the upload came from (webapp.clients: a family and an OS, never the User-Agent).
    browser: Mapped[str | None] = mapped_column(String(40))
    os: Mapped[str | None] = mapped_column(String(40))
    # What the capture page's own check saw during the recording (webapp.page_checks), if it sent it.
    page_checks_json: Mapped[str | None] = mapped_column(Text)
    # What the page and the server noticed that may deserve a look (webapp.risk_signals): signals,
    # never a verdict.
    signals_json: Mapped[str | None] = mapped_column(Text)

    session: Mapped[VerificationSession] = relationship(back_populates="attempts")

    @property
    def in_flight(self) -> bool:
        return self.state in IN_FLIGHT

    @property
    def timings(self) -> dict:
        return json.loads(self.timings_json or "{}")

    @property
    def video(self) -> dict:
        return json.loads(self.video_json or "{}")

    @property
    def page_checks(self) -> dict | None:
        return json.loads(self.page_checks_json) if self.page_checks_json else None

    @property
    def signals(self) -> list[dict]:
        return json.loads(self.signals_json) if self.signals_json else []

    @property
    def video_report(self) -> dict:
        """For the operator: what the browser sent, which path its picture took here (its H.264
        copied as it came, or re-encoded: VP8, VP9, rotated, too large…), and where it came from."""
        source = self.video.get("source", {})
        received = ("container", "video_codec", "audio_codec", "width", "height", "duration")
        return {"received": {key: source.get(key) for key in received},
                "path": "copied" if self.video.get("remuxed") else "re-encoded",
                "browser": self.browser, "os": self.os}


class PageEvent(Base):
    """One milestone of one session's capture page (webapp.page_events): a name and a detail from
    closed lists, the browser family and OS it came from, never personal data."""

    __tablename__ = "page_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    name: Mapped[str] = mapped_column(String(24))
    detail: Mapped[str | None] = mapped_column(String(40))
    browser: Mapped[str | None] = mapped_column(String(40))
    os: Mapped[str | None] = mapped_column(String(40))


class BestFrames(Base):
    """The best frames Juhe returned with one attempt, sealed (webapp.best_frames): kept only
    for sessions that asked for them, readable until `expires_at` (BEST_FRAMES_RETENTION after
    they came); then `data` is purged and the row stays, so the operator learns they expired."""

    __tablename__ = "best_frames"

    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, index=True)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)
    data: Mapped[bytes | None] = mapped_column(LargeBinary)  # a Fernet token; None once purged
    purged_at: Mapped[dt.datetime | None] = mapped_column(DateTime)


class QueuedVideo(Base):
    """The normalised video of an attempt waiting for a Celery worker (≤ 6 MB, deleted once
    sent, or with its attempt): where every machine of the deployment can read it."""

    __tablename__ = "queued_videos"

    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ConsoleSignIn(Base):
    """One sign-in to the operator console (webapp.web.console), alive while its row is: the
    console's cookie carries a random id whose hash is `id`. Signing out deletes the row, so a
    copy of the cookie taken before opens nothing after; so does a key no longer configured, and
    the row lapses at `expires_at` (the cookie's lifetime)."""

    __tablename__ = "console_sign_ins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)   # sha256 hex of the cookie's id
    operator: Mapped[str] = mapped_column(String(40), index=True)    # the key's fingerprint
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class Store:
    """The database handle: an engine and a session factory.

    On SQLite every transaction is a write transaction (`BEGIN IMMEDIATE`), so a unit of work
    that reads a session and then changes it cannot interleave with another one doing the
    same; on PostgreSQL the same guarantee comes from `lock_session` (SELECT … FOR UPDATE).
    """

    def __init__(self, url: str):
        kwargs: dict = {"pool_pre_ping": True}
        sqlite = url.startswith("sqlite")
        if sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(url, **kwargs)
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def schema_lock(self, lock_dir: str | Path | None = None) -> Iterator:
        """A connection in a transaction that no other process's schema_lock runs beside: an
        advisory lock on PostgreSQL, a file lock (in `lock_dir`) on SQLite. webapp.migrate
        brings the schema up under it, once, however many workers start together."""
        if self.engine.dialect.name == "postgresql":
            with self.engine.begin() as conn:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                yield conn
            return
        with file_lock(Path(lock_dir or ".") / "schema.lock"), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed by the caller, rolled back on error, always closed."""
        db = self._factory()
        try:
            yield db
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    def problem(self) -> str | None:
        """None when the database answers; else why not (for /readyz)."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            return f"database unavailable: {type(exc).__name__}"
        return None


_SCHEMA_LOCK = zlib.crc32(b"liveness-capture schema")


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes of this machine (released when the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_connect(dbapi_conn, _record) -> None:
    # The driver's own transaction handling is off; `_sqlite_begin` opens every transaction.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")  # what session ids and page tokens are made of


def lock_session(db: Session, *, id: str | None = None, token: str | None = None) -> VerificationSession | None:
    """The session, locked for the rest of this transaction against every other unit of work
    that locks it, and read afresh (not from this unit's cache)."""
    query = _session_query(id, token)
    if query is None:
        return None
    return db.scalar(query.with_for_update().execution_options(populate_existing=True))


def affected(db: Session, statement: Executable) -> int:
    """Run an UPDATE or DELETE in `db`; how many rows it matched. (`Session.execute` is typed
    as returning any Result; a DML statement's is a CursorResult, which has the count.)"""
    return cast(CursorResult[Any], db.execute(statement)).rowcount


def read_session(db: Session, *, id: str | None = None, token: str | None = None) -> VerificationSession | None:
    """The session with its attempts and challenges, in one statement and so one consistent
    snapshot (an attempt and its session's status as one commit left them), without a lock:
    what frequent reads need (sessions.read_fresh). Read afresh, not from this unit's cache."""
    query = _session_query(id, token)
    if query is None:
        return None
    query = query.options(joinedload(VerificationSession.attempts), joinedload(VerificationSession.challenges))
    return db.scalars(query.execution_options(populate_existing=True)).unique().first()


def find_session(db: Session, *, id: str | None = None, token: str | None = None) -> VerificationSession | None:
    """The session with this public id or page token, or None."""
    query = _session_query(id, token)
    return None if query is None else db.scalar(query)


def _session_query(id: str | None, token: str | None):
    """The query for the session with this id (or page token); None for a value outside their
    alphabet: no such session, and nothing a database could choke on (such as NUL)."""
    value = id if id is not None else token or ""
    if not _KEY.fullmatch(value):
        return None
    column = VerificationSession.id if id is not None else VerificationSession.page_token
    return select(VerificationSession).where(column == value)
