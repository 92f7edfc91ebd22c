"""Delivering a run's emails exactly once: SMTP (STARTTLS or implicit TLS) or an outbox folder.

Idempotency (see ``crawler.history``): every (run, recipient) has one delivery row.
``deliver_run`` registers a row per message, then for each recipient *claims* it (pending or
failed -> sending, atomically), hands the message to the transport and records ``sent`` or
``failed``. Policy for a row found in ``sending`` (a crash or kill mid-send, or an SMTP reply
that never came): duplicates are worse than a delay, so it is never re-sent automatically.
The transport is asked first (``confirm``): the outbox can tell (the .eml file is written
atomically, so present = delivered, absent = not), SMTP cannot, and the row stays
``sending`` for the admin (``Store.unconfirmed_deliveries``, ``Store.release_delivery``).
Messages carry a Message-ID derived from (run, recipient), so even a forced resend is
recognisable as the same message.

SMTP errors: 4xx replies and connection problems are retried with exponential backoff
(``retries``); a 5xx for one recipient fails that recipient only; authentication, TLS and
persistent connection failures stop the run (the remaining recipients are recorded as
failed and retried by the next send). TLS is always verified (``ssl.create_default_context``,
optional ``ca_file``) and never falls back to plain text; ``security = "none"`` is accepted
only for loopback hosts. The password is passed in (read from the environment by
``make_transport``), never logged, stored or put in an error message.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import logging
import os
import re
import smtplib
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from checks.changes import FlakyPolicy
from checks.owners import Owner, route_changes
from reports.email_build import EmailSettings, ReportMeta, build_digest
from reports.email_workspace import prepare

log = logging.getLogger("sitewatch.delivery")

SECURITY_MODES = ("starttls", "ssl", "none")


class DeliveryError(Exception):
    """A message was not delivered. ``kind``:

    - ``temporary``: a 4xx that persisted through the retries (this recipient; retry later),
    - ``permanent``: a 5xx for this message or recipient (others still get theirs),
    - ``fatal``: the transport is unusable (auth, TLS, connection): stop this run,
    - ``unknown``: the message was handed over but no reply came: it may have arrived.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class SmtpSettings:
    """``email.smtp.*`` minus the password."""

    host: str
    port: int = 587
    security: str = "starttls"
    user: str = ""
    timeout: float = 30.0
    retries: int = 3
    ca_file: str = ""
    #: First backoff in seconds; doubled each retry, capped at ``max_backoff``.
    backoff: float = 2.0
    max_backoff: float = 60.0
    #: Envelope sender; empty: the message's From address.
    envelope_from: str = ""

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("email.smtp.host is empty (use the outbox instead)")
        if self.security not in SECURITY_MODES:
            raise ValueError(f"email.smtp.security must be one of {SECURITY_MODES}")
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError(
                f'email.smtp.security = "none" is only allowed for loopback hosts, '
                f"not {self.host!r}"
            )
        if self.retries < 0 or self.timeout <= 0:
            raise ValueError("email.smtp.retries must be >= 0 and timeout > 0")


class Transport(Protocol):
    def send(self, run_id: int, recipient: str, msg: EmailMessage) -> str:
        """Deliver one message; return a short detail for the log, raise DeliveryError."""

    def confirm(self, run_id: int, recipient: str) -> bool | None:
        """Whether an interrupted send arrived: True, False, or None when unknowable."""

    def close(self) -> None: ...


# --- outbox ------------------------------------------------------------------------------


class Outbox:
    """Writes each message as ``run<id>-<recipient>.eml`` (embedded default, no SMTP host)."""

    def __init__(self, directory: str | Path) -> None:
        self.dir = Path(directory)

    def path_for(self, run_id: int, recipient: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", recipient)
        if safe != recipient or safe.startswith("."):
            digest = hashlib.sha256(recipient.encode()).hexdigest()[:10]
            safe = f"{safe.lstrip('.')}-{digest}"
        return self.dir / f"run{int(run_id):06d}-{safe}.eml"

    def send(self, run_id: int, recipient: str, msg: EmailMessage) -> str:
        path = self.path_for(run_id, recipient)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(msg.as_bytes())
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, path)  # atomic: the file is there whole or not at all
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise DeliveryError("fatal", f"cannot write {path}: {exc.strerror}") from None
        return str(path)

    def confirm(self, run_id: int, recipient: str) -> bool:
        return self.path_for(run_id, recipient).exists()

    def close(self) -> None:
        pass


# --- SMTP --------------------------------------------------------------------------------


class _Retry(Exception):
    """A failure worth another try; ``fatal``: a connection problem (stops the run if it
    persists) rather than a 4xx for this message."""

    def __init__(self, error: str, fatal: bool = False) -> None:
        super().__init__(error)
        self.error, self.fatal = error, fatal


