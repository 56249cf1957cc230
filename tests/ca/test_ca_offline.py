"""`ca sign DIR --csr FILE`: a PKCS#10 request carried to the CA by hand (issue 7 item 5),
signed with the SCEP profile, recorded in the CA's log, refused clearly when it is junk."""

from __future__ import annotations

import base64
import subprocess
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from engine.ca import BuiltinCA, CAError
from engine.ca.decide import OFFLINE
from engine.ca.offline import read_pasted_csr, request_of
from engine.ca.service import replay
from engine.ca.state import RequestStatus
from engine.errors import Reason
from engine.scep import build_csr
from events.ca import CertificateIssued, RequestApproved, RequestReceived
from events.filelog import FileEventLog
from projections.certfmt import ios_serial
from tests.ca.ca_support import INTEGER_AVA_SUBJECT, T0, make_ca, raw_csr, rsa_key, spki
from tests.ca.cli_support import cli, served

CHALLENGE = "offline-challenge-77123"


def device_output(der: bytes) -> bytes:
    """What `crypto ca enroll` prints on an `enrollment terminal` trustpoint."""
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return (f"% Start certificate enrollment ...\n% The General Purpose certificate request "
            f"follows:\n\n-----BEGIN CERTIFICATE REQUEST-----\n{body}\n"
            f"-----END CERTIFICATE REQUEST-----\n\n  Fingerprint: 1234 5678\n").encode()


def our_csr(index: int, cn: str) -> bytes:
    csr = build_csr(rsa_key(index), x509.Name.from_rfc4514_string(f"CN={cn},O=Example"),
                    challenge_password=CHALLENGE, dns_names=[f"{cn}.example.com"])
    return csr.public_bytes(serialization.Encoding.DER)


def log_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((root / "log").rglob("*")) if p.is_file())


def openssl_verify(ca_pem: Path, leaf_pem: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "verify", "-CAfile", str(ca_pem), str(leaf_pem)],
                          capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("offline") / "ca"
    cli("init", root, "--subject", "CN=Offline Test CA,O=Example", "--cert-days", "90")
    return root


# -- the service (in process, fixed clock) ----------------------------------------------------


def test_sign_offline_records_the_request_and_issues_with_the_scep_profile(
        tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca", certificate_days=90) as ca:
        ca.crl_url = "http://127.0.0.1:9/crl/ca.crl"
        before = len(list(FileEventLog.open(tmp_path / "ca" / "log", readonly=True).read()))
        issued = ca.sign_offline(read_pasted_csr(device_output(our_csr(60, "r60"))), days=30)
        cert = x509.load_der_x509_certificate(issued.certificate)
        assert cert.public_key().public_bytes(
            serialization.Encoding.DER,
            serialization.PublicFormat.SubjectPublicKeyInfo) == spki(rsa_key(60))
        assert cert.subject.rfc4514_string() == "CN=r60,O=Example"
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30,
                                                                                 minutes=5)
        ext = cert.extensions
        assert ext.get_extension_for_class(x509.SubjectAlternativeName).value \
            .get_values_for_type(x509.DNSName) == ["r60.example.com"]
        assert ext.get_extension_for_class(x509.KeyUsage).value.digital_signature
        assert ExtendedKeyUsageOID.CLIENT_AUTH in ext.get_extension_for_class(
            x509.ExtendedKeyUsage).value
        assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier \
            == ca.ca_certificate.extensions.get_extension_for_class(
                x509.SubjectKeyIdentifier).value.digest
        cdp = ext.get_extension_for_class(x509.CRLDistributionPoints).value
        assert cdp[0].full_name == [x509.UniformResourceIdentifier(ca.crl_url)]

        req = ca.state.requests[issued.transaction_id]
        assert (req.status, req.message_type, req.authorization, req.decided_by) == (
            RequestStatus.ISSUED, OFFLINE, "offline", "operator")
        log = FileEventLog.open(tmp_path / "ca" / "log", readonly=True)
        records = list(log.read())[before:]
        assert [type(r.event) for r in records] == [RequestReceived, RequestApproved,
                                                    CertificateIssued]
        assert {r.actor for r in records} == {"operator"}
        assert replay(log.read()) == ca.state
    assert CHALLENGE.encode() not in log_bytes(tmp_path / "ca")


