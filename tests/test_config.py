"""crawler.config: loading real files, merging, validation messages, derived values."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import pytest

from checks.models import Check, Severity
from checks.policy import Policy
from crawler.config import COMMAND_LINE, Config, ConfigError, load_config
from crawler.config.defaults import DEFAULTS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "example-umea.toml"


def write(tmp_path: Path, text: str, name: str = "site.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path)
    assert str(err).startswith(f"config error in {path}: ")
    return err


# --------------------------------------------------------------------------- loading


def test_defaults_load_and_round_trip():
    cfg = load_config()
    assert isinstance(cfg, Config)
    assert cfg.source is None
    assert cfg.to_dict() == DEFAULTS
    assert cfg.crawl.max_pages == 5000
    assert cfg.site.start_urls == ()
    assert cfg.links.unverified_statuses == (401, 403, 429, 999)
    assert cfg.email.smtp.port == 587
    assert cfg.owners == ()


def test_empty_file_is_the_defaults(tmp_path):
    path = write(tmp_path, "")
    cfg = load_config(path)
    assert cfg.source == str(path)
    assert cfg.to_dict() == DEFAULTS


def test_config_is_frozen_hashable_and_picklable():
    cfg = load_config(EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.crawl.max_pages = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.freshness.max_age_by_prefix["https://x.se/"] = 1  # type: ignore[index]
    assert hash(cfg) == hash(load_config(EXAMPLE))
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_example_umea_loads():
    cfg = load_config(EXAMPLE)
    assert cfg.site.name == "umea.se/internationellt"
    assert cfg.site.start_urls == ("https://www.umea.se/internationellt/",)
    assert "https://www.umea.se/internationellt/" in cfg.effective_scopes()
    assert set(cfg.links.watched) >= {"northsweden.eu", "skl.se", "skr.se"}
    assert cfg.freshness.max_age_by_prefix
    assert cfg.site.exclude
    assert [o.language for o in cfg.owners] == ["sv", "en"]
    sv, en = cfg.owners
    assert sv.matches("https://www.umea.se/internationellt/eu-projekt/a.html")
    assert not sv.matches("https://www.umea.se/international/")
    assert en.matches("https://www.umea.se/international/contact.html")
    assert "{url}" in (sv.edit_url or "")
    assert en.edit_url is None
    assert cfg.email.smtp.host
    assert cfg.schedule.timezone == "Europe/Stockholm"
    text = EXAMPLE.read_text(encoding="utf-8")
    assert "password_env" in text and "password =" not in text
    policy = cfg.policy()
    assert policy.is_watched("https://www.northsweden.eu/en/news/")
    assert policy.is_watched("https://skr.se/skr/demokratiledningstyrning.html")


def test_file_values_merge_over_defaults(tmp_path):
    path = write(
        tmp_path,
        """
[crawl]
max_pages = 10
delay = 1          # an int is fine for a float key

