"""The revoked-list index (engine/revocation/index.py): the DER walk finds exactly the
entries cryptography finds, with the same dates and reasons, for any serials and times; the
blob store behind `revocation_of` refuses missing or altered bytes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.revocation.index import CrlShape, build_index, revocation_of, time_us
from engine.revocation.model import CachedCrl
from engine.revocation.store import BlobMissing, CrlBlobs, FileCrlBlobs, MemoryCrlBlobs
from tests.support.crl_support import DAY_US, CrlSpec, make_ca, make_crl

REASON_NAMES = [r.name for r in x509.ReasonFlags]
CA = make_ca()
F = x509.ReasonFlags
RFC_NAMES = {  # RFC 5280 §5.3.1, written out here independently of engine.revocation.model
    F.unspecified: "unspecified", F.key_compromise: "keyCompromise",
    F.ca_compromise: "cACompromise", F.affiliation_changed: "affiliationChanged",
    F.superseded: "superseded", F.cessation_of_operation: "cessationOfOperation",
    F.certificate_hold: "certificateHold", F.privilege_withdrawn: "privilegeWithdrawn",
    F.aa_compromise: "aACompromise", F.remove_from_crl: "removeFromCRL"}


def _expected(der: bytes) -> dict[int, tuple[int, str]]:
    """serial -> (revoked_at µs, reason name) as cryptography reads them."""
    found = {}
    for entry in x509.load_der_x509_crl(der):
        try:
            flag = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
            name = RFC_NAMES[flag]
        except x509.ExtensionNotFound:
            name = "unspecified"
        found[entry.serial_number] = (int(entry.revocation_date_utc.timestamp()) * 1_000_000,
                                      name)
    return found


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.integers(1, 2**159 - 1), st.sampled_from([None, *REASON_NAMES]),
                       max_size=12),
       st.integers(0, 200 * 365 * DAY_US))  # UTCTime and, from 2050, GeneralizedTime
def test_the_index_reads_what_cryptography_reads(revoked: dict[int, str | None],
                                                 this_update: int) -> None:
    der = make_crl(CA, CrlSpec(revoked=list(revoked.items()), this_update=this_update,
                               next_update=this_update + DAY_US))
    idx = build_index(der)
    expected = _expected(der)
    assert len(idx) == len(expected)
    for serial, (when, reason) in expected.items():
        got = idx.lookup(serial)
        assert got is not None and (got.revoked_at, got.reason) == (when, reason)
    assert idx.lookup(2**160) is None


def test_reason_codes_become_their_rfc_5280_names() -> None:
    der = make_crl(CA, CrlSpec(revoked=[(1, "key_compromise"), (2, "ca_compromise"),
                                        (3, None), (4, "certificate_hold")]))
    idx = build_index(der)
    assert [idx.lookup(s).reason for s in (1, 2, 3, 4)] == [  # type: ignore[union-attr]
        "keyCompromise", "cACompromise", "unspecified", "certificateHold"]


def test_an_empty_crl_has_an_empty_index() -> None:
    assert len(build_index(make_crl(CA, CrlSpec()))) == 0
    assert len(build_index(make_crl(CA, CrlSpec(number=None)))) == 0


def test_times_decode_as_rfc_5280_says() -> None:
    assert time_us(0x17, b"491231235959Z") == 2524607999 * 1_000_000  # YY < 50: 20YY
    assert time_us(0x17, b"500101000000Z") == -631152000 * 1_000_000  # YY >= 50: 19YY
    assert time_us(0x18, b"20500101000000Z") == 2524608000 * 1_000_000
    with pytest.raises(CrlShape):
        time_us(0x17, b"5001010000+0100")


def test_bytes_cut_short_are_refused_not_half_indexed() -> None:
    der = make_crl(CA, CrlSpec(revoked=[(i, None) for i in range(1, 20)]))
    for cut in (10, len(der) // 2, len(der) - 300):
        with pytest.raises(CrlShape):
            build_index(der[:cut])


@pytest.mark.parametrize(("der", "why"), [
    (b"\x30", "truncated"),
    (b"\x1f\x81\x01\x00", "a multi-octet tag"),  # [PRIVATE 129]: no RFC 5280 tag is one
    (b"\x30\x80\x00\x00", "not a definite DER length"),  # BER indefinite
    (b"\x30\x85\x00\x00\x00\x00\x01\x00", "not a definite DER length"),  # 5 length octets
    (b"\x30\x03\x02\x01", "an element runs past its container"),
])
def test_the_one_der_walker_reads_strict_der_only(der: bytes, why: str) -> None:
    """engine/der.py, under both the CRL index and SCEP's fast SignedData reader."""
    from engine.der import element

    assert element(b"\x30\x81\x03\x02\x01\x05", 0, 6) == (0x30, 3, 6)
    with pytest.raises(CrlShape, match=why):
        element(der, 0, len(der))


