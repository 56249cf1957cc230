"""`crypto ca trustpool import url`: every bundle format over http, https and file:, a signed
bundle, and every bad input: each a `%` error naming its cause, with nothing changed."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import Engine
from engine.trustpool.fetch import HttpBundleFetcher
from events.trustpool import TrustpoolImported
from tests.trustpool.pool_certs import ca, der, key, p7b, pem, years
from tests.trustpool.pool_support import BundleServer, Route

pytestmark = pytest.mark.integration

IMPORT = "crypto ca trustpool import url "


def _imported(result: object) -> TrustpoolImported:
    events = [r.event for r in result.events]  # type: ignore[attr-defined]
    assert len(events) == 1 and isinstance(events[0], TrustpoolImported), events
    return events[0]


@pytest.mark.parametrize("name", ["mozilla-bundle.p7b", "mozilla-bundle.p7b.pem",
                                  "mozilla-bundle.pem"])
def test_each_format_over_http_replaces_the_downloaded_part(
        name: str, peer_bundles: Path, http_server: BundleServer,
        device: Callable[..., Engine]) -> None:
    url = http_server.serve("/" + name, (peer_bundles / name).read_bytes())
    with device() as dev:
        result = dev.execute(IMPORT + url)
        assert result.ok, result.output
        ev = _imported(result)
        assert len(ev.certificates) == 117 and ev.signature == "unsigned"
        assert "% Warning: the bundle is not signed" in result.output
        assert "117 CA certificates downloaded into the trustpool (unsigned)" in result.output
        assert len(dev.state.trustpool.downloaded) == 117
        show = dev.execute("show crypto ca trustpool").output
        assert show.count("Trustpool: Downloaded") == 117
        assert show.count("Trustpool: Built-In") == 3  # the vectors' built-ins stay


def test_the_peers_http_server_serves_a_bundle(peer_bundles: Path, tmp_path: Path,
                                               device: Callable[..., Engine]) -> None:
    """The bundle served by the peers' own HTTP server script (python http.server)."""
    import subprocess
    import time

    from tests.support.peer_support import free_port
    from tests.trustpool.pool_support import PEERS

    port = free_port()
    proc = subprocess.Popen(["bash", str(PEERS / "crl-http-server.sh"), "run",
                             str(peer_bundles), str(port)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/trustpool.p7b"
        with device() as dev:
            for _ in range(100):
                result = dev.execute(IMPORT + url)
                if result.ok:
                    break
                time.sleep(0.1)
            assert result.ok, result.output
            assert len(dev.state.trustpool.downloaded) == 118
    finally:
        proc.terminate()
        proc.wait()


def test_file_url(peer_bundles: Path, device: Callable[..., Engine]) -> None:
    with device() as dev:
        result = dev.execute(IMPORT + f"file://{peer_bundles / 'trustpool.p7b'}")
        assert result.ok and len(dev.state.trustpool.downloaded) == 118
        pool = dev.state.trustpool
        again = dev.execute(IMPORT + f"file://{peer_bundles / 'trustpool.p7b'}")
        ev = _imported(again)  # the same bundle again: recorded without its certificates
        assert ev.unchanged and ev.certificates == ()
        assert dev.state.trustpool.downloaded == pool.downloaded


def test_a_pem_bundle_with_text_around_its_blocks(good: Engine, http_server: BundleServer
                                                  ) -> None:
    """certifi's and the distributions' bundles put `# Issuer: ...` lines before each block:
    text outside the encapsulation boundaries is allowed (RFC 7468 §2)."""
    a, b = ca("Commented A", *years(2020, 2040))[0], ca("Commented B", *years(2020, 2040))[0]
    body = (b"\n# Issuer: CN=Commented A\n# Label: \"A\"\n" + pem([a])
            + b"\n# Issuer: CN=Commented B\n" + pem([b]))
    result = good.execute(IMPORT + http_server.serve("/commented.pem", body))
    assert result.ok, result.output
    assert len(good.state.trustpool.downloaded) == 2


def test_signed_bundle_verifies_against_the_pool(peer_bundles: Path,
                                                 device: Callable[..., Engine]) -> None:
    """The signer (chain/bundle-signer under chain/root) must chain to the pool: refused
    while chain/root is not in it, accepted once trustpool.p7b brought it."""
    signed = f"file://{peer_bundles / 'mozilla-bundle-signed.p7b'}"
    with device() as dev:
        refused = dev.execute(IMPORT + signed)
        assert not refused.ok and not refused.events
        assert "does not chain to a certificate of the trustpool" in refused.output
        assert "Nothing was changed." in refused.output
        assert dev.execute(IMPORT + f"file://{peer_bundles / 'trustpool.p7b'}").ok
        result = dev.execute(IMPORT + signed)
        assert result.ok, result.output
        ev = _imported(result)
        assert ev.signature == "signed by CN=Example Bundle Signer,O=Example"
        assert len(ev.certificates) == 117  # the signer signs the bundle, it is not in it
        assert "Warning" not in result.output


def test_a_signature_that_does_not_verify_refuses_the_bundle(
        peer_bundles: Path, tmp_path: Path, device: Callable[..., Engine]) -> None:
    data = bytearray((peer_bundles / "mozilla-bundle-signed.p7b").read_bytes())
    content = b"Example trustpool bundle"
    at = data.find(content)
    assert at > 0
    data[at] ^= 0x20  # the signed content changes: the messageDigest no longer matches
    (tmp_path / "forged.p7b").write_bytes(bytes(data))
    with device() as dev:
        assert dev.execute(IMPORT + f"file://{peer_bundles / 'trustpool.p7b'}").ok
        before = dev.state.trustpool
        result = dev.execute(IMPORT + f"file://{tmp_path / 'forged.p7b'}")
        assert not result.ok and not result.events and dev.state.trustpool == before
        assert "the signature of the bundle does not verify" in result.output


def test_https_is_verified_against_the_pool_and_the_trustpoints(
        https_server: tuple[BundleServer, bytes], tmp_path: Path,
        device: Callable[..., Engine]) -> None:
    server, root = https_server
    url = server.serve("/b.pem", pem([ca("Served Root", *years(2020, 2040))[0]]))
    (tmp_path / "tls-root.pem").write_bytes(pem([_load(root)]))
    with device() as dev:
        untrusted = dev.execute(IMPORT + url)
        assert not untrusted.ok and not untrusted.events
        assert "does not verify against the trustpool" in untrusted.output
        assert dev.execute(IMPORT + f"file://{tmp_path / 'tls-root.pem'}").ok
        # trusted now, but for 127.0.0.1 only: the host name is what is wrong, and said so
        by_name = url.replace("https://127.0.0.1:", "https://localhost:")
        wrong = dev.execute(IMPORT + by_name)
        assert not wrong.ok and not wrong.events
        assert "the server's certificate does not name the host of the url" in wrong.output
        result = dev.execute(IMPORT + url)
        assert result.ok, result.output
        assert _imported(result).url == url


def _load(der_bytes: bytes) -> object:
    from cryptography import x509

    return x509.load_der_x509_certificate(der_bytes)


# -- bad inputs: one `%` error naming the cause, nothing changed -----------------------------


def _refused(dev: Engine, url: str, cause: str) -> None:
    before = dev.state.trustpool
    seq = dev.state.seq
    result = dev.execute(IMPORT + url)
    assert not result.ok and not result.events, result.output
    assert result.output.startswith(f"% Trustpool import from {url} failed: ")
    assert cause in result.output, result.output
    assert result.output.rstrip().endswith("Nothing was changed.")
    assert "Traceback" not in result.output
    assert dev.state.trustpool == before and dev.state.seq == seq


@pytest.fixture
def good(http_server: BundleServer, device: Callable[..., Engine]) -> Engine:
    """A device whose pool already holds one downloaded certificate (so "nothing changed"
    means something)."""
    dev = device()
    url = http_server.serve("/good.pem", pem([ca("Good Root", *years(2020, 2040))[0]]))
    assert dev.execute(IMPORT + url).ok
    return dev


def test_http_404_and_500(good: Engine, http_server: BundleServer) -> None:
    _refused(good, http_server.url("/missing.p7b"), "the server answered HTTP 404")
    http_server.routes["/broken"] = Route(status=500)
    _refused(good, http_server.url("/broken"), "the server answered HTTP 500")


def test_redirect_loop(good: Engine, http_server: BundleServer) -> None:
    http_server.routes["/a"] = Route(status=302, location="/b")
    http_server.routes["/b"] = Route(status=302, location="/a")
    _refused(good, http_server.url("/a"), "redirect loop: ")


def test_a_redirect_is_followed(good: Engine, http_server: BundleServer) -> None:
    target = http_server.serve("/real.pem", pem([ca("Moved Root", *years(2020, 2040))[0]]))
    http_server.routes["/old"] = Route(status=301, location=target)
    result = good.execute(IMPORT + http_server.url("/old"))
    assert result.ok and len(good.state.trustpool.downloaded) == 1


def test_a_trickling_server_is_cut_off_at_the_deadline(good: Engine,
                                                       http_server: BundleServer) -> None:
    good.ports.bundles = HttpBundleFetcher(deadline=1.0, timeout=5.0)
    http_server.routes["/slow"] = Route(body=pem([ca("Slow", *years(2020, 2040))[0]]),
                                        trickle=0.2)
    _refused(good, http_server.url("/slow"), "no complete answer within the 1 s deadline")


def test_larger_than_10_mb(good: Engine, http_server: BundleServer, tmp_path: Path) -> None:
    big = pem([ca("Big", *years(2020, 2040))[0]]) * 22_000  # ~11 MB
    assert len(big) > 10 * 1024 * 1024
    _refused(good, http_server.serve("/big.pem", big), "larger than 10 MB")
    (tmp_path / "big.pem").write_bytes(big)
    _refused(good, f"file://{tmp_path / 'big.pem'}", "larger than 10 MB")


def test_empty_bundles(good: Engine, http_server: BundleServer) -> None:
    _refused(good, http_server.serve("/empty", b""), "the bundle is empty")
    _refused(good, http_server.serve("/none.p7b", p7b([])), "holds no certificate")


def test_a_non_ca_certificate(good: Engine, http_server: BundleServer) -> None:
    root = ca("Root", *years(2020, 2040))
    leaf = ca("leaf.example", *years(2020, 2030), issuer=root, is_ca=False)[0]
    _refused(good, http_server.serve("/mixed.pem", pem([root[0], leaf])),
             "certificate 2 of the bundle (CN=leaf.example,O=Example) is not a CA certificate")


NOT_A_BUNDLE = "the bundle is neither a PEM bundle nor a PKCS#7 DER bundle"


@pytest.mark.parametrize("body,cause", [
    (b"\x30\x82\x01\x00garbage", f"{NOT_A_BUNDLE} (cut short: 11 of the 260 bytes its DER "
                                  "declares)."),
    (b"not a bundle at all", f"{NOT_A_BUNDLE} (no BEGIN line, and not DER)."),
    (b"<html><body>Not Found</body></html>\n", f"{NOT_A_BUNDLE} (no BEGIN line, and not DER)."),
    (b"\x30\x03\x02\x01\x01", f"{NOT_A_BUNDLE} (DER, but not a PKCS#7 ContentInfo)."),
    (b"\x30\x03\x02\x01\x01\x00\x00", f"{NOT_A_BUNDLE} (2 bytes follow its DER)."),
    (b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n", "is not valid base64"),
    (b"-----BEGIN CERTIFICATE-----\nMIIB\n", "no complete BEGIN/END block"),
    (b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n", "the PEM PKCS#7 bundle is not a "
     "PKCS#7 SignedData (cut short: 3 of the 4 bytes its DER declares)."),
    (b"-----BEGIN PKCS7-----\nTUlJQg==\n-----END PKCS7-----\n", "the PEM PKCS#7 bundle is not "
     "a PKCS#7 SignedData (its body is not DER)."),  # it said "no BEGIN line"
])
def test_garbage(good: Engine, http_server: BundleServer, body: bytes, cause: str) -> None:
    _refused(good, http_server.serve("/garbage", body), cause)


def test_what_is_not_a_bundle_is_said_in_our_words(good: Engine,
                                                   http_server: BundleServer) -> None:
    """One DER certificate where a bundle belongs: the line names what it is not and what it
    is, never the ASN.1 parser's internals ("Error parsing asn1crypto.cms.ContentType",
    "Insufficient data - 117 bytes requested")."""
    one = der(ca("Single", *years(2020, 2040))[0])
    url = http_server.serve("/one.cer", one)
    result = good.execute(IMPORT + url)
    assert result.output == (f"% Trustpool import from {url} failed: {NOT_A_BUNDLE} (one DER "
                             "certificate, not a bundle of them). Nothing was changed.\n")
    for body in (one[:3], b"\x30\x82\x01\x00garbage"):
        out = good.execute(IMPORT + http_server.serve("/cut.p7b", body)).output
        assert "asn1crypto" not in out and "Insufficient data" not in out, out


def test_truncated_der_and_pem(good: Engine, http_server: BundleServer,
                               peer_bundles: Path) -> None:
    p7 = (peer_bundles / "mozilla-bundle.p7b").read_bytes()
    _refused(good, http_server.serve("/cut.p7b", p7[: len(p7) // 2]),
             f"{NOT_A_BUNDLE} (cut short: {len(p7) // 2} of the {len(p7)} bytes its DER "
             "declares)")
    first = der(ca("Cut", *years(2020, 2040))[0])
    body = base64.encodebytes(first[: len(first) - 30])
    cut = b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"
    _refused(good, http_server.serve("/cut.pem", cut),
             "The PEM certificate 1 is not a valid X.509 certificate")


def test_a_pem_bundle_cut_inside_a_later_block(good: Engine, http_server: BundleServer,
                                               peer_bundles: Path) -> None:
    """A download cut short inside a certificate half-way through is refused whole, not
    imported as the complete blocks before the cut."""
    text = (peer_bundles / "mozilla-bundle.pem").read_bytes()
    cut = text[: text.index(b"-----END", len(text) // 2)]
    whole = cut.count(b"-----END")
    _refused(good, http_server.serve("/cut-late.pem", cut),
             f"has {whole + 1} BEGIN lines but {whole} complete BEGIN/END blocks (truncated?)")


def test_a_pem_bundle_cut_in_its_second_block_counts_in_good_english(
        good: Engine, http_server: BundleServer) -> None:
    first, second = (pem([ca(n, *years(2020, 2040))[0]]) for n in ("One", "Two"))
    cut = first + second[: second.index(b"-----END")]
    _refused(good, http_server.serve("/cut-second.pem", cut),
             "the PEM bundle has 2 BEGIN lines but 1 complete BEGIN/END block (truncated?).")


def test_an_unsupported_scheme_is_a_caret(good: Engine) -> None:
    result = good.execute(IMPORT + "ftp://127.0.0.1/x.p7b")
    assert not result.ok and "Invalid input detected at '^' marker." in result.output


# -- what is kept -------------------------------------------------------------------------


def test_duplicates_keep_the_later_expiring(good: Engine, http_server: BundleServer) -> None:
    k = key()
    old = ca("Twice", *years(2020, 2030), k=k)[0]
    new = ca("Twice", *years(2020, 2035), k=k)[0]
    result = good.execute(IMPORT + http_server.serve("/dup.pem", pem([new, old])))
    assert result.ok
    ev = _imported(result)
    assert ev.certificates == (der(new),)
    assert ("% duplicate CN=Twice,O=Example: kept the certificate expiring 2035-01-01, "
            "dropped the one expiring 2030-01-01.") in result.output
    assert ev.notes and "duplicate CN=Twice" in ev.notes[0]


def test_a_rekeyed_ca_keeps_both_certificates(good: Engine, http_server: BundleServer
                                             ) -> None:
    """A CA that made a new key kept its name: what its old key issued chains to the old
    certificate only, so both stay in the pool (one of them was dropped as a duplicate)."""
    old_key, new_key = key(), key()
    old = ca("Rekeyed", *years(2020, 2030), k=old_key)[0]
    new = ca("Rekeyed", *years(2024, 2035), k=new_key)[0]
    result = good.execute(IMPORT + http_server.serve("/rekeyed.pem", pem([new, old])))
    assert result.ok, result.output
    assert _imported(result).certificates == (der(new), der(old))
    assert "duplicate" not in result.output
    at = good.ports.clock.now_us()
    for issuer, k in ((old, old_key), (new, new_key)):
        leaf = ca("peer.example", *years(2025, 2027), issuer=(issuer, k), is_ca=False)[0]
        verdict = good.validate_peer([der(leaf)], "any", at)
        assert verdict.anchor is not None and verdict.anchor.source == "trustpool", verdict


def test_invalid_certificates_are_kept_and_shown(good: Engine, http_server: BundleServer
                                                 ) -> None:
    expired = ca("Expired Root", *years(2010, 2020))[0]
    future = ca("Future Root", *years(2040, 2050))[0]
    result = good.execute(IMPORT + http_server.serve("/dates.pem", pem([expired, future])))
    assert result.ok and len(good.state.trustpool.downloaded) == 2
    show = good.execute("show crypto ca trustpool").output
    assert "Status : Expired (not used)" in show and "Status : Not yet valid (not used)" in show


def test_a_builtin_with_a_downloaded_subject_is_inactive(
        device: Callable[..., Engine], http_server: BundleServer) -> None:
    with device() as dev:
        def not_usable() -> str:
            policy = dev.execute("show crypto ca trustpool policy").output
            return next(x for x in policy.splitlines() if x.startswith("Not usable now"))

        before = not_usable()
        # The vectors' built-in "Vector Root A" (O=Example): a download of the same subject.
        same = ca("Vector Root A", *years(2021, 2045))[0]
        result = dev.execute(IMPORT + http_server.serve("/same.pem", pem([same])))
        assert "1 built-in certificate inactive while they are there" in result.output
        # Replaced, not unusable: the usable download takes its place (counted as inactive).
        assert not_usable() == before
        assert ", 1 inactive" in dev.execute("show crypto ca trustpool policy").output
        show = dev.execute("show crypto ca trustpool").output
        block = show.split("\n\n")[0]
        assert "Trustpool: Built-In" in block and "CN=Vector Root A" in block
        assert "Status : Inactive (a downloaded certificate has the same subject)" in block
        assert dev.execute("crypto ca trustpool import url clean").ok
        assert "Inactive" not in dev.execute("show crypto ca trustpool").output


def test_clean_removes_the_downloads_only(good: Engine) -> None:
    result = good.execute("crypto ca trustpool import url clean")
    assert result.ok and result.output.startswith("%PKI-6-TRUSTPOOL_CLEANED: 1 certificate ")
    assert good.state.trustpool.downloaded == () and len(good.state.trustpool.builtin) == 3
    again = good.execute("crypto ca trustpool import url clean")
    assert again.ok and not again.events and "nothing to remove" in again.output
