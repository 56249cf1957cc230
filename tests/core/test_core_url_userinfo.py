"""A URL with a user name or password is refused where it is typed, with a `%` line saying
why that never repeats the password; nothing is stored, logged or shown. A log an older build
wrote with such a URL still replays, and its configuration still reads (refusing only new
input)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import Engine, parser
from engine.audit.cosignature import cosignature_verifier
from engine.grammar import ArgRefused, no_userinfo
from engine.ports import FakeClock
from engine.trustpoints import parse_trustpoint_config

SECRET = "S3cretPw"
URL = f"http://admin:{SECRET}@127.0.0.1/ca"
WITNESS_KEY = cosignature_verifier("witness", bytes(32)).key_string()
WHY = ("% A URL with a user name or password is refused: the configuration, the log and "
       "'show' would keep the password in clear. Give the URL without 'user:password@'.")


@pytest.mark.parametrize("lines", [
    ("crypto ca trustpool import url {url}/bundle.p7b",),
    ("crypto ca crl request {url}/ca.crl",),
    ("configure", "crypto ca trustpool policy", "cabundle url {url}/b.p7b"),
    ("configure", "crypto ca trustpoint t", "enrollment url {url}"),
    ("configure", "crypto ca trustpoint t", "query url ldap://cn:{secret}@127.0.0.1/o=x"),
    ("configure", "audit witness url {url} key {witness}"),
    ("configure", "crypto ca trustpoint t", "do crypto ca crl request {url}/ca.crl"),
])
def test_a_url_with_userinfo_is_refused_without_echoing_it(lines: tuple[str, ...]) -> None:
    e = Engine.in_memory(clock=FakeClock())
    *setup, last = (line.format(url=URL, secret=SECRET, witness=WITNESS_KEY)
                     for line in lines)
    for line in setup:
        assert e.execute(line).ok, line
    before = e.state
    result = e.execute(last)
    assert result.error is not None and result.error.message == WHY
    assert result.events == [] and e.state == before
    assert SECRET not in result.output
    column = result.output.splitlines()[0].index("^") - len(result.prompt)
    assert last[column:].startswith(("http://", "ldap://"))  # the caret is under the URL


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "ldap://CN=ca,O=x",
                                 "ldap://127.0.0.1/CN=ca,emailAddress=pki@example.com",
                                 "ldap://CN=ca,emailAddress=pki@example.com",
                                 "http://127.0.0.1/a@b"])
def test_urls_without_userinfo_pass_the_screen(url: str) -> None:
    no_userinfo(url)


@pytest.mark.parametrize("url", ["http://admin@127.0.0.1/", "https://a:b@[::1]:443/x",
                                 "ldap://cn=admin:pw@127.0.0.1/o=x", "file://u@localhost/x"])
def test_userinfo_is_caught_in_every_form(url: str) -> None:
    with pytest.raises(ArgRefused):
        no_userinfo(url)


def test_an_old_log_with_such_a_url_still_replays(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Written by a build without the screen; reopened (replayed) by this one."""
    with monkeypatch.context() as m:
        m.setattr(parser, "_screen", lambda c, line: None)  # the older build
        e = Engine.open(tmp_path, clock=FakeClock(), use_snapshots=False)
        for line in ("configure", "crypto ca trustpoint t", f"enrollment url {URL}",
                     "commit", "end"):
            assert e.execute(line).ok, line
        e.close()
    e = Engine.open(tmp_path, clock=FakeClock(), use_snapshots=False)
    try:
        cfg = parse_trustpoint_config(e.state.config, "t")
        assert cfg is not None and cfg.scep_url == URL
        assert e.execute("configure").ok
        assert not e.execute(f"enrollment url {URL}x").ok  # new input is refused
    finally:
        e.close()


def test_a_no_form_that_does_not_match_does_not_echo_a_typed_password() -> None:
    """`no enrollment url http://u:p@...` is not screened (an older configuration's line must
    stay removable), but the refusal when it does not match shows `***@`, not the password."""
    e = Engine.in_memory(clock=FakeClock())
    for line in ("configure", "crypto ca trustpoint t", "enrollment url http://127.0.0.1/ca",
                 "commit"):
        assert e.execute(line).ok, line
    r = e.execute(f"no enrollment url {URL}")
    assert not r.ok and SECRET not in r.output and "http://***@127.0.0.1/ca" in r.output, r.output
