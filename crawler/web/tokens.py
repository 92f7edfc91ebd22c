"""Signed values of the workspace: editors' link tokens, CSRF tokens, the admin cookie.

All are signed with one key, read from the environment variable named by
``web.secret_env`` (never from a file, never logged), each use with its own salt so a
value signed for one purpose is refused for another. Timed values take their clock from
:class:`Signing` (``clock``: seconds since the epoch), so tests inject time instead of
sleeping.

- **Owner token** (``owner_token``): ``{"o": owner name, "s": site}``, valid ``token_days``
  (itsdangerous ``URLSafeTimedSerializer``); carried in the email's links.
- **CSRF token**: a double-submit token: a random nonce in a ``SameSite=Strict`` cookie,
  and in every form the nonce *and the identity of the viewer* signed; a POST is accepted
  only when the form's token verifies, carries the cookie's nonce and names the viewer.
- **Admin cookie**: ``{"admin": true}`` signed, valid 12 hours.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

OWNER_SALT = "sitewatch.web.owner"
CSRF_SALT = "sitewatch.web.csrf"
ADMIN_SALT = "sitewatch.web.admin"
ADMIN_MAX_AGE = 12 * 3600
#: Shortest key accepted (characters): a short key can be guessed offline from one link.
MIN_SECRET = 32


class SecretMissing(ValueError):
    """The signing key's environment variable is unset or too short."""


def read_secret(env_name: str, environ: Mapping[str, str]) -> str:
    """The key from ``$env_name``; the error names the variable, never a value."""
    value = environ.get(env_name, "")
    if len(value) < MIN_SECRET:
        raise SecretMissing(
            f"the environment variable {env_name} (web.secret_env) must hold a random key of "
            f"at least {MIN_SECRET} characters, e.g. `python -c 'import secrets; "
            f"print(secrets.token_urlsafe(48))'`"
        )
    return value


@dataclass(frozen=True)
class OwnerIdentity:
    owner: str
    site: str


class Signing:
    """The workspace's signers over one key, with an injectable clock."""

    def __init__(self, secret: str, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.clock = clock
        clock_ = clock

        class _Signer(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock_())

        self._signer = _Signer
        self._owner = self._serializer(OWNER_SALT)
        self._admin = self._serializer(ADMIN_SALT)
        self._csrf = self._serializer(CSRF_SALT)

    def _serializer(self, salt: str) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self._secret, salt=salt, signer=self._signer)

    # --- owner tokens -------------------------------------------------------------------

    def owner_token(self, owner: str, site: str) -> str:
        return str(self._owner.dumps({"o": owner, "s": site}))

    def read_owner_token(self, token: str, max_age_days: int) -> OwnerIdentity | None:
        """The identity in a valid, unexpired token; None for anything else."""
        data = self._loads(self._owner, token, max_age_days * 86400)
        if not isinstance(data, dict):
            return None
        owner, site = data.get("o"), data.get("s")
        if not isinstance(owner, str) or not isinstance(site, str):
            return None
        return OwnerIdentity(owner, site)

    # --- admin cookie -------------------------------------------------------------------

    def admin_cookie(self) -> str:
        return str(self._admin.dumps({"admin": True}))

    def is_admin_cookie(self, value: str) -> bool:
        data = self._loads(self._admin, value, ADMIN_MAX_AGE)
        return isinstance(data, dict) and data.get("admin") is True

    # --- CSRF ---------------------------------------------------------------------------

    @staticmethod
    def new_nonce() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, nonce: str, viewer: str) -> str:
        return str(self._csrf.dumps({"n": nonce, "v": viewer}))

    def csrf_ok(self, token: str, nonce: str, viewer: str) -> bool:
        """The form's token verifies, is recent (12 h), and matches cookie and viewer."""
        if not token or not nonce:
            return False
        data = self._loads(self._csrf, token, ADMIN_MAX_AGE)
        if not isinstance(data, dict):
            return False
        n, v = data.get("n"), data.get("v")
        if not isinstance(n, str) or not isinstance(v, str):
            return False
        same_nonce = hmac.compare_digest(n.encode(), nonce.encode())
        return same_nonce and hmac.compare_digest(v.encode(), viewer.encode())

    @staticmethod
    def _loads(s: URLSafeTimedSerializer, value: str, max_age: int) -> Any:
        if not value or len(value) > 4096:
            return None
        try:
            return s.loads(value, max_age=max_age)
        except (BadData, ValueError, TypeError, UnicodeError):
            return None
