"""A small HTTP(S) server on 127.0.0.1 for connector tests that fake a web API (Gmail, Microsoft Graph...).

The fake is a plain function: ``app(method, target, headers, body)`` returns
``(status, headers, body bytes)``.  The server runs it in a background
thread, one thread per connection, and turns a bug in the fake into a 500
answer instead of a client left waiting.  Nothing leaves this machine.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["App", "LoopbackHTTPServer", "RecordedRequest"]

App = Callable[[str, str, Mapping[str, str], bytes], tuple[int, Mapping[str, str], bytes]]


@dataclass
class RecordedRequest:
    """One request as a fake server saw it, for assertions (``status``: what it answered, when recorded)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = field(default_factory=dict)
    at: float = 0.0
    body: Any = None
    status: int = 0


def _handler(app: App, idle_timeout: float | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        wbufsize = -1  # one write per answer (headers + body), flushed by handle_one_request
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between requests
        timeout = idle_timeout

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, headers, payload = app(self.command, self.path, dict(self.headers.items()), body)
            except Exception as exc:  # a bug in the fake must show up as a 500, not a hung client
                status, headers, payload = 500, {"Content-Type": "text/plain"}, f"fake server error: {exc!r}".encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD" and payload:
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            pass

    return Handler


class LoopbackHTTPServer:
    """``app`` served on a free port of 127.0.0.1 (HTTPS with ``tls=(cert.pem, key.pem)``).

    The port is bound when the object is built (:attr:`base_url` is known
    before :meth:`start`); :meth:`stop` releases it and is safe to call twice.
    ``idle_timeout`` closes connections a client left idle that long.
    """

    def __init__(self, app: App, *, name: str, tls: tuple[Path, Path] | None = None,
                 idle_timeout: float | None = None) -> None:
        self._httpd: ThreadingHTTPServer | None = ThreadingHTTPServer(("127.0.0.1", 0), _handler(app, idle_timeout))
        self._httpd.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port: int = self._httpd.server_address[1]
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=name, daemon=True)

    def start(self) -> LoopbackHTTPServer:
        """Serve in the background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        if self._thread.is_alive():
            httpd.shutdown()
            self._thread.join(timeout=5)
        httpd.server_close()
