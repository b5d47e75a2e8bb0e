"""A local HTTP server for download tests: a handler class served on 127.0.0.1 in a daemon thread, as a
context manager (``with LocalServer(Handler) as s: s.url``)."""

from __future__ import annotations

import http.server
import threading


class LocalServer:
    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
