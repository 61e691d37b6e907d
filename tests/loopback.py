"""Real HTTP servers on 127.0.0.1 for tests: one that records every connection a hostile file
might make ffmpeg open, and a webhook receiver that answers a scripted list of statuses."""
from __future__ import annotations

import http.server
import threading

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


class _Recorder(http.server.BaseHTTPRequestHandler):
    def setup(self):
        self.server.connections.append(self.client_address)
        super().setup()

    def do_GET(self):
        self.server.requests.append(self.path)
        body = b"#EXTM3U\n" if self.path.endswith(".m3u8") else b"\x47" * 188
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_POST = do_GET

    def log_message(self, *args):
        pass


def recording_server() -> http.server.ThreadingHTTPServer:
    """Start a server that records every connection (`.connections`) and request path
    (`.requests`); stop it with `.shutdown()` and `.server_close()`."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.connections, server.requests = [], []
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


class Receiver:
    """A webhook receiver that answers `statuses` in turn (then 200) and keeps what it got
    (`received`: body and headers of each request)."""

    def __init__(self, statuses=(), path: str = "/hook"):
        self.statuses = list(statuses)
        self.path = path
        self.received: list[dict] = []
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{self.path}"

    @Request.application
    def app(self, request):
        self.received.append({"body": request.get_data(), "headers": dict(request.headers)})
        return Response("ok", status=self.statuses.pop(0) if self.statuses else 200)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
