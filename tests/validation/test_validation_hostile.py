"""Hostile peer chains for `trustledger validate` and `Engine.validate_peer`: the peer's
certificates are anyone's bytes. cryptography parses a certificate's names, extensions and
key lazily, so a certificate that loads can fail later: each such chain must be MALFORMED
(the CLI's `%` line, exit 2, nothing recorded) or a verdict with a reason, never a traceback;
a key of an algorithm nobody knows is UNSUPPORTED_ALGORITHM; a path longer than the depth
limit is said as such, not as a missing issuer."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from engine import Engine
from engine.cli import main
from engine.ports import FakeClock
from engine.validation.decide import decide_validation
from engine.validation.path import MAX_DEPTH
from engine.validation.verdict import Code
from events.filelog import FileEventLog
from tests.validation.validation_support import (
    AT,
    AT_US,
    Key,
    Pki,
    Spec,
    _parts,
    _tlv,
    der,
    issue,
    key,
    pem,
)

UNKNOWN_KEY = _tlv(0x30, _tlv(0x30, _tlv(0x06, bytes.fromhex("2a0304")))  # OID 1.2.3.4
                   + _tlv(0x03, b"\x00abc"))


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.make("Hostile")


@pytest.fixture
def dev(tmp_path: Path, pki: Pki) -> Engine:
    """A device whose pool holds the root, with `crl optional` (no CRL is ever fetched)."""
    (tmp_path / "pool.pem").write_bytes(pem([pki.root]))
    e = Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=None)
    for line in (f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}",
                 "configure", "crypto ca trustpool policy", "crl optional", "commit", "end"):
        assert e.execute(line).ok, line
    return e


def _resigned(cert: x509.Certificate, issuer_key: Key, edit: int, value: bytes) -> bytes:
    """`cert`'s DER with element `edit` of its TBS replaced by `value`, signed again by
    `issuer_key` (ECDSA P-256, SHA-256): a certificate that loads."""
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    tbs, algorithm, _ = _parts(der(cert))
    fields = _parts(tbs)
    fields[edit] = value
    tbs = _tlv(0x30, b"".join(fields))
    signature = issuer_key.sign(tbs, ec.ECDSA(hashes.SHA256()))
    return _tlv(0x30, tbs + algorithm + _tlv(0x03, b"\x00" + signature))


def _with_subject_value_tag(cert: x509.Certificate, issuer_key: Key, tag: int) -> bytes:
    """The subject's O=Example value given the tag `tag` (TBS element 5: the subject)."""
    subject = _parts(der(cert))[0]
    subject = _parts(subject)[5]
    at = subject.index(b"Example") - 2
    return _resigned(cert, issuer_key, 5, subject[:at] + bytes([tag]) + subject[at + 1:])


def _with_duplicate_extension(cert: x509.Certificate, issuer_key: Key) -> bytes:
    """The extensions ([3], the TBS's last element) with the first one given twice."""
    wrapper = _parts(_parts(der(cert))[0])[-1]
    inner = _parts(_parts(wrapper)[0])
    doubled = _tlv(0xA3, _tlv(0x30, inner[0] + b"".join(inner)))
    return _resigned(cert, issuer_key, -1, doubled)


def _unreadable(pki: Pki) -> dict[str, bytes]:
    leaf = pki.leaf()
    return {
        "subject value [5]": _with_subject_value_tag(leaf, pki.inter_key, 0xA5),
        "subject value BIT STRING": _with_subject_value_tag(leaf, pki.inter_key, 0x03),
        "duplicate extension": _with_duplicate_extension(leaf, pki.inter_key),
    }


@pytest.mark.parametrize("what", ["subject value [5]", "subject value BIT STRING",
                                  "duplicate extension"])
def test_a_peer_certificate_that_fails_when_read_is_malformed(dev: Engine, pki: Pki,
                                                               what: str) -> None:
    leaf = _unreadable(pki)[what]
    x509.load_der_x509_certificate(leaf)  # it loads: the failure comes later
    verdict = decide_validation(dev.state, dev.crl_blobs, [leaf, der(pki.inter)], "ike",
                                AT_US)
    assert verdict.codes == (Code.MALFORMED,), verdict
    assert verdict.detail.startswith("not a certificate chain (a certificate cannot be read")


