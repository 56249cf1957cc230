"""Hostile CRLs from a distribution point: bytes that load as a CRL but fail when a field is
first read (cryptography parses the issuer, the extensions and the version lazily, and raises
more than ValueError). A CDP is plain http or ldap, answered by whoever is on the path: each
such answer must be a refused attempt on record (`% CRL request failed: ...`), never a
traceback, and a bad value among an LDAP entry's values must not stop the others being read."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from engine.errors import PeerError
from engine.ports import FakeClock
from engine.revocation.ldap import ranked
from engine.revocation.transport import CrlUnavailable, NetworkCrlFetcher
from engine.revocation.verify import CrlRefused, verify_crl
from events.revocation import CrlFetchFailed
from tests.revocation.revocation_support import device, trustpoint
from tests.support.crl_support import CrlSpec, FakeCrlFetcher, make_ca, make_crl
from tests.support.peer_support import tcp_server

URI = "http://crl.example.com/hostile.crl"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _good(clock: FakeClock) -> bytes:
    return make_crl(CA, CrlSpec(this_update=clock.us, number=7))


CA = make_ca("Hostile Root CA", now=FakeClock().us)


def _version(der: bytes, value: int) -> bytes:
    """The CRL with its TBS version INTEGER (v2: 1) set to `value` (the first `02 01 01`
    inside the TBS)."""
    at = der.index(b"\x02\x01\x01", 4)
    return der[:at + 2] + bytes([value]) + der[at + 3:]


def _issuer_value_tag(der: bytes, tag: int) -> bytes:
    """The CRL with the tag of its issuer's O=Example value replaced by `tag` (same length:
    the name still loads, and fails when first read)."""
    at = der.index(b"Example") - 2
    return der[:at] + bytes([tag]) + der[at + 1:]


def _hostile(clock: FakeClock) -> list[tuple[str, bytes]]:
    good = _good(clock)
    return [
        ("version 91", _version(good, 0x5A)),  # x509.InvalidVersion, not a ValueError
        ("issuer value [5]", _issuer_value_tag(good, 0xA5)),  # ValueError on first read
        ("issuer value BIT STRING", _issuer_value_tag(good, 0x03)),  # a TypeError
    ]


@pytest.mark.parametrize("case", range(3), ids=["version", "issuer-tag", "issuer-bitstring"])
def test_a_crl_that_fails_when_first_read_is_a_refused_request(clock: FakeClock,
                                                                case: int) -> None:
    what, data = _hostile(clock)[case]
    e = device(clock, FakeCrlFetcher({URI: data}))
    trustpoint(e, "myca", CA)
    r = e.execute(f"crypto ca crl request {URI}")
    assert isinstance(r.error, PeerError), (what, r.output)
    assert r.output.startswith(f"% CRL request failed: {URI}: the answer is not a CRL ("), \
        (what, r.output)
    assert r.output.endswith(". Nothing was cached.\n") and "Traceback" not in r.output
    (rec,) = r.events
    assert isinstance(rec.event, CrlFetchFailed)
    assert e.state.crls.crls == ()


def test_verify_crl_refuses_each_and_takes_the_good_one(clock: FakeClock) -> None:
    for what, data in _hostile(clock):
        with pytest.raises(CrlRefused, match="the answer is not a CRL"):
            verify_crl(data, CA.cert, now=clock.us)
        assert what
    assert verify_crl(_good(clock), CA.cert, now=clock.us).number == 7


def test_an_ldap_entry_with_hostile_values_ranks_them_last(clock: FakeClock) -> None:
    """The directory's values are ranked before any is verified: a value that fails when
    first read is ranked as no CRL (after the genuine one), not an exception out of the
    read."""
    good = _good(clock)
    values = [data for _, data in _hostile(clock)] + [good]
    assert ranked(values)[0] == good


def _answering(payload: bytes) -> contextlib.AbstractContextManager[int]:
    """A TCP server on 127.0.0.1 that answers every connection's first read with `payload`
    and closes it; yields the port."""
    def answer(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(payload)

    return tcp_server(answer)


@pytest.mark.integration
@pytest.mark.parametrize("payload", ["30050203ffffff", "3006020101460100"],
                         ids=["IndexError", "KeyError"])
def test_an_ldap_cdp_where_something_else_answers_is_a_refused_request(
        clock: FakeClock, payload: str) -> None:
    """A message ldap3's decoder cannot read raised IndexError or KeyError out of the fetch
    (a traceback for `crypto ca crl request`, and for a validation or the refresh timer)."""
    e = device(clock, FakeCrlFetcher())
    e.ports.crls = NetworkCrlFetcher()
    trustpoint(e, "myca", CA)
    with _answering(bytes.fromhex(payload)) as port:
        uri = f"ldap://127.0.0.1:{port}/cn=Hostile Root CA,o=Example"
        r = e.execute(f"crypto ca crl request {uri}")
    assert isinstance(r.error, PeerError), r.output
    assert r.output.startswith(f"% CRL request failed: {uri}: the server's answer is not "
                               "LDAP ("), r.output
    (rec,) = r.events
    assert isinstance(rec.event, CrlFetchFailed) and e.state.crls.crls == ()


def _listing_twice(clock: FakeClock, first: tuple[int, str], second: tuple[int, str]) -> bytes:
    """A CRL by CA listing serial 5 twice: (days before now it was revoked, reason) each."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    now = dt.datetime.fromtimestamp(clock.us / 1e6, dt.UTC)
    b = (x509.CertificateRevocationListBuilder().issuer_name(CA.cert.subject)
         .last_update(now).next_update(now + dt.timedelta(days=1))
         .add_extension(x509.CRLNumber(8), critical=False))
    for days, reason in (first, second):
        b = b.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(5)
            .revocation_date(now - dt.timedelta(days=days))
            .add_extension(x509.CRLReason(x509.ReasonFlags[reason]), critical=False).build())
    return b.sign(CA.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize(("first", "second", "kept"), [
    ((3, "key_compromise"), (1, "remove_from_crl"), (3, "keyCompromise")),
    ((1, "remove_from_crl"), (3, "key_compromise"), (3, "keyCompromise")),
    ((1, "superseded"), (4, "key_compromise"), (4, "keyCompromise")),
    ((4, "key_compromise"), (1, "superseded"), (4, "keyCompromise")),
], ids=["removal-listed-after", "removal-listed-before", "later-first", "earlier-first"])
def test_a_serial_listed_twice_is_read_the_safe_way(clock: FakeClock, first: tuple[int, str],
                                                    second: tuple[int, str],
                                                    kept: tuple[int, str]) -> None:
    """The entry that revokes, and the earlier revocation: a second entry must not unrevoke
    a certificate (the index once kept whichever came last)."""
    got = verify_crl(_listing_twice(clock, first, second), CA.cert, now=clock.us).index
    entry = got.lookup(5)
    assert entry is not None and len(got) == 1
    days, reason = kept
    assert (entry.reason, entry.revoked_at) == (reason, (clock.us // 1_000_000 - days * 86_400)
                                                * 1_000_000)


@pytest.mark.integration
def test_an_http_cdp_answer_that_is_not_http_is_named_in_our_words(clock: FakeClock) -> None:
    """h11's complaint about a line it cannot read ends in a Python repr of the peer's bytes
    (`illegal chunk header: bytearray(b'zz\\r\\n')`): not for an operator."""
    e = device(clock, FakeCrlFetcher())
    e.ports.crls = NetworkCrlFetcher()
    trustpoint(e, "myca", CA)
    with _answering(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n") as port:
        uri = f"http://127.0.0.1:{port}/ca.crl"
        r = e.execute(f"crypto ca crl request {uri}")
    assert r.output == (f"% CRL request failed: {uri}: the answer is not HTTP (illegal chunk "
                        "header). Nothing was cached.\n"), r.output


def test_the_name_of_a_crl_from_another_issuer_is_shown_printable(clock: FakeClock) -> None:
    """A CDP's CRL is unverified when its issuer is named in the refusal (recorded in
    CrlFetchFailed, shown by `show logging`): its control characters are '?'."""
    other = make_ca("\x1b[2J\nforged\u202e", now=clock.us)
    with pytest.raises(CrlRefused) as refused:
        verify_crl(make_crl(other, CrlSpec(this_update=clock.us)), CA.cert, now=clock.us)
    assert str(refused.value) == ("the CRL is issued by CN=?[2J?forged?,O=Example, not by "
                                  "CN=Hostile Root CA,O=Example")


@pytest.mark.parametrize(("answer", "why"), [
    (CA.der, "the answer is not a CRL (it is a DER certificate)"),
    (b"subject=CN = Hostile Root CA\n" + CA.cert.public_bytes(Encoding.PEM),
     "the answer is not a CRL (it is a PEM CERTIFICATE)"),
], ids=["der-certificate", "pem-certificate"])
def test_a_cdp_serving_the_ca_certificate_says_so(clock: FakeClock, answer: bytes,
                                                  why: str) -> None:
    """A CDP url naming the CA's certificate file (ca.crt for ca.crl) is a common slip."""
    e = device(clock, FakeCrlFetcher({URI: answer}))
    trustpoint(e, "myca", CA)
    r = e.execute(f"crypto ca crl request {URI}")
    assert r.output == f"% CRL request failed: {URI}: {why}. Nothing was cached.\n"


def test_a_pem_crl_with_text_before_it_is_taken(clock: FakeClock) -> None:
    """RFC 7468 §2: text outside the encapsulation boundaries (what `openssl crl -text`
    prints before the block) is ignored."""
    import base64

    good = _good(clock)
    answer = (b"Certificate Revocation List (CRL):\n        Version 2 (0x1)\n"
              b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(good)
              + b"-----END X509 CRL-----\n")
    e = device(clock, FakeCrlFetcher({URI: answer}))
    trustpoint(e, "myca", CA)
    r = e.execute(f"crypto ca crl request {URI}")
    assert r.ok and r.output.startswith(f"% CRL fetched from {URI}: "), r.output
    assert e.state.crls.crls and e.state.crls.crls[0].number == "7"


def _ber(tag: int, content: bytes) -> bytes:
    assert len(content) < 128
    return bytes([tag, len(content)]) + content


@contextlib.contextmanager
def _referring_directory(to: str) -> Iterator[int]:
    """An LDAP server on 127.0.0.1 that accepts the anonymous bind, then answers the search
    with resultCode referral (10) to `to`; yields its port."""
    def answer(request: bytes, op: bytes) -> bytes:
        """`op` as the answer to `request`, under its messageID (ldap3 numbers messages for
        the whole process: no ID can be assumed)."""
        at = 2 if request[1] < 0x80 else 2 + (request[1] & 0x7F)  # past the SEQUENCE header
        message_id = request[at:at + 2 + request[at + 1]]
        return _ber(0x30, message_id + op)

    bind_ok = _ber(0x61, _ber(0x0A, b"\x00") + _ber(0x04, b"") + _ber(0x04, b""))
    referral = _ber(0x65, _ber(0x0A, b"\x0a") + _ber(0x04, b"") + _ber(0x04, b"")
                    + _ber(0xA3, _ber(0x04, to.encode())))
    def directory(conn: socket.socket) -> None:
        for op in (bind_ok, referral):
            conn.sendall(answer(conn.recv(4096), op))
        conn.recv(4096)  # the unbind

    with tcp_server(directory) as port:
        yield port


@pytest.mark.integration
def test_an_ldap_referral_is_not_followed(clock: FakeClock) -> None:
    """A referral would send the router to whatever host the directory names (ldap3 follows
    them by default); the CDP names the directory to ask. The referred-to server must see no
    connection, and the failure says what happened."""
    elsewhere = socket.create_server(("127.0.0.1", 0))
    elsewhere.settimeout(0.5)
    try:
        to = f"ldap://127.0.0.1:{elsewhere.getsockname()[1]}/cn=Elsewhere"
        e = device(clock, FakeCrlFetcher())
        e.ports.crls = NetworkCrlFetcher()
        trustpoint(e, "myca", CA)
        with _referring_directory(to) as port:
            uri = f"ldap://127.0.0.1:{port}/cn=Hostile Root CA,o=Example"
            r = e.execute(f"crypto ca crl request {uri}")
        assert r.output == (f"% CRL request failed: {uri}: the directory refers cn=Hostile "
                            "Root CA,o=Example to another server, which is not asked (a "
                            "referral is not followed). Nothing was cached.\n"), r.output
        with pytest.raises(TimeoutError):
            elsewhere.accept()
    finally:
        elsewhere.close()


@contextlib.contextmanager
def _flooding_directory(seconds: float) -> Iterator[int]:
    """An LDAP server on 127.0.0.1 that accepts the bind, then answers the search with an
    entry that claims 2 GB and sends filler for `seconds`; yields its port."""
    stop = threading.Event()

    def flood(conn: socket.socket) -> None:
        request = conn.recv(4096)
        conn.sendall(_ber(0x30, request[2:5] + _ber(0x61, _ber(0x0A, b"\x00")
                                                    + _ber(0x04, b"") + _ber(0x04, b""))))
        request = conn.recv(4096)
        conn.sendall(b"\x30\x84\x7f\xff\xff\xff" + request[2:5] + b"\x64\x84\x7f\xff\xff\xf0")
        until = threading.Event()
        threading.Timer(seconds, until.set).start()
        while not until.is_set() and not stop.is_set():
            conn.sendall(b"A" * 4096)

    try:
        with tcp_server(flood, threaded=True) as port:
            yield port
    finally:
        stop.set()


@pytest.mark.integration
def test_a_directory_that_keeps_sending_is_cut_off_at_the_timeout() -> None:
    """A trickle never trips ldap3's per-receive timeout: the helper thread that reads the
    directory went on reading after the fetch had given up (one more per fetch). Now its
    connection is shut down at the deadline and it ends."""
    before = set(threading.enumerate())  # (an earlier test's helper may still be ending)

    def helpers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "crl-ldap" and t not in before]

    with _flooding_directory(10.0) as port:
        with pytest.raises(CrlUnavailable, match="no complete answer within the 1 s"):
            NetworkCrlFetcher().fetch(f"ldap://127.0.0.1:{port}/cn=Hostile Root CA", 1.0)
        for thread in helpers():
            thread.join(30)  # returns as soon as it ends: a wait, not a bound
        assert helpers() == [], "the LDAP helper thread is still reading"
