"""Our own CertRep encoding, pinned byte for byte (vectors from make_own_vectors.py)."""

from __future__ import annotations

import pytest

from engine.scep import Credential, FailInfo, PkiStatus, parse_cert_rep, parse_request
from tests.scep.scep_support import vector, vector_key
from tests.vectors.scep import make_own_vectors


@pytest.mark.parametrize("name", ["certrep_pending_ours.der",
                                  "certrep_failure_badrequest_ours.der"])
def test_rebuilt_bytes_equal_the_vector(name: str) -> None:
    assert make_own_vectors.build()[name] == vector(name)


@pytest.mark.parametrize(("name", "status", "fail_info"), [
    ("certrep_pending_ours.der", PkiStatus.PENDING, None),
    ("certrep_failure_badrequest_ours.der", PkiStatus.FAILURE, FailInfo.BAD_REQUEST),
])
def test_golden_vectors_parse_as_answers_to_micromdm(
    name: str, status: PkiStatus, fail_info: FailInfo | None
) -> None:
    ca = make_own_vectors.micromdm_ca()
    req = parse_request(vector("pkcsreq_des_sha1_micromdm.der"), recipients=[ca])
    rep = parse_cert_rep(vector(name), signers=[ca.certificate],
                         transaction_id=req.transaction_id, sender_nonce=req.sender_nonce,
                         recipient=Credential(req.signer_certificate,
                                              vector_key("micromdm_client1.key.pem")))
    assert (rep.status, rep.fail_info) == (status, fail_info)
    assert rep.sender_nonce == make_own_vectors.SENDER_NONCE
    assert rep.signing_time == make_own_vectors.SIGNING_TIME