[email.smtp]
port = 2525
""",
    )
    cfg = load_config(path)
    assert cfg.crawl.max_pages == 10
    assert cfg.crawl.delay == 1.0 and isinstance(cfg.crawl.delay, float)
    assert cfg.crawl.max_depth == DEFAULTS["crawl"]["max_depth"]
    assert cfg.email.smtp.port == 2525
    assert cfg.email.smtp.security == "starttls"


def test_overrides_beat_the_file_and_none_means_not_given(tmp_path):
    path = write(tmp_path, '[crawl]\nmax_pages = 10\nmax_depth = 3\n[site]\nname = "x"\n')
    cfg = load_config(
        path,
        overrides={
            "crawl": {"max_pages": 99, "max_depth": None},
            "site": {"start_urls": ["http://127.0.0.1:8000/a/index.html"]},
        },
    )
    assert cfg.crawl.max_pages == 99
    assert cfg.crawl.max_depth == 3
    assert cfg.site.name == "x"
    assert cfg.site.start_urls == ("http://127.0.0.1:8000/a/index.html",)


def test_overrides_without_a_file():
    cfg = load_config(overrides={"report": {"out_dir": Path("reports"), "formats": "json,md"}})
    assert cfg.report.out_dir == "reports"
    assert cfg.report.formats == ("json", "md")


def test_error_in_override_names_the_command_line(tmp_path):
    path = write(tmp_path, "[crawl]\nmax_pages = 10\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides={"crawl": {"concurrency": 0}})
    assert info.value.file == COMMAND_LINE
    assert str(info.value) == (
        "config error in <command line>: crawl.concurrency: must be at least 1, got 0"
    )


def test_error_in_file_names_the_file_even_with_overrides(tmp_path):
    path = write(tmp_path, "[crawl]\nmax_pages = 'ten'\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides={"crawl": {"delay": 1.0}})
    assert info.value.file == str(path)
    assert info.value.key == "crawl.max_pages"


def test_override_that_is_not_a_table():
    with pytest.raises(ConfigError) as info:
        load_config(overrides=["crawl"])  # type: ignore[arg-type]
    assert info.value.file == COMMAND_LINE
    assert "expected a table" in str(info.value)


# --------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert info.value.key is None
    assert str(info.value) == f"config error in {path}: no such file"


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert "is a directory" in str(info.value)


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0,
    reason="needs POSIX file permissions that apply (not root: root reads any file)",
)
def test_unreadable_file(tmp_path):
    path = write(tmp_path, "")
    path.chmod(0)
    try:
        with pytest.raises(ConfigError) as info:
            load_config(path)
    finally:
        path.chmod(0o600)
    assert "permission denied" in str(info.value)


def test_path_below_a_file(tmp_path):
    path = write(tmp_path, "") / "site.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert "cannot read the file" in str(info.value)


def test_invalid_toml_reports_line_and_column(tmp_path):
    err = error_for(tmp_path, "[crawl]\nmax_pages = 10\nmax_depth =\n")
    assert err.key is None
    assert "invalid TOML" in err.reason
    assert "line 3" in err.reason and "column" in err.reason


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('[site]\nname = "Umeå"\n'.encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "not UTF-8" in str(info.value) and "line 2" in str(info.value)


# --------------------------------------------------------------------------- key errors


def test_unknown_key_suggests_the_nearest(tmp_path):
    err = error_for(tmp_path, "[crawl]\nmax_page = 10\n")
    assert err.key == "crawl.max_page"
    assert str(err).endswith("crawl.max_page: unknown key (did you mean 'max_pages'?)")


def test_unknown_table_suggests_the_nearest(tmp_path):
    err = error_for(tmp_path, "[crawll]\nmax_pages = 10\n")
    assert str(err).endswith("crawll: unknown key (did you mean 'crawl'?)")


def test_key_in_the_wrong_table_points_to_its_home(tmp_path):
    err = error_for(tmp_path, "[crawl]\nmax_age_days = 10\n")
    assert err.reason == "unknown key (did you mean 'freshness.max_age_days'?)"


def test_unknown_key_without_a_close_match(tmp_path):
    err = error_for(tmp_path, "[site]\nzzzz = 1\n")
    assert err.reason == "unknown key"


def test_unknown_owner_key(tmp_path):
    err = error_for(
        tmp_path,
        """
[[owners]]
match = "https://www.umea.se/a/"
name = "A"
emails = "a@umea.se"

