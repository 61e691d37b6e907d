"""The pages people see, and the JSON endpoints the capture page talks to.

The capture page is reached by an unguessable token in its URL; its requests carry that token
and no cookie, so the page works framed in a cross-site iframe where third-party cookies are
blocked. Only the standalone form uses a cookie (Flask-WTF's CSRF protection).
"""
from __future__ import annotations

import dataclasses
import gzip
import hmac
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import ValidationError

from .. import clients, consent, limits, metrics, page_events, sessions, theming, uploads, video
from ..challenges import MODES
from ..delivery import broker
from ..extensions import csrf, json_error, limiter, services
from ..guidance import guidance_for
from ..identity import Identity, IdentityError, normalize_idcard, normalize_realname
from ..outcome import outcome_json
from ..storage import Attempt, Challenge, VerificationSession, lock_session, read_session
from ..vocabulary import AttemptState, SessionStatus
from . import full_disk, page_state, security

bp = Blueprint("pages", __name__)
log = logging.getLogger(__name__)


@bp.app_context_processor
def _page_context() -> dict:
    """Every page says when it is in sandbox mode; base.html asks page_language() for its language
    unless the view gave one (`page_lang`, the capture page: its session may name a locale)."""
    return {"sandbox": services().settings.sandbox, "page_language": page_language}


# -- the page's language -------------------------------------------------------------------------
LANGUAGES = ("zh", "en")  # Chinese first


@dataclasses.dataclass(frozen=True)
class PageLanguage:
    """The language a page is written in, and what chose it: `query` (`?lang=`, the page's own
    switch), `session` (the operator's `locale`), `header` (the request's Accept-Language) or
    `none` (nothing to go on: Chinese, and the page may look at navigator.language, lang.js)."""

    code: str
    source: str


def page_language(locale: str | None = None) -> PageLanguage:
    """`?lang=zh|en` wins, then the session's `locale`, then the Accept-Language header: its most
    preferred zh-* or en-* (q-values; q=0 is a refusal), Chinese when it names neither. A page
    decided by the header says so with `Vary: Accept-Language` (_vary_on_language)."""
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return PageLanguage(asked, "query")
    if locale in LANGUAGES:
        return PageLanguage(locale, "session")
    g.language_from_header = True
    preferred = _accepted_language(request.headers.get("Accept-Language", ""))
    return PageLanguage(preferred, "header") if preferred else PageLanguage("zh", "none")


