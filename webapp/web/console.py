"""The operator console: a few pages behind the operator key (`/console`).

Sign in with an operator key (a form with Flask-WTF's CSRF token); the console then lists that
operator's sessions (identity masked), shows one session's attempts with their codes, guidance
and charge, and draws the failure funnel (webapp.web.funnel) as charts with the vendored Chart.js,
with the same numbers in tables beside them.

Its cookie is its own: under /console Flask's signed session is the `liveness_console` cookie,
path /console, SameSite Strict, HttpOnly (Secure behind https), signed with its own salt, so it
is never sent to the capture pages or the API and no other cookie of the site can stand in for
it. It holds the operator's key fingerprint, when it signed in and the sign-in's random id, never
the key; it lapses after SIGN_IN_HOURS.

A sign-in lives on the server too (storage.ConsoleSignIn, keyed by a hash of that id): every
console request needs its row, signing out deletes it, so a copy of the cookie taken before
sign-out opens nothing after. A key no longer configured (rotated or removed) ends its sign-ins,
and the rows lapse with the cookie.

Sign-in tries are limited per address and, because an attacker has many addresses, for all
addresses together (SIGN_IN_OVERALL: failed tries only, per minute, so the operator waits at
most a minute once the tries stop).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from flask import Blueprint, Flask, abort, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError
from markupsafe import Markup, escape
from sqlalchemy import delete, select
from werkzeug.wrappers import Response
from wtforms import PasswordField

from .. import consent, operator_view, page_events, sessions
from ..extensions import limiter, services
from ..guidance import guidance_for
from ..storage import ConsoleSignIn, VerificationSession, find_session, utcnow
from ..vocabulary import AttemptState
from . import console_search, funnel

PREFIX = "/console"
COOKIE = "liveness_console"
SALT = b"liveness-console-session"
SIGN_IN_HOURS = 8
PERIODS = {"1": 1, "7": 7, "30": 30, "90": 90}  # days the funnel looks back
SIGN_IN_PER_ADDRESS = "10 per minute"
# Failed sign-ins from every address together: tries from many addresses (a botnet, an IPv6
# block) are slowed as much as the operator can bear; per minute only, so once they stop the
# operator waits a minute at most.
SIGN_IN_OVERALL = "30 per minute"
OVERALL_SCOPE = "console-sign-in-overall"

bp = Blueprint("console", __name__, url_prefix=PREFIX)


def init_app(app: Flask) -> None:
    """Give the console its own cookie and register the blueprint."""
    app.session_interface = ConsoleSessionInterface()
    app.register_blueprint(bp)


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's cookie session; under /console a cookie of its own (see the module docstring)."""

    @staticmethod
    def _console() -> bool:
        return request.path == PREFIX or request.path.startswith(PREFIX + "/")

    def get_cookie_name(self, app: Flask) -> str:
        return COOKIE if self._console() else super().get_cookie_name(app)

    def get_cookie_path(self, app: Flask) -> str:
        return PREFIX if self._console() else super().get_cookie_path(app)

    def get_cookie_samesite(self, app: Flask) -> str | None:
        return "Strict" if self._console() else super().get_cookie_samesite(app)

    def get_signing_serializer(self, app: Flask):
        serializer = super().get_signing_serializer(app)
        if serializer is not None and self._console():
            serializer.salt = SALT
        return serializer


class SignInForm(FlaskForm):
    key = PasswordField("运营方密钥 Operator key")


class SignOutForm(FlaskForm):
    pass


def _digest(sign_in_id: str) -> str:
    return hashlib.sha256(sign_in_id.encode()).hexdigest()


def _configured() -> set[str]:
    return {sessions.operator_fingerprint(k) for k in services().settings.operator_keys}


def _begin(operator: str) -> str:
    """Record a new sign-in of `operator`; its id, for the cookie. Lapsed sign-ins and those of
    keys no longer configured are deleted on the way."""
    sign_in_id = secrets.token_urlsafe(32)
    now = utcnow()
    with services().store.session() as db:
        db.execute(delete(ConsoleSignIn).where(
            (ConsoleSignIn.expires_at <= now) | ConsoleSignIn.operator.not_in(_configured())))
        db.add(ConsoleSignIn(id=_digest(sign_in_id), operator=operator, created_at=now,
                             expires_at=now + dt.timedelta(hours=SIGN_IN_HOURS)))
        db.commit()
    return sign_in_id


def _alive(sign_in_id: object, operator: str) -> bool:
    if not isinstance(sign_in_id, str) or not sign_in_id:
        return False
    with services().store.session() as db:
        row = db.get(ConsoleSignIn, _digest(sign_in_id))
        return row is not None and row.operator == operator and row.expires_at > utcnow()