[[owners]]
match = "https://www.umea.se/b/"
name = "B"
emial = "b@umea.se"
""",
    )
    assert str(err).endswith("owners[1].emial: unknown key (did you mean 'emails'?)")


def test_password_in_file_is_rejected(tmp_path):
    err = error_for(
        tmp_path,
        '[email.smtp]\nhost = "smtp.umea.se"\npassword = "hunter2"\npassword_env = "UMEA_SMTP"\n',
    )
    assert err.key == "email.smtp.password"
    assert "email.smtp.password_env" in err.reason
    assert "UMEA_SMTP" in err.reason
    assert "hunter2" not in str(err)


def test_to_dict_never_holds_a_password():
    cfg = load_config(
        overrides={"email": {"report_url": "https://user:s3cret@intranet.umea.se/report/"}}
    )
    data = cfg.to_dict()
    assert "password" not in data["email"]["smtp"]
    assert "s3cret" not in repr(data)
    assert data["email"]["smtp"]["password_env"] == "SITEWATCH_SMTP_PASSWORD"


# --------------------------------------------------------------------------- value errors


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[crawl]\nmax_pages = 'ten'", "crawl.max_pages: expected an integer, got 'ten'"),
        ("[crawl]\nmax_pages = true", "crawl.max_pages: expected an integer, got true"),
        ("[crawl]\nmax_pages = 2.5", "crawl.max_pages: expected an integer, got 2.5"),
        ("[crawl]\nobey_robots = 1", "crawl.obey_robots: expected true or false, got 1"),
        ("[crawl]\ndelay = 'slow'", "crawl.delay: expected a number, got 'slow'"),
        ("[crawl]\ntimeout = inf", "crawl.timeout: expected a finite number, got inf"),
        ("[site]\nname = 3", "site.name: expected a string, got 3"),
        ("[site]\nstart_urls = 'https://a.se/'", "site.start_urls: expected a list, got"),
        ("crawl = 5", "crawl: expected a table, got 5"),
        ("owners = {}", "owners: expected a list of tables ([[owners]]), got a table"),
    ],
)
def test_wrong_types(tmp_path, toml, message):
    err = error_for(tmp_path, toml + "\n")
    assert message in str(err)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[crawl]\nconcurrency = 0", "crawl.concurrency: must be at least 1, got 0"),
        ("[crawl]\nmax_pages = 0", "crawl.max_pages: must be at least 1, got 0"),
        ("[crawl]\ntimeout = 0", "crawl.timeout: must be greater than 0, got 0"),
        ("[crawl]\ndelay = -0.5", "crawl.delay: must be at least 0, got -0.5"),
        ("[freshness]\nmax_age_days = 0", "freshness.max_age_days: must be at least 1, got 0"),
        (
            "[email.smtp]\nport = 70000",
            "email.smtp.port: must be between 1 and 65535, got 70000",
        ),
        ("[email.smtp]\nport = 0", "email.smtp.port: must be between 1 and 65535, got 0"),
    ],
)
def test_ranges(tmp_path, toml, message):
    assert message in str(error_for(tmp_path, toml + "\n"))


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[severity]\nbroken_link = 'fatal'",
            "severity.broken_link: expected one of 'error', 'warning', 'info', got 'fatal'",
        ),
        (
            "[severity]\nbroken_link = 'warn'",
            "got 'warn' (did you mean 'warning'?)",
        ),
        ("[severity]\nbroken_links = 'error'", "severity.broken_links: unknown key"),
        (
            "[email.smtp]\nsecurity = 'tls'",
            "email.smtp.security: expected one of 'starttls', 'ssl', 'none', got 'tls'",
        ),
        (
            "[report]\nformats = ['html', 'pdf']",
            "report.formats[1]: expected one of 'html', 'json', 'csv', 'junit', 'md', got 'pdf'",
        ),
        ("[report]\nfail_on = 'fatal'", "report.fail_on: 'fatal' is neither a level"),
        (
            "[report]\nfail_on = 'stale_page,broken_links'",
            "(did you mean 'broken_link'?)",
        ),
        ("[report]\nfail_on = ['stale_page', 'x']", "report.fail_on[1]: 'x' is neither"),
        ("[report]\nfail_on = ''", "report.fail_on: expected a level"),
        ("[report]\nfail_on = 3", "report.fail_on: expected a level"),
        ("[report]\nfail_on = [false]", "report.fail_on[0]: expected a level or check names"),
        ("[report]\nfail_on = ['error', ['x']]", "report.fail_on[1]: expected a level or check"),
    ],
)
def test_enums(tmp_path, toml, message):
    assert message in str(error_for(tmp_path, toml + "\n"))


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            "[site]\nstart_urls = ['https://www.umea.se/', 'www.umea.se/internationellt/']",
            "site.start_urls[1]: expected an http(s) URL with a host",
        ),
        ("[site]\nstart_urls = ['ftp://umea.se/']", "site.start_urls[0]: expected an http(s)"),
        ("[site]\nstart_urls = ['https:///path']", "site.start_urls[0]: expected an http(s)"),
        ("[site]\nstart_urls = ['http://a.se:99999/']", "site.start_urls[0]: not a valid URL"),
        ("[site]\nscopes = ['/internationellt/']", "site.scopes[0]: expected an http(s) URL"),
        (
            "[links]\nwatched = ['northsweden.eu', 'mailto:x@skr.se']",
            "links.watched[1]: expected an http(s) URL prefix or a bare host name",
        ),
        ("[links]\nwatched = ['bad host']", "links.watched[0]: not a valid host name"),
        (
            "[freshness.max_age_by_prefix]\n'/nyheter/' = 30",
            'freshness.max_age_by_prefix."/nyheter/": expected an http(s) URL prefix',
        ),
        (
            "[freshness.max_age_by_prefix]\n'https://www.umea.se/nyheter/' = 0",
            'freshness.max_age_by_prefix."https://www.umea.se/nyheter/": must be at least 1',
        ),
        (
            "[freshness.max_age_by_prefix]\n'https://www.umea.se/nyheter/' = 'month'",
            "expected an integer, got 'month'",
        ),
        ("[email]\nreport_url = 'intranet/report'", "email.report_url: expected an http(s)"),
        ("[email]\nfrom_addr = 'sitewatch'", "email.from_addr: not an email address"),
    ],
)
def test_urls_and_addresses(tmp_path, toml, message):
    assert message in str(error_for(tmp_path, toml + "\n"))


def test_bad_regex_names_its_index(tmp_path):
    err = error_for(tmp_path, "[site]\nexclude = ['\\.pdf$', 'kalender', '(unclosed']\n")
    assert err.key == "site.exclude[2]"
    assert "invalid regular expression '(unclosed'" in err.reason


def test_empty_regex_is_rejected(tmp_path):
    err = error_for(tmp_path, "[site]\nexclude = ['']\n")
    assert err.key == "site.exclude[0]"
    assert "exclude every URL" in err.reason


def test_empty_soft_404_phrase_is_rejected(tmp_path):
    err = error_for(tmp_path, "[links]\nsoft_404_phrases = ['x', ' ']\n")
    assert err.key == "links.soft_404_phrases[1]"


@pytest.mark.parametrize(
    ("toml", "key", "text"),
    [
        ("day_of_week = 'monday'", "schedule.day_of_week", "invalid cron value"),
        ("day_of_week = '1'", "schedule.day_of_week", "day names"),
        ("hour = 25", "schedule.hour", "higher than the maximum"),
        ("minute = 'x'", "schedule.minute", "invalid cron value"),
        ("hour = true", "schedule.hour", "expected an integer or a cron expression"),
        ("timezone = 'Europe/Umea'", "schedule.timezone", "unknown time zone 'Europe/Umea'"),
        ("timezone = '../etc/passwd'", "schedule.timezone", "unknown time zone"),
        ("misfire_grace_time = 0", "schedule.misfire_grace_time", "must be at least 1"),
    ],
)
def test_schedule(tmp_path, toml, key, text):
    err = error_for(tmp_path, f"[schedule]\n{toml}\n")
    assert err.key == key
    assert text in err.reason


def test_schedule_accepts_cron_expressions(tmp_path):
    path = write(tmp_path, "[schedule]\nday_of_week = 'mon-fri'\nhour = '6,12'\nminute = 5\n")
    cfg = load_config(path)
    assert cfg.schedule.day_of_week == "mon-fri"
    assert cfg.schedule.hour == "6,12"


# --------------------------------------------------------------------------- owners


OWNER = """
[[owners]]
match = {match}
name = "Anna"
emails = {emails}
{extra}
"""


def owner_error(tmp_path, match='"https://www.umea.se/a/"', emails='"a@umea.se"', extra=""):
    return error_for(tmp_path, OWNER.format(match=match, emails=emails, extra=extra))


def test_owner_defaults_and_forms(tmp_path):
    path = write(
        tmp_path,
        OWNER.format(
            match='["https://WWW.Umea.se/a/", "https://www.umea.se/*/kontakt*"]',
            emails='"Anna Editor <anna@umea.se>"',
            extra="",
        ),
    )
    (owner,) = load_config(path).owners
    assert owner.match == ("https://www.umea.se/a/", "https://www.umea.se/*/kontakt*")
    assert owner.emails == ("Anna Editor <anna@umea.se>",)
    assert owner.language == "sv"
    assert owner.edit_url is None
    assert owner.matches("https://www.umea.se/a/b.html")
    assert owner.matches("https://www.umea.se/b/kontakt.html")
    assert not owner.matches("https://www.umea.se/b/")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"emails": '["a@umea.se", "not-an-address"]'}, "owners[0].emails[1]: not an email"),
        ({"emails": "[]"}, "owners[0].emails: must not be an empty list"),
        ({"emails": "3"}, "owners[0].emails: expected a string or a list of strings, got 3"),
        ({"match": '"/internationellt/"'}, "owners[0].match: expected a URL prefix"),
        ({"extra": 'language = "de"'}, "owners[0].language: expected one of 'sv', 'en'"),
        ({"extra": 'edit_url = "cms/edit"'}, "owners[0].edit_url: expected an http(s) URL"),
        (
            {"extra": 'edit_url = "https://cms.umea.se/{page}"'},
            "owners[0].edit_url: the only placeholder allowed is {url}",
        ),
    ],
)
def test_owner_errors(tmp_path, kwargs, message):
    assert message in str(owner_error(tmp_path, **kwargs))


def test_owner_missing_required_key(tmp_path):
    err = error_for(tmp_path, '[[owners]]\nmatch = "https://www.umea.se/a/"\nname = "A"\n')
    assert err.key == "owners[0].emails"
    assert "missing" in err.reason


# --------------------------------------------------------------------------- derived


def test_effective_scopes_from_start_urls():
    cfg = load_config(
        overrides={
            "site": {
                "start_urls": [
                    "http://127.0.0.1:8000/internationellt/index.html",
                    "http://127.0.0.1:8000/internationellt/eu.html",
                    "https://WWW.Umea.se",
                    "https://www.umea.se/en/a?x=/y",
                ]
            }
        }
    )
    assert cfg.effective_scopes() == (
        "http://127.0.0.1:8000/internationellt/",
        "https://www.umea.se/",
        "https://www.umea.se/en/",
    )


def test_effective_scopes_given_scopes_win_and_are_normalised():
    cfg = load_config(
        overrides={
            "site": {
                "start_urls": ["https://www.umea.se/internationellt/index.html"],
                "scopes": ["HTTPS://WWW.UMEA.SE/internationellt/", "https://umea.se"],
            }
        }
    )
    assert cfg.effective_scopes() == (
        "https://www.umea.se/internationellt/",
        "https://umea.se/",
    )


def test_policy_mapping(tmp_path):
    path = write(
        tmp_path,
        """
