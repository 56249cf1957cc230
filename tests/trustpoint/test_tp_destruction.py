"""Nothing destroyed without a question (issue 14 items 2, 3): zeroizing a labelled key pair
and removing an enrolled trustpoint (commit or rollback) name what goes, ask, and say no
changes nothing; the removal is its own event, seen by `log show` and by `show logging`."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stdout

import pytest
from cryptography import x509

from engine import Engine
from engine.cli import main
from engine.destruction import REMOVE_QUESTION, ZEROIZE_QUESTION
from engine.machines.trustpoint import Lifecycle
from events.trustpoint import TrustpointCertificatesRemoved
from projections.certfmt import ios_serial, sha256_hex
from tests.trustpoint.tp_support import (
    CAFactory,
    authenticate,
    declare,
    enroll,
    event_types,
    identity_and_key,
    run,
    status,
)


def enrolled(device: Engine, ca_factory: CAFactory) -> str:
    """The reference session up to an enrolled trustpoint myca on key pair mykey; the router
    certificate's serial."""
    ca, server = ca_factory()
    identity_and_key(device)
    declare(device, url=server.url)
    assert authenticate(device).ok
    assert enroll(device, password=ca.mint_challenge()).ok
    (cert,) = status(device).certificates
    return ios_serial(x509.load_der_x509_certificate(cert.der))


@pytest.mark.integration
def test_zeroize_with_a_label_names_the_trustpoint_and_asks(device: Engine,
                                                            ca_factory: CAFactory) -> None:
    serial = enrolled(device, ca_factory)
    head = device.store.head[0]
    r = device.execute("crypto key zeroize rsa mykey", answers=["no"])
    assert r.ok and r.events == [] and device.store.head[0] == head
    assert r.output == ("% The RSA keys named 'mykey' will be removed.\n"
                        "% Trustpoint myca will lose its general purpose router certificate "
                        f"(serial {serial}).\n" + ZEROIZE_QUESTION + "no\n")
    assert status(device).lifecycle is Lifecycle.ENROLLED

    r = device.execute("crypto key zeroize rsa", answers=["maybe", "yes"])  # unlabelled
    assert r.output == ("% All RSA keys will be removed.\n"
                        "% All router certificates issued using these keys will also be "
                        "removed.\n"
                        "% Trustpoint myca will lose its general purpose router certificate "
                        f"(serial {serial}).\n" + ZEROIZE_QUESTION + "maybe\n"
                        "% Please answer 'yes' or 'no'.\n" + ZEROIZE_QUESTION + "yes\n")
    assert event_types(r) == ["KeyPairZeroized"]
    assert status(device).certificates == ()


def test_zeroize_of_a_key_no_trustpoint_uses_says_so(device: Engine) -> None:
    assert device.execute("crypto key generate rsa spare", answers=["2048"]).ok
    r = device.execute("crypto key zeroize rsa spare", answers=["yes"])
    assert r.output == ("% The RSA keys named 'spare' will be removed.\n"
                        "% No trustpoint holds a router certificate issued for these keys.\n"
                        + ZEROIZE_QUESTION + "yes\n")
    assert event_types(r) == ["KeyPairZeroized"]


@pytest.mark.integration
def test_rollback_that_removes_an_enrolled_trustpoint_asks_and_records_the_removal(
        device: Engine, ca_factory: CAFactory, device_dir: object,
        open_engine: Callable[..., Engine]) -> None:
    enrolled(device, ca_factory)
    st = status(device)
    assert st.ca_certificate is not None
    (rc,) = st.certificates
    # The trustpoint was declared by the last commit: rolling it back removes it.
    head = device.store.head[0]
    r = device.execute("rollback configuration last 1", answers=["no"])
    assert r.ok and r.events == [] and device.store.head[0] == head
    assert r.output.endswith(REMOVE_QUESTION + "no\n% Rollback cancelled: nothing was "
                                               "changed.\n")
    assert "% Trustpoint myca holds certificates that will be destroyed:\n" in r.output
    assert status(device).lifecycle is Lifecycle.ENROLLED

    r = device.execute("rollback configuration last 1", answers=["yes"])
    assert event_types(r) == ["TrustpointCertificatesRemoved", "ConfigurationCommitted"]
    # Said as `show logging` keeps it, after the rollback's own lines.
    assert r.output.endswith("\nConfiguration successfully rolled back 1 commit.\n"
                             "%PKI-4-TRUSTPOINT_REMOVED: trustpoint myca removed by rollback: "
                             "2 certificates destroyed\n")
    removed = r.events[0].event
    assert isinstance(removed, TrustpointCertificatesRemoved)
    assert (removed.trustpoint, removed.reason, removed.kinds) == ("myca", "rollback",
                                                                   ("ca", "general"))
    assert removed.fingerprints == (sha256_hex(st.ca_certificate), sha256_hex(rc.der))
    assert "myca" not in device.state.trustpoints
    # Rolling forward restores the configuration only, and says so by asking nothing.
    r = device.execute("rollback configuration last 1")
    assert event_types(r) == ["ConfigurationCommitted"]
    assert status(device).lifecycle is Lifecycle.DECLARED

    # `log show` names the removal; `show logging` has it after a restart too.
    device.close()
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["log", "show", str(device_dir)]) == 0
    assert " TrustpointCertificatesRemoved " in out.getvalue()
    again = open_engine()
    logged = again.execute("show logging").output
    assert ("pki[0]: %PKI-4-TRUSTPOINT_REMOVED: trustpoint myca removed by rollback: "
            "2 certificates destroyed\n") in logged


def test_a_trustpoint_without_certificates_goes_without_a_question(device: Engine) -> None:
    run(device, "configure", "crypto ca trustpoint bare", "commit", "no crypto ca trustpoint bare")
    r = device.execute("commit")
    assert r.ok and event_types(r) == ["ConfigurationCommitted"] and r.output == ""