class _BodyTracking:
    """Knows whether the whole message body went out (then a lost reply = unknown outcome)."""

    _sw_in_data = False
    sw_body_sent = False

    def data(self, msg: Any) -> Any:
        self._sw_in_data = True
        try:
            return super().data(msg)  # type: ignore[misc]
        finally:
            self._sw_in_data = False

    def send(self, s: Any) -> None:
        super().send(s)  # type: ignore[misc]
        end = b"\r\n.\r\n" if isinstance(s, bytes) else "\r\n.\r\n"
        if self._sw_in_data and s.endswith(end):
            self.sw_body_sent = True


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


class _Utf8Auth:
    """AUTH with UTF-8 credentials. smtplib encodes them as ASCII, so a password such as
    "lösen-ord" raised UnicodeEncodeError (a traceback, the row left ``sending``); PLAIN is
    UTF-8 by RFC 4616 and servers read LOGIN the same way."""

    _auth_challenge_count = 0
    user: str
    password: str

    def auth(self, mechanism: str, authobject: Any, *, initial_response_ok: bool = True) -> Any:
        mechanism = mechanism.upper()
        initial = authobject() if initial_response_ok else None
        if initial is not None:
            code, resp = self.docmd("AUTH", f"{mechanism} {_b64(initial)}")  # type: ignore[attr-defined]
            self._auth_challenge_count = 1
        else:
            code, resp = self.docmd("AUTH", mechanism)  # type: ignore[attr-defined]
            self._auth_challenge_count = 0
        while code == 334:
            self._auth_challenge_count += 1
            if self._auth_challenge_count > 5:
                raise smtplib.SMTPException("the server's AUTH exchange does not end")
            challenge = base64.decodebytes(resp)
            code, resp = self.docmd(_b64(authobject(challenge)))  # type: ignore[attr-defined]
        if code in (235, 503):
            return code, resp
        raise smtplib.SMTPAuthenticationError(code, resp)

    def auth_cram_md5(self, challenge: bytes | None = None) -> str | None:
        if challenge is None:
            return None
        digest = hmac.HMAC(self.password.encode("utf-8"), challenge, "md5").hexdigest()
        return f"{self.user} {digest}"


class _SMTP(_Utf8Auth, _BodyTracking, smtplib.SMTP):
    pass


class _SMTPSSL(_Utf8Auth, _BodyTracking, smtplib.SMTP_SSL):
    pass


