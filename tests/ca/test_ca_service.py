"""BuiltinCA: directory layout, key files, determinism, replay, CRL upkeep, offline approval,
and the issued certificate / CRL profiles (checked by OpenSSL too)."""

from __future__ import annotations

import dataclasses
import errno
import os
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from engine.ca import BuiltinCA, CAError, Policy
from engine.ca.decide import PKCS_REQ, Approval, Enroll, ReplyStatus
from engine.ca.errors import FailInfo, ScepRefusal
from engine.ca.server import serve
from engine.ca.service import challenge_digest, replay
from engine.ca.state import RequestStatus, evolve
from engine.ports import FixedClock, to_micros
from events.ca import STREAM, RequestApproved, RequestReceived
from events.filelog import FileEventLog
from events.store import PendingEvent
from tests.ca.ca_support import T0, enroll_cmd, make_ca, rsa_key, spki

PW_POLICY = Policy(Approval.AUTO, challenge_digest("pw"))
MANUAL = Policy(Approval.MANUAL)


def test_init_refuses_bad_parameters(tmp_path: Path) -> None:
    with pytest.raises(CAError, match="add --ra"):
        make_ca(tmp_path / "ec", key="ecdsa:p256")
    with pytest.raises(CAError, match="invalid subject"):
        make_ca(tmp_path / "dn", subject="this is no DN")
    with make_ca(tmp_path / "ok"):
        pass
    with pytest.raises(CAError, match="already holds a CA"):
        make_ca(tmp_path / "ok")


def test_open_refuses_a_key_others_can_read(tmp_path: Path) -> None:
    make_ca(tmp_path / "ca").close()
    (tmp_path / "ca" / "ca.key").chmod(0o644)
    with pytest.raises(CAError, match="chmod 600"):
        BuiltinCA.open(tmp_path / "ca")
    with BuiltinCA.open(tmp_path / "ca", readonly=True) as ro:  # listings need no key
        assert ro.state.initialized


def test_same_inputs_give_the_same_log(tmp_path: Path) -> None:
    heads = []
    for name in ("a", "b"):
        with make_ca(tmp_path / name, seed=7) as ca:
            ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
            ca.enroll(enroll_cmd(rsa_key(1), "r1", challenge="pw"), PW_POLICY)
            ca.mint_challenge()
            heads.append(FileEventLog.open(tmp_path / name / "log", readonly=True).head)
    assert heads[0] == heads[1]