def test_the_cli_says_so_exit_2_and_records_nothing(
        dev: Engine, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev.close()
    leaf = x509.load_der_x509_certificate(_unreadable(pki)["duplicate extension"])
    (tmp_path / "chain.pem").write_bytes(pem([leaf, pki.inter]))
    code = main(["validate", "--data", str(tmp_path / "dev"), str(tmp_path / "chain.pem"),
                 "--at", AT.isoformat()])
    out = capsys.readouterr()
    assert code == 2 and out.out == ""
    assert out.err == (f"% {tmp_path / 'chain.pem'}: not a certificate chain (a certificate "
                       "cannot be read: Duplicate 2.5.29.19 extension found).\n")
    with FileEventLog.open(tmp_path / "dev" / "log", readonly=True) as log:
        assert not any(r.type == "PeerValidated" for r in log.read())


def test_a_peer_key_of_an_unknown_algorithm_is_unsupported(dev: Engine, pki: Pki) -> None:
    leaf = _resigned(pki.leaf(), pki.inter_key, 6, UNKNOWN_KEY)  # element 6: the SPKI
    verdict = dev.validate_peer([leaf, der(pki.inter)], "ike", AT_US, "peer.example")
    assert not verdict.ok and verdict.codes == (Code.UNSUPPORTED_ALGORITHM,)
    assert "its key's algorithm 1.2.3.4 is not one this validation knows" in verdict.detail


def test_an_intermediate_key_of_an_unknown_algorithm_is_unsupported(dev: Engine,
                                                                     pki: Pki) -> None:
    k = key()
    sub = issue(Spec("Hostile Sub CA", ca=True), k, (pki.inter, pki.inter_key))
    odd = x509.load_der_x509_certificate(_resigned(sub, pki.inter_key, 6, UNKNOWN_KEY))
    leaf = issue(Spec("peer.example", dns=["peer.example"]), key(), (sub, k))
    verdict = dev.validate_peer([der(leaf), der(odd), der(pki.inter)], "any", AT_US)
    assert not verdict.ok and Code.UNSUPPORTED_ALGORITHM in verdict.codes, verdict


def test_a_path_past_the_depth_limit_is_said_so_not_a_missing_issuer(dev: Engine,
                                                                     pki: Pki) -> None:
    chain: list[x509.Certificate] = [pki.inter]
    above: tuple[x509.Certificate, Key] = (pki.inter, pki.inter_key)
    for n in range(MAX_DEPTH + 2):
        k = key()
        above = (issue(Spec(f"Hostile Deep {n}", ca=True), k, above), k)
        chain.insert(0, above[0])
    leaf = issue(Spec("peer.example"), key(), above)
    verdict = dev.validate_peer([der(c) for c in [leaf, *chain]], "any", AT_US)
    assert verdict.codes == (Code.INVALID_PATH,), verdict
    assert verdict.detail == ("the path from the peer's certificate to the anchor is longer "
                              f"than {MAX_DEPTH} intermediates")


def test_mutated_peer_certificates_never_raise(dev: Engine, pki: Pki) -> None:
    """400 random byte edits of the peer's certificate (a fixed seed): each is decided."""
    base = der(pki.leaf(Spec("peer.example", dns=["peer.example"],
                             cdp=["http://127.0.0.1:9/x.crl"])))
    rnd = random.Random(5280)
    codes: set[Code] = set()
    for _ in range(400):
        data = bytearray(base)
        at = rnd.randrange(len(data))
        if rnd.random() < 0.7:
            data[at] = rnd.randrange(256)
        else:
            del data[at:at + rnd.randrange(1, 4)]
        verdict = decide_validation(dev.state, dev.crl_blobs, [bytes(data), der(pki.inter)],
                                    "tls-server", AT_US, "peer.example")
        codes.update(verdict.codes)
    assert Code.MALFORMED in codes


FORGING = "\x1b]0;owned\x07\x1b[2J\n  Reasons       : NONE\u202e"


def test_a_peer_name_with_control_characters_forges_no_report_line(
        dev: Engine, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The peer chose its subject: an escape sequence or a newline in it must not reach the
    terminal or start a line of the report (the path line and the detail both name it)."""
    dev.close()
    leaf = issue(Spec(FORGING, dns=["peer.example"]), key(), (pki.inter, pki.inter_key))
    (tmp_path / "chain.pem").write_bytes(pem([leaf, pki.inter]))
    code = main(["validate", "--data", str(tmp_path / "dev"), str(tmp_path / "chain.pem"),
                 "--at", AT.isoformat(), "--name", "other.example"])
    out = capsys.readouterr().out
    assert code == 1
    assert not any(c in out for c in "\x1b\x07\u202e"), repr(out)
    lines = out.splitlines()
    assert [x for x in lines if x.startswith("  Reasons")] == ["  Reasons       : NAME_MISMATCH"]
    assert "    [0] CN=?]0\\;owned??[2J?  Reasons       : NONE?,O=Example" in lines, lines
    assert ("  Detail        : CN=?]0\\;owned??[2J?  Reasons       : NONE?,O=Example does not "
            "name 'other.example'") in lines, lines
