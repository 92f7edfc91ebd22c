"""Workspace links for the weekly email: the owner's address with a signed token.

Used by ``sitewatch send`` (and the demo): the key is read here, in the crawler layer;
``reports`` only receives the finished URLs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from checks.owners import Owner
from crawler.config import Config
from crawler.engine.audit import site_name
from crawler.web.state import FALLBACK
from crawler.web.tokens import Signing, read_secret


def owner_identity(owner: Owner) -> str:
    """The name a token carries: the owner's, or the fallback's marker (no name)."""
    return owner.name or FALLBACK


def workspace_links(
    cfg: Config, environ: Mapping[str, str] = os.environ
) -> Callable[[Owner], str] | None:
    """``owner -> https://.../o/<token>``, or None when ``web.base_url`` is empty.

    Raises ``SecretMissing`` when a base URL is configured but the key is not set.
    """
    base = cfg.web.base_url.rstrip("/")
    if not base:
        return None
    signing = Signing(read_secret(cfg.web.secret_env, environ))
    site = site_name(cfg)

    def link(owner: Owner) -> str:
        return f"{base}/o/{signing.owner_token(owner_identity(owner), site)}"

    return link