def _accepted_language(header: str) -> str | None:
    """The first of LANGUAGES in the order an Accept-Language header prefers them (`zh-TW`, `zh`,
    `en-US;q=0.8`…), or None. Equal q-values keep the header's order."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.split("-")[0].lower()
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else None


@bp.after_app_request
def _vary_on_language(response: Response) -> Response:
    if g.get("language_from_header"):
        response.vary.add("Accept-Language")
    return response


def _explicit_language() -> dict[str, Any]:
    """`?lang=` carried to the next page when the person chose it there."""
    asked = request.args.get("lang")
    return {"lang": asked} if asked in LANGUAGES else {}


def _theme(session: VerificationSession) -> theming.Theme | None:
    return theming.theme_for(services().settings.OPERATOR_THEMES, session.operator, sessions.operator_fingerprint)


@bp.get("/theme.css")
@limiter.exempt
def theme_css():
    """An operator's colour as the stylesheet's custom properties (the pages' Content-Security-Policy
    allows no inline style). Only configured colours; the answer depends on the URL alone."""
    primary = "#" + request.args.get("primary", "")
    colours = {t.color for t in services().settings.OPERATOR_THEMES.values() if t.color}
    if not re.fullmatch(r"#[0-9a-f]{6}", primary) or primary not in colours:
        abort(404)
    theme = theming.Theme(color=primary)
    body = (f":root {{ --primary: {theme.color}; --primary-soft: {theme.soft()}; "
            f"--primary-disabled: {theme.disabled()}; }}\n")
    response = current_app.response_class(body, mimetype="text/css")
    response.cache_control.public = True
    response.cache_control.max_age = 365 * 24 * 3600
    response.cache_control.immutable = True
    return response


# -- the standalone entry ------------------------------------------------------------------------
def _field_check(normalize):
    def check(_form, field):
        try:
            field.data = normalize(field.data or "")
        except IdentityError as error:
            english = page_language().code == "en"
            raise ValidationError(error.message if english else error.message_zh) from None
    return check


class IdentityForm(FlaskForm):
    """The self-service form: the same validation as the operator API, errors beside the field."""

    realname = StringField("姓名", validators=[_field_check(normalize_realname)])
    idcard = StringField("身份证号", validators=[_field_check(normalize_idcard)])
    mode = SelectField("核验方式", choices=[SelectChoice("number", "读数字"), SelectChoice("action", "做动作"),
                                        SelectChoice("silent", "静默（看镜头）")])


def _standalone_limit() -> str:
    return limits.STANDALONE_SANDBOX if services().settings.sandbox else limits.STANDALONE_LIVE


@bp.route("/", methods=["GET", "POST"])
@limiter.limit(_standalone_limit, methods=["POST"])
def index():
    """The standalone form when STANDALONE is on; otherwise a page saying how the service is reached."""
    settings = services().settings
    if not settings.standalone:
        return render_template("closed.html"), 200
    # Only a real form post fills the form (Flask-WTF would also take a JSON body, of any shape).
    form = IdentityForm(formdata=request.form if request.method == "POST" else None,
                        mode=settings.LIVENESS_MODE if settings.LIVENESS_MODE in MODES else "number")
    if form.validate_on_submit():
        identity = Identity(form.realname.data, form.idcard.data)
        with services().store.session() as db:
            session = sessions.create(db, settings, identity, sessions.NewSession(mode=form.mode.data),
                                      operator="standalone")
            db.commit()
            token = session.page_token
        log.info("standalone session created for %s", identity)
        return redirect(url_for("pages.capture", token=token, **_explicit_language()), 303)
    return (render_template("index.html", form=form, theme=settings.OPERATOR_THEMES.get("standalone")),
            422 if form.errors else 200)


# -- the capture page ----------------------------------------------------------------------------
@bp.get("/v/<token>")
@limiter.limit(limits.PAGE)
def capture(token: str):
    """The capture page of one session. It holds no identity, only the token. An unknown link
    (mistyped, or its session purged) gets a page saying what to do instead."""
    settings = services().settings
    with services().store.session() as db:
        session = sessions.read_fresh(db, settings, token=token)
        if session is None:
            response = make_response(render_template("link.html", minutes=settings.SESSION_TTL // 60), 404)
            return security.allow_framing(response, settings.EMBED_ORIGINS)
        state = _state_json(session)
        origins = (session.embed_origin,) if session.embed_origin else settings.EMBED_ORIGINS
        language = page_language(session.locale)
        # As capture.js's showState: a new attempt (no verdict yet, or a challenge asked for since
        # the last one) begins at the consent screen; anything else is drawn from the state.
        attempt = state["status"] == "pending" and not state["in_flight"] and (state["challenge"] or not state["last"])
        first = "consent" if attempt else "blank"
        words = {"first": first, "en": language.code == "en", "mode": state["mode"], "consent": {
            "asker": consent.asker(session), "days": settings.RETENTION_DAYS, "frames": session.best_frames,
            "frames_kept": _duration(settings.BEST_FRAMES_RETENTION)}}
        consent_html = Markup(render_template("_consent.html", **words))
        consent_version = consent.keep(db, consent.words(consent_html), language.code)
        standalone = session.operator == "standalone"
        theme = _theme(session)
        db.commit()
    form_url = url_for("pages.index", **_explicit_language())
    response = make_response(render_template("capture.html", token=token, state=state, consent_html=consent_html,
                                             consent_version=consent_version,
                                             form_url=form_url if standalone else None, theme=theme,
                                             page_lang=language, **words),
                             410 if state["status"] == SessionStatus.EXPIRED else 200)
    return _gzipped(security.allow_framing(response, origins))


def _duration(seconds: int) -> dict[str, str]:
    """A setting's seconds as the consent screen says them, in Chinese and English: the largest
    whole unit (3 天 / 3 days, 36 小时 / 36 hours, 90 分钟 / 90 minutes, else seconds)."""
    for size, zh, en in ((86400, "天", "day"), (3600, "小时", "hour"), (60, "分钟", "minute"), (1, "秒", "second")):
        if seconds % size == 0:
            count = seconds // size
            return {"zh": f"{count} {zh}", "en": f"{count} {en}{'' if count == 1 else 's'}"}
    raise AssertionError("unreachable")


def _gzipped(response: Response) -> Response:
    """The capture page gzipped for a browser that takes it (a phone's first visit: ~6.8 KB of
    HTML becomes ~2.9 KB). Only this page: it echoes nothing an attacker could send beside its
    token (`?lang` only picks a language), so its size cannot be used to guess the token (BREACH).
    The standalone form, which echoes what was typed next to its CSRF token, stays plain."""
    if request.accept_encodings["gzip"] > 0:
        response.set_data(gzip.compress(response.get_data(), compresslevel=6))
        response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    return response


@bp.get("/v/<token>/state")
def state(token: str):
    """Where the session stands. `?wait=N` (seconds, at most 15): while a video is verified, the
    answer comes when its verdict is recorded, not at the page's next look (page_state.current)."""
    s = services()
    body = page_state.current(s.store, s.settings, s.wakeups, token, request.args.get("wait", 0.0, type=float))
    if body is None:
        abort(404)
    return jsonify(body)


