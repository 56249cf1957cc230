"""What a failed exchange with a peer says to an operator: the words of the OS error, never
Python's `[Errno 111]` before them (the shell printed `% ... [Errno 111] Connection refused`
for a CA, a bundle url and a CRL url that nothing listened on)."""

from __future__ import annotations

import pytest

from engine import Engine
from engine.errors import peer_words
from tests.support.peer_support import free_port


def test_peer_words_drop_the_errno_and_keep_the_first_line() -> None:
    assert peer_words(ConnectionRefusedError(111, "Connection refused")) == "Connection refused"
    ldap3_says = "socket connection error while opening: [Errno 111] Connection refused"
    assert peer_words(OSError(ldap3_says)) == ldap3_says.replace("[Errno 111] ", "")
    assert peer_words(ValueError("first line\nsecond")) == "first line"
    assert peer_words(TimeoutError()) == "TimeoutError"


@pytest.mark.integration
@pytest.mark.parametrize(("line", "says"), [
    ("crypto ca trustpool import url http://127.0.0.1:{port}/ios.p7b",
     "% Trustpool import from http://127.0.0.1:{port}/ios.p7b failed: cannot fetch "
     "http://127.0.0.1:{port}/ios.p7b: Connection refused. Nothing was changed."),
    ("crypto ca crl request http://127.0.0.1:{port}/ca.crl",
     "% CRL request failed: http://127.0.0.1:{port}/ca.crl: Connection refused. Nothing was "
     "cached."),
    ("crypto ca crl request ldap://127.0.0.1:{port}/cn=Root%20CA,dc=example,dc=com",
     "% CRL request failed: ldap://127.0.0.1:{port}/cn=Root%20CA,dc=example,dc=com: socket "
     "connection error while opening: Connection refused. Nothing was cached."),
])
def test_a_url_nothing_listens_on_is_refused_in_words(line: str, says: str) -> None:
    port = free_port()  # free a moment ago: nothing listens there
    e = Engine.in_memory()
    r = e.execute(line.format(port=port))
    assert not r.ok
    assert r.output.strip() == says.format(port=port)
