"""Static files: read, versioned and gzipped once at start; cached by browsers for a year.

`url_for('static', filename='capture.js')` gains `?v=<content hash>`, so templates need no
change and a new release is a new URL. A versioned request is answered `Cache-Control: public,
max-age=31536000, immutable`; an unversioned one (an operator's `<script src=.../embed.js>`, an
old link) `no-cache` with an ETag, so it is revalidated and never stale. JavaScript modules
name their imports by relative path (`import ... from './media.js'`): at start those strings,
and any other quoted `'./file'` naming a file of the folder, or an image's bare name (the
action icons), get the same
`?v=` as the template's `modulepreload` links, so a module is fetched once and a release
changes the hash of every module that imports a changed one. Text files are sent gzipped
(level 9, done once) to browsers that accept it; nginx passes that through. Our own scripts and
stylesheets are sent minified (rjsmin, rcssmin: comments and spacing gone, about 40% fewer bytes
after gzip), so that what a phone loads before its camera opens stays within the page's budget
(tests/browser/test_page_weight.py); the files in the repository are the source to read.
Vendored files (`vendor/`) come minified already and are left as they are.
"""
from __future__ import annotations

import gzip
import hashlib
import mimetypes
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

import rcssmin
import rjsmin
from flask import Flask, Response, redirect, request, url_for
from werkzeug.wrappers import Response as WerkzeugResponse

YEAR = 365 * 24 * 3600
_COMPRESSIBLE = (".js", ".css", ".svg", ".html", ".json", ".txt", ".map", ".wasm")
# A quoted relative name in a module: './media.js', "./eyes.svg", or an image's bare 'eyes.svg'
# (resolved against the module's own URL with `new URL(name, import.meta.url)`).
_RELATIVE = re.compile(r"""(['"])(\./)?([\w.-]+)\1""")
_IMAGES = (".svg", ".png", ".jpg", ".webp", ".gif")
# gzip level 9 of the same bytes, by their SHA-256: an app made again in the same process (the
# tests make hundreds) does not compress the 1.3 MB face detector again.
_GZIPPED: dict[str, bytes] = {}


def _gzip(body: bytes) -> bytes:
    key = hashlib.sha256(body).hexdigest()
    if key not in _GZIPPED:
        _GZIPPED[key] = gzip.compress(body, compresslevel=9, mtime=0)
    return _GZIPPED[key]


def _minified(name: str, body: bytes) -> bytes:
    """Our own script or stylesheet without comments and spacing; anything else as it is."""
    if name.startswith("vendor/"):
        return body
    if name.endswith(".js"):
        return rjsmin.jsmin(body.decode("utf-8")).encode("utf-8")
    if name.endswith(".css"):
        return rcssmin.cssmin(body.decode("utf-8")).encode("utf-8")
    return body


@dataclass(frozen=True)
class Asset:
    """One static file as served: its bytes, their gzip (None when it does not pay) and hash."""

    body: bytes
    gzipped: bytes | None
    digest: str
    content_type: str


def build(folder: Path) -> dict[str, Asset]:
    """Every file under `folder`, by its path there ("capture.js", "vendor/face-api/x.js");
    modules' relative names carry their hashes."""
    raw = {p.relative_to(folder).as_posix(): _minified(p.relative_to(folder).as_posix(), p.read_bytes())
           for p in sorted(folder.rglob("*"))
           if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}
    digests: dict[str, str] = {}
    bodies: dict[str, bytes] = {}

    def digest(name: str, importers: tuple[str, ...] = ()) -> str | None:
        if name in digests:
            return digests[name]
        if name in importers:  # an import cycle: that one name stays unversioned
            return None
        body = raw[name]
        if name.endswith(".js"):
            def versioned(match: re.Match) -> str:
                quote, dot, other = match.groups()
                target = posixpath.join(posixpath.dirname(name), other)  # beside the module
                if target not in raw or not (dot or other.endswith(_IMAGES)):
                    return match.group(0)
                version = digest(target, (*importers, name))
                return match.group(0) if version is None else f"{quote}{dot or ''}{other}?v={version}{quote}"
            body = _RELATIVE.sub(versioned, body.decode("utf-8")).encode("utf-8")
        bodies[name] = body
        digests[name] = hashlib.sha256(body).hexdigest()[:12]
        return digests[name]

    assets = {}
    for name in raw:
        version = digest(name) or ""  # (only a name inside an import cycle has none, transiently)
        body = bodies[name]
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/") or content_type == "application/javascript" or name.endswith(".js"):
            content_type += "; charset=utf-8"
        packed = _gzip(body) if name.endswith(_COMPRESSIBLE) else None
        assets[name] = Asset(body, packed if packed and len(packed) < len(body) * 0.9 else None, version, content_type)
    return assets


_BUILT: dict[tuple, dict[str, Asset]] = {}  # by folder and its files' sizes and times


def built(folder: Path) -> dict[str, Asset]:
    """`build(folder)`, made once per process for as long as no file there changes: each app a
    process makes (a test, `flask` commands, a Celery worker's) shares it."""
    files = tuple((str(p), st.st_mtime_ns, st.st_size)
                  for p in sorted(folder.rglob("*")) if S_ISREG((st := p.stat()).st_mode))
    key = (str(folder), files)
    if key not in _BUILT:
        _BUILT.clear()  # a folder that changed: its old build is of no use
        _BUILT[key] = build(folder)
    return _BUILT[key]


def init_app(app: Flask) -> None:
    """Serve `app.static_folder` from memory and version `url_for('static', ...)`."""
    assert app.static_folder is not None
    assets = built(Path(app.static_folder))
    app.extensions["static_assets"] = assets
    send_static_file = app.send_static_file

    @app.url_defaults
    def _version(endpoint: str, values: dict) -> None:
        if endpoint == "static" and "v" not in values:
            asset = assets.get(values.get("filename", ""))
            if asset is not None:
                values["v"] = asset.digest

    def static(filename: str) -> Response:
        asset = assets.get(filename)
        if asset is None:  # added after start: Flask's own way
            return send_static_file(filename)
        packed = asset.gzipped is not None and request.accept_encodings["gzip"] > 0
        tag = f"{asset.digest}-gz" if packed else asset.digest
        if request.if_none_match.contains(tag):
            response = Response(status=304)
        else:
            response = Response(asset.gzipped if packed else asset.body, content_type=asset.content_type)
            if packed:
                response.headers["Content-Encoding"] = "gzip"
        response.set_etag(tag)
        if asset.gzipped is not None:
            response.vary.add("Accept-Encoding")
        # No document: a short policy of its own (an SVG opened alone runs nothing), instead of
        # the pages' (webapp/web/security.py adds its headers only where no policy is set yet).
        response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        if request.args.get("v") == asset.digest:
            response.cache_control.public = True
            response.cache_control.max_age = YEAR
            response.cache_control.immutable = True
        else:
            response.cache_control.no_cache = True
        return response

    app.view_functions["static"] = static

    def favicon() -> WerkzeugResponse:
        """Browsers ask for /favicon.ico by themselves (a PDF viewer, a bookmark): the SVG icon."""
        return redirect(url_for("static", filename="favicon.svg"), 302)

    app.add_url_rule("/favicon.ico", "favicon", favicon)
