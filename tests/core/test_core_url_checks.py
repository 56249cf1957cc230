"""URLs whose host or port do not parse are refused where they are typed (a caret, nothing
stored), and a transport given one anyway (a configuration an older build accepted) fails
the exchange with a `%` error instead of crashing the shell or its timers."""

from __future__ import annotations

import warnings

import pytest

from engine import Engine
from engine.ports import FakeClock
from engine.scep_client import HttpxTransport, TransportError
from engine.trustpool.bundle import BundleRefused
from engine.trustpool.fetch import HttpBundleFetcher

BAD = ["http://127.0.0.1:abc/x", "http://127.0.0.1:99999/x", "http://[::1/x", "http://:80/x"]


@pytest.mark.parametrize("url", BAD)
@pytest.mark.parametrize("lines", [
    ("crypto ca trustpool import url {url}",),
    ("configure", "crypto ca trustpool policy", "cabundle url {url}"),
    ("configure", "crypto ca trustpoint t", "enrollment url {url}"),
])
def test_a_url_whose_authority_does_not_parse_is_a_caret(url: str, lines: tuple[str, ...]
                                                         ) -> None:
    e = Engine.in_memory(clock=FakeClock())
    *setup, last = (line.format(url=url) for line in lines)
    for line in setup:
        assert e.execute(line).ok
    before = e.state
    result = e.execute(last)
    assert not result.ok
    assert result.output.endswith("% Invalid input detected at '^' marker.\n")
    assert e.state == before


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "https://[::1]:443/b.p7b",
                                 "http://ca.example/cgi-bin/pkiclient.exe"])
def test_good_urls_still_parse(url: str) -> None:
    e = Engine.in_memory(clock=FakeClock())
    for line in ("configure", "crypto ca trustpoint t", f"enrollment url {url}"):
        assert e.execute(line).ok, line


@pytest.mark.parametrize("url", BAD[:3])
def test_the_scep_transport_fails_the_exchange(url: str) -> None:
    with pytest.raises(TransportError, match="invalid url"):
        HttpxTransport().get(url, {"operation": "GetCACaps"})


@pytest.mark.parametrize("url", BAD[:3])
def test_the_bundle_fetcher_refuses_the_bundle(url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may reach the operator's stderr
        with pytest.raises(BundleRefused, match="cannot fetch"):
            HttpBundleFetcher().fetch(url, ())