def test_without_a_server_no_cdp_and_the_default_validity(tmp_path: Path) -> None:
    with make_ca(tmp_path / "ca", certificate_days=90) as ca:
        issued = ca.sign_offline(our_csr(61, "r61"))
        cert = x509.load_der_x509_certificate(issued.certificate)
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        assert cert.not_valid_before_utc == T0 - timedelta(minutes=5)
        assert cert.not_valid_after_utc == T0 + timedelta(days=90)
        # the same request again is a second, distinct transaction and certificate
        again = ca.sign_offline(our_csr(61, "r61"))
        assert again.serial != issued.serial
        assert again.transaction_id != issued.transaction_id


@pytest.mark.parametrize("case", ["garbage", "tampered", "two", "not-a-request", "dsa",
                                  "certificate-block", "empty", "integer-subject"])
def test_junk_is_refused_and_nothing_is_recorded(tmp_path: Path, case: str) -> None:
    good = our_csr(62, "r62")
    with make_ca(tmp_path / "ca") as ca:
        state = ca.state
        with pytest.raises(CAError) as err:
            if case == "garbage":
                ca.sign_offline(read_pasted_csr(b"hello, this is no request\n"))
            elif case == "tampered":
                bad = bytearray(good)
                at = bad.index(b"r62")
                bad[at:at + 3] = b"r99"  # the subject changes, the signature does not
                ca.sign_offline(read_pasted_csr(device_output(bytes(bad))))
            elif case == "two":
                read_pasted_csr(device_output(good) + device_output(our_csr(63, "r63")))
            elif case == "not-a-request":
                ca.sign_offline(read_pasted_csr(device_output(ca.ca_certificate.public_bytes(
                    serialization.Encoding.DER))))
            elif case == "dsa":
                key = dsa.generate_private_key(2048)
                csr = (x509.CertificateSigningRequestBuilder().subject_name(
                    x509.Name.from_rfc4514_string("CN=dsa")).sign(key, hashes.SHA256()))
                ca.sign_offline(csr.public_bytes(serialization.Encoding.DER))
            elif case == "integer-subject":
                ca.sign_offline(raw_csr(rsa_key(62), INTEGER_AVA_SUBJECT))
            elif case == "certificate-block":
                read_pasted_csr(ca.ca_certificate.public_bytes(serialization.Encoding.PEM))
            else:
                read_pasted_csr(b"-----BEGIN CERTIFICATE REQUEST-----\n\n"
                                b"-----END CERTIFICATE REQUEST-----\n")
        assert err.value.reason is Reason.BAD_DATA
        assert err.value.message.startswith("% ")
        expected = {"garbage": "not a base64", "tampered": "signature does not verify",
                    "two": "holds 2 certificate requests", "not-a-request": "malformed",
                    "dsa": "only RSA and EC", "certificate-block": "CERTIFICATE block",
                    "empty": "empty",
                    "integer-subject": "not a usable certificate request"}[case]
        assert expected in err.value.message
        assert ca.state is state


def test_a_subject_cryptography_cannot_read_is_a_value_error() -> None:
    """Whatever the request parser lets through, reading it for the record raises only
    ValueError (which both the SCEP frontend and `ca sign` turn into a refusal)."""
    der = raw_csr(rsa_key(62), INTEGER_AVA_SUBJECT)
    csr = x509.load_der_x509_csr(der)  # loads: the subject is parsed lazily
    with pytest.raises(ValueError, match="subject or public key cannot be read"):
        request_of(csr, der)


# -- the command line, with and without `ca serve` -----------------------------------------------