@bp.post("/v/<token>/challenge")
@csrf.exempt
@limiter.limit(limits.CHALLENGE)
def challenge(token: str):
    """A new challenge for the next attempt (every retry gets a fresh one)."""
    return _drawn(token, lambda db, session: sessions.issue_challenge(db, services().settings, session))


@bp.post("/v/<token>/mode")
@csrf.exempt
@limiter.limit(limits.CHALLENGE)
def switch_mode(token: str):
    """Number mode → action mode when the person's microphone is refused or silent (where the
    session allows it): 201 with the first action challenge and the state."""
    body = request.get_json(silent=True) or {}
    reason = body.get("reason")
    if body.get("mode") != "action" or reason not in sessions.MODE_CHANGE_REASONS:
        return _page_error(400, "bad_mode_change", "Only a switch to action mode, with its reason, can be asked.",
                           "请求有误，请刷新页面。")
    return _drawn(token, lambda db, session: sessions.switch_to_action(db, services().settings, session, reason))


def _drawn(token: str, draw: Callable[[Session, VerificationSession], Challenge]):
    """`draw` the session's next challenge under its lock: 201 with it and the state, or the
    state error that says why the session takes none now."""
    with services().store.session() as db:
        session = _session_or_404(db, token)
        try:
            issued = draw(db, session)
        except sessions.SessionStateError as error:
            db.commit()
            return _state_error(error, session)
        db.commit()
        return jsonify({"challenge": page_state.challenge_json(issued), "state": _state_json(session)}), 201


@bp.post("/v/<token>/events")
@csrf.exempt
@limiter.limit(limits.EVENTS)
def events(token: str):
    """One milestone of the page (webapp.page_events), sent with navigator.sendBeacon: 204 when
    kept, 400 for what is not an event, 404 for an unknown link; never anything the page waits
    for. A consent answer also becomes the session's receipt (webapp.consent)."""
    # At most one byte more than an event may hold is read: a larger body is refused unread.
    event = page_events.parse(request.stream.read(page_events.MAX_BYTES + 1))
    if event is None:
        return _page_error(400, "bad_event", "Not an event this page reports.", "请求有误。")
    with services().store.session() as db:
        session = _session_or_404(db, token)
        if page_events.record(db, session, event, clients.parse(request.user_agent.string)):
            metrics.PAGE_EVENTS.labels(event.name).inc()
        if event.name in ("consent_given", "consent_declined"):
            decision = consent.GIVEN if event.name == "consent_given" else consent.DECLINED
            consent.record(db, session, decision, event.version, event.language)
        db.commit()
    return "", 204


@bp.post("/v/<token>/upload")
@csrf.exempt
@limiter.limit(limits.UPLOAD)
def upload(token: str):
    """Receive one recording and run it through the whole verification path."""
    try:
        file = request.files.get("video")
        challenge_id = request.form.get("challenge", "")
        checks = request.form.get("checks")
        signals = request.form.get("signals")
        consented = request.form.get("consent", "")
    except RequestEntityTooLarge:
        return _too_large()
    if file is None or not challenge_id:
        return _page_error(400, "bad_upload", "The upload needs a video file and a challenge.",
                           "上传内容不完整，请重新录制。")
    s = services()
    _consent_with_upload(token, consented)
    try:
        outcome = s.verifier.verify(token, challenge_id, uploads.from_file(file),
                                    device=clients.parse(request.user_agent.string),
                                    page_checks=checks, signals=signals)
    except sessions.SessionStateError as error:
        with s.store.session() as db:
            return _state_error(error, sessions.read_fresh(db, s.settings, token=token))
    with s.store.session() as db:
        session = read_session(db, token=token)  # (one statement with its attempts and challenges)
        if session is None:  # purged meanwhile (retention): the link's own page says what to do
            abort(404)
        if outcome is None:  # a worker has it: the page follows the state
            return jsonify({"state": _state_json(session)}), 202
        return jsonify({"outcome": outcome_json(outcome), "state": _state_json(session)})