def _end(*, sign_in_id: object = None, operator: str | None = None) -> None:
    """Delete one sign-in (by the cookie's id), or every sign-in of a key (its fingerprint)."""
    if isinstance(sign_in_id, str) and sign_in_id:
        where = ConsoleSignIn.id == _digest(sign_in_id)
    elif operator:
        where = ConsoleSignIn.operator == operator
    else:
        return
    with services().store.session() as db:
        db.execute(delete(ConsoleSignIn).where(where))
        db.commit()


@bp.before_request
def _signed_in():
    """Every console page but the sign-in needs a fresh sign-in, not signed out, of a key still
    configured."""
    g.operator = None
    signed = session.get("operator")
    fresh = time.time() - session.get("at", 0) < SIGN_IN_HOURS * 3600
    known = isinstance(signed, str) and signed in _configured()
    if signed and not known:
        _end(operator=signed)  # the key was rotated or removed: none of its sign-ins lives on
    if signed and fresh and known and _alive(session.get("sid"), signed):
        g.operator = signed
    elif request.endpoint != "console.sign_in":
        session.clear()
        return redirect(url_for("console.sign_in"))


@bp.after_request
def _headers(response):
    # The console's URLs hold no token, and the CSRF check over https needs a same-origin
    # Referer (the site's default is no-referrer); its pages are never cached.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def _failed(response) -> bool:
    return response.status_code != 303


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(SIGN_IN_PER_ADDRESS, methods=["POST"])
@limiter.limit(SIGN_IN_OVERALL, methods=["POST"], key_func=lambda: "all", scope=OVERALL_SCOPE,
               deduct_when=_failed)
def sign_in():
    """The sign-in form: an operator key, checked against every configured key."""
    keys = services().settings.operator_keys
    form = SignInForm()
    error = None
    if not keys:
        error = "运营方接口未开启：请设置 OPERATOR_API_KEYS。 The operator API is off: set OPERATOR_API_KEYS."
    elif form.validate_on_submit():
        presented = (form.key.data or "").strip().encode()
        matched = None
        for key in keys:  # every key, always: timing tells nothing
            if hmac.compare_digest(presented, key.encode()):
                matched = key
        if matched is not None:
            _end(sign_in_id=session.get("sid"))
            session.clear()
            operator = sessions.operator_fingerprint(matched)
            session["operator"], session["at"], session["sid"] = operator, time.time(), _begin(operator)
            return redirect(url_for("console.session_list"), 303)
        error = "运营方密钥不正确：请核对后重新输入。 The operator key is wrong: check it and enter it again."
    status = 401 if error and request.method == "POST" else 200
    return render_template("console_login.html", form=form, error=error), status


@bp.errorhandler(CSRFError)
def _form_expired(_error):
    """A post without a valid CSRF token (an old form, or another site's): sign in again."""
    _end(sign_in_id=session.pop("sid", None))
    session.pop("operator", None)
    return render_template("console_login.html", form=SignInForm(), error=(
        "表单已过期或来源不明：请重新输入密钥并提交。 The form expired or did not come from this "
        "console: enter the key again and submit.")), 400


@bp.errorhandler(429)
def _too_many_tries(error):
    """Too many tries: from every address together (the sign-in's overall limit), or from this one."""
    if getattr(getattr(error, "limit", None), "scope", None) == OVERALL_SCOPE:
        message = ("登录尝试过多（来自各处的尝试合计）：请一分钟后再试。 Too many sign-in attempts from "
                   "all addresses together: wait a minute, then try again.")
    else:
        message = ("来自此地址的尝试过多：请一分钟后再试。 Too many tries from this address: wait a minute, "
                   "then try again.")
    return render_template("console_login.html", form=SignInForm(), error=message), 429


@bp.post("/logout")
def sign_out():
    if SignOutForm().validate_on_submit():
        _end(sign_in_id=session.get("sid"))
        session.clear()
    return redirect(url_for("console.sign_in"), 303)


@bp.get("/")
def session_list():
    """This operator's sessions, identity masked: a search (the form's GET query, so a URL to
    bookmark), PAGE_SIZE at a time, newest first. A search it cannot read is answered 400 with
    what is wrong, and no list."""
    search, errors = console_search.parse(request.args)
    found = None
    if not errors:
        with services().store.session() as db:
            found = console_search.page(db, g.operator, search)
    return _sessions_page(search, errors, found)


@bp.get("/sessions.csv")
def session_export():
    """Every session of the search (all pages, up to EXPORT_CAP) as CSV for Excel."""
    search, errors = console_search.parse(request.args)
    if errors:
        return _sessions_page(search, errors, None)
    with services().store.session() as db:
        text = console_search.export(db, g.operator, search)
    return _csv(text, f"sessions-{utcnow():%Y%m%d-%H%M%S}.csv")


