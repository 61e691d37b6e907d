"""Webhooks: when a session ends, POST its JSON to the operator's `callback_url`, signed.

A delivery is a row in the database before anything is sent, so a restart loses nothing; each
try is logged for the operator. Every try of one event carries the same `X-Event-Id` and the same
body, so the receiver can de-duplicate. Signature (docs/contract.md):
`X-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" with WEBHOOK_SECRET>`.
During a rotation (WEBHOOK_SECRET_PREVIOUS set) a second `v1=` follows, made with the previous
secret, so a receiver still holding the old secret and one already holding the new both accept;
receivers check every `v1=` (docs/integration/ has the check in six languages).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
import uuid

import requests
from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import metrics
from ..storage import Base, Store, affected, isoformat, utcnow
from ..vocabulary import DeliveryState
from . import targets

log = logging.getLogger(__name__)

# Seconds to wait before each retry: 9 tries over about 11 hours (the contract asks for at least
# 6 over at least an hour), so a receiver that is down for a deploy or a night still gets it.
BACKOFF = (30, 120, 600, 1800, 3600, 3 * 3600, 6 * 3600)
MAX_TRIES = len(BACKOFF) + 1
TIMEOUT = (5, 15)          # (connect, read): the receiver only has to store the event
LEASE = dt.timedelta(minutes=2)  # a claimed delivery is not claimed again before this


class Delivery(Base):
    """One event to deliver to one callback URL."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    session_id: Mapped[str] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(12), default=DeliveryState.PENDING, index=True)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime)

    log: Mapped[list[DeliveryTry]] = relationship(order_by="DeliveryTry.id", cascade="all, delete-orphan")


class DeliveryTry(Base):
    """One HTTP request of a delivery and what came of it: the operator's delivery log."""

    __tablename__ = "webhook_tries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(300))
    seconds: Mapped[float | None]


