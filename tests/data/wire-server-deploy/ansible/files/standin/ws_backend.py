#!/usr/bin/env python3
"""Minimal websocket endpoint (the handshake only) standing in for cannon behind nginz-ssl."""
import base64
import hashlib
import socketserver
import sys

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Handler(socketserver.StreamRequestHandler):
    timeout = 10

    def handle(self):
        headers = {}
        request_line = self.rfile.readline(8192).decode("latin-1").strip()
        while True:
            line = self.rfile.readline(8192).decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key")
        if not request_line.startswith("GET ") or headers.get("upgrade", "").lower() != "websocket" or not key:
            self.wfile.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        self.wfile.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


if __name__ == "__main__":
    with Server((sys.argv[1], int(sys.argv[2])), Handler) as srv:
        srv.serve_forever()
