"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, messages collected in memory.

Options: STARTTLS (``tls=True``) or implicit TLS (``implicit_tls=True``) with a self-signed
certificate made at test time (``cryptography``), AUTH LOGIN/PLAIN against one user and
password (only after TLS: ``auth_require_tls``), recipients answered with a fixed reply
(``reject``), recipients that get 451 a number of times first (``tempfail``), and messages
on which the handler stores the message and then blocks until ``release`` is set (``block_on``)
— to simulate a reply that never comes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot use port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def make_self_signed(directory: Path) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for localhost / 127.0.0.1, usable as its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.content, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Handler:
    #: address -> full SMTP reply for RCPT TO, e.g. "550 5.1.1 No such user".
    reject: dict[str, str] = field(default_factory=dict)
    #: address -> how many RCPT TO attempts get "451 4.3.0 Try again later" first.
    tempfail: dict[str, int] = field(default_factory=dict)
    #: 1-based numbers of messages on which to block (after storing) until ``release``.
    block_on: set[int] = field(default_factory=set)
    messages: list[Received] = field(default_factory=list)
    rcpt_attempts: list[str] = field(default_factory=list)
    blocked: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_attempts.append(address)
        if address in self.reject:
            return self.reject[address]
        if self.tempfail.get(address, 0) > 0:
            self.tempfail[address] -= 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content))
        )
        if len(self.messages) in self.block_on:
            self.blocked.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
        return "250 2.0.0 Message accepted for delivery"

    def received_by(self) -> dict[str, int]:
        """Recipient -> number of messages received."""
        out: dict[str, int] = {}
        for m in self.messages:
            for r in m.rcpt_tos:
                out[r] = out.get(r, 0) + 1
        return out


class _Authenticator:
    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user.encode(), password.encode()

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any):
        ok = (
            isinstance(data, LoginPassword)
            and data.login == self.user
            and data.password == self.password
        )
        return AuthResult(success=ok, handled=False)


class SmtpTestServer:
    """``with SmtpTestServer(tmp_path, tls=True, auth=("u", "p")) as srv: ...``"""

    def __init__(
        self,
        cert_dir: Path,
        *,
        tls: bool = False,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        handler: Handler | None = None,
    ) -> None:
        self.handler = handler or Handler()
        self.host, self.port = HOST, free_port()
        self.cafile: Path | None = None
        kwargs: dict[str, Any] = {}
        if tls or implicit_tls:
            cert, key = make_self_signed(cert_dir)
            self.cafile = cert
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(cert, key)
            if implicit_tls:
                kwargs["ssl_context"] = ctx
            else:
                kwargs["tls_context"] = ctx
                kwargs["require_starttls"] = True
        if auth is not None:
            kwargs["authenticator"] = _Authenticator(*auth)
            kwargs["auth_require_tls"] = True
            kwargs["auth_required"] = True
        self.controller = Controller(self.handler, hostname=self.host, port=self.port, **kwargs)

    def __enter__(self) -> SmtpTestServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.handler.release.set()
        time.sleep(0.05)
        self.controller.stop()

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages
