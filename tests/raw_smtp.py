"""A scripted plain-text SMTP server that records every byte a client sends.

For what aiosmtpd will not do on purpose: offer AUTH but no STARTTLS (would the client
fall back to plain text?), greet with a 4xx, or echo the client's AUTH attempt back in
its 535 reply (would the client log it?). ``transcript`` holds everything received on
every connection, so a test can assert that a password, or a ``MAIL FROM``, never went
over the wire. Only loopback.
"""

from __future__ import annotations

import base64
import binascii
import socket
import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class Script:
    greeting: str = "220 raw.test ESMTP ready"
    #: EHLO extension lines after the first ("250-raw.test").
    extensions: tuple[str, ...] = ("AUTH PLAIN LOGIN", "8BITMIME")
    #: 535 replies that echo the AUTH data (encoded and decoded) back to the client.
    echo_auth: bool = False
    #: Accept MAIL/RCPT/DATA (if a client got that far, the test will see it).
    accept_mail: bool = True


@dataclass
class Recorded:
    transcript: list[bytes] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def data(self) -> bytes:
        with self.lock:
            return b"".join(self.transcript)


def _decoded(b64: str) -> str:
    try:
        return base64.b64decode(b64, validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""


class _Handler(socketserver.StreamRequestHandler):
    server: _Server
    timeout = 30

    def _say(self, line: str) -> None:
        self.wfile.write(line.encode("utf-8", "replace") + b"\r\n")
        self.wfile.flush()

    def _read(self) -> bytes:
        line = self.rfile.readline(65536)
        with self.server.rec.lock:
            self.server.rec.transcript.append(line)
        return line

    def handle(self) -> None:
        script = self.server.script
        self._say(script.greeting)
        if not script.greeting.startswith("2"):
            return
        while True:
            try:
                raw = self._read()
            except OSError:
                return
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                ext = script.extensions
                lines = ["raw.test", *ext]
                for i, text in enumerate(lines):
                    self._say(f"250{'-' if i < len(lines) - 1 else ' '}{text}")
            elif verb == "AUTH":
                self._auth(line)
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP") and script.accept_mail:
                self._say("250 2.0.0 OK")
            elif verb == "DATA" and script.accept_mail:
                self._say("354 End data with <CR><LF>.<CR><LF>")
                body = []
                while True:
                    chunk = self._read()
                    if not chunk or chunk in (b".\r\n", b".\n"):
                        break
                    body.append(chunk)
                with self.server.rec.lock:
                    self.server.rec.messages.append(b"".join(body))
                self._say("250 2.0.0 queued")
            elif verb == "QUIT":
                self._say("221 2.0.0 bye")
                return
            else:
                self._say("502 5.5.2 command not recognised")

    def _auth(self, line: str) -> None:
        parts = line.split()
        mech = parts[1].upper() if len(parts) > 1 else ""
        if not self.server.script.echo_auth:
            self._say("535 5.7.8 Authentication credentials invalid")
            return
        if mech == "PLAIN":
            data = parts[2] if len(parts) > 2 else ""
            shown = _decoded(data).replace("\0", "|")
            self._say(f"535 5.7.8 Authentication failed for AUTH PLAIN {data} ({shown})")
        elif mech == "LOGIN":
            user = parts[2] if len(parts) > 2 else ""
            if not user:
                self._say("334 VXNlcm5hbWU6")
                user = self._read().decode().strip()
            self._say("334 UGFzc3dvcmQ6")
            pw = self._read().decode().strip()
            self._say(
                f"535-5.7.8 Authentication failed for AUTH LOGIN {user} {pw}\r\n"
                f"535 5.7.8 user {_decoded(user)!r} password {_decoded(pw)!r} rejected"
            )
        else:
            self._say("504 5.5.4 mechanism not supported")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, script: Script) -> None:
        self.script = script
        self.rec = Recorded()
        super().__init__(("127.0.0.1", 0), _Handler)


class RawSmtpServer:
    """``with RawSmtpServer(Script(...)) as srv: ... srv.data``"""

    def __init__(self, script: Script | None = None) -> None:
        self._srv = _Server(script or Script())
        self.host = "127.0.0.1"
        self.port = int(self._srv.server_address[1])
        self._thread = threading.Thread(
            target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def data(self) -> bytes:
        """Every byte received, all connections."""
        return self._srv.rec.data

    @property
    def messages(self) -> list[bytes]:
        return list(self._srv.rec.messages)

    def __enter__(self) -> RawSmtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._srv.shutdown()
        self._srv.server_close()


def closed_port() -> int:
    """A loopback port with nothing listening (a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
