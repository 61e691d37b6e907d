"""Static files: versioned URLs, gzip done once, a year of caching for versioned URLs only."""
from __future__ import annotations

import gzip
import re

from webapp.web import static_files

from .conftest import AUTH


def page_assets(client, path: str) -> list[str]:
    """The static URLs a page's HTML names (stylesheet, module preloads, scripts)."""
    html = client.get(path).get_data(as_text=True)
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_the_capture_page_names_versioned_static_files_cached_for_a_year(client, new_session):
    _, person = new_session()
    urls = page_assets(client, person.path)
    assert {u.split("?")[0] for u in urls} >= {"/static/app.css", "/static/capture.js", "/static/media.js"}
    for url in urls:
        assert re.search(r"\?v=[0-9a-f]{12}$", url), url
        response = client.get(url, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["Content-Encoding"] == "gzip"
        assert response.headers["Content-Type"].count("charset") <= 1, response.headers["Content-Type"]
        assert "Accept-Encoding" in response.headers["Vary"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_gzip_is_the_file_and_a_browser_without_gzip_gets_it_plain(client, app):
    plain = (app.static_folder + "/app.css")
    with open(plain, "rb") as fh:
        on_disk = fh.read()
    url = page_assets(client, "/")[0]
    packed = client.get(url, headers={"Accept-Encoding": "gzip"})
    identity = client.get(url)
    assert "Content-Encoding" not in identity.headers
    assert gzip.decompress(packed.data) == identity.data and len(packed.data) < len(identity.data) / 2
    # Sent minified: the same rules without the comments and spacing.
    assert b"/*" in on_disk and b"/*" not in identity.data and len(identity.data) < len(on_disk) * 0.8
    assert identity.data.startswith(b":root{") and b":root {" in on_disk
    assert identity.headers["ETag"] != packed.headers["ETag"]  # two representations


def test_module_imports_carry_the_same_versions_as_the_preload_links(client, new_session):
    """capture.js imports './media.js': the browser must fetch the very URL it preloaded."""
    _, person = new_session()
    urls = page_assets(client, person.path)
    capture = next(u for u in urls if u.startswith("/static/capture.js"))
    source = client.get(capture).get_data(as_text=True)
    imported = {f"/static/{name}" for name in re.findall(r"from\s*'\./([^']+)'", source)}
    assert imported and imported <= set(urls), (imported, urls)
    icons = re.findall(r"'(?:\./)?([\w-]+\.svg[^']*)'", source)
    assert icons
    for icon in icons:
        assert "?v=" in icon and client.get(f"/static/{icon}").status_code == 200


def test_unversioned_urls_are_revalidated_and_a_match_is_304(client):
    response = client.get("/static/embed.js")  # what operators' pages include
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-cache"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    again = client.get("/static/embed.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    stale = client.get("/static/embed.js?v=000000000000")  # an old release's URL: not cached for long
    assert stale.status_code == 200 and stale.headers["Cache-Control"] == "no-cache"
    assert client.get("/static/nothing-here.js").status_code == 404
    assert client.get("/static/../app.py").status_code == 404


def test_changing_a_module_changes_its_version_and_its_importers(tmp_path):
    (tmp_path / "a.js").write_text("import { b } from './b.js';\nconst icon = './i.svg', bare = 'i.svg';\n"
                                   "const word = 'b.js';\n")
    (tmp_path / "b.js").write_text("export const b = 1;\n")
    (tmp_path / "i.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (tmp_path / "c.js").write_text("import './c.js'; import './missing.js';\n")  # a cycle, a stray name
    before = static_files.build(tmp_path)
    assert f"'./b.js?v={before['b.js'].digest}'" in before["a.js"].body.decode()
    assert f"'./i.svg?v={before['i.svg'].digest}'" in before["a.js"].body.decode()
    assert f"'i.svg?v={before['i.svg'].digest}'" in before["a.js"].body.decode()
    assert "'b.js'" in before["a.js"].body.decode()  # a bare script name may be anything: left alone
    assert b"'./c.js'" in before["c.js"].body and b"'./missing.js'" in before["c.js"].body  # left unversioned
    (tmp_path / "b.js").write_text("export const b = 2;\n")
    after = static_files.build(tmp_path)
    assert after["b.js"].digest != before["b.js"].digest
    assert after["a.js"].digest != before["a.js"].digest
    assert after["i.svg"].digest == before["i.svg"].digest


def test_api_and_pages_keep_their_own_cache_rules(client, new_session):
    _, person = new_session()
    assert client.get(person.path).headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/sessions", headers=AUTH).headers["Cache-Control"] == "no-store"


def test_the_vendored_face_detector_comes_gzipped_from_its_subfolder(client, app):
    """The detector (1.3 MB of JavaScript, loaded after the camera is live) travels compressed,
    from memory, like the page's own files; its folder's relative names stay its own."""
    from flask import url_for
    with app.test_request_context():
        url = url_for("static", filename="vendor/face-api/face-api.esm.js")
    assert re.search(r"\?v=[0-9a-f]{12}$", url), url
    on_disk = open(app.static_folder + "/vendor/face-api/face-api.esm.js", "rb").read()
    packed = client.get(url, headers={"Accept-Encoding": "gzip"})
    assert packed.status_code == 200 and packed.headers["Content-Encoding"] == "gzip"
    assert len(packed.data) < len(on_disk) * 0.4
    assert packed.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    wasm = client.get("/static/vendor/face-api/tfjs-backend-wasm-simd.wasm", headers={"Accept-Encoding": "gzip"})
    assert wasm.status_code == 200 and wasm.headers["Content-Type"] == "application/wasm"
    assert wasm.headers.get("Content-Encoding") == "gzip" and wasm.headers["Cache-Control"] == "no-cache"