class SmtpDelivery:
    """One SMTP connection, opened on first use and reused for every message of a run."""

    def __init__(
        self,
        settings: SmtpSettings,
        password: str | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if settings.user and not password:
            raise ValueError("an SMTP user is configured but no password was given")
        self.settings = settings
        self.__password = password or ""
        self._sleep = sleep
        self._conn: _SMTP | _SMTPSSL | None = None

    def __repr__(self) -> str:
        s = self.settings
        return f"SmtpDelivery({s.host}:{s.port}, {s.security}, user={s.user!r})"

    def __enter__(self) -> SmtpDelivery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _scrub(self, text: str) -> str:
        """Remove the password (and its AUTH encodings) from anything we log or store."""
        pw = self.__password
        if not pw:
            return text
        user = self.settings.user
        secrets = {
            pw,
            base64.b64encode(pw.encode()).decode(),
            base64.b64encode(f"\0{user}\0{pw}".encode()).decode(),
        }
        for s in sorted(secrets, key=len, reverse=True):
            text = text.replace(s, "***")
        return text

    def _context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.settings.ca_file or None)

    def _connect(self) -> _SMTP | _SMTPSSL:
        s = self.settings
        conn: _SMTP | _SMTPSSL
        if s.security == "ssl":
            conn = _SMTPSSL(s.host, s.port, timeout=s.timeout, context=self._context())
        else:
            conn = _SMTP(s.host, s.port, timeout=s.timeout)
        try:
            conn.ehlo()
            if s.security == "starttls":
                if not conn.has_extn("starttls"):
                    raise DeliveryError("fatal", f"{s.host} does not offer STARTTLS")
                conn.starttls(context=self._context())
                conn.ehlo()
            if s.user:
                conn.login(s.user, self.__password)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.quit()
            except (smtplib.SMTPException, OSError):
                conn.close()

    def confirm(self, run_id: int, recipient: str) -> None:
        return None  # SMTP cannot tell whether an unanswered DATA arrived

    def _ensure_connection(self) -> _SMTP | _SMTPSSL:
        """The open connection, or a new one; connection-level failures are ``_Retry`` or
        fatal ``DeliveryError``s (auth, TLS, a 5xx greeting or refusal)."""
        if self._conn is not None:
            return self._conn
        host = f"{self.settings.host}:{self.settings.port}"
        try:
            self._conn = self._connect()
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                "fatal", self._scrub(f"authentication failed: {_reply(exc)}")
            ) from None
        except UnicodeError:
            raise DeliveryError(
                "fatal", "the SMTP user name or password cannot be encoded for AUTH"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError("fatal", self._scrub(f"{host}: not supported: {exc}")) from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise DeliveryError("fatal", f"TLS failed with {host}: {exc}") from None
        except smtplib.SMTPResponseException as exc:  # greeting, EHLO, STARTTLS refused
            err = self._scrub(f"{host} refused the session: {_reply(exc)}")
            if 400 <= exc.smtp_code < 500:
                raise _Retry(err, fatal=True) from None
            raise DeliveryError("fatal", err) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, timeout, disconnect
            raise _Retry(self._scrub(f"connection to {host} failed: {exc}"), fatal=True) from None
        return self._conn

    def send(self, run_id: int, recipient: str, msg: EmailMessage) -> str:
        try:
            return self._send(recipient, msg)
        except DeliveryError as exc:  # every message that leaves here is scrubbed
            raise DeliveryError(exc.kind, self._scrub(str(exc))) from None

    def _send(self, recipient: str, msg: EmailMessage) -> str:
        s = self.settings
        attempt = 0
        while True:
            try:
                try:
                    conn = self._ensure_connection()
                    conn.sw_body_sent = False
                    conn.send_message(msg, from_addr=s.envelope_from or None, to_addrs=[recipient])
                    return f"accepted by {s.host}"
                except (DeliveryError, _Retry):
                    raise
                except smtplib.SMTPRecipientsRefused as exc:
                    code, text = exc.recipients.get(recipient, (550, b"refused"))
                    err = self._scrub(f"recipient refused: {code} {_text(text)}")
                    if 400 <= code < 500:
                        raise _Retry(err) from None
                    raise DeliveryError("permanent", err) from None
                except smtplib.SMTPResponseException as exc:  # sender refused, data error
                    err = self._scrub(f"{type(exc).__name__}: {_reply(exc)}")
                    self._reset_after_error()
                    if 400 <= exc.smtp_code < 500:
                        raise _Retry(err) from None
                    raise DeliveryError("permanent", err) from None
                except (smtplib.SMTPException, OSError) as exc:  # incl. TLS errors mid-session
                    unknown = self._conn is not None and self._conn.sw_body_sent
                    self.close()
                    if unknown:
                        raise DeliveryError(
                            "unknown", f"no reply after the message was sent: {exc}"
                        ) from None
                    raise _Retry(self._scrub(f"connection to {s.host} lost: {exc}"), True) from None
            except _Retry as r:
                if attempt >= s.retries:
                    raise DeliveryError("fatal" if r.fatal else "temporary", r.error) from None
                delay = min(s.max_backoff, s.backoff * 2**attempt)
                attempt += 1
                log.info("retrying %s in %.1f s (%s)", recipient, delay, r.error)
                self._sleep(delay)

    def _reset_after_error(self) -> None:
        """smtplib resets after refusals; make sure a broken session is not reused."""
        if self._conn is not None:
            try:
                self._conn.rset()
            except (smtplib.SMTPException, OSError):
                self.close()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


# --- one run -----------------------------------------------------------------------------


@dataclass
class DeliveryResult:
    run_id: int
    sent: list[str] = field(default_factory=list)
    #: Sent by an earlier call (or confirmed by the outbox): nothing done now.
    already_sent: list[str] = field(default_factory=list)
    #: Recipient -> error; retried by the next send.
    failed: dict[str, str] = field(default_factory=dict)
    #: Left in ``sending``: outcome unknown or being sent by another process. Not re-sent.
    unconfirmed: list[str] = field(default_factory=list)
    #: Why the run was stopped early (auth, TLS, connection), if it was.
    fatal: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unconfirmed


class DeliveryStore(Protocol):
    """What ``deliver_run`` needs from ``crawler.history.Store``."""

    def register_deliveries(self, run_id: int, recipients: Iterable[str]) -> None: ...
    def delivery(self, run_id: int, recipient: str) -> Any: ...
    def claim_delivery(self, run_id: int, recipient: str, message_id: str = "") -> bool: ...
    def mark_sent(self, run_id: int, recipient: str, detail: str = "") -> None: ...
    def mark_failed(self, run_id: int, recipient: str, error: str) -> None: ...
    def note_delivery(self, run_id: int, recipient: str, detail: str) -> None: ...


def deliver_run(
    store: DeliveryStore,
    run_id: int,
    messages_by_recipient: Mapping[str, EmailMessage],
    transport: Transport,
) -> DeliveryResult:
    """Send each message at most once; safe to call again (after a crash, or to retry)."""
    result = DeliveryResult(run_id)
    store.register_deliveries(run_id, messages_by_recipient)
    try:
        for rcpt, msg in messages_by_recipient.items():
            row = store.delivery(run_id, rcpt)
            state = row.state if row is not None else "pending"
            if state == "sent":
                result.already_sent.append(rcpt)
                continue
            if state == "sending":
                arrived = transport.confirm(run_id, rcpt)
                if arrived is True:
                    store.mark_sent(run_id, rcpt, "confirmed after interruption")
                    result.already_sent.append(rcpt)
                    continue
                if arrived is None:
                    log.warning(
                        "delivery of run %s to %s: outcome unknown, not re-sent", run_id, rcpt
                    )
                    result.unconfirmed.append(rcpt)
                    continue
                store.mark_failed(run_id, rcpt, "interrupted before delivery (confirmed)")
            if result.fatal:
                store.mark_failed(run_id, rcpt, f"not attempted: {result.fatal}")
                result.failed[rcpt] = f"not attempted: {result.fatal}"
                continue
            if not store.claim_delivery(run_id, rcpt, str(msg.get("Message-ID", ""))):
                result.unconfirmed.append(rcpt)  # another process got there first
                continue
            try:
                detail = transport.send(run_id, rcpt, msg)
            except Exception as exc:
                if not isinstance(exc, DeliveryError):  # a bug: outcome unknown, stays sending
                    store.note_delivery(run_id, rcpt, f"outcome unknown: {type(exc).__name__}")
                    raise
                if exc.kind == "unknown":
                    store.note_delivery(run_id, rcpt, f"outcome unknown: {exc}")
                    log.warning("run %s to %s: outcome unknown (%s)", run_id, rcpt, exc)
                    result.unconfirmed.append(rcpt)
                    continue
                store.mark_failed(run_id, rcpt, f"{exc.kind}: {exc}")
                log.warning("run %s to %s failed: %s", run_id, rcpt, exc)
                result.failed[rcpt] = str(exc)
                if exc.kind == "fatal":
                    result.fatal = str(exc)
                continue
            store.mark_sent(run_id, rcpt, detail)
            log.info("run %s: sent to %s", run_id, rcpt)
            result.sent.append(rcpt)
    finally:
        transport.close()
    return result


# --- config adapter ----------------------------------------------------------------------


@dataclass(frozen=True)
class EmailSetup:
    """Everything email needs from config, as plain values (no password: see make_transport)."""

    site_name: str
    owners: tuple[Owner, ...]
    fallback: Owner | None
    email: EmailSettings
    smtp: SmtpSettings | None
    password_env: str
    outbox: Path
    flaky: FlakyPolicy
    db_path: Path
    #: The owner's workspace URL with a signed token (``sitewatch web``; set by the
    #: ``send`` command, which holds the key); None: no workspace links.
    workspace: Callable[[Owner], str] | None = None


def make_transport(
    setup: EmailSetup, environ: Mapping[str, str] = os.environ
) -> SmtpDelivery | Outbox:
    """SMTP when a host is configured (password from ``$password_env``), else the outbox."""
    if setup.smtp is None:
        return Outbox(setup.outbox)
    password = environ.get(setup.password_env, "") if setup.password_env else ""
    if setup.smtp.user and not password:
        raise ValueError(
            f"email.smtp.user is set but the environment variable {setup.password_env} is empty"
        )
    if setup.smtp.ca_file:  # a configuration error, not a connection failure to retry
        try:
            ssl.create_default_context(cafile=setup.smtp.ca_file)
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ValueError(
                f"email.smtp.ca_file: cannot load {setup.smtp.ca_file}: {why}"
            ) from None
    return SmtpDelivery(setup.smtp, password or None)


def messages_for_run(
    store: Any, run_id: int, setup: EmailSetup, *, now: Any = None
) -> dict[str, EmailMessage]:
    """Rebuild every message of a finished run from the store (same Message-IDs)."""
    changes = store.changes_for(run_id)
    routed, extras = prepare(
        store,
        run_id,
        changes,
        lambda c: route_changes(c, setup.owners, setup.fallback),
        setup.workspace,
        now or dt.datetime.now(dt.UTC),
    )
    urls = {
        i.finding.page for items in (changes.new, changes.still_open, changes.fixed) for i in items
    }
    meta = ReportMeta.from_run(run_id, store.run_info(run_id), setup.site_name)
    return build_digest(
        routed, meta, setup.email, pages=store.pages(run_id, urls), now=now, extras=extras
    )
