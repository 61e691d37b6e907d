"""Operator theming (OPERATOR_THEMES): colours checked for contrast at start, logos https or
data:, and the capture page wearing its operator's colour through a stylesheet (no inline style)."""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest

from webapp.sessions import operator_fingerprint
from webapp.settings import ConfigurationError, load_settings
from webapp.theming import PAGE, WHITE, Theme, contrast, parse_themes, passing_shade

from .conftest import OPERATOR_KEY, create_session, idcard

GREEN = "#0b6e4f"
LOGO = "https://cdn.bank.example/logo.png"


def test_a_colour_with_enough_contrast_is_taken_in_lower_case():
    themes = parse_themes(json.dumps({"op_0123456789ab": {"color": "#0B6E4F", "logo": LOGO, "name": "示例银行"}}))
    assert themes == {"op_0123456789ab": Theme(color=GREEN, logo=LOGO, name="示例银行")}
    assert contrast(GREEN, WHITE) >= 4.5 and contrast(GREEN, PAGE) >= 4.5


@pytest.mark.parametrize("colour", ["#4a90e2", "#ffcc00", "#ff0000"])
def test_a_colour_white_text_cannot_be_read_on_is_refused_with_a_shade_that_passes(colour):
    with pytest.raises(ValueError, match=r"4\.5:1 is needed \(the darker #[0-9a-f]{6} passes\)") as error:
        parse_themes({"acme": {"color": colour}})
    shade = re.search(r"the darker (#[0-9a-f]{6})", str(error.value)).group(1)
    assert min(contrast(shade, WHITE), contrast(shade, PAGE)) >= 4.5
    assert shade == passing_shade(colour)
    parse_themes({"acme": {"color": shade}})  # the suggestion is accepted


@pytest.mark.parametrize("theme, words", [
    ({"color": "blue"}, "is not a colour like #1a5bc9"),
    ({"color": "#12345"}, "is not a colour"),
    ({"logo": "http://cdn.bank.example/logo.png"}, "is not an https:// URL"),
    ({"logo": "javascript:alert(1)"}, "is not an https:// URL"),
    ({"logo": "data:text/html;base64,PHNjcmlwdD4="}, "a data: logo must be"),
    ({"colour": "#0b6e4f"}, "unknown field"),
    ({"name": "x" * 61}, "at most 60"),
    ("#0b6e4f", "expected an object"),
])
def test_a_bad_theme_is_refused_naming_what_is_wrong(theme, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        parse_themes({"acme": theme})


def test_the_setting_stops_the_start_with_the_variables_name(tmp_path):
    with pytest.raises(ConfigurationError, match=r"OPERATOR_THEMES: .*acme\.color: #ffcc00 reaches only 1\.\d\d:1"):
        load_settings(tmp_path, {"OPERATOR_THEMES": '{"acme": {"color": "#ffcc00"}}'})
    with pytest.raises(ConfigurationError, match=r"OPERATOR_THEMES: .*not valid JSON"):
        load_settings(tmp_path, {"OPERATOR_THEMES": "{acme"})
    assert load_settings(tmp_path, {}).OPERATOR_THEMES == {}


def test_a_data_logo_is_taken():
    logo = "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4="
    assert parse_themes({"acme": {"logo": logo}})["acme"].logo == logo


def _page(client, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


@pytest.mark.parametrize("named_by", ["key", "fingerprint"])
def test_the_capture_page_wears_its_operators_colour_and_logo(make_app, named_by):
    operator = OPERATOR_KEY if named_by == "key" else operator_fingerprint(OPERATOR_KEY)
    app = make_app(OPERATOR_THEMES=json.dumps({operator: {"color": GREEN, "logo": LOGO, "name": "示例银行"}}))
    client = app.test_client()
    created, _person = create_session(client, idcard=idcard(51))
    html = _page(client, urlsplit(created["url"]).path)
    sheet = re.search(r'<link rel="stylesheet" href="(/theme\.css\?primary=0b6e4f)">', html)
    assert sheet, "the theme's stylesheet is linked"
    assert f'<img class="logo" src="{LOGO}" alt="示例银行"' in html
    assert not re.search(r"\sstyle=", html), "no inline style (the CSP forbids it)"
    # The logo's origin is allowed to load: the page's img-src names it (and nothing else new).
    for path in (urlsplit(created["url"]).path, "/"):
        images = re.search(r"img-src ([^;]*);", client.get(path).headers["Content-Security-Policy"]).group(1)
        assert images.split() == ["'self'", "data:", "blob:", "https://cdn.bank.example"]
    css = client.get(sheet.group(1))
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert f"--primary: {GREEN};" in css.get_data(as_text=True)
    assert "immutable" in css.headers["Cache-Control"]
    # After app.css, so its custom properties win.
    assert html.index("/static/app.css") < html.index("/theme.css")


def test_other_operators_and_unknown_colours_get_the_default(make_app):
    app = make_app(OPERATOR_THEMES=json.dumps({"op_000000000000": {"color": GREEN}}))
    client = app.test_client()
    created, _person = create_session(client, idcard=idcard(52))
    html = _page(client, urlsplit(created["url"]).path)
    assert "/theme.css" not in html and 'class="logo"' not in html
    assert client.get("/theme.css?primary=0b6e4f").status_code == 200
    assert client.get("/theme.css?primary=123456").status_code == 404   # not configured
    assert client.get("/theme.css?primary=0b6e4f;}body{x").status_code == 404


def test_the_standalone_form_wears_the_standalone_theme(make_app):
    client = make_app(OPERATOR_THEMES=json.dumps({"standalone": {"color": GREEN}})).test_client()
    assert "/theme.css?primary=0b6e4f" in _page(client, "/")
    assert "/theme.css" not in client.get("/v/unknown").get_data(as_text=True)
