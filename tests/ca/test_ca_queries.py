"""What crosses between a worker and the decider: queries and answers, their frames, and the
group commit the decider runs them under."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.ca.channel import Channel, ChannelClosed, encode_frame
from engine.ca.decide import Enroll, Policy, ReplyStatus
from engine.ca.queries import (
    BadFrame,
    CertificateQuery,
    EnrollQuery,
    Found,
    Outcome,
    PollQuery,
    Refused,
    answer,
    decode_answer,
    decode_query,
    encode_answer,
    encode_query,
)
from engine.ca.scep_frontend import Ask, ScepResponder
from engine.ca.service import challenge_digest
from engine.scep import FailInfo, build_pkcs_req, parse_ca_certificates
from events.filelog import FileEventLog
from tests.ca.ca_support import ScepTestClient, enroll_cmd, make_ca, rsa_key

SECRET = "never-on-the-channel-4711"

digests = st.one_of(st.none(), st.binary(min_size=32, max_size=32))
enrolls = st.builds(Enroll, transaction_id=st.text(max_size=40), message_type=st.sampled_from(
    [17, 19]), subject=st.binary(max_size=64), subject_text=st.text(max_size=40),
    public_key=st.binary(max_size=64), requested_extensions=st.binary(max_size=64),
    signer_certificate=st.binary(max_size=64), challenge_sha256=digests)
queries = st.one_of(st.builds(EnrollQuery, enrolls, st.text(max_size=20)),
                    st.builds(PollQuery, st.text(max_size=40), st.binary(max_size=64)),
                    st.builds(CertificateQuery, st.text(max_size=40)))
answers = st.one_of(
    st.builds(Outcome, st.sampled_from(ReplyStatus), st.one_of(st.none(), st.binary()),
              st.text(max_size=40)),
    st.builds(Found, st.binary(max_size=64)),
    st.builds(Refused, st.sampled_from(FailInfo), st.text(max_size=40)))


def through_msgpack(d: object) -> object:
    return msgpack.unpackb(msgpack.packb(d, use_bin_type=True), raw=False)


@given(queries)
def test_queries_round_trip(q: EnrollQuery | PollQuery | CertificateQuery) -> None:
    assert decode_query(through_msgpack(encode_query(q))) == q


@given(answers)
def test_answers_round_trip(a: Outcome | Found | Refused) -> None:
    assert decode_answer(through_msgpack(encode_answer(a))) == a


@pytest.mark.parametrize("frame", [
    None, [], {"k": "enroll"}, {"k": "nope"}, {"k": "cert", "serial": 7},
    {"k": "poll", "txid": "T", "signer": "not bytes"},
    {"k": "enroll", "txid": "T", "mt": True, "subject": b"", "subject_text": "", "spki": b"",
     "ext": b"", "signer": b"", "challenge_sha256": None, "actor": "a"},
    {"k": "enroll", "txid": "T", "mt": 19, "subject": b"", "subject_text": "", "spki": b"",
     "ext": b"", "signer": b"", "challenge_sha256": b"short", "actor": "a"},
])
def test_malformed_queries_are_bad_frames(frame: object) -> None:
    with pytest.raises(BadFrame):
        decode_query(frame)


@pytest.mark.parametrize("frame", [
    {"k": "outcome", "status": "maybe", "certificate": None, "reason": ""},
    {"k": "refused", "fail_info": 99, "message": ""}, {"k": "found"}, {"k": "other"},
])
def test_malformed_answers_are_bad_frames(frame: object) -> None:
    with pytest.raises(BadFrame):
        decode_answer(frame)


def test_an_enrollment_crosses_with_the_challenge_digest_only(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca") as ca:
        responder = ScepResponder.for_ca(ca)
        c = ScepTestClient("http://unused", rsa_key(300), "q300",
                           cas=parse_ca_certificates(*responder.get_ca_cert()))
        p = c.params()
        step = responder.begin(build_pkcs_req(p, c.csr(SECRET), random_bytes=os.urandom),
                               "127.0.0.1")
        assert isinstance(step, Ask) and isinstance(step.query, EnrollQuery)
        frame = encode_frame({"t": "ask", "id": 1, "q": encode_query(step.query)})
        assert SECRET.encode() not in frame
        assert challenge_digest(SECRET) in frame
        # and the decider's answer, turned into a CertRep, issues the certificate
        ca.crl_url = "http://127.0.0.1:9/crl/ca.crl"
        got = answer(ca, Policy(static_challenge_sha256=challenge_digest(SECRET)), step.query)
        assert isinstance(got, Outcome) and got.status is ReplyStatus.SUCCESS
        assert responder.finish(step, got)[:1] == b"\x30"


def test_channel_frames_split_and_joined_anyhow() -> None:
    a, b = socket.socketpair()
    ours = Channel(a)
    frames = [encode_frame({"t": "closed"}), encode_frame({"t": "ask", "id": 2, "q": {}}),
              encode_frame({"t": "ready", "pid": 9})]
    data = b"".join(frames)
    b.sendall(data[:3])
    assert ours.read_frames() == []
    b.sendall(data[3:len(frames[0]) + 5])
    assert ours.read_frames() == [{"t": "closed"}]
    b.sendall(data[len(frames[0]) + 5:])
    assert [f["t"] for f in ours.read_frames()] == ["ask", "ready"]
    b.sendall((1 << 21).to_bytes(4, "big"))
    with pytest.raises(BadFrame):
        ours.read_frames()
    b.close()
    with pytest.raises(ChannelClosed):
        ours.read_frames()
    ours.close()


def test_deferred_durability_holds_the_sync_to_the_end_of_the_block(tmp_path: Path) -> None:
    policy = Policy(static_challenge_sha256=challenge_digest("pw"))
    with make_ca(tmp_path / "ca") as ca:
        ca.crl_url = "http://127.0.0.1:9/crl/ca.crl"

        def on_disk() -> int:
            return len(list(FileEventLog.open(tmp_path / "ca" / "log", readonly=True).read()))

        before = on_disk()
        with ca.deferred_durability():
            first = ca.enroll(enroll_cmd(rsa_key(301), "d1", challenge="pw"), policy)
            second = ca.enroll(enroll_cmd(rsa_key(302), "d2", challenge="pw"), policy)
            assert first.certificate is not None and second.certificate is not None
            assert on_disk() == before  # decided and appended, not yet written or synced
            with pytest.raises(RuntimeError, match="do not nest"), ca.deferred_durability():
                pass
        assert on_disk() == before + 6  # 2 x RequestReceived, RequestApproved, Issued
        ca.enroll(enroll_cmd(rsa_key(303), "d3", challenge="pw"), policy)
        assert on_disk() == before + 9  # outside a block each command waits for itself