@pytest.mark.slow
def test_cli_signs_our_csr_offline_and_openssl_verifies(ca_dir: Path, tmp_path: Path) -> None:
    csr_file = tmp_path / "r64.txt"
    csr_file.write_bytes(device_output(our_csr(64, "r64")))
    out = cli("sign", ca_dir, "--csr", csr_file)
    assert out.stdout.startswith("-----BEGIN CERTIFICATE-----")
    assert "issued to CN=r64,O=Example" in out.stderr and "no CRL distribution point" in \
        out.stderr
    cert = x509.load_pem_x509_certificate(out.stdout.encode())
    leaf = tmp_path / "r64.pem"
    leaf.write_text(out.stdout)
    verified = openssl_verify(ca_dir / "ca.pem", leaf)
    assert verified.returncode == 0, verified.stderr
    listing = cli("list", ca_dir).stdout
    assert ios_serial(cert) in listing
    assert "offline" in cli("requests", ca_dir, "--all").stdout
    pasted = cli("sign", ca_dir, "--csr", "-", stdin=device_output(our_csr(66, "r66")).decode())
    assert x509.load_pem_x509_certificate(pasted.stdout.encode()).subject.rfc4514_string() == \
        "CN=r66,O=Example"
    assert CHALLENGE.encode() not in log_bytes(ca_dir)


@pytest.mark.integration
@pytest.mark.slow
def test_cli_signs_an_openssl_request_through_the_running_server(ca_dir: Path,
                                                                 tmp_path: Path) -> None:
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(tmp_path / "k.pem"), "-out", str(tmp_path / "req.pem"), "-subj",
                    "/O=Example/CN=ossl-router", "-addext", "subjectAltName=DNS:ossl.example.com",
                    "-passin", "pass:x"], check=True, capture_output=True)
    with served(ca_dir) as srv:
        out = cli("sign", ca_dir, "--csr", tmp_path / "req.pem", "--out", tmp_path / "c.pem",
                  "--days", "10")
        assert "written to" in out.stdout
        cert = x509.load_pem_x509_certificate((tmp_path / "c.pem").read_bytes())
        cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert cdp[0].full_name == [x509.UniformResourceIdentifier(srv.url + "/crl/ca.crl")]
        assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=10,
                                                                                 minutes=5)
        assert cert.subject.rfc4514_string() == "CN=ossl-router,O=Example"
        # junk is refused before it reaches the server; nothing is recorded either way
        bad = tmp_path / "bad.txt"
        bad.write_text("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"
                       "-----END CERTIFICATE REQUEST-----\n")
        refused = cli("sign", ca_dir, "--csr", bad, check=False)
        assert refused.returncode == 1 and refused.stderr.startswith("% not a usable")
        assert ios_serial(cert) in cli("list", ca_dir).stdout
    verified = openssl_verify(ca_dir / "ca.pem", tmp_path / "c.pem")
    assert verified.returncode == 0, verified.stderr
    with BuiltinCA.open(ca_dir, readonly=True) as ca:
        assert ca.state.certificates[format(cert.serial_number, "x")].subject_text == \
            "CN=ossl-router,O=Example"
    missing = cli("sign", ca_dir, "--csr", tmp_path / "nope.pem", check=False)
    assert missing.returncode == 1 and "cannot read" in missing.stderr


@pytest.mark.integration
@pytest.mark.slow
def test_the_admin_endpoint_refuses_a_tampered_request(ca_dir: Path) -> None:
    from engine.ca import admin

    bad = bytearray(our_csr(65, "r65"))
    bad[-5] ^= 0xFF  # inside the signature
    with served(ca_dir):
        listing = cli("list", ca_dir).stdout
        with pytest.raises(CAError) as err:
            admin.call(ca_dir, "sign", {"csr": base64.b64encode(bytes(bad)).decode()})
        assert "signature does not verify" in err.value.message
        with pytest.raises(CAError, match="days must be"):
            admin.call(ca_dir, "sign", {"csr": base64.b64encode(our_csr(65, "r65")).decode(),
                                        "days": -1})
        assert cli("list", ca_dir).stdout == listing
