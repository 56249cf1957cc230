"""What the help and the reference promise, the configuration holds to: a description is up
to 80 characters (trustpoint and trustpool), and `query url` is an LDAP URL (the reference's
`query url LDAP-URL`). A refusal is a caret and a `%` line saying why; nothing changes.
An older build's configuration with such a line still reads (the rule is for typed input)."""

from __future__ import annotations

import pytest

from engine import Engine
from engine.ports import FakeClock
from engine.trustpoints import parse_trustpoint_config

TP = ("configure", "crypto ca trustpoint t")
POOL = ("configure", "crypto ca trustpool policy")


def refused(setup: tuple[str, ...], line: str) -> str:
    e = Engine.in_memory(clock=FakeClock())
    for s in setup:
        assert e.execute(s).ok, s
    before = e.state
    r = e.execute(line)
    assert r.error is not None and r.events == [] and e.state == before
    assert "^" in r.output.splitlines()[0]
    return r.error.message


@pytest.mark.parametrize("setup", [TP, POOL])
def test_a_description_is_up_to_80_characters(setup: tuple[str, ...]) -> None:
    assert refused(setup, "description " + "d" * 81) == (
        "% A description is up to 80 characters; this one has 81.")
    e = Engine.in_memory(clock=FakeClock())
    for line in (*setup, "description " + "d" * 80, "commit"):
        assert e.execute(line).ok, line


@pytest.mark.parametrize("url", ["http://x", "https://127.0.0.1/dn", "ftp://x/y"])
def test_query_url_is_an_ldap_url(url: str) -> None:
    assert refused(TP, f"query url {url}") == (
        "% The query url is an LDAP URL (ldap://host[:port][/dn]): the directory "
        "certificates and CRLs are read from.")


@pytest.mark.parametrize("url", ["ldap://my-ldap.domain.com", "LDAP://127.0.0.1:389/o=x"])
def test_ldap_query_urls_are_kept(url: str) -> None:
    e = Engine.in_memory(clock=FakeClock())
    for line in (*TP, f"query url {url}", "commit"):
        assert e.execute(line).ok, line
    cfg = parse_trustpoint_config(e.state.config, "t")
    assert cfg is not None and cfg.query_url == url
