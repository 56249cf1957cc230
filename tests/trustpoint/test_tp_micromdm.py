"""Live: the device authenticates and enrolls against micromdm's real `scepserver` (issue 6
item 7), started on loopback by ../shared/peers/scep-server.sh. micromdm answers with a SHA-1
signature (sha1WithRSAEncryption) and a single-DES envelope whatever we send; our client must
take that, and openssl must accept the certificate we installed."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine import Engine
from engine.keys import KeyAlgorithm
from engine.machines.trustpoint import Lifecycle
from engine.ports import SystemClock
from engine.scep import DigestAlgorithm
from engine.scep.cms import read_signed
from events.trustpoint import EnrollmentFailed
from tests.support.peer_support import free_port, peers_dir
from tests.trustpoint.tp_support import (
    RecordingTransport,
    authenticate,
    declare,
    enroll,
    event_types,
    identity_and_key,
    open_device,
    openssl,
    spki_of,
    status,
)

pytestmark = pytest.mark.integration

CHALLENGE = "micromdm-secret"
DES_CBC = "1.3.14.3.2.7"


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "?operation=GetCACaps", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def micromdm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(SCEP URL, work dir) of a micromdm scepserver on a free loopback port."""
    yield from _scepserver(tmp_path_factory, "-allowrenew", "0")


@pytest.fixture(scope="module")
def micromdm_default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The same with micromdm's default policy (`-allowrenew 14`: one certificate per DN)."""
    yield from _scepserver(tmp_path_factory)


