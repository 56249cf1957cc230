"""The built-in CA publishes its CRL to an LDAP directory entry (issue 16 item 4):
`ca publish-crl --ldap`, and `ca serve --ldap-url` (the LDAP CDP in issued certificates, every
new CRL written to the entry), against a real slapd on loopback; refusals are one `%` line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from structlog.testing import capture_logs

from engine.ca import ldap_publish
from engine.ca.errors import CAError
from engine.ca.ldap_publish import Credentials, CrlPublisher, LdapTarget
from engine.scep import PkiStatus
from tests.ca.ca_support import ScepTestClient, make_ca, rsa_key
from tests.ca.cli_support import cli, served
from tests.ca.test_ca_offline import our_csr
from tests.support.peer_support import free_port, peers_dir
from tests.support.slapd_support import ADMIN_DN, Slapd, running_slapd

ENTRY = "cn=trustledger CA,dc=example,dc=com"
CDP_QUERY = "?certificateRevocationList;binary?base?objectClass=cRLDistributionPoint"


# -- the URL (no sockets) ---------------------------------------------------------------------


def test_an_entry_url_parses_and_names_the_cdp() -> None:
    t = LdapTarget.parse("ldap://127.0.0.1:3890/cn=trustledger%20CA,dc=example,dc=com")
    assert (t.host, t.port, t.dn) == ("127.0.0.1", 3890, ENTRY)
    assert t.url == "ldap://127.0.0.1:3890/cn=trustledger%20CA,dc=example,dc=com"
    assert t.cdp == t.url + CDP_QUERY
    assert LdapTarget.parse("ldap://127.0.0.1/cn=x,dc=example,dc=com").port == 389
    # the CDP itself names the same entry (what a relying party reads, we write)
    assert LdapTarget.parse(t.cdp) == t
    assert LdapTarget.parse(t.url + "?certificateRevocationList") == t


@pytest.mark.parametrize(("url", "says"), [
    ("http://127.0.0.1/cn=x,dc=example,dc=com", "not an LDAP entry URL"),
    ("ldaps://127.0.0.1/cn=x,dc=example,dc=com", "not an LDAP entry URL"),
    ("ldap:///cn=x,dc=example,dc=com", "not an LDAP entry URL"),  # whose directory?
    ("ldap://127.0.0.1:389/", "not an LDAP entry URL"),
    ("ldap://127.0.0.1:99999/cn=x", "not an LDAP entry URL"),
    ("ldap://127.0.0.1/no-equals-sign", "not a distinguished name"),
    ("ldap://127.0.0.1/cn=x,dc=example,dc=com?cACertificate;binary", "cACertificate"),
    ("ldap://127.0.0.1/cn=x,dc=example,dc=com?certificateRevocationList?sub", "sub scope"),
])
def test_other_urls_are_refused_with_one_sentence(url: str, says: str) -> None:
    with pytest.raises(CAError, match=says) as e:
        LdapTarget.parse(url)
    assert e.value.message.startswith("% ") and "\n" not in e.value.message


def test_issued_certificates_name_the_ldap_url_as_a_second_cdp_name(tmp_path: Path) -> None:
    """RFC 5280 §4.2.1.13: several names of one distribution point are several ways to the
    same CRL: HTTP first, then LDAP."""
    ldap = LdapTarget.parse(f"ldap://127.0.0.1:3890/{ENTRY.replace(' ', '%20')}").cdp
    with make_ca(tmp_path / "ca") as ca:
        ca.crl_url, ca.ldap_url = "http://127.0.0.1:9/crl/ca.crl", ldap
        issued = ca.sign_offline(our_csr(61, "r61"))
    cert = x509.load_der_x509_certificate(issued.certificate)
    (dp,) = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert dp.full_name == [x509.UniformResourceIdentifier("http://127.0.0.1:9/crl/ca.crl"),
                            x509.UniformResourceIdentifier(ldap)]
    assert " " not in ldap and "cn=trustledger%20CA" in ldap


# -- against slapd ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    with running_slapd(tmp_path_factory.mktemp("slapd")) as d:
        yield d


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ca"
    cli("init", root, "--subject", "/O=Example/CN=LDAP Test CA")
    return root


def _entry(tmp_path: Path) -> str:
    """An entry of its own per test (the directory lives as long as the module)."""
    return f"cn=CA {tmp_path.name},dc=example,dc=com"


def _crl(der: bytes | None) -> x509.CertificateRevocationList:
    assert der is not None, "no CRL in the entry"
    return x509.load_der_x509_crl(der)


@pytest.mark.integration
def test_publish_crl_creates_the_entry_then_rewrites_it(slapd: Slapd, ca_dir: Path,
                                                          tmp_path: Path) -> None:
    dn = _entry(tmp_path)
    assert slapd.read(dn) is None
    bind = ("--bind-dn", ADMIN_DN, "--password-file", str(slapd.password_file()))
    out = cli("publish-crl", ca_dir, "--ldap", slapd.url(dn), *bind).stdout
    assert out.startswith("CRL number 1 (next update ") and out.rstrip().endswith(
        f"UTC) published to {slapd.url(dn)}")
    attrs = slapd.read(dn)
    assert attrs is not None and b"cRLDistributionPoint" in attrs["objectClass"]
    assert slapd.crl_of(dn) == (ca_dir / "ca.crl").read_bytes()

    pem = cli("sign", ca_dir, "--csr", "-", stdin=_pem_csr(our_csr(62, "r62"))).stdout
    serial = x509.load_pem_x509_certificate(pem.encode()).serial_number
    cli("revoke", ca_dir, format(serial, "x"), "--reason", "keyCompromise")
    assert "CRL number 2" in cli("publish-crl", ca_dir, "--ldap", slapd.url(dn), *bind).stdout
    crl = _crl(slapd.crl_of(dn))
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def _pem_csr(der: bytes) -> str:
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.integration
def test_publish_crl_refusals_are_one_line_and_write_nothing(slapd: Slapd, ca_dir: Path,
                                                             tmp_path: Path) -> None:
    dn = _entry(tmp_path)
    wrong = tmp_path / "wrong.pw"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    cases = {
        "unreachable": (["--ldap", f"ldap://127.0.0.1:{free_port()}/cn=x,dc=example,dc=com"],
                        "Cannot publish the CRL to ldap://127.0.0.1:"),
        "anonymous": (["--ldap", slapd.url(dn)], "strongerAuthRequired"),
        "wrong password": (["--ldap", slapd.url(dn), "--bind-dn", ADMIN_DN,
                            "--password-file", str(wrong)], "refused the bind"),
        "not a cn entry": (["--ldap", slapd.url("ou=crl,dc=example,dc=com"), "--bind-dn",
                            ADMIN_DN, "--password-file", str(slapd.password_file())],
                           "only with a cn= name"),
        "half a bind": (["--ldap", slapd.url(dn), "--bind-dn", ADMIN_DN], "go together"),
        "not ldap": (["--ldap", "http://127.0.0.1/ca.crl"], "not an LDAP entry URL"),
    }
    for name, (args, says) in cases.items():
        done = cli("publish-crl", ca_dir, *args, check=False)
        assert done.returncode == 1, (name, done.stderr)
        assert done.stderr.startswith("% ") and says in done.stderr, (name, done.stderr)
        assert "Traceback" not in done.stderr and done.stdout == "", name
    assert slapd.read(dn) is None


@pytest.mark.integration
def test_a_failed_publish_is_retried_and_never_goes_backwards(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    port = free_port()
    target = LdapTarget.parse(f"ldap://127.0.0.1:{port}/{ENTRY.replace(' ', '%20')}")
    monkeypatch.setattr(ldap_publish, "RETRY_SECONDS", 0.0)
    with make_ca(tmp_path / "ca") as ca:
        first = ca.state.crl
        assert first is not None
        # (nothing listening is refused at once; the timeout only bounds a slow slapd: the
        # product's, not 2 s, which a busy machine's slapd could miss)
        publisher = CrlPublisher(target, Credentials(ADMIN_DN, "secret"))
        with capture_logs() as logs:
            publisher(first)  # nothing listens yet: logged, kept for a retry
        assert [(e["event"], e["log_level"]) for e in logs] == [("crl not published",
                                                                 "warning")]
        with running_slapd(tmp_path, port) as slapd:
            publisher.retry_due()
            assert slapd.crl_of(ENTRY) == first.der
            second = ca.refresh_crl(force=True)
            assert second is not None and publisher.publish(second)
            assert not publisher.publish(first)  # older: left out
            assert slapd.crl_of(ENTRY) == second.der


@pytest.mark.integration
@pytest.mark.slow
def test_serve_names_the_ldap_cdp_and_publishes_each_new_crl(slapd: Slapd, ca_dir: Path,
                                                             tmp_path: Path) -> None:
    dn = _entry(tmp_path)
    url = slapd.url(dn)
    with served(ca_dir, "--workers", "1", "--challenge", "pw", "--ldap-url", url,
                "--bind-dn", ADMIN_DN, "--password-file", str(slapd.password_file())) as srv:
        cdp = url + CDP_QUERY
        assert f"  CRL (LDAP):      {cdp}\n" in srv.banner
        assert slapd.crl_of(dn) == (ca_dir / "ca.crl").read_bytes()  # before serving
        client = ScepTestClient(srv.scep_url, rsa_key(63), "r63", signing_time=None)
        rep = client.enroll("pw")
        assert rep.status is PkiStatus.SUCCESS
        cert = rep.certificate_for(client.key.public_key())
        assert cert is not None
        (dp,) = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        assert [n.value for n in dp.full_name or ()] == [f"{srv.url}/crl/ca.crl", cdp]
        cli("revoke", ca_dir, format(cert.serial_number, "x"))
        deadline = time.monotonic() + 10
        while _crl(slapd.crl_of(dn)).get_revoked_certificate_by_serial_number(
                cert.serial_number) is None:
            assert time.monotonic() < deadline, "the new CRL never reached the directory"
            time.sleep(0.1)
    # Another reader of RFC 4516 URLs (the peers' ldap3 script) follows the CDP as written.
    out = tmp_path / "fetched.crl"
    subprocess.run([sys.executable, str(peers_dir() / "ldap_fetch.py"), cdp, str(out)],
                   check=True, capture_output=True, timeout=30)
    assert out.read_bytes() == slapd.crl_of(dn)


@pytest.mark.integration
def test_serve_does_not_start_without_its_directory(ca_dir: Path) -> None:
    url = f"ldap://127.0.0.1:{free_port()}/cn=x,dc=example,dc=com"
    done = cli("serve", ca_dir, "--port", "0", "--workers", "1", "--ldap-url", url,
               check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith(
        "% Cannot publish the CRL to ldap://127.0.0.1:"), done.stderr
    assert "Traceback" not in done.stderr and "listening" not in done.stdout


@pytest.mark.integration
def test_strongswan_follows_the_ldap_cdp_to_the_revocation(slapd: Slapd, tmp_path: Path
                                                          ) -> None:
    """strongSwan's `pki --verify --online` (its ldap plugin) reads the CRL where our
    certificates say: the HTTP CDP does not answer, the LDAP one gives the revocation."""
    peers = peers_dir("pki")
    dn = _entry(tmp_path)
    target = LdapTarget.parse(slapd.url(dn))
    with make_ca(tmp_path / "ca", subject="CN=Interop CA,O=Example") as ca:
        ca.crl_url = f"http://127.0.0.1:{free_port()}/crl/ca.crl"  # nothing listens there
        ca.ldap_url = target.cdp
        ca.on_crl_published = CrlPublisher(target, Credentials(ADMIN_DN, "secret"))
        issued = ca.sign_offline(our_csr(64, "r64"))
        ca.revoke(issued.serial, "keyCompromise")
        (tmp_path / "leaf.der").write_bytes(issued.certificate)
    env = {**os.environ, "STRONGSWAN_CONF": str(peers / "strongswan-pki.conf")}
    done = subprocess.run(["pki", "--verify", "--in", str(tmp_path / "leaf.der"), "--cacert",
                           str(tmp_path / "ca" / "ca.pem"), "--online"], env=env,
                          capture_output=True, text=True, timeout=90, check=False)
    out = done.stdout + done.stderr
    assert f"fetching crl from '{target.cdp}'" in out, out
    assert "certificate was revoked on" in out and "reason: key compromise" in out, out
    assert done.returncode != 0