def test_replay_equals_live_after_every_operation(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    with make_ca(tmp_path / "ca", clock=clock) as ca:
        ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
        states = [ca.state]
        auto = ca.enroll(enroll_cmd(rsa_key(1), "r1", challenge="pw"), PW_POLICY)
        states.append(ca.state)
        ca.enroll(enroll_cmd(rsa_key(2), "r2"), MANUAL)
        ca.enroll(enroll_cmd(rsa_key(3), "r3"), MANUAL)
        clock.advance(timedelta(minutes=1))
        ca.approve(enroll_cmd(rsa_key(2), "r2").transaction_id)
        ca.reject(enroll_cmd(rsa_key(3), "r3").transaction_id, "no")
        assert auto.certificate is not None
        ca.revoke(auto.certificate.serial, "keyCompromise")
        ca.mint_challenge()
        clock.advance(timedelta(days=4))
        assert ca.refresh_crl() is not None
        states.append(ca.state)
        log = FileEventLog.open(tmp_path / "ca" / "log", readonly=True)
        assert replay(log.read()) == ca.state
        # replay of each prefix equals the state the live CA had then
        records = list(log.read())
        assert replay(records[:2]) == states[0]
        assert replay(records[:5]) == states[1]  # + RequestReceived, Approved, Issued


def test_crl_is_reissued_before_next_update(tmp_path: Path) -> None:
    clock = FixedClock(T0)
    with make_ca(tmp_path / "ca", clock=clock, crl_lifetime=timedelta(days=4)) as ca:
        first = ca.current_crl()
        assert first.number == 1
        clock.advance(timedelta(days=1, hours=23))
        assert ca.refresh_crl() is None and not ca.crl_due()
        clock.advance(timedelta(hours=2))  # now less than half the lifetime is left
        crl = ca.current_crl()
        assert crl.number == 2 and crl.this_update == to_micros(clock.now().replace(
            microsecond=0))
        parsed = x509.load_der_x509_crl(crl.der)
        assert parsed.next_update_utc is not None
        assert parsed.next_update_utc - parsed.last_update_utc == timedelta(days=4)


def test_offline_approval_is_issued_when_served(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca") as ca:
        cmd = enroll_cmd(rsa_key(4), "r4")
        ca.enroll(cmd, MANUAL)
        assert ca.approve(cmd.transaction_id) is None  # no CDP known yet: approve only
        assert ca.state.requests[cmd.transaction_id].status is RequestStatus.APPROVED
        ca.crl_url = "http://127.0.0.1:9/crl/ca.crl"
        issued = ca.issue_approved()
        assert [c.transaction_id for c in issued] == [cmd.transaction_id]
        assert ca.state.requests[cmd.transaction_id].status is RequestStatus.ISSUED


def _dsa_request(txid: str) -> Enroll:
    key = dsa.generate_private_key(2048)
    name = x509.Name.from_rfc4514_string("CN=dsa-dev")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(T0).not_valid_after(T0 + timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return Enroll(txid, PKCS_REQ, name.public_bytes(), "CN=dsa-dev", spki(key), b"",
                  cert.public_bytes(serialization.Encoding.DER), None)


def test_requests_that_cannot_be_issued_are_refused_on_arrival(tmp_path: Path) -> None:
    """Manual mode used to record them PENDING; approved while no server ran, they made
    every `ca serve` fail to start."""
    empty = dataclasses.replace(enroll_cmd(rsa_key(6), "r6"), subject=b"\x30\x00",
                                subject_text="")
    with make_ca(tmp_path / "ca") as ca:
        state = ca.state
        for cmd, why in ((_dsa_request("DSA1"), "only RSA and EC"),
                         (empty, "empty subject and no subjectAltName")):
            with pytest.raises(ScepRefusal, match=why) as e:
                ca.enroll(cmd, MANUAL)
            assert e.value.fail_info is FailInfo.BAD_REQUEST
        assert ca.state is state


@pytest.mark.integration
def test_an_approved_request_that_cannot_be_issued_is_rejected_at_start(
        tmp_path: Path) -> None:
    """A log written before requests were checked on arrival: `serve` starts anyway and the
    request is answered FAILURE with the reason, instead of failing every start."""
    make_ca(tmp_path / "ca").close()
    bad = _dsa_request("DSA1")
    with FileEventLog.open(tmp_path / "ca" / "log") as log:
        log.append([PendingEvent(ev, STREAM, to_micros(T0), "scep") for ev in (
            RequestReceived(bad.transaction_id, PKCS_REQ, bad.subject, bad.subject_text,
                            bad.public_key, b"", bad.signer_certificate, "none", None, b""),
            RequestApproved(bad.transaction_id, "operator"))])
    good = enroll_cmd(rsa_key(7), "r7")
    with BuiltinCA.open(tmp_path / "ca", clock=FixedClock(T0)) as ca:
        ca.enroll(good, MANUAL)
        ca.approve(good.transaction_id)  # no server: approved, issued at the next start
        with serve(ca, admin=False):
            pass
        req = ca.state.requests["DSA1"]
        assert req.status is RequestStatus.REJECTED
        assert "only RSA and EC" in req.reject_reason
        assert ca.poll("DSA1").status is ReplyStatus.FAILURE
        assert ca.state.requests[good.transaction_id].status is RequestStatus.ISSUED
        # The CA rejected it on its own: approving it again (with no server running, the
        # approval alone is recorded) would only have it rejected again at the next start.
        ca.crl_url = None
        state = ca.state
        with pytest.raises(CAError) as e:
            ca.approve("DSA1")
        assert e.value.message == (
            "% request DSA1 was rejected by the CA, not by an operator: cannot issue a "
            "certificate for this request: only RSA and EC subject keys are supported; it "
            "cannot be approved")
        assert ca.state is state
        assert replay(FileEventLog.open(ca.root / "log", readonly=True).read()) == ca.state


def test_an_approved_request_without_its_certificate_can_be_rejected(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca") as ca:
        cmd = enroll_cmd(rsa_key(8), "r8")
        ca.enroll(cmd, MANUAL)
        ca.approve(cmd.transaction_id)
        ca.reject(cmd.transaction_id, "approved by mistake")
        req = ca.state.requests[cmd.transaction_id]
        assert (req.status, req.reject_reason) == (RequestStatus.REJECTED, "approved by mistake")
        ca.crl_url = "http://127.0.0.1:9/crl/ca.crl"
        assert ca.issue_approved() == []
        with pytest.raises(CAError, match="rejected, not pending"):
            ca.reject(cmd.transaction_id)


def test_issued_profile_and_openssl(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca", certificate_days=30) as ca:
        ca.crl_url = "http://127.0.0.1:9/crl/ca.crl"
        out = ca.enroll(enroll_cmd(rsa_key(5), "r5", challenge="pw", dns=("r5.example.com",),
                                   ca_true=True), PW_POLICY)
        assert out.certificate is not None
        cert = x509.load_der_x509_certificate(out.certificate.certificate)
        ext = cert.extensions
        assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
        ku = ext.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment
        assert not ku.value.key_cert_sign
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert ExtendedKeyUsageOID.CLIENT_AUTH in eku and ExtendedKeyUsageOID.SERVER_AUTH in eku
        assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest == \
            x509.SubjectKeyIdentifier.from_public_key(rsa_key(5).public_key()).digest
        ca_ski = ca.ca_certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest
        assert ext.get_extension_for_class(
            x509.AuthorityKeyIdentifier).value.key_identifier == ca_ski
        san = ext.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["r5.example.com"]
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30,
                                                                                 minutes=5)
        assert cert.serial_number.bit_length() > 64
        revoked_crl = ca.revoke(out.certificate.serial, "key-compromise")
        ca_pem = tmp_path / "ca" / "ca.pem"
        leaf = tmp_path / "leaf.pem"
        leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        crl_der = tmp_path / "ca.crl"
        crl_der.write_bytes(revoked_crl.der)
    attime = ["-attime", str(int(T0.timestamp()))]
    ok = subprocess.run(["openssl", "verify", *attime, "-CAfile", ca_pem, leaf],
                        check=False, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    text = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", crl_der, "-noout",
                           "-text"], capture_output=True, text=True, check=True).stdout
    assert format(cert.serial_number, "X") in text.replace(":", "")
    assert "Key Compromise" in text and "CRL Number" in text
    pem_crl = tmp_path / "ca.crl.pem"
    subprocess.run(["openssl", "crl", "-inform", "DER", "-in", crl_der, "-out", pem_crl],
                   check=True)
    revoked = subprocess.run(["openssl", "verify", *attime, "-crl_check", "-CAfile", ca_pem,
                              "-CRLfile", pem_crl, leaf],
                             check=False, capture_output=True, text=True)
    assert revoked.returncode != 0 and "revoked" in revoked.stdout + revoked.stderr


def test_every_event_sets_last_at(tmp_path: Path) -> None:
    """`evolve` stamps the state with the time of the event it folded, whatever its type."""
    clock = FixedClock(T0)
    with make_ca(tmp_path / "ca", clock=clock) as ca:
        ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
        for step in range(4):
            clock.advance(timedelta(seconds=7))
            if step == 0:
                ca.mint_challenge()
            elif step == 1:
                issued = ca.enroll(enroll_cmd(rsa_key(1), "r1", challenge="pw"), PW_POLICY)
            elif step == 2:
                ca.enroll(enroll_cmd(rsa_key(2), "r2"), MANUAL)
                ca.reject(enroll_cmd(rsa_key(2), "r2").transaction_id)
            else:
                assert issued.certificate is not None
                ca.revoke(issued.certificate.serial)
        records = list(FileEventLog.open(tmp_path / "ca" / "log", readonly=True).read())
    assert len({type(r.event) for r in records}) >= 8
    state = replay([])
    for rec in records:
        state = evolve(state, rec.event, rec.at)
        assert state.last_at == rec.at


# -- found in review: `ca init` is all or nothing ---------------------------------------------


def test_an_init_that_fails_leaves_nothing_behind(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The log's first sync fails: its frame may be on disk, the keys are. Without undoing
    both, the next init refuses ("ca.key already exists") or finds a CA without its key."""
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "simulated EIO")

    root = tmp_path / "ca"
    monkeypatch.setattr(os, "fdatasync", failing)
    with pytest.raises(CAError, match="nothing was left behind"):
        make_ca(root, ra=True)
    monkeypatch.undo()
    assert sorted(p.name for p in root.iterdir()) == ["log"]
    assert [p.name for p in (root / "log").iterdir()] == ["LOCK"]
    with make_ca(root, ra=True) as ca:
        assert ca.state.initialized and (root / "ca.key").exists()
    with BuiltinCA.open(root) as reopened:
        assert reopened.state.ca_certificate == ca.state.ca_certificate


def test_init_names_what_an_interrupted_init_left(tmp_path: Path) -> None:
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "ca.key").write_text("left over\n")
    with pytest.raises(CAError, match=r"holds ca\.key but no CA log"):
        make_ca(tmp_path / "ca")
    assert (tmp_path / "ca" / "ca.key").read_text() == "left over\n"  # never deleted