def sign(secret: str, body: bytes, timestamp: int, previous: str | None = None) -> str:
    """The X-Signature header value for `body` sent at `timestamp`: `t=…,v1=…`, and a second
    `v1=…` made with `previous` (the secret being rotated out) when there is one."""
    macs = [hmac.new(key.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
            for key in (secret, previous) if key]
    return ",".join([f"t={timestamp}", *(f"v1={mac}" for mac in macs)])


def verify_signature(secret: str, body: bytes, header: str, tolerance: int = 300,
                     now: float | None = None) -> bool:
    """Check an X-Signature header as a receiver should (also used by our tests and docs)."""
    pairs = [part.strip().partition("=")[::2] for part in header.split(",")]
    timestamps = [value for key, value in pairs if key == "t"]
    try:
        timestamp = int(timestamps[0]) if len(timestamps) == 1 else None
    except ValueError:
        timestamp = None
    if timestamp is None:
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    # Any v1 may match (two during a rotation); every one is compared, in constant time.
    matches = [hmac.compare_digest(expected, value) for key, value in pairs if key == "v1"]
    return any(matches)


def enqueue(db, session_id: str, url: str, payload: dict) -> Delivery:
    """Store the event for delivery (in the caller's transaction): due now."""
    delivery = Delivery(event_id="evt_" + uuid.uuid4().hex, session_id=session_id, url=url,
                        body=json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
                        next_try_at=utcnow())
    db.add(delivery)
    return delivery


class Dispatcher:
    """Sends due deliveries: `deliver_due()` does one pass (the app's background thread calls
    it, between `wait()`s that `wake()` cuts short when a session has just ended). With
    `previous_secret` (WEBHOOK_SECRET_PREVIOUS) every try carries a second signature made with it.

    Every try resolves the callback host afresh and connects to the address it checked
    (`targets.PinnedAdapter`, mounted on `http`): unless `allow_private`, a host that resolves to
    a loopback, private or other internal address is refused and logged as a failed try, retried
    on the usual back-off. `resolver` (host, port) -> addresses replaces DNS, for tests."""

    def __init__(self, store: Store, secret: str | None, http: requests.Session | None = None, *,
                 previous_secret: str | None = None, allow_private: bool = False,
                 resolver: targets.Resolver | None = None):
        self.store, self.secret, self.previous_secret = store, secret, previous_secret
        self.allow_private = allow_private
        self.resolver = resolver or targets.system_resolver
        self.http = http or requests.Session()
        adapter = targets.PinnedAdapter(self.target)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self._wake = threading.Event()

    def target(self, url: str) -> targets.Target:
        """Where a try to `url` connects now: resolved and checked (raises targets.TargetRefused)."""
        return targets.check(url, allow_private=self.allow_private, resolver=self.resolver)

    def wake(self) -> None:
        """A session just ended: deliver now rather than at the next tick."""
        self._wake.set()

    def wait(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def deliver_due(self, now: dt.datetime | None = None) -> int:
        """Try every delivery that is due; return how many were tried."""
        if not self.secret:
            return 0
        tried = 0
        while (delivery := self._claim(now)) is not None:
            self._send(delivery, self.secret)
            tried += 1
        return tried

    def _claim(self, now: dt.datetime | None) -> Delivery | None:
        """Take one due delivery, leasing it so no other worker or process sends it meanwhile."""
        now = now or utcnow()
        with self.store.session() as db:
            candidate = db.scalar(select(Delivery).where(
                Delivery.state == DeliveryState.PENDING, Delivery.next_try_at <= now).order_by(Delivery.next_try_at).limit(1))
            if candidate is None:
                return None
            leased = affected(db, update(Delivery).where(
                Delivery.id == candidate.id, Delivery.next_try_at == candidate.next_try_at)
                .values(next_try_at=now + LEASE))
            db.commit()
            return candidate if leased == 1 else self._claim(now)

    def _send(self, delivery: Delivery, secret: str) -> None:
        body = delivery.body.encode()
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "liveness-webhooks/1",
                   "X-Event-Id": delivery.event_id,
                   "X-Signature": sign(secret, body, int(time.time()), self.previous_secret)}
        started = time.monotonic()
        status, error = None, None
        try:
            response = self.http.post(delivery.url, data=body, headers=headers, timeout=TIMEOUT,
                                      allow_redirects=False)
            status = response.status_code
            response.close()
        except targets.RefusedTarget as exc:
            error = f"refused: {exc.reason}"[:300]
        except requests.RequestException as exc:
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        with self.store.session() as db:
            row = db.get_one(Delivery, delivery.id)  # claimed: only purge with its session removes it
            row.tries += 1
            row.log.append(DeliveryTry(status_code=status, error=error or (None if ok else f"HTTP {status}"),
                                       seconds=round(time.monotonic() - started, 3)))
            if ok:
                row.state, row.delivered_at, row.next_try_at = DeliveryState.DELIVERED, utcnow(), None
            elif row.tries >= MAX_TRIES:
                row.state, row.next_try_at = DeliveryState.FAILED, None
            else:
                row.next_try_at = utcnow() + dt.timedelta(seconds=BACKOFF[row.tries - 1])
            db.commit()
            log.info("webhook %s for %s: try %s -> %s", row.event_id, row.session_id, row.tries,
                     status or error)
        result = ("delivered" if ok else "refused" if error and error.startswith("refused")
                  else "failed" if row.state == DeliveryState.FAILED else "retry")  # metric labels
        metrics.WEBHOOKS.labels(result).inc()


def deliveries_json(deliveries: list[Delivery]) -> list[dict]:
    """The delivery log as the operator API shows it."""
    return [{"event_id": d.event_id, "url": d.url, "state": d.state, "tries": d.tries,
             "next_try_at": isoformat(d.next_try_at), "delivered_at": isoformat(d.delivered_at),
             "log": [{"at": isoformat(t.at), "status_code": t.status_code, "error": t.error,
                      "seconds": t.seconds} for t in d.log]}
            for d in deliveries]


def deliveries_for(db, session_id: str) -> list[Delivery]:
    """A session's deliveries, oldest first."""
    return list(db.scalars(select(Delivery).where(Delivery.session_id == session_id).order_by(Delivery.id)))

