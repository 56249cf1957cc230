"""Path building and checking (engine.validation.path): each rule maps to its reason code,
on chains made on the spot, at an explicit moment."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.verification import Store

from engine.validation.path import PathResult, check_path
from engine.validation.verdict import Code, Purpose
from tests.validation.validation_support import (
    AT_US,
    CA_KU,
    EKU,
    IPSEC_IKE,
    T0,
    Key,
    Pki,
    Spec,
    issue,
    key,
    resigned_sha1,
)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.make()


def _check(pki: Pki, chain: list[x509.Certificate], purpose: Purpose = Purpose.ANY,
           name: str | None = None, at: int = AT_US,
           anchor: x509.Certificate | None = None) -> PathResult:
    a = anchor or pki.root
    return check_path(chain, a, Store([a]), purpose, at, name)


def test_a_good_chain_builds_leaf_first_anchor_last(pki: Pki) -> None:
    leaf = pki.leaf()
    got = _check(pki, [leaf, pki.inter])
    assert got.codes == () and got.path == (leaf, pki.inter, pki.root)


def test_the_chain_may_come_in_any_order_and_with_extra_certificates(pki: Pki) -> None:
    leaf = pki.leaf()
    stranger = Pki.make("Other").inter
    got = _check(pki, [leaf, pki.root, stranger, pki.inter])
    assert got.codes == () and got.path == (leaf, pki.inter, pki.root)


@pytest.mark.parametrize(("days", "code"), [(-1, Code.NOT_YET_VALID), (400, Code.EXPIRED)])
def test_validity_is_judged_at_the_moment_given(pki: Pki, days: int, code: Code) -> None:
    at = int((T0 + dt.timedelta(days=days)).timestamp()) * 1_000_000
    got = _check(pki, [pki.leaf(), pki.inter], at=at)
    assert got.path == () and code in got.codes


def test_an_expired_intermediate_is_expired_whatever_the_leaf_says(pki: Pki) -> None:
    old = issue(Spec("Old Issuing CA", ca=True, not_after=T0 + dt.timedelta(days=10)),
                pki.inter_key, (pki.root, pki.root_key))
    leaf = issue(Spec("peer.example"), key(), (old, pki.inter_key))
    got = _check(pki, [leaf, old])
    assert got.codes == (Code.EXPIRED,) and "Old Issuing CA" in got.detail


def test_a_signature_by_another_key_is_bad_signature(pki: Pki) -> None:
    forged = issue(Spec("peer.example"), key(), (pki.inter, key()))
    got = _check(pki, [forged, pki.inter])
    assert got.codes == (Code.BAD_SIGNATURE,)


@pytest.mark.parametrize("spec", [Spec("Test Issuing CA", ca=False, ku=CA_KU),
                                  Spec("Test Issuing CA", ca=True, bc=False)],
                         ids=["ca-false", "no-basic-constraints"])
def test_an_issuer_that_is_not_a_ca_is_bad_basic_constraints(pki: Pki, spec: Spec) -> None:
    fake = issue(spec, pki.inter_key, (pki.root, pki.root_key))
    got = _check(pki, [pki.leaf(), fake])
    assert got.codes == (Code.BAD_BASIC_CONSTRAINTS,)


def test_a_path_length_constraint_is_enforced(pki: Pki) -> None:
    k1, k2 = key(), key()
    first = issue(Spec("First CA", ca=True, path_length=0), k1, (pki.root, pki.root_key))
    second = issue(Spec("Second CA", ca=True), k2, (first, k1))
    leaf = issue(Spec("peer.example"), key(), (second, k2))
    got = _check(pki, [leaf, second, first])
    assert got.codes == (Code.BAD_BASIC_CONSTRAINTS,) and "pathLenConstraint" in got.detail


def test_an_issuer_whose_key_usage_lacks_keycertsign_is_key_usage(pki: Pki) -> None:
    no_sign = x509.KeyUsage(True, False, False, False, False, False, True, False, False)
    ca = issue(Spec("Test Issuing CA", ca=True, ku=no_sign), pki.inter_key,
               (pki.root, pki.root_key))
    got = _check(pki, [pki.leaf(), ca])
    assert got.codes == (Code.KEY_USAGE,)


def test_an_unknown_critical_extension_is_refused(pki: Pki) -> None:
    leaf = pki.leaf(Spec("peer.example", critical_unknown=True))
    got = _check(pki, [leaf, pki.inter])
    assert got.codes == (Code.UNKNOWN_CRITICAL_EXTENSION,)


def test_a_missing_intermediate_is_unknown_ca(pki: Pki) -> None:
    got = _check(pki, [pki.leaf()])
    assert got.codes == (Code.UNKNOWN_CA,) and "Test Issuing CA" not in got.detail


def test_rsa_keys_under_2048_bits_are_weak(pki: Pki) -> None:
    weak = Pki.make("Weak", kind="rsa1024")
    got = _check(weak, [weak.leaf(), weak.inter])
    assert got.codes == (Code.WEAK_KEY,)
    leaf = pki.leaf(kind="rsa1024")
    assert _check(pki, [leaf, pki.inter]).codes == (Code.WEAK_KEY,)


def test_an_ed25519_issuer_is_an_unsupported_algorithm() -> None:
    ed = Pki.make("Edwards", kind="ed25519")
    got = _check(ed, [ed.leaf(), ed.inter])
    assert got.codes == (Code.UNSUPPORTED_ALGORITHM,)


def test_a_sha1_signature_is_a_weak_algorithm() -> None:
    rsa_pki = Pki.make("Sha1", kind="rsa2048")
    leaf = resigned_sha1(rsa_pki.leaf(), rsa_pki.inter_key)  # type: ignore[arg-type]
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA1)
    got = _check(rsa_pki, [leaf, rsa_pki.inter])
    assert got.codes == (Code.WEAK_ALGORITHM,) and "SHA1" in got.detail


def test_ecdsa_p384_and_rsa_sha512_chains_pass() -> None:
    rsa_pki = Pki.make("Rsa", kind="rsa2048")
    assert _check(rsa_pki, [rsa_pki.leaf(digest=hashes.SHA512()), rsa_pki.inter]).codes == ()


@pytest.mark.parametrize(("eku", "purpose", "ok"), [
    (None, Purpose.IKE, True),
    ([IPSEC_IKE], Purpose.IKE, True),
    ([EKU.ANY_EXTENDED_KEY_USAGE], Purpose.IKE, True),
    ([EKU.SERVER_AUTH], Purpose.IKE, False),  # RFC 4945: "Otherwise, reject cert."
    ([EKU.SERVER_AUTH], Purpose.TLS_SERVER, True),
    ([EKU.CLIENT_AUTH], Purpose.TLS_SERVER, False),
    ([EKU.CLIENT_AUTH], Purpose.TLS_CLIENT, True),
    ([EKU.SERVER_AUTH], Purpose.TLS_CLIENT, False),
    ([EKU.CODE_SIGNING], Purpose.ANY, True),
])
def test_eku_for_each_purpose(pki: Pki, eku: list[x509.ObjectIdentifier] | None,
                              purpose: Purpose, ok: bool) -> None:
    leaf = pki.leaf(Spec("peer.example", eku=eku))
    got = _check(pki, [leaf, pki.inter], purpose)
    assert got.codes == (() if ok else (Code.EKU_MISMATCH,))
    assert bool(got.path)  # the path itself is fine: the purpose is a check on top


def test_key_usage_for_each_purpose(pki: Pki) -> None:
    encipher_only = x509.KeyUsage(False, False, True, False, False, False, False, False, False)
    non_repudiation = x509.KeyUsage(False, True, False, False, False, False, False, False,
                                    False)
    enc = pki.leaf(Spec("peer.example", ku=encipher_only))
    nr = pki.leaf(Spec("peer.example", ku=non_repudiation))
    assert _check(pki, [enc, pki.inter], Purpose.IKE).codes == (Code.KEY_USAGE,)
    assert _check(pki, [enc, pki.inter], Purpose.TLS_SERVER).codes == ()
    assert _check(pki, [enc, pki.inter], Purpose.TLS_CLIENT).codes == (Code.KEY_USAGE,)
    assert _check(pki, [nr, pki.inter], Purpose.IKE).codes == ()
    assert _check(pki, [enc, pki.inter], Purpose.ANY).codes == ()


@pytest.mark.parametrize(("name", "purpose", "ok"), [
    ("peer.example", Purpose.IKE, True),
    ("PEER.example.", Purpose.TLS_SERVER, True),
    ("other.example", Purpose.TLS_SERVER, False),
    ("a.wild.example", Purpose.TLS_SERVER, True),
    ("a.wild.example", Purpose.IKE, False),  # no wildcards for IKE identities
    ("a.b.wild.example", Purpose.TLS_SERVER, False),
    ("192.0.2.7", Purpose.IKE, True),
    ("192.0.2.8", Purpose.IKE, False),
    ("2001:db8::7", Purpose.IKE, True),
    ("vpn@peer.example", Purpose.IKE, True),
    ("other@peer.example", Purpose.IKE, False),
    ("CN=peer.example,O=Example", Purpose.IKE, True),
    ("CN=peer.example,O=Other", Purpose.IKE, False),
])
def test_the_peer_name_in_each_form(pki: Pki, name: str, purpose: Purpose, ok: bool) -> None:
    leaf = pki.leaf(Spec("peer.example", dns=["peer.example", "*.wild.example"],
                         ips=["192.0.2.7", "2001:db8::7"], emails=["vpn@peer.example"]))
    got = _check(pki, [leaf, pki.inter], purpose, name)
    assert got.codes == (() if ok else (Code.NAME_MISMATCH,))


def test_the_common_name_alone_names_nobody(pki: Pki) -> None:
    leaf = pki.leaf(Spec("peer.example"))
    assert _check(pki, [leaf, pki.inter], Purpose.IKE, "peer.example").codes == (
        Code.NAME_MISMATCH,)


def test_a_refused_path_also_reports_the_leaf_s_own_problems(pki: Pki) -> None:
    leaf = pki.leaf(Spec("peer.example", eku=[EKU.CLIENT_AUTH],
                         not_after=T0 + dt.timedelta(days=5)))
    got = _check(pki, [leaf, pki.inter], Purpose.TLS_SERVER, "other.example")
    assert got.codes == (Code.EXPIRED, Code.EKU_MISMATCH, Code.NAME_MISMATCH)


def test_an_intermediate_anchor_ends_the_path_there(pki: Pki) -> None:
    leaf = pki.leaf()
    got = _check(pki, [leaf], anchor=pki.inter)
    assert got.codes == () and got.path == (leaf, pki.inter)


def _constrained(pki: Pki, permitted: str) -> tuple[x509.Certificate, Key]:
    """A CA under the root whose critical nameConstraints permit only DNS names in
    `permitted` (RFC 5280 §4.2.1.10)."""
    k = key()
    b = (x509.CertificateBuilder().subject_name(x509.Name.from_rfc4514_string("CN=NC CA"))
         .issuer_name(pki.root.subject).public_key(k.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(T0).not_valid_after(T0 + dt.timedelta(days=1000))
         .add_extension(x509.BasicConstraints(True, None), critical=True)
         .add_extension(CA_KU, critical=True)
         .add_extension(x509.NameConstraints([x509.DNSName(permitted)], None), critical=True))
    return b.sign(pki.root_key, hashes.SHA256()), k


def test_a_name_outside_the_name_constraints_is_invalid_path_with_the_library_words(
        pki: Pki) -> None:
    """A refusal no rule of `diagnose` explains still has a reason code: a verdict is never
    INVALID with no reason (it was: reasons [] from strongSwan pki's --nc-permitted chain)."""
    nc, k = _constrained(pki, "good.example")
    outside = issue(Spec("x.bad.example", dns=["x.bad.example"]), key(), (nc, k))
    got = _check(pki, [outside, nc])
    assert got.path == () and got.codes == (Code.INVALID_PATH,)
    assert "name constraints" in got.detail and got.detail.startswith("RFC 5280 path")
    inside = issue(Spec("x.good.example", dns=["x.good.example"]), key(), (nc, k))
    assert _check(pki, [inside, nc]).codes == ()
