"""The router's own certificate on its CA's CRL (issue 16 item 3), end to end against the
built-in CA: revoked at the CA (`ca revoke`), found by the device's next CRL fetch (the
refresh timer walked with `clock set`, or `crypto ca crl request` over the CA's HTTP and LDAP
distribution points), the trustpoint `revoked`, `%PKI-3-CERTIFICATE_REVOKED` logged,
`Status :Revoked` shown, and `crypto ca enroll` from revoked enrolls again; a certificate
not on the CRL stays enrolled; a replay of the log gives the same state, without network."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.ca import profile
from engine.ca.ldap_publish import Credentials, CrlPublisher, LdapTarget
from engine.ca.service import BuiltinCA
from engine.machines.trustpoint import Lifecycle
from engine.ports import FakeClock
from engine.revocation.refresh import refresh_due_at
from engine.schedule import due_jobs
from engine.state import DeviceState, replay_rows
from tests.support.crl_support import (
    CrlSpec,
    FakeCrlFetcher,
    Issuer,
    make_crl,
    without_next_update,
)
from tests.support.slapd_support import ADMIN_DN, ADMIN_PASSWORD, running_slapd
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    configure,
    declare,
    enroll,
    event_types,
    identity_and_key,
    open_device,
    status,
)

DAY = 86_400 * 1_000_000
MINUTE = 60 * 1_000_000


@pytest.fixture
def device_dir(tmp_path: Path) -> Path:
    return tmp_path / "device"


@pytest.fixture
def device(device_dir: Path, clock: FakeClock, network: InProcessTransport) -> Iterator[Engine]:
    e = open_device(device_dir, clock)
    e.ports.scep = network
    e.ports.crls = FakeCrlFetcher()  # the in-process CA's http://ca.invalid CDP: 404
    yield e
    e.store.close()


def enrolled(device: Engine, url: str, ca: BuiltinCA) -> x509.Certificate:
    """Enroll myca with `ca`; the CRL fetch due right after it runs. The router certificate."""
    identity_and_key(device)
    declare(device, url=url)
    assert authenticate(device).ok
    r = enroll(device, password=ca.mint_challenge())
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    (fetched,) = device.run_due()
    assert event_types(fetched) == ["CrlFetched"]
    assert status(device).lifecycle is Lifecycle.ENROLLED
    return x509.load_der_x509_certificate(status(device).certificates[0].der)


def revoke(ca: BuiltinCA, cert: x509.Certificate, reason: str = "keyCompromise") -> None:
    ca.revoke(profile.serial_hex(cert.serial_number), reason)


def serial_of(cert: x509.Certificate) -> str:
    text = format(cert.serial_number, "X")
    return text if len(text) % 2 == 0 else "0" + text


def clock_set(device: Engine, us: int) -> list[tuple[int, list[str]]]:
    """`clock set` to engine time `us`: (time, event types) of each job the walk ran."""
    from datetime import UTC, datetime

    t = datetime.fromtimestamp(us / 1e6, UTC)
    r = device.execute(f"clock set {t:%H:%M:%S} {t.day} {t:%B %Y}")
    assert r.ok, r.output
    return [(d.events[0].at, event_types(d)) for d in r.due]


def shown(device: Engine, what: str) -> str:
    return device.execute(f"show {what}").output


# -- the refresh timer finds the revocation -----------------------------------------------------


def test_a_revocation_at_the_ca_is_found_at_the_crl_next_update(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    ca, server = ca_factory()
    mine = enrolled(device, server.url, ca)
    (cached,) = device.state.crls.crls
    assert cached.next_update is not None
    assert "Status             :Available" in shown(device, "crypto ca certificates")

    clock.advance(6 * 86_400)  # six days on, the CA revokes the certificate
    revoke(ca, mine)
    assert device.run_due() == []  # the device's CRL is fresh for one more day: not asked
    assert [j.name for j in due_jobs(device.state, cached.next_update)] == ["crl myca"]

    walked = clock_set(device, cached.next_update + MINUTE)
    assert walked == [(cached.next_update, ["CrlFetched", "RouterCertificateRevoked"])]
    st = status(device)
    assert st.lifecycle is Lifecycle.REVOKED
    (rc,) = st.certificates
    assert rc.revocation_reason == "keyCompromise" and rc.revoked_at is not None

    message = (f"%PKI-3-CERTIFICATE_REVOKED: Router certificate of trustpoint myca (serial "
               f"{serial_of(mine)}) is revoked: keyCompromise, since ")
    assert message in shown(device, "logging")
    certs = shown(device, "crypto ca certificates").splitlines()
    router = certs.index("Router certificate")
    assert certs[router + 2] == "Status             :Revoked"
    assert certs[router + 3] == f"Serial Number      :{serial_of(mine)}"
    assert "State               :revoked" in shown(device, "crypto ca trustpoint myca")
    assert refresh_due_at(device.state, st) is None  # a revoked trustpoint is not refreshed


def test_a_certificate_not_on_the_crl_stays_enrolled_and_is_checked_again(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    ca, server = ca_factory()
    enrolled(device, server.url, ca)
    (first,) = device.state.crls.crls
    assert first.next_update is not None
    clock.advance(6 * 86_400)  # the CA's CRL is re-issued when asked (half its life gone)
    walked = clock_set(device, first.next_update)
    assert walked == [(first.next_update, ["CrlFetched"])]
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED and st.certificates[0].revoked_at is None
    (second,) = device.state.crls.crls
    assert second.number is not None and first.number is not None
    assert second.number > first.number and second.next_update is not None
    assert refresh_due_at(device.state, st) == second.next_update  # the next refresh
    assert "Status             :Available" in shown(device, "crypto ca certificates")


def test_enroll_again_from_revoked(device: Engine, ca_factory: CAFactory,
                                   clock: FakeClock) -> None:
    ca, server = ca_factory()
    mine = enrolled(device, server.url, ca)
    clock.advance(6 * 86_400)  # the CA's clock and the device's agree again at the fetch
    revoke(ca, mine, "superseded")
    (cached,) = device.state.crls.crls
    assert cached.next_update is not None
    clock_set(device, cached.next_update)
    assert status(device).lifecycle is Lifecycle.REVOKED
    clock.advance(60)  # the operator comes a minute later

    r = device.execute("crypto key generate rsa newkey", answers=["2048"])
    assert r.ok, r.output
    configure(device, "crypto ca trustpoint myca", "rsakeypair newkey")
    pw = ca.mint_challenge()
    r = device.execute("crypto ca enroll myca", answers=["yes", pw, pw])
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED
    (rc,) = st.certificates
    new = x509.load_der_x509_certificate(rc.der)
    assert new.serial_number != mine.serial_number and rc.revoked_at is None
    assert "Status             :Available" in shown(device, "crypto ca certificates")
    (checked,) = device.run_due()  # the new certificate checked at once: not on the CRL
    assert event_types(checked) == ["CrlFetched"]
    assert status(device).lifecycle is Lifecycle.ENROLLED


def test_enroll_again_with_the_revoked_key_is_revoked_again(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    """The same key pair sends the same transactionID, which the CA answers with the
    certificate it issued, and revoked: the fetch right after the enrollment finds it."""
    ca, server = ca_factory()
    mine = enrolled(device, server.url, ca)
    clock.advance(6 * 86_400)
    revoke(ca, mine)
    (cached,) = device.state.crls.crls
    assert cached.next_update is not None
    clock_set(device, cached.next_update)
    assert status(device).lifecycle is Lifecycle.REVOKED
    clock.advance(60)
    pw = ca.mint_challenge()
    r = device.execute("crypto ca enroll myca", answers=["yes", pw, pw])
    assert event_types(r) == ["EnrollmentRequested", "CertificateReceived"], r.output
    assert x509.load_der_x509_certificate(status(device).certificates[0].der) == mine
    (checked,) = device.run_due()
    assert event_types(checked) == ["CrlFetched", "RouterCertificateRevoked"]
    assert status(device).lifecycle is Lifecycle.REVOKED


def test_a_failed_refresh_is_retried_on_its_schedule(
        device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory()
    enrolled(device, server.url, ca)
    (cached,) = device.state.crls.crls
    nu = cached.next_update
    assert nu is not None
    server.stop()  # the CA is gone: GetCRL and the CDP give nothing
    walked = clock_set(device, nu + 2 * DAY)
    # 5 minutes, 15 minutes, 1 hour, 4 hours, then daily after each failure
    assert walked == [(nu + m * MINUTE, ["CrlFetchFailed"])
                      for m in (0, 5, 20, 80, 320, 1760)]
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED and st.crl_failures == 6
    assert refresh_due_at(device.state, st) == nu + 3200 * MINUTE


def test_a_ca_without_a_crl_is_asked_once_after_the_enrollment(
        device: Engine, ca_factory: CAFactory) -> None:
    ca, server = ca_factory()
    identity_and_key(device)
    declare(device, url=server.url)
    assert authenticate(device).ok
    assert enroll(device, password=ca.mint_challenge()).ok
    server.stop()  # no CDP answers, no GetCRL: no CRL to be had
    (once,) = device.run_due()
    assert event_types(once) == ["CrlFetchFailed"]
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLED and refresh_due_at(device.state, st) is None
    assert clock_set(device, st.crl_fetched_at + 30 * DAY) == []  # not asked every hour


def test_replay_gives_the_same_state_without_network(
        device: Engine, ca_factory: CAFactory, clock: FakeClock, device_dir: Path) -> None:
    ca, server = ca_factory()
    mine = enrolled(device, server.url, ca)
    clock.advance(6 * 86_400)
    revoke(ca, mine)
    (cached,) = device.state.crls.crls
    assert cached.next_update is not None
    clock_set(device, cached.next_update)
    live = device.state
    outputs = [shown(device, w) for w in ("crypto ca certificates", "crypto ca trustpoint",
                                          "logging")]
    assert live.trustpoints["myca"].lifecycle is Lifecycle.REVOKED
    device.store.close()
    server.stop()  # nothing to ask: replay never fetches
    for snapshots in (False, True):
        again = open_device(device_dir, clock, use_snapshots=snapshots)
        try:
            assert again.state == live
            assert [shown(again, w) for w in ("crypto ca certificates",
                                              "crypto ca trustpoint", "logging")] == outputs
        finally:
            again.store.close()


# -- crypto ca crl request, over the built-in CA's HTTP and LDAP distribution points ---------


@pytest.mark.integration
def test_crl_request_over_the_cas_http_cdp_revokes(device: Engine,
                                                    ca_factory: CAFactory) -> None:
    from engine.revocation.transport import NetworkCrlFetcher

    device.ports.crls = NetworkCrlFetcher()
    ca, server = ca_factory(http=True)
    mine = enrolled(device, server.url, ca)
    revoke(ca, mine)
    r = device.execute(f"crypto ca crl request {server.crl_url}")
    assert r.ok, r.output
    assert event_types(r) == ["CrlFetched", "RouterCertificateRevoked"]
    assert "%PKI-3-CERTIFICATE_REVOKED: Router certificate of trustpoint myca" in r.output
    assert status(device).lifecycle is Lifecycle.REVOKED


@pytest.mark.integration
def test_crl_request_over_the_cas_ldap_cdp_revokes(device: Engine, ca_factory: CAFactory,
                                                    tmp_path: Path) -> None:
    from engine.revocation.transport import NetworkCrlFetcher

    device.ports.crls = NetworkCrlFetcher()
    with running_slapd(tmp_path / "ldap") as slapd:
        ca, server = ca_factory(http=True)
        target = LdapTarget.parse(slapd.url("cn=trustledger test CA,dc=example,dc=com"))
        publisher = CrlPublisher(target, Credentials(ADMIN_DN, ADMIN_PASSWORD))
        publisher.publish(ca.current_crl())
        ca.ldap_url, ca.on_crl_published = target.cdp, publisher
        mine = enrolled(device, server.url, ca)
        (dp,) = mine.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert [n.value for n in dp.full_name or ()] == [server.crl_url, target.cdp]
        revoke(ca, mine)  # the CA writes the new CRL to the directory
        r = device.execute(f"crypto ca crl request {target.cdp}")
        assert r.ok, r.output
        assert event_types(r) == ["CrlFetched", "RouterCertificateRevoked"]
        assert r.events[0].event.source == target.cdp  # type: ignore[attr-defined]
        assert status(device).lifecycle is Lifecycle.REVOKED
        assert f"serial {serial_of(mine)}) is revoked: keyCompromise" in r.output


def test_a_stale_crl_fetched_again_is_one_warning(device: Engine, ca_factory: CAFactory,
                                                   clock: FakeClock) -> None:
    """A CA that stopped publishing: its last CRL, fetched again by the refresh timer past its
    nextUpdate, is `%PKI-4-CRL_STALE` with that nextUpdate, once; each re-fetch of the same
    CRL on the back-off says nothing more."""
    ca, server = ca_factory()
    mine = enrolled(device, server.url, ca)
    (cached,) = device.state.crls.crls
    nu = cached.next_update
    assert nu is not None and device.ports.crl_blobs is not None
    last = device.ports.crl_blobs.get(cached.sha256)
    server.stop()  # no GetCRL; its HTTP CDP keeps serving the last CRL it published
    (cdp,) = (u for p in mine.extensions.get_extension_for_class(
        x509.CRLDistributionPoints).value for u in p.full_name or ())
    assert isinstance(device.ports.crls, FakeCrlFetcher)
    device.ports.crls.answers[cdp.value] = last
    walked = clock_set(device, nu + 2 * DAY)
    assert walked == [(nu + m * MINUTE, ["CrlFetched"]) for m in (0, 5, 20, 80, 320, 1760)]
    logged = shown(device, "logging")
    assert logged.count("%PKI-6-CRL_FETCHED") == 1  # the enrollment's, when it was fresh
    assert logged.count("%PKI-4-CRL_STALE") == 1
    (line,) = (x for x in logged.splitlines() if "CRL_STALE" in x)
    when = datetime.fromtimestamp(nu / 1e6, UTC).strftime("%H:%M:%S UTC %a %b %d %Y")
    assert line.endswith(f"%PKI-4-CRL_STALE: CRL of {cached.issuer_text} fetched from "
                         f"{cdp.value} is past its next update ({when}): number "
                         f"{cached.number}, 0 entries; the CA has published no newer one")
    assert status(device).crl_failures == 6  # still retried on the back-off
    replayed = replay_rows(DeviceState(), device.store.read_rows(typed=True))
    assert replayed.messages == device.state.messages


def test_a_crl_without_next_update_is_retried_on_the_stale_schedule(
        device: Engine, ca_factory: CAFactory, clock: FakeClock) -> None:
    """A CRL without nextUpdate is never current (the cache and validation refetch it): the
    refresh timer treats it as stale from its fetch on, instead of never asking again."""
    from engine.ca.keyfile import load_private_key
    from engine.ca.service import CA_KEY

    ca, server = ca_factory()
    mine = enrolled(device, server.url, ca)
    (cached,) = device.state.crls.crls
    nu = cached.next_update
    assert nu is not None and cached.number is not None
    key = load_private_key(ca.root / CA_KEY)
    issuer = Issuer(key, ca.ca_certificate)  # type: ignore[arg-type]
    endless = without_next_update(make_crl(issuer, CrlSpec(
        this_update=clock.us + 60_000_000, number=int(cached.number, 16) + 100)), issuer)
    server.stop()  # no GetCRL; the HTTP CDP serves the CRL without nextUpdate
    (cdp,) = (u for p in mine.extensions.get_extension_for_class(
        x509.CRLDistributionPoints).value for u in p.full_name or ())
    assert isinstance(device.ports.crls, FakeCrlFetcher)
    device.ports.crls.answers[cdp.value] = endless
    walked = clock_set(device, nu + 2 * DAY)
    assert walked == [(nu + m * MINUTE, ["CrlFetched"]) for m in (0, 5, 20, 80, 320, 1760)]
    (now_cached,) = device.state.crls.crls
    assert now_cached.next_update is None and now_cached.source == cdp.value
    st = status(device)
    assert st.crl_failures == 6 and refresh_due_at(device.state, st) == nu + 3200 * MINUTE
    assert shown(device, "logging").count("has no next update (RFC 5280 5.1.2.5)") == 1


def test_a_revocation_found_during_a_re_enrollment_is_recorded(
        device: Engine, ca_factory: CAFactory, network: InProcessTransport) -> None:
    """The trustpoint is `enrolling` from enrolled (the CA holds the re-enrollment): a CRL
    listing the installed certificate marks it (`revoke_installed`), the re-enrollment goes
    on, and with no usable certificate left its cancellation leads to authenticated."""
    from engine.ca.decide import Approval
    from engine.ca.server import serve_in_process

    ca, server = ca_factory()
    mine = enrolled(device, server.url, ca)
    server.stop()
    serve_in_process(ca, network, server.url, approval=Approval.MANUAL)
    challenge = ca.mint_challenge()
    r = device.execute("crypto ca enroll myca", answers=["yes", challenge, challenge])
    assert event_types(r) == ["EnrollmentRequested", "EnrollmentPending"], r.output
    assert status(device).lifecycle is Lifecycle.ENROLLING
    revoke(ca, mine)
    (cdp,) = (u for p in mine.extensions.get_extension_for_class(
        x509.CRLDistributionPoints).value for u in p.full_name or ())
    assert isinstance(device.ports.crls, FakeCrlFetcher)
    device.ports.crls.answers[cdp.value] = ca.current_crl().der
    r = device.execute(f"crypto ca crl request {cdp.value}")
    assert event_types(r) == ["CrlFetched", "RouterCertificateRevoked"], r.output
    assert "%PKI-3-CERTIFICATE_REVOKED: Router certificate of trustpoint myca" in r.output
    st = status(device)
    assert st.lifecycle is Lifecycle.ENROLLING and st.enrollment is not None
    (rc,) = st.certificates
    assert rc.revocation_reason == "keyCompromise"
    assert "Status             :Revoked" in shown(device, "crypto ca certificates")
    replayed = replay_rows(DeviceState(), device.store.read_rows(typed=True))
    assert replayed == device.state
    assert device.execute("crypto ca cancel-enroll myca").ok
    assert status(device).lifecycle is Lifecycle.AUTHENTICATED  # nothing usable to go back to