def _scepserver(tmp_path_factory: pytest.TempPathFactory,
                *flags: str) -> Iterator[tuple[str, Path]]:
    script = peers_dir("scepserver", "socat") / "scep-server.sh"
    work = tmp_path_factory.mktemp("mdm")  # short: the script puts a unix socket in it
    port = free_port()
    url = f"http://127.0.0.1:{port}/scep"
    proc = subprocess.Popen([str(script), "run", str(work), str(port), CHALLENGE,
                             *(("--", *flags) if flags else ())], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = work / "scepserver.log"
                pytest.fail("micromdm scepserver did not start: "
                            + (log.read_text(errors="replace")[-2000:] if log.exists() else ""))
            time.sleep(0.05)
        yield url, work
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture
def live_device(tmp_path: Path) -> Iterator[Engine]:
    # micromdm stamps certificates with the machine's clock: the device runs on it too.
    e = open_device(tmp_path / "device", SystemClock())
    yield e
    e.close()


def test_authenticate_and_enroll(micromdm: tuple[str, Path], live_device: Engine,
                                 tmp_path: Path) -> None:
    url, work = micromdm
    identity_and_key(live_device)
    declare(live_device, url=url)
    r = authenticate(live_device)
    assert event_types(r) == ["CACertificateAccepted"], r.output
    ca_pem = (work / "depot" / "ca.pem").read_bytes()
    ca = x509.load_pem_x509_certificate(ca_pem)
    assert status(live_device).ca_certificate == ca.public_bytes(serialization.Encoding.DER)
    # No CN in micromdm's CA subject; IOS order (most specific first), lower-case labels.
    assert "Subject Name  :\nou=SCEP CA,o=Example SCEP CA,c=US\n" in r.output

    transport = RecordingTransport()
    live_device.ports.scep = transport
    r = enroll(live_device, password=CHALLENGE)
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    st = status(live_device)
    assert st.lifecycle is Lifecycle.ENROLLED
    (rc,) = st.certificates
    cert = x509.load_der_x509_certificate(rc.der)
    (pair,) = live_device.state.keys.pairs_of(KeyAlgorithm.RSA, "mykey")
    assert spki_of(cert.public_key()) == pair.public_key

    # We asked with the strongest the caps offer; micromdm answered SHA-1 and single DES.
    ((request, reply),) = transport.operations()
    assert read_signed(request).digest is DigestAlgorithm.SHA256
    rep = read_signed(reply.body, "CertRep")
    assert rep.digest is DigestAlgorithm.SHA1
    assert rep.signature_oid == "1.2.840.113549.1.1.5"  # sha1WithRSAEncryption
    envelope = asn1_cms.ContentInfo.load(rep.content)["content"]
    assert envelope["encrypted_content_info"]["content_encryption_algorithm"][
        "algorithm"].dotted == DES_CBC

    (tmp_path / "ca.pem").write_bytes(ca_pem)
    (tmp_path / "router.der").write_bytes(rc.der)
    openssl("x509", "-inform", "DER", "-in", "router.der", "-out", "router.pem", cwd=tmp_path)
    out = openssl("verify", "-CAfile", "ca.pem", "router.pem", cwd=tmp_path)
    assert out.strip() == "router.pem: OK"

    shown = live_device.execute("show crypto ca certificates").output
    assert "Router certificate" in shown and "Status             :Available" in shown


def test_wrong_challenge(micromdm: tuple[str, Path], live_device: Engine) -> None:
    url, _ = micromdm
    identity_and_key(live_device)
    declare(live_device, url=url)
    authenticate(live_device)
    r = enroll(live_device, password="not-" + CHALLENGE)
    assert event_types(r) == ["EnrollmentRequested", "EnrollmentFailed"]
    ev = r.events[1].event
    assert isinstance(ev, EnrollmentFailed)
    assert (ev.reason, ev.fail_info) == ("failure", "badRequest")
    assert "failed: badRequest: the CA refused the request" in r.output
    st = status(live_device)
    assert st.lifecycle is Lifecycle.AUTHENTICATED and st.certificates == ()


def test_usage_keys_under_the_default_policy_say_which_was_refused(
        micromdm_default: tuple[str, Path], live_device: Engine, tmp_path: Path) -> None:
    """micromdm (default `-allowrenew 14`) issues the signature certificate and refuses the
    encryption one, same subject ("DN ... already exists", badRequest, no failInfoText): the
    transcript used to say only "failed"."""
    url, work = micromdm_default
    identity_and_key(live_device, usage_keys=True)
    declare(live_device, url=url)
    authenticate(live_device)
    r = enroll(live_device, password=CHALLENGE)
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived", "EnrollmentFailed"]
    assert ("% Certificate enrollment for trustpoint myca failed: badRequest: ") in r.output
    assert ("; the signature certificate was issued, the encryption certificate was "
            "refused.") in r.output
    assert "already exists" in (work / "scepserver.log").read_text(errors="replace")
    (kept,) = status(live_device).certificates
    assert kept.usage == "signature"
    (tmp_path / "ca.pem").write_bytes((work / "depot" / "ca.pem").read_bytes())
    (tmp_path / "sig.der").write_bytes(kept.der)
    openssl("x509", "-inform", "DER", "-in", "sig.der", "-out", "sig.pem", cwd=tmp_path)
    assert openssl("verify", "-CAfile", "ca.pem", "sig.pem", cwd=tmp_path).strip() == \
        "sig.pem: OK"


def test_a_ca_without_get_next_ca_cert_is_logged_once(micromdm: tuple[str, Path],
                                                      live_device: Engine) -> None:
    """micromdm advertises no GetNextCACert (and answers one with HTTP 500 "operation not
    implemented"): at 90% of its CA certificate's lifetime the device asks GetCACaps only,
    logs once that it cannot roll over, and tells the operator to re-authenticate."""
    from engine.renewal.messages import certificate_facts, iso
    from engine.rollover.schedule import shadow_point
    from tests.trustpoint.renewal_support import DAY, clock_set, due_types, timers

    url, _ = micromdm
    with urllib.request.urlopen(url + "?operation=GetCACaps", timeout=5) as resp:
        assert b"GetNextCACert" not in resp.read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url + "?operation=GetNextCACert", timeout=5)
    assert e.value.code == 500 and b"operation not implemented" in e.value.read()
    identity_and_key(live_device)
    declare(live_device, url=url)
    assert event_types(authenticate(live_device)) == ["CACertificateAccepted"]
    ca = status(live_device).ca_certificate
    assert ca is not None
    at, end = shadow_point(ca), certificate_facts(ca)[1]
    assert "SHADOW myca" in timers(live_device)
    r = clock_set(live_device, at + 60_000_000)
    assert due_types(r) == [["ShadowCANotOffered"]]
    assert r.due[0].output == (
        "%PKI-4-CA_ROLLOVER_UNSUPPORTED: Trustpoint myca: the CA does not offer GetNextCACert, "
        "so its next certificate cannot be fetched; re-authenticate the trustpoint (remove "
        "it, add it again, crypto ca authenticate myca) before the CA certificate expires at "
        f"{iso(end)}\n")
    assert "SHADOW myca" in timers(live_device)  # GetCACaps, re-checked daily (silently)
    clock_set(live_device, at + 7 * DAY)
    assert live_device.execute("show logging").output.count("CA_ROLLOVER_UNSUPPORTED") == 1
