"""HTTP security headers for every response, and who may frame the capture page.

Every page refuses framing except the capture page, which the session's `embed_origin` (else every
EMBED_ORIGINS entry, else only this site) may frame and let use the camera and microphone.
"""
from __future__ import annotations

from flask import Flask, Response, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

_CSP = ("default-src 'self'; script-src 'self'{script}; style-src 'self'; img-src 'self' data: blob:{images}; "
        "media-src 'self' blob: mediastream:; connect-src 'self'; font-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}")


def _csp(script: str, ancestors: str) -> str:
    """The policy, with the image origins of operators' logos (OPERATOR_THEMES) allowed."""
    images = "".join(" " + origin for origin in current_app.extensions.get("csp_img_origins", ()))
    return _CSP.format(script=script, ancestors=ancestors, images=images)


def init_app(app: Flask, proxy_hops: int, https_public_url: bool,
             img_origins: tuple[str, ...] = ()) -> None:
    """Install the headers; trust `proxy_hops` reverse proxies for client IP and scheme; let
    pages show images from `img_origins` (the https origins of operators' logos)."""
    app.extensions["csp_img_origins"] = tuple(img_origins)
    if proxy_hops:
        proxied = ProxyFix(app.wsgi_app, x_for=proxy_hops, x_proto=proxy_hops,
                           x_host=proxy_hops, x_prefix=proxy_hops)
        # Flask's documented way to add WSGI middleware, which mypy reads as replacing a method.
        app.wsgi_app = proxied  # type: ignore[method-assign]

    @app.after_request
    def _headers(response: Response) -> Response:
        h = response.headers
        if "Content-Security-Policy" not in h:
            h["Content-Security-Policy"] = _csp(script="", ancestors="'none'")
            h["X-Frame-Options"] = "DENY"
            h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
        h.setdefault("X-Content-Type-Options", "nosniff")
        # Page tokens live in URLs: never let them leave in a Referer header.
        h.setdefault("Referrer-Policy", "no-referrer")
        if request.path == "/static/embed.js":
            # Operators include this one file from their own origin.
            h["Cross-Origin-Resource-Policy"] = "cross-origin"
            h["Access-Control-Allow-Origin"] = "*"
        h.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if request.is_secure or https_public_url:
            h.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.path.startswith(("/api/", "/v/")) or request.method != "GET":
            h.setdefault("Cache-Control", "no-store")
        return response


def allow_framing(response: Response, origins: tuple[str, ...] | list[str]) -> Response:
    """Let `origins` (and this site) frame this response and use its camera and microphone; its
    scripts may compile WebAssembly (the capture page's face detector runs in it)."""
    allowed = " ".join(["'self'", *origins])
    response.headers["Content-Security-Policy"] = _csp(script=" 'wasm-unsafe-eval'", ancestors=allowed)
    quoted = " ".join(["self", *(f'"{o}"' for o in origins)])
    response.headers["Permissions-Policy"] = (f"camera=({quoted}), microphone=({quoted}), "
                                              "geolocation=(), payment=(), usb=()")
    response.headers.pop("X-Frame-Options", None)
    return response
