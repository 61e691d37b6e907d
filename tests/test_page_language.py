"""The capture page's language and the numbers on its consent screen, as a person sees them.

The language: `?lang=` (the page's own switch) wins, then the operator's `locale` for the
session, then the phone's Accept-Language (zh-* → Chinese, en-* → English, by q-value; Chinese
when it names neither). The consent screen's numbers come from the settings they describe."""
from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

from .conftest import AUTH, create_session, idcard


class _Text(HTMLParser):
    """The words of one element (by id or class) and its descendants, and <html lang>."""

    def __init__(self, match):
        super().__init__()
        self.match, self.depth, self.words, self.lang = match, 0, [], None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "html":
            self.lang = attributes.get("lang")
        if self.depth:
            self.depth += 1
        elif self.match(tag, attributes):
            self.depth = 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.words.append(data)


class Page:
    def __init__(self, response):
        self.response = response
        self.html = response.get_data(as_text=True)
        parser = _Text(lambda tag, a: tag == "section" and "consent" in (a.get("class") or "").split())
        parser.feed(self.html)
        self.consent = re.sub(r"\s+", " ", "".join(parser.words)).strip()
        self.lang = parser.lang

    @property
    def english(self) -> bool:
        return self.lang == "en"


def open_page(client, url: str, query: str = "", **headers) -> Page:
    path = urlsplit(url).path + query
    response = client.get(path, headers=headers)
    assert response.status_code == 200
    return Page(response)


def consent_of(make_app, settings: dict, language: str, **body) -> str:
    client = make_app(**settings).test_client()
    created, _ = create_session(client, **body)
    page = open_page(client, created["url"], "?lang=" + language)
    return page.consent


# -- item 3: every number on the consent screen comes from its setting ---------------------------
@pytest.mark.parametrize(("retention", "zh", "en"), [
    ("3d", "3 天", "3 days"), ("72h", "3 天", "3 days"), ("36h", "36 小时", "36 hours"),
    ("90m", "90 分钟", "90 minutes"), ("86400", "1 天", "1 day"),
])
def test_the_consent_screen_says_how_long_best_frames_are_kept_from_BEST_FRAMES_RETENTION(make_app, retention,
                                                                                         zh, en):
    settings = {"BEST_FRAMES_RETENTION": retention, "RETENTION_DAYS": 45}
    chinese = consent_of(make_app, settings, "zh", best_frames=2)
    frames = chinese[chinese.index("从视频中选出的照片"):]
    assert f"保留 {zh}后删除" in frames
    assert "45" not in frames                                  # not the sessions' RETENTION_DAYS
    english = consent_of(make_app, settings, "en", best_frames=2)
    frames = english[english.index("Still pictures"):]
    assert f"after {en}." in frames
    assert "45" not in frames


def test_best_frames_are_mentioned_only_when_the_session_asks_for_them(make_app):
    for language, words in (("zh", "从视频中选出的照片"), ("en", "Still pictures")):
        assert words not in consent_of(make_app, {}, language)
        assert words in consent_of(make_app, {}, language, best_frames=1)


@pytest.mark.parametrize("days", [7, 30, 180])
def test_the_consent_screen_says_how_long_the_result_is_kept_from_RETENTION_DAYS(make_app, days):
    assert f"保留 {days} 天后删除" in consent_of(make_app, {"RETENTION_DAYS": days}, "zh")
    assert f"deleted after {days} days" in consent_of(make_app, {"RETENTION_DAYS": days}, "en")


# -- item 4: the page's language -----------------------------------------------------------------
def test_the_api_takes_stores_and_returns_a_sessions_locale(client):
    for locale in ("zh", "en", None):
        body = {"realname": "张三", "idcard": idcard(11), **({"locale": locale} if locale else {})}
        created = client.post("/api/v1/sessions", json=body, headers=AUTH)
        assert created.status_code == 201, created.get_json()
        read = client.get(f"/api/v1/sessions/{created.get_json()['id']}", headers=AUTH).get_json()
        assert read["locale"] == locale


@pytest.mark.parametrize("locale", ["fr", "EN", "en-US", "zh-CN", "", 1, True, ["en"]])
def test_an_unknown_locale_is_refused_with_a_422_naming_the_field(client, locale):
    response = client.post("/api/v1/sessions", json={"realname": "张三", "idcard": idcard(12), "locale": locale},
                           headers=AUTH)
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "invalid_locale"
    assert response.get_json()["error"]["field"] == "locale"


@pytest.mark.parametrize(("header", "english"), [
    ("en-US", True), ("en-GB,en;q=0.9", True), ("en-US,en;q=0.9,zh-CN;q=0.8", True),
    ("fr-FR,en;q=0.5,zh;q=0.3", True), ("zh-CN,zh;q=0.9,en;q=0.8", False), ("zh-TW", False),
    ("en;q=0.3,zh-CN;q=0.8", False), ("de-DE", False), ("en;q=0", False), ("", False),
])
def test_the_phones_accept_language_picks_the_pages_language(client, new_session, header, english):
    created, _ = new_session()
    page = open_page(client, created["url"], **({"Accept-Language": header} if header else {}))
    assert page.english is english
    assert ("Before you start" in page.consent) is english
    assert ("开始前，请先确认" in page.consent) is not english
    assert "Accept-Language" in page.response.headers.get("Vary", "")


def test_the_operators_locale_overrides_the_phones_language(client, new_session):
    english_session, _ = new_session(locale="en")
    chinese_session, _ = new_session(locale="zh")
    page = open_page(client, english_session["url"], **{"Accept-Language": "zh-CN,zh;q=0.9"})
    assert page.english and "Before you start" in page.consent
    assert "Accept-Language" not in page.response.headers.get("Vary", "")
    page = open_page(client, chinese_session["url"], **{"Accept-Language": "en-US,en;q=0.9"})
    assert not page.english and "开始前，请先确认" in page.consent


def test_the_pages_language_switch_overrides_the_locale_and_the_phone(client, new_session):
    english_session, _ = new_session(locale="en")
    chinese_session, _ = new_session(locale="zh")
    page = open_page(client, english_session["url"], "?lang=zh", **{"Accept-Language": "en-US"})
    assert not page.english and "开始前，请先确认" in page.consent
    assert '?lang=en' in page.html and "English" in page.html      # the switch back is offered
    page = open_page(client, chinese_session["url"], "?lang=en", **{"Accept-Language": "zh-CN"})
    assert page.english and "Before you start" in page.consent


def test_the_other_pages_follow_the_phones_language_too(client):
    unknown = client.get("/v/no-such-token", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert unknown.status_code == 404 and '<html lang="en"' in unknown.get_data(as_text=True)
    assert "Accept-Language" in unknown.headers.get("Vary", "")
    form = client.get("/", headers={"Accept-Language": "en-US"})
    assert '<html lang="en"' in form.get_data(as_text=True)
