"""A stand-in for api.ipify.org: an HTTP server answering every GET with one address (our own code)."""

from __future__ import annotations

import http.server
import threading


class PublicIpServer:
    """``with PublicIpServer("198.18.3.1", answer="198.18.3.7") as s: s.url``; bound to a loopback or lab
    bridge address, so the question never leaves this machine."""

    def __init__(self, bind: str, answer: str):
        body = answer.encode()
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                outer.requests += 1
                # HTTP/1.0 without Content-Length: the body ends when this server closes, so the server
                # closes first and the TIME-WAIT stays here, not on the test host the client ran on
                self.send_response(200)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((bind, 0), Handler)
        self.url = f"http://{self.server.server_address[0]}:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, name="public-ip", daemon=True)

    def __enter__(self) -> PublicIpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
