"""Hostile bundle servers and bundles: an HTTP answer a parser cannot read is named in our
words (never a Python repr of the peer's bytes), the same certificate twice is said as such,
and an automatic update whose server now answers garbage leaves the pool as it was, with the
failure where the operator looks (`show logging`, `show crypto ca trustpool policy`)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine import Engine
from engine.trustpool.bundle import MAX_CERTIFICATES
from engine.trustpool.fetch import HttpBundleFetcher
from events.trustpool import TrustpoolUpdateFailed
from tests.support.peer_support import tcp_server
from tests.trustpool.pool_certs import ca, key, p7b, pem, years
from tests.trustpool.pool_support import BundleServer, Route
from tests.trustpool.test_pool_schedule import EXPIRY, T0, _builtins, _configure, _open

pytestmark = pytest.mark.integration

IMPORT = "crypto ca trustpool import url "


@contextlib.contextmanager
def _raw(answer: bytes) -> Iterator[str]:
    """A TCP server on 127.0.0.1 that reads a request and writes `answer` (bytes as they are,
    status line and headers included), then closes; yields its url."""
    def reply(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(answer)

    with tcp_server(reply) as port:
        yield f"http://127.0.0.1:{port}/bundle.pem"


@pytest.mark.parametrize(("answer", "words"), [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n",
     "the answer is not HTTP (illegal chunk header)"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n-----BEGIN CERTIFICATE-----\n",
     "peer closed connection without sending complete message body"),
    (b"HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n\r\n",
     "the server redirected to file:///etc/passwd, which is not http or https"),
], ids=["bad-chunk", "closed-mid-body", "redirect-to-file"])
def test_an_answer_we_cannot_read_is_named_and_changes_nothing(
        device: Callable[..., Engine], answer: bytes, words: str) -> None:
    with device() as dev, _raw(answer) as url:
        dev.ports.bundles = HttpBundleFetcher(deadline=5, timeout=3)
        pool = dev.state.trustpool
        r = dev.execute(IMPORT + url)
        assert not r.ok and not r.events
        assert r.output.startswith(f"% Trustpool import from {url} failed: "), r.output
        assert words in r.output and "bytearray" not in r.output, r.output
        assert r.output.endswith("Nothing was changed.\n")
        assert dev.state.trustpool == pool


def test_the_same_certificate_twice_is_said_so(device: Callable[..., Engine],
                                               http_server: BundleServer) -> None:
    a = ca("Twice Alike", *years(2020, 2040))[0]
    with device() as dev:
        r = dev.execute(IMPORT + http_server.serve("/twice.pem", pem([a, a])))
        assert r.ok, r.output
        assert ("% duplicate CN=Twice Alike,O=Example: the same certificate twice, kept once."
                in r.output), r.output
        assert len(dev.state.trustpool.downloaded) == 1


def test_an_update_whose_server_now_answers_garbage_leaves_the_pool(
        tmp_path: Path, http_server: BundleServer) -> None:
    from engine.ports import FakeClock

    _builtins(tmp_path)
    clock = FakeClock(T0)
    url = http_server.serve("/pool.pem", (tmp_path / "renewed.pem").read_bytes())
    with _open(tmp_path, clock) as dev:
        assert dev.execute(IMPORT + url).ok
        _configure(dev, url)
        pool = dev.state.trustpool
        http_server.routes["/pool.pem"] = Route(body=b"\x30\x82\xff\xffnot a bundle")
        clock.us = EXPIRY + 3650 * 86_400_000_000 - 20 * 86_400_000_000  # the first point
        results = dev.run_due()
        events = [rec.event for res in results for rec in res.events]
        assert len(events) == 1 and isinstance(events[0], TrustpoolUpdateFailed), events
        assert dev.state.trustpool.downloaded == pool.downloaded
        logged = dev.execute("show logging").output
        assert (f"%PKI-3-TRUSTPOOL_DOWNLOAD_FAIL: Automatic trustpool update from {url} "
                "failed: the bundle is neither a PEM bundle nor a PKCS#7 DER bundle") in logged
        policy = dev.execute("show crypto ca trustpool policy").output
        assert "(retrying after 1 failed attempt;" in policy, policy


def test_subjects_a_bundle_chose_reach_no_terminal(device: Callable[..., Engine],
                                                   http_server: BundleServer) -> None:
    """An unsigned bundle's names are its server's choice: escape sequences and newlines in
    them are shown as '?', in `show crypto ca trustpool` and in a refusal alike."""
    forging = "\x1b[2J\nTrustpool: Built-In\u202e"
    good = ca(forging, *years(2020, 2040))[0]
    leaf = ca(forging, *years(2020, 2040), is_ca=False)[0]
    with device() as dev:
        refused = dev.execute(IMPORT + http_server.serve("/leaf.pem", pem([leaf])))
        assert "certificate 1 of the bundle (CN=?[2J?Trustpool: Built-In?,O=Example) is not" \
            in refused.output, refused.output
        assert dev.execute(IMPORT + http_server.serve("/odd.pem", pem([good]))).ok
        shown = dev.execute("show crypto ca trustpool").output
        assert "\x1b" not in shown and "\u202e" not in shown
        assert "CN=?[2J?Trustpool: Built-In?,O=Example" in [x.strip() for x in
                                                            shown.splitlines()], shown
        assert shown.count("Trustpool: Downloaded") == 1


def test_a_bundle_of_more_than_max_certificates_is_refused(device: Callable[..., Engine],
                                                            http_server: BundleServer) -> None:
    """Every validation whose issuer name matches tries each pool certificate of that name
    (3,000 of one name made one validation cost 0.66 s of CPU): a bundle is a few hundred
    roots, and more than MAX_CERTIFICATES is refused, in either format, before the pool
    changes."""
    k = key()
    many = [ca(f"Many {n}", *years(2020, 2040), k=k)[0] for n in range(MAX_CERTIFICATES + 1)]
    with device() as dev:
        pool = dev.state.trustpool
        for path, body in (("/many.pem", pem(many)), ("/many.p7b", p7b(many))):
            r = dev.execute(IMPORT + http_server.serve(path, body))
            assert not r.ok and not r.events, r.output
            assert (f"failed: the bundle holds {MAX_CERTIFICATES + 1} certificates; a trustpool "
                    f"bundle may hold at most {MAX_CERTIFICATES}. Nothing was changed."
                    in r.output), r.output
            assert dev.state.trustpool == pool
        r = dev.execute(IMPORT + http_server.serve("/enough.pem", pem(many[1:])))
        assert r.ok and len(dev.state.trustpool.downloaded) == MAX_CERTIFICATES, r.output


def test_a_signer_name_with_control_characters_is_shown_printable(
        device: Callable[..., Engine], http_server: BundleServer) -> None:
    """A signed bundle whose signer does not chain names the signer: its server chose the
    name."""
    from engine.scep import Credential, DigestAlgorithm
    from engine.scep.cms import sign

    a = ca("Signed Content", *years(2020, 2040))[0]
    signer, signer_key = ca("\x1b[31mSigner\n% 1 CA certificate", *years(2020, 2040),
                            is_ca=False)
    body = sign(b"bundle", signer=Credential(signer, signer_key),  # type: ignore[arg-type]
                digest=DigestAlgorithm.SHA256, attributes=(), certificates=[a, signer])
    with device() as dev:
        r = dev.execute(IMPORT + http_server.serve("/signed.p7b", body))
        assert not r.ok and "\x1b" not in r.output, repr(r.output)
        assert ("the bundle's signer (CN=?[31mSigner?% 1 CA certificate,O=Example) does not "
                "chain to a certificate of the trustpool") in r.output, r.output


def test_a_fifo_or_a_device_is_refused_without_blocking(device: Callable[..., Engine],
                                                        tmp_path: Path) -> None:
    """`file:` on a FIFO blocked in open() until a writer came (for ever, for the update
    timer of a `cabundle url`, and the engine with it); /dev/zero read 10 MB of zeros."""
    import os

    fifo = tmp_path / "bundle.fifo"
    os.mkfifo(fifo)
    results: list[str] = []
    with device() as dev:
        def run() -> None:
            results.append(dev.execute(IMPORT + f"file://{fifo}").output)
            results.append(dev.execute(IMPORT + "file:///dev/zero").output)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(10)
        blocked = worker.is_alive()
        if blocked:  # the old behaviour: a writer releases the open() so the thread ends
            os.close(os.open(fifo, os.O_WRONLY))
            worker.join(10)
        assert not blocked, "the import blocked on the FIFO"
    assert results == [
        f"% Trustpool import from file://{fifo} failed: cannot read {fifo}: not a regular "
        "file. Nothing was changed.\n",
        "% Trustpool import from file:///dev/zero failed: cannot read /dev/zero: not a "
        "regular file. Nothing was changed.\n"]


def test_a_malformed_certificate_in_a_pkcs7_bundle_is_said_without_parser_internals(
        device: Callable[..., Engine], http_server: BundleServer) -> None:
    """The Rust parser's `ParseError { kind: UnexpectedTag { actual: Tag { ... } } }` is not
    for an operator: the field it stopped at is."""
    from tests.trustpool.pool_certs import der, p7b

    a, b = (ca(f"Parsed {n}", *years(2020, 2040))[0] for n in "AB")
    body, inner = p7b([a, b]), der(a)
    at = body.index(inner) + inner.index(b"\x17\x0d")  # notBefore's UTCTime tag
    with device() as dev:
        r = dev.execute(IMPORT + http_server.serve("/bad.p7b", body[:at] + b"\x04"
                                                   + body[at + 1:]))
        assert not r.ok and not r.events
        assert "the bundle is not a PKCS#7 SignedData (the bundle certificate: malformed DER " \
            "at Validity::not_before)" in r.output, r.output
        assert "ParseError" not in r.output
