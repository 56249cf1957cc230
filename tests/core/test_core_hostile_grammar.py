"""The grammar under fire: sequences of lines built from every keyword the grammar declares
(read from GRAMMAR, so a new command is fuzzed the day it lands) mixed with junk (long
tokens, unicode, bidi and combining marks, quotes, pipes, URLs and names almost right), in
exec mode and each configuration mode, with junk answers to whatever is asked. Every line
ends in a result, never an exception; a refused line is a `%` line and appends nothing.

The engine is offline: SCEP, bundle, CRL and witness ports answer "unreachable" in memory,
and keys come from a cache, so nothing here touches the network or waits on RSA."""

from __future__ import annotations

import functools
import re

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.audit.witness_client import WitnessReply
from engine.grammar import GRAMMAR, Kw, Variant
from engine.keys import KeyAlgorithm, KeySpec, PrivateKey
from engine.keystore import CryptographyKeyGenerator
from engine.ports import FakeClock
from engine.trustpool.bundle import BundleRefused
from tests.support.crl_support import FakeCrlFetcher


class CachedKeys:
    """One key per spec, made once per process."""

    @staticmethod
    @functools.cache
    def _make(spec: KeySpec) -> PrivateKey:
        return CryptographyKeyGenerator().generate(spec)

    def generate(self, spec: KeySpec) -> PrivateKey:
        if spec.algorithm is KeyAlgorithm.RSA and spec.size > 2048:
            spec = KeySpec(KeyAlgorithm.RSA, 2048)  # (the fold records what was asked for)
        return self._make(spec)


class OfflineBundles:
    def fetch(self, url: str, anchors: tuple[bytes, ...]) -> bytes:
        raise BundleRefused(f"{url}: offline")


class OfflineWitness:
    def post(self, url: str, body: bytes) -> WitnessReply:
        return WitnessReply(503, "text/plain", b"offline")


def offline_engine() -> Engine:
    e = Engine.in_memory(clock=FakeClock(), keygen=CachedKeys(),
                         scep=InProcessTransport())
    e.ports.bundles = OfflineBundles()
    e.ports.crls = FakeCrlFetcher()
    e.ports.witness = OfflineWitness()
    return e


def _keywords() -> list[str]:
    offline_engine()  # every command module declared
    words = {w for cmd in GRAMMAR.commands
             for w in re.findall(r"[A-Za-z][\w.-]*", re.sub(r"<[^>]*>", "", cmd.name))}
    return sorted(words)


KEYWORDS = _keywords()
JUNK = [
    "A" * 300, "é", "中文", "\u202egnp.live", "e\u0301", "\u00a0", "\ufeff", "\U0001f600",
    '"', "'", '"quoted words"', "'unterminated", "\\", "|", "| include", "| begin x", "?",
    "-1", "0", "1", "65536", "99999999999999999999", "1e9", "0x10", "2048", "4096",
    "http://127.0.0.1:9/x", "http://[::1", "http://u:p@h/", "https://h:99999/", "ldap://x",
    "file:///etc/passwd", "CN=a,O=b", "CN=a,,", "cn=\\", "1.2.3.4", "::1", "300.1.1.1",
    "a.b", "-", "--", "*", "%", "#", "!", "myca", "mykey", "$(reboot)", "..", "/", "\t",
]
SETUPS = [
    (),
    ("configure",),
    ("configure", "crypto ca trustpoint myca"),
    ("configure", "crypto ca trustpool policy"),
    ("configure", "hostname r1", "domain name example.com", "crypto ca trustpoint myca",
     "enrollment terminal", "rsakeypair mykey", "commit", "end",
     "crypto key generate rsa mykey"),
]
ANSWERS = ["yes", "no", "y", "", "2048", "1024", "cancel", "\u00e9", "A" * 200,
           "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----", "quit", "MIIB"]

VARIANTS: list[Variant] = [v for cmd in GRAMMAR.commands for v in cmd.variants]
VALUES = [*JUNK, "myca", "mykey", "k1", "10", "60", "http://127.0.0.1:9/scep",
          "CN=r1,O=Example", "r1.example.com", "sha256", "2026-01-01T00:00:00Z"]

token = st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(KEYWORDS),
                  st.sampled_from(JUNK), st.text(max_size=12))
soup = st.lists(token, min_size=1, max_size=8).map(" ".join)


@st.composite
def command_line(draw: st.DrawFn) -> str:
    """A declared command's shape: its keywords (some abbreviated or in capitals), each
    argument a junk or plausible value, now and then a token dropped or one added."""
    words: list[str] = []
    for tok in draw(st.sampled_from(VARIANTS)):
        if isinstance(tok, Kw):
            cut = draw(st.sampled_from([0, 0, 0, 1, 2]))
            word = tok.word[:max(1, len(tok.word) - cut)]
            words.append(word.upper() if draw(st.integers(0, 9)) == 0 else word)
        else:
            words.append(draw(st.sampled_from(VALUES) | st.text(max_size=8)))
    if words and draw(st.integers(0, 5)) == 0:
        del words[draw(st.integers(0, len(words) - 1))]
    if draw(st.integers(0, 5)) == 0:
        words.append(draw(token))
    return " ".join(words)


line_st = st.one_of(soup, command_line(), command_line())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setup=st.sampled_from(SETUPS), lines=st.lists(line_st, min_size=1, max_size=6),
       answers=st.lists(st.sampled_from(ANSWERS), max_size=4))
def test_keyword_soup_in_every_mode_is_a_result_never_an_exception(
        setup: tuple[str, ...], lines: list[str], answers: list[str]) -> None:
    e = offline_engine()
    for line in setup:
        assert e.execute(line, answers=["2048"]).ok, line
    for line in lines:
        head = e.store.head
        res = e.execute(line, answers=answers)
        assert isinstance(res.output, str)
        assert "Traceback" not in res.output
        if res.error is not None and not res.events:
            assert e.store.head == head
            assert res.output.rstrip().splitlines()[-1].startswith("%"), res.output
