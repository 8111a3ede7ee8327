"""Real TLS servers for the tests: Python's ssl module in a subprocess, plus certificate helpers.

Run as a program it serves one certificate chain on --address/--port (0 = pick one), or with
--sni NAME=CERT,KEY another chain to clients asking for NAME (as an ingress with one certificate per
host does), and prints "READY <port>" once listening; every connection gets a handshake and a tiny HTTP response.
`TlsServer` starts it with subprocess.Popen and stops and reaps it on exit.  `issue()` builds leaf
certificates with any key, validity window and names, signed by a trustme CA (trustme itself cannot
make 1024-bit keys, expired or self-signed certificates).
"""

from __future__ import annotations

import argparse
import datetime as dt
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


# ------------------------------------------------------------------------------------------------
# The server program


def _serve_one(context: ssl.SSLContext, conn: socket.socket) -> None:
    conn.settimeout(5)
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            tls.recv(1024)
            tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
    except (OSError, ssl.SSLError):
        pass  # clients probing protocol versions fail handshakes on purpose
    finally:
        conn.close()


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cert", required=True, help="PEM chain served (leaf first)")
    parser.add_argument("--key", required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--min-version", choices=VERSIONS, default="TLSv1.2")
    parser.add_argument("--max-version", choices=VERSIONS, default="TLSv1.3")
    parser.add_argument("--ciphers", default="ECDHE+AESGCM:ECDHE+CHACHA20:@SECLEVEL=0")
    parser.add_argument("--sni", action="append", default=[], metavar="NAME=CERT,KEY",
                        help="serve this chain to clients asking for NAME")
    args = parser.parse_args(argv)

    def make_context(cert: str, key: str) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_ciphers(args.ciphers)  # before loading: SECLEVEL decides whether weak keys load
        context.minimum_version = VERSIONS[args.min_version]
        context.maximum_version = VERSIONS[args.max_version]
        context.load_cert_chain(cert, key)
        return context

    context = make_context(args.cert, args.key)
    by_name = {}
    for item in args.sni:
        name, files = item.split("=", 1)
        by_name[name.lower()] = make_context(*files.split(",", 1))
    if by_name:
        def pick(conn: ssl.SSLObject, server_name: str | None, _context: ssl.SSLContext) -> None:
            if server_name and server_name.lower() in by_name:
                conn.context = by_name[server_name.lower()]

        context.sni_callback = pick

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((args.address, args.port))
    listener.listen(64)
    print(f"READY {listener.getsockname()[1]}", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve_one, args=(context, conn), daemon=True).start()


class TlsServer:
    """The program above in a subprocess; `with TlsServer(cert, key) as server: server.port`."""

    def __init__(
        self,
        cert: Path,
        key: Path,
        address: str = "127.0.0.1",
        min_version: str = "TLSv1.2",
        max_version: str = "TLSv1.3",
        ciphers: str | None = None,
        port: int = 0,
        sni: dict[str, tuple[Path, Path]] | None = None,
    ) -> None:
        self.address = address
        self.port = port
        self.argv = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--cert", str(cert), "--key", str(key), "--address", address, "--port", str(port),
            "--min-version", min_version, "--max-version", max_version,
        ]  # fmt: skip
        if ciphers:
            self.argv += ["--ciphers", ciphers]
        for name, (name_cert, name_key) in (sni or {}).items():
            self.argv += ["--sni", f"{name}={name_cert},{name_key}"]
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 10) -> TlsServer:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        if not ready or not ready[0].startswith("READY "):
            self.stop()
            raise RuntimeError(f"TLS server did not start: {self.stderr_text()}")
        self.port = int(ready[0].split()[1])
        return self

    def stderr_text(self) -> str:
        if self.proc and self.proc.stderr and self.proc.poll() is not None:
            return self.proc.stderr.read()
        return ""

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        self.proc = None

    def __enter__(self) -> TlsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# ------------------------------------------------------------------------------------------------
# Certificates


def issue(
    names: Sequence[str],
    issuer_cert_pem: bytes | None = None,
    issuer_key_pem: bytes | None = None,
    key: str = "ec",
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    client_auth: bool = False,
) -> tuple[bytes, bytes]:
    """A leaf certificate for `names` -> (cert PEM, key PEM).

    Signed by the issuer given (e.g. a trustme CA's cert_pem/private_key_pem bytes) or self-signed.
    `key` is "ec" (P-256), "ec384", or "rsa<bits>" such as "rsa1024".
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if key.startswith("rsa"):
        private = rsa.generate_private_key(public_exponent=65537, key_size=int(key[3:] or 2048))
    elif key == "ec384":
        private = ec.generate_private_key(ec.SECP384R1())
    else:
        private = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    not_before = not_before or now - dt.timedelta(days=1)
    not_after = not_after or now + dt.timedelta(days=365)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "test")])
    if issuer_cert_pem and issuer_key_pem:
        issuer_cert = x509.load_pem_x509_certificate(issuer_cert_pem)
        issuer_name = issuer_cert.subject
        signing_key = serialization.load_pem_private_key(issuer_key_pem, password=None)
    else:
        issuer_name, signing_key = subject, private
    usages = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client_auth else [])
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            import ipaddress

            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=key.startswith("rsa"), content_commitment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(signing_key, hashes.SHA256())  # type: ignore[arg-type]
    key_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


if __name__ == "__main__":
    _main()
