"""`wsgi:app` with one change previewed for `python -m bench.memory --preview-juhe-body`.

The Juhe form is encoded to bytes here, the video's base64 escaped with three `bytes.replace`
calls, instead of by `requests` (urllib's `urlencode`, which for a 7.7 MB base64 string builds
a list of one-character strings: ~80 MB for a moment). Not used by the service: it shows what
the change to webapp/juhe.py's `_post` would save, measured in the same benchmark.
"""
from __future__ import annotations

import base64
from urllib.parse import quote_plus

from webapp.juhe import JuheClient
from wsgi import app  # noqa: F401  (what gunicorn serves)

_post = JuheClient._post


def form_body(form: dict[str, str]) -> bytes:
    """application/x-www-form-urlencoded bytes; the big base64 field without urlencode's copies."""
    video = form.get("videoBase64", "")
    small = "&".join(f"{quote_plus(k)}={quote_plus(v)}" for k, v in form.items() if k != "videoBase64")
    escaped = video.encode("ascii").replace(b"+", b"%2B").replace(b"/", b"%2F").replace(b"=", b"%3D")
    return small.encode("ascii") + b"&videoBase64=" + escaped


def _post_bytes(self, form, count, abort=None):
    return _post(self, form_body(form) if isinstance(form, dict) else form, count, abort)


JuheClient._post = _post_bytes
assert base64  # the standard alphabet is what gets escaped
