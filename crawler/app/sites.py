"""Several sites under one deployment config: ``schedule.sites``.

A config file describes one site, as before. A deployment of many sites (docs/scaling.md)
lists the sites' own config files in ``schedule.sites`` (paths relative to the deployment
config's directory, globs allowed); each site file is merged over the deployment config
(``load_config(main, site_file=...)``), so the shared settings (history, email, crawl
politeness, schedule, worker) are written once. A site's ID is its site name
(``crawler.engine.audit.site_name``: ``site.name``, else host + path of its first start URL), the
key the history already uses. With ``schedule.sites`` empty the deployment config is the
one site, whose ID is its own site name.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crawler.config import Config, ConfigError, load_config


@dataclass(frozen=True)
class Site:
    """One site of a deployment: its ID, its own file (None: the deployment config) and
    its merged configuration."""

    id: str
    file: Path | None
    cfg: Config


def site_files(main: Config) -> list[Path]:
    """The site files named by ``main.schedule.sites``, globs expanded, in order."""
    base = Path(main.source).resolve().parent if main.source else Path.cwd()
    out: list[Path] = []
    for i, entry in enumerate(main.schedule.sites):
        pattern = str(base / os.path.expanduser(entry))
        if glob.has_magic(entry):
            found = sorted(Path(p) for p in glob.glob(pattern))
        else:
            found = [Path(pattern)]
            if not found[0].is_file():
                raise ConfigError(main.source, f"schedule.sites[{i}]", f"no such file: {entry!r}")
        for path in found:
            if path not in out:
                out.append(path)
    return out


def load_sites(
    main_path: str | os.PathLike[str], overrides: Mapping[str, Any] | None = None
) -> dict[str, Site]:
    """Every site of the deployment config at ``main_path``, by ID (file order)."""
    from crawler.engine.audit import site_name

    main = load_config(main_path, overrides)
    if not main.schedule.sites:
        return {site_name(main): Site(site_name(main), None, main)}
    files = site_files(main)
    if not files:
        raise ConfigError(main.source, "schedule.sites", "no site file matches")
    sites: dict[str, Site] = {}
    for path in files:
        cfg = load_config(main_path, overrides, site_file=path)
        sid = site_name(cfg)
        if not sid:
            raise ConfigError(str(path), "site", "a site needs site.name or site.start_urls")
        if sid in sites:
            raise ConfigError(
                str(path), "site.name", f"site {sid!r} is also defined by {sites[sid].file}"
            )
        sites[sid] = Site(sid, path, cfg)
    return sites


def load_site(
    main_path: str | os.PathLike[str], site_id: str, overrides: Mapping[str, Any] | None = None
) -> Config:
    """The configuration of site ``site_id`` of the deployment config at ``main_path``."""
    sites = load_sites(main_path, overrides)
    if site_id not in sites:
        known = ", ".join(repr(s) for s in sites) or "none"
        raise ConfigError(
            os.fspath(main_path), "schedule.sites", f"no site {site_id!r} (known: {known})"
        )
    return sites[site_id].cfg


def site_args(main_path: str, site_id: str | None) -> Sequence[str]:
    """``--config MAIN [--site ID]`` for a ``sitewatch`` child process."""
    args = ["--config", main_path]
    return [*args, "--site", site_id] if site_id is not None else args