def _consent_with_upload(token: str, sent: str) -> None:
    """The receipt's second chance: a video comes with the consent version its page showed
    ("<version> <language>"), kept if the page's own report of it was lost on the way."""
    version, _, language = sent.partition(" ")
    if not version:  # nothing to keep (no consent on the page's side): no lock taken
        return
    with services().store.session() as db:
        session = lock_session(db, token=token)
        if session is not None and consent.receipt(session) is None:
            consent.record(db, session, consent.GIVEN, version or None, language if language in LANGUAGES else None,
                           via="upload")
        db.commit()


@bp.app_errorhandler(RequestEntityTooLarge)
def _request_too_large(_error):
    """A body over MAX_UPLOAD_MB (MAX_CONTENT_LENGTH), in its asker's form."""
    from ..extensions import error_answer
    words = guidance_for("upload_too_large")
    return error_answer(413, "upload_too_large", words.person_en, words.person_zh, title="上传的内容太大",
                        api=("too_large", "The request body is too large.", "请求体太大。"))


@bp.app_errorhandler(OSError)
@bp.app_errorhandler(video.StorageFull)
def _storage_full(error):
    """A full disk (ENOSPC, EDQUOT) anywhere on the upload path: a 503 the person can act on,
    nothing counted (webapp/web/full_disk.py). Any other OSError goes on as before (a 500)."""
    if not isinstance(error, video.StorageFull) and not full_disk.is_full(error):
        raise error
    log.error("storage full on %s %s: %s", request.method, request.url_rule or "?", error)
    return full_disk.answer()


# -- health --------------------------------------------------------------------------------------
@bp.get("/healthz")
@limiter.exempt
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@limiter.exempt
def readyz():
    """Ready only when ffmpeg, the database and the configuration are usable."""
    s = services()
    problems = [p for p in (video.tools_problem(s.tools), s.store.problem(),
                            full_disk.space_problem(s.uploads, s.settings.UPLOAD_MIN_FREE_MB, s.store.engine.url),
                            broker.problem(s.settings.CELERY_BROKER_URL))
                if p]
    if problems:
        return jsonify({"status": "unavailable", "reason": "; ".join(problems)}), 503
    return jsonify({"status": "ready", "sandbox": s.settings.sandbox})


@bp.get("/metrics")
@limiter.exempt
def metrics_page():
    """Prometheus metrics, service-wide, for a scraper holding METRICS_KEY, or the operator key
    where it is the only one (Settings.operators_read_metrics), as `Authorization: Bearer`."""
    settings = services().settings
    presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip().encode()
    scraper = settings.METRICS_KEY is not None and hmac.compare_digest(presented, settings.METRICS_KEY.encode())
    if not scraper:
        if not any(hmac.compare_digest(presented, key.encode()) for key in settings.operator_keys):
            return _page_error(401, "unauthorized", "METRICS_KEY (or the operator key, when it is the only "
                               "one) is needed.", "需要指标密钥 METRICS_KEY（只有一个运营方密钥时也可用它）。")
        if not settings.operators_read_metrics:
            return _page_error(403, "metrics_key_needed", "The metrics count every operator's traffic, so with "
                               "several operator keys no operator key reads them: set METRICS_KEY and scrape "
                               "with it.", "指标包含所有运营方的数据：配置了多个运营方密钥时，请设置 METRICS_KEY 并用它读取。")
    body, content_type = metrics.exposition(queued=_queued, uploads=(services().uploads, settings.UPLOAD_MIN_FREE_MB))
    return current_app.response_class(body, mimetype=None, content_type=content_type)


def _queued() -> int:
    with services().store.session() as db:
        return db.scalar(select(func.count()).select_from(Attempt).where(Attempt.state == AttemptState.QUEUED)) or 0


def _state_json(session: VerificationSession) -> dict:
    return page_state.state_json(session, services().settings.EMBED_ORIGINS)


def _session_or_404(db, token: str) -> VerificationSession:
    """The page's session, locked for this request and brought up to date, or a 404."""
    session = lock_session(db, token=token)
    if session is None:
        abort(404)
    return sessions.refresh(db, services().settings, session)


def _page_error(status: int, code: str, message: str, message_zh: str, state: dict | None = None):
    extra: dict[str, Any] = {"state": state} if state is not None else {}
    return json_error(status, code, message, message_zh=message_zh, **extra)


def _state_error(error: sessions.SessionStateError, session: VerificationSession | None):
    return _page_error(error.status, error.code, error.message, error.message_zh,
                       _state_json(session) if session is not None else None)


def _too_large():
    g = guidance_for("upload_too_large")
    return _page_error(413, "upload_too_large", g.person_en, g.person_zh)