def _sessions_page(search: console_search.Search, errors: list[str], found: console_search.Page | None):
    """The session list: the search form, and its page of sessions or (400) what is wrong with it."""
    return render_template("console_sessions.html", search=search, errors=errors, found=found,
                           statuses=console_search.STATUS_WORDS, cap=console_search.EXPORT_CAP,
                           signout=SignOutForm()), 400 if errors else 200


def _csv(text: str, filename: str) -> Response:
    return Response(text.encode("utf-8"), content_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/sessions/<session_id>")
def session_detail(session_id: str):
    """One session's attempts: code, Juhe's reason, the guidance given, score and charge."""
    with services().store.session() as db:
        found = find_session(db, id=session_id)
        if found is None or found.operator != g.operator:
            abort(404)
        attempts = []
        for a in found.attempts:
            if a.state != AttemptState.DONE:
                continue
            guidance = guidance_for(a.outcome)
            attempts.append({"at": a.started_at, "code": a.outcome, "error_code": a.error_code,
                             "reason": a.reason, "meaning": guidance.meaning, "person": guidance.person_zh,
                             "operator": guidance.operator, "score": a.score, "charged": a.charged,
                             "counts": a.counts, "browser": a.browser or "other", "os": a.os or "other",
                             "signals": a.signals})
        view = operator_view.session_json(found)
    return render_template("console_session.html", view=view, attempts=attempts, signout=SignOutForm())


@bp.get("/consent/<version>")
def consent_text(version: str):
    """The words of one version of the consent screen, as a receipt names it (for an auditor)."""
    with services().store.session() as db:
        kept = consent.text_of(db, version)
        # only a version one of this operator's receipts names: the texts name other operators' hosts
        named = kept is not None and db.scalar(select(VerificationSession.id).where(
            VerificationSession.operator == g.operator,
            VerificationSession.consent_json.contains(f'"text_version": "{kept.version}"')).limit(1))
        if kept is None or not named:
            abort(404)
        return render_template("console_consent.html", version=kept.version, language=kept.language,
                               text=kept.text, first_shown_at=kept.first_shown_at, signout=SignOutForm())


def _period() -> tuple[str, dt.datetime, dt.datetime]:
    """The funnel's period (?days=1|7|30|90, default 7): its key, and [since, until)."""
    days = request.args.get("days", "7")
    if days not in PERIODS:
        days = "7"
    until = utcnow() + dt.timedelta(seconds=1)
    return days, until - dt.timedelta(days=PERIODS[days]), until


@bp.get("/funnel")
def failure_funnel():
    """The failure funnel over the chosen period (?days=1|7|30|90, default 7)."""
    days, since, until = _period()
    with services().store.session() as db:
        data = funnel.compute(db, g.operator, since, until)
        drop = page_events.compute(db, g.operator, since, until)
    # The Prometheus counters are service-wide: shown by the rule /metrics follows for operator
    # keys (only where one operator is all there is).
    alone = services().settings.operators_read_metrics
    return render_template("console_funnel.html", data=data, drop=drop, days=days, periods=PERIODS,
                           service=funnel.service_outcomes() if alone else None, signout=SignOutForm())


@bp.get("/funnel.csv")
def funnel_export():
    """The funnel's tables (by code, by browser · OS, by OS) for the same period, as CSV."""
    return _period_csv("funnel", funnel.compute, console_search.funnel_csv)


@bp.get("/drop-off.csv")
def drop_off_export():
    """Where people stopped (webapp.page_events), for the same period, as CSV."""
    return _period_csv("drop-off", page_events.compute, console_search.drop_off_csv)


def _period_csv(name: str, compute: Callable[..., dict], to_csv: Callable[[dict], str]):
    """`compute(db, operator, since, until)` over the asked period, written by `to_csv`."""
    days, since, until = _period()
    with services().store.session() as db:
        data = compute(db, g.operator, since, until)
    return _csv(to_csv(data), f"{name}-{days}d-{until:%Y%m%d}.csv")


@bp.app_template_filter("console_time")
def _console_time(value: dt.datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"


@bp.app_template_filter("charge")
def _charge(value: bool | None) -> str:
    return {True: "收费 charged", False: "未收费 not charged", None: "未知 unknown"}[value]


@bp.app_template_filter("status_words")
def _status_words(value: str) -> Markup:
    """A status in the console's words: the Chinese, the English beside it (STATUS_WORDS)."""
    zh, en = console_search.STATUS_WORDS.get(value, (value, ""))
    return escape(zh) + (Markup(' <span lang="en">%s</span>') % en if en else Markup())
