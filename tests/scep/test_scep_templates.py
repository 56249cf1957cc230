"""The CMS pieces written as DER directly (engine/scep/cms.py templates) are the bytes
asn1crypto writes for the same values."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import cms, core

from engine.scep import DigestAlgorithm
from engine.scep import attributes as A
from engine.scep import cms as scep_cms
from tests.scep.scep_support import pki

UTC = dt.UTC
TIMES = [dt.datetime(2026, 12, 1, 13, 45, 7, 123456, tzinfo=UTC),
         dt.datetime(2026, 12, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
         dt.datetime(1950, 1, 1, tzinfo=UTC), dt.datetime(1949, 12, 31, 23, 59, 59, tzinfo=UTC),
         dt.datetime(2049, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
         dt.datetime(2050, 1, 1, tzinfo=UTC)]


def _asn1_time(when: dt.datetime) -> bytes:
    utc = when.astimezone(UTC).replace(microsecond=0)
    kind = "utc_time" if 1950 <= utc.year < 2050 else "generalized_time"
    return bytes(cms.Time({kind: utc}).dump())


@pytest.mark.parametrize("when", TIMES, ids=str)
def test_signing_times_are_what_asn1crypto_writes(when: dt.datetime) -> None:
    """RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise, whole seconds. A
    signing time outside 1950-2049 (`ca serve --clock 2050-...`) used to raise (asn1crypto
    has no "general_time" alternative)."""
    assert scep_cms._time_der(when) == _asn1_time(when)
    assert cms.Time.load(scep_cms._time_der(when)).native == when.replace(microsecond=0)


def test_a_certrep_can_be_signed_after_2049() -> None:
    p = pki()
    when = dt.datetime(2051, 3, 4, 5, 6, 7, 890, tzinfo=UTC)
    der = scep_cms.sign(b"", signer=p.ca, digest=DigestAlgorithm.SHA256,
                        attributes=[A.printable(A.OID_MESSAGE_TYPE, "3")],
                        certificates=[p.ca.certificate], signing_time=when)
    msg = scep_cms.read_signed(der, "CertRep")
    assert msg.attributes[scep_cms.OID_SIGNING_TIME] == b"\x18\x0f20510304050607Z"


def test_a_naive_signing_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        scep_cms._time_der(dt.datetime(2026, 1, 1))  # naive: the case under test


def _asn1(oid: str, value: core.Asn1Value) -> bytes:
    return bytes(cms.CMSAttribute({"type": oid, "values": [value]}).dump())


def test_attributes_are_what_asn1crypto_writes() -> None:
    assert A.printable(A.OID_MESSAGE_TYPE, "3") == _asn1(A.OID_MESSAGE_TYPE,
                                                         core.PrintableString("3"))
    assert A.octets(A.OID_SENDER_NONCE, b"n" * 16) == _asn1(A.OID_SENDER_NONCE,
                                                            core.OctetString(b"n" * 16))
    assert A.transaction_id_attribute("ÄTX") == _asn1(A.OID_TRANSACTION_ID,
                                                      core.UTF8String("ÄTX"))
    assert scep_cms.attribute(A.OID_FAIL_INFO_TEXT, core.UTF8String("no")) == _asn1(
        A.OID_FAIL_INFO_TEXT, core.UTF8String("no"))