# -- the blob store contract (one test case, every adapter) -----------------------------------


class BlobStoreContract:
    def make(self, tmp_path: Path) -> CrlBlobs:
        raise NotImplementedError

    def damage(self, store: CrlBlobs, name: str, data: bytes | None) -> None:
        raise NotImplementedError

    def test_put_names_by_sha256_and_get_gives_the_bytes_back(self, tmp_path: Path) -> None:
        store = self.make(tmp_path)
        der = make_crl(CA, CrlSpec(revoked=[(5, None)]))
        name = store.put(der)
        assert name == __import__("hashlib").sha256(der).hexdigest()
        assert store.put(der) == name and store.get(name) == der

    def test_missing_and_altered_blobs_are_refused(self, tmp_path: Path) -> None:
        store = self.make(tmp_path)
        der = make_crl(CA, CrlSpec())
        name = store.put(der)
        self.damage(store, name, der[:-1] + bytes([der[-1] ^ 1]))
        with pytest.raises(BlobMissing, match="altered"):
            store.get(name)
        self.damage(store, name, None)
        with pytest.raises(BlobMissing, match="missing"):
            store.get(name)

    def test_revocation_of_reads_through_the_store_once(self, tmp_path: Path) -> None:
        store = self.make(tmp_path)
        der = make_crl(CA, CrlSpec(revoked=[(77, "superseded")], number=9))
        name = store.put(der)
        cached = CachedCrl(name, b"", "", None, 9, 0, None, "x", 0, None, (), 1)
        got = revocation_of(store, cached, 77)
        assert got is not None and got.reason == "superseded"
        self.damage(store, name, None)
        assert revocation_of(store, cached, 78) is None  # the index is kept, memoized


class TestMemoryBlobs(BlobStoreContract):
    def make(self, tmp_path: Path) -> CrlBlobs:
        return MemoryCrlBlobs()

    def damage(self, store: CrlBlobs, name: str, data: bytes | None) -> None:
        assert isinstance(store, MemoryCrlBlobs)
        if data is None:
            store.blobs.pop(name)
        else:
            store.blobs[name] = data


class TestFileBlobs(BlobStoreContract):
    def make(self, tmp_path: Path) -> CrlBlobs:
        return FileCrlBlobs(tmp_path / "crls")

    def damage(self, store: CrlBlobs, name: str, data: bytes | None) -> None:
        path = tmp_path_of(store) / name
        if data is None:
            path.unlink()
        else:
            path.write_bytes(data)

    def test_files_are_private_and_no_temporary_is_left(self, tmp_path: Path) -> None:
        store = self.make(tmp_path)
        name = store.put(make_crl(CA, CrlSpec()))
        assert sorted(p.name for p in (tmp_path / "crls").iterdir()) == [name]
        assert (tmp_path / "crls" / name).stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "crls").stat().st_mode & 0o777 == 0o700

    def test_a_short_write_is_written_on_not_stored_cut(self, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
        """os.write may write less than asked (a disk filling up): the rest follows."""
        import os

        real = os.write
        monkeypatch.setattr(os, "write", lambda fd, data: real(fd, bytes(data[:100])))
        store = self.make(tmp_path)
        der = make_crl(CA, CrlSpec(revoked=[(n, None) for n in range(1, 40)]))
        name = store.put(der)
        monkeypatch.undo()
        assert store.get(name) == der

    def test_a_name_that_is_not_a_sha256_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(BlobMissing, match="not a SHA-256 name"):
            self.make(tmp_path).get("../../etc/passwd")


def tmp_path_of(store: CrlBlobs) -> Path:
    assert isinstance(store, FileCrlBlobs)
    return store.directory