[freshness]
max_age_days = 200
[freshness.max_age_by_prefix]
"https://www.umea.se/nyheter/" = 30

[links]
watched = ["NorthSweden.eu", "https://skr.se/skr/"]
unverified_statuses = [403, 999, 403]
soft_404_phrases = ["finns inte"]

[severity]
redirect = "info"
""",
    )
    policy = load_config(path).policy()
    assert isinstance(policy, Policy)
    assert policy.max_age_days == 200
    assert dict(policy.max_age_by_prefix) == {"https://www.umea.se/nyheter/": 30}
    assert policy.max_age_for("https://www.umea.se/nyheter/a.html") == 30
    assert policy.max_age_for("https://www.umea.se/other.html") == 200
    assert policy.watched == ("northsweden.eu", "https://skr.se/skr/")
    assert policy.is_watched("https://www.northsweden.eu/")
    assert policy.unverified_statuses == frozenset({403, 999})
    assert policy.soft_404_phrases == ("finns inte",)
    assert policy.severity(Check.REDIRECT) is Severity.INFO
    assert policy.severity(Check.BROKEN_LINK) is Severity.ERROR
    assert set(policy.severities) == set(Check)


@pytest.mark.parametrize(
    ("fail_on", "expected"),
    [
        ("warning", (Severity.WARNING, frozenset())),
        ("error", (Severity.ERROR, frozenset())),
        (
            "stale_page,broken_link",
            (None, frozenset({Check.STALE_PAGE, Check.BROKEN_LINK})),
        ),
        (" stale_page , broken_link ", (None, frozenset({Check.STALE_PAGE, Check.BROKEN_LINK}))),
        (["missing_pdf"], (None, frozenset({Check.MISSING_PDF}))),
        (["error", "redirect"], (Severity.ERROR, frozenset({Check.REDIRECT}))),
        ([], (None, frozenset())),
    ],
)
def test_fail_threshold(fail_on, expected):
    cfg = load_config(overrides={"report": {"fail_on": fail_on}})
    assert cfg.fail_threshold() == expected


def test_fail_threshold_from_file(tmp_path):
    path = write(tmp_path, '[report]\nfail_on = "stale_page,broken_link"\n')
    assert load_config(path).fail_threshold() == (
        None,
        frozenset({Check.STALE_PAGE, Check.BROKEN_LINK}),
    )


def test_two_levels_in_fail_on_is_an_error():
    with pytest.raises(ConfigError, match="more than one level"):
        load_config(overrides={"report": {"fail_on": "error,warning"}})


# --------------------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "overrides",
    [
        {"crawl": {"max_pages": object()}},
        {"site": {"exclude": [None]}},
        {1: 2},
        {"owners": [None]},
        {"owners": "x"},
        {"freshness": {"max_age_by_prefix": {3: 4}}},
        {"schedule": {"timezone": "Europe/Stockholm\x00"}},
        {"site": {"start_urls": ["http://[::1/"]}},
        {"links": {"watched": [b"skr.se"]}},
    ],
)
def test_only_config_errors_escape(overrides):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    assert info.value.file == COMMAND_LINE


# --------------------------------------------------------------------------- tuning knobs


def test_parse_workers_auto_or_a_count(tmp_path):
    from crawler.engine.audit import crawl_params

    assert load_config().crawl.parse_workers == "auto"
    assert crawl_params(load_config()).parse_workers is None
    for n in (0, 3):
        cfg = load_config(write(tmp_path, f"[crawl]\nparse_workers = {n}\n"))
        assert crawl_params(cfg).parse_workers == n
    for bad, says in (("'many'", "'many'"), ("-1", "between 0 and 64"), ("true", "true")):
        err = error_for(tmp_path, f"[crawl]\nparse_workers = {bad}\n")
        assert err.key == "crawl.parse_workers"
        assert says in str(err), str(err)


def test_replay_switch(tmp_path):
    from crawler.rerun.replay import replay_key

    assert load_config().history.replay is True
    off = load_config(write(tmp_path, "[history]\nreplay = false\n"))
    assert off.history.replay is False
    err = error_for(tmp_path, "[history]\nreplay = 'no'\n")
    assert err.key == "history.replay"
    # How the crawl is run does not change what a stored run stands for.
    workers = load_config(write(tmp_path, "[crawl]\nparse_workers = 0\n", name="w.toml"))
    assert replay_key(workers) == replay_key(load_config())
