"""Fetch a video that an operator names by URL (the operator API's `video_url`).

Flask-free. Juhe can download a `videoUrl` itself, within 4 s and 8 MB after base64; we never
hand it one. This service downloads the video under the same limits, then runs it through the
page's path (normalised, and sent to Juhe as `videoBase64`). Where the download may connect
follows the webhook rules (webapp.delivery.targets): the host is resolved once per request and the
connection pinned to the address that was checked; outside sandbox (or unless
VIDEO_URL_ALLOW_PRIVATE) loopback, private and other internal addresses are refused, on the
first request and on every redirect (at most MAX_REDIRECTS). One deadline covers the whole
download, redirects included, so a server that trickles its answer cannot stretch it.

A failed download is answered with the code Juhe gives for its own failed videoUrl downloads,
so operators see one vocabulary: 267524 (the download failed: no connection, an HTTP error),
267525 (not complete within 4 s), 267535 (the connection broke off mid-way: try again),
267536 (empty or over the size limit), 267537 (not a video: an HTML page, JSON...). Messages
name the host at most, never the path or query (a signed URL's token lives there).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from requests import exceptions as rex

from ..delivery import targets
from ..juhe.deadline import Deadline, DeadlineAdapter

log = logging.getLogger(__name__)

SECONDS = 4.0                            # Juhe: 视频下载耗时不超过4S
MAX_BYTES = 8 * 1024 * 1024 * 3 // 4     # Juhe: 经Base64编码不超过8M, i.e. 6 MiB of video
MAX_REDIRECTS = 3
CHUNK = 64 * 1024
DOWNLOAD_FAILED, DOWNLOAD_TIMEOUT, DOWNLOAD_BROKEN, BAD_SIZE, NOT_A_VIDEO = (
    267524, 267525, 267535, 267536, 267537)
# Types a web server gives error pages and API answers: never a video.
_NOT_VIDEO_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "image/")


class FetchRefused(Exception):
    """The URL is one this service will not fetch (an internal address, directly or through a
    redirect, or not an http(s) URL): the operator's input is wrong, nothing was downloaded."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class FetchFailed(Exception):
    """The download did not give a usable file. `code` is the Juhe code it maps to."""

    def __init__(self, code: int, detail: str):
        super().__init__(detail)
        self.code, self.detail = code, detail


@dataclass(frozen=True)
class Fetched:
    size: int
    content_type: str | None
    redirects: int


class Fetcher:
    """Downloads one video URL to a file. `check(url, allow_private=, resolver=)` decides where
    a request may connect (targets.check; tests may wrap it), `resolver` replaces DNS."""

    def __init__(self, *, allow_private: bool, resolver: targets.Resolver | None = None,
                 check: Callable[..., targets.Target] = targets.check, seconds: float = SECONDS,
                 max_bytes: int = MAX_BYTES):
        self.allow_private, self.resolver, self.check = allow_private, resolver, check
        self.seconds, self.max_bytes = seconds, max_bytes

    def target(self, url: str) -> targets.Target:
        """Where a request to `url` connects now (raises targets.TargetRefused)."""
        return self.check(url, allow_private=self.allow_private, resolver=self.resolver)

    def precheck(self, url: str) -> None:
        """Refuse a URL that could never be fetched, before any work is done for it."""
        try:
            self.target(url)
        except targets.TargetRefused as refused:
            raise FetchRefused(refused.reason) from None

    def fetch(self, url: str, dest: Path) -> Fetched:
        """Download `url` into `dest`; raise FetchRefused or FetchFailed."""
        http = self._session()
        deadline = Deadline(self.seconds, None)
        host = _host(url)
        try:
            with deadline, open(dest, "wb") as out:
                response = http.get(url, stream=True, timeout=(self.seconds, self.seconds),
                                    headers={"Accept": "video/*, application/octet-stream;q=0.9, */*;q=0.5",
                                             "Accept-Encoding": "identity",
                                             "User-Agent": "liveness-video-fetch/1"})
                with response:
                    self._check_answer(response, host)
                    size = 0
                    for chunk in response.iter_content(CHUNK):
                        size += len(chunk)
                        if size > self.max_bytes:
                            raise FetchFailed(BAD_SIZE, f"{host} sent more than {self.max_bytes:,} bytes")
                        out.write(chunk)
        except targets.RefusedTarget as exc:
            raise FetchRefused(exc.reason) from None
        except rex.TooManyRedirects:
            raise FetchFailed(DOWNLOAD_FAILED, f"{host}: more than {MAX_REDIRECTS} redirects") from None
        except rex.RequestException as exc:
            if deadline.fired:
                raise self._timeout(host) from None
            raise self._failure(exc, host) from None
        finally:
            http.close()
        if deadline.fired:  # the cut may end a body without a length as if it were complete
            raise self._timeout(host)
        if size == 0:
            raise FetchFailed(BAD_SIZE, f"{host} sent an empty file")
        log.info("video_url on %s fetched: %d bytes, %d redirect(s)", host, size, len(response.history))
        return Fetched(size, response.headers.get("Content-Type"), len(response.history))

    # -- internals -------------------------------------------------------------------------------
    def _session(self) -> requests.Session:
        http = requests.Session()
        http.max_redirects = MAX_REDIRECTS
        adapter = _Adapter(self.target)
        http.mount("http://", adapter)
        http.mount("https://", adapter)
        return http

    def _check_answer(self, response: requests.Response, host: str) -> None:
        if response.status_code >= 300:
            raise FetchFailed(DOWNLOAD_FAILED, f"{host} answered HTTP {response.status_code}")
        kind = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if kind.startswith(_NOT_VIDEO_TYPES):
            raise FetchFailed(NOT_A_VIDEO, f"{host} sent {kind}, not a video")
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise FetchFailed(BAD_SIZE, f"{host} announced {int(length):,} bytes, over {self.max_bytes:,}")

    def _timeout(self, host: str) -> FetchFailed:
        return FetchFailed(DOWNLOAD_TIMEOUT, f"{host}: the download took longer than {self.seconds:g} s")

    @staticmethod
    def _failure(exc: rex.RequestException, host: str) -> FetchFailed:
        if isinstance(exc, rex.Timeout):
            return FetchFailed(DOWNLOAD_TIMEOUT, f"{host}: no answer in time")
        if isinstance(exc, (rex.ChunkedEncodingError, rex.ContentDecodingError)) or (
                isinstance(exc, rex.ConnectionError) and exc.response is not None):
            return FetchFailed(DOWNLOAD_BROKEN, f"{host}: the connection broke off during the download")
        return FetchFailed(DOWNLOAD_FAILED, f"{host}: {type(exc).__name__}")


class _Adapter(DeadlineAdapter, targets.PinnedAdapter):
    """Pinned to the checked address, and cut at the download's deadline."""


def _host(url: str) -> str:
    try:
        return targets.split(url)[1]
    except targets.TargetRefused:
        return "the host"
