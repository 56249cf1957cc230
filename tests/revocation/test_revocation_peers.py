"""CRL retrieval against real peers on loopback (issue 16 item 5): OpenLDAP slapd
(../shared/peers/ldap-server.sh, its openssl test CA with a good and a revoked leaf whose CDPs
name the directory), Python's http.server (crl-http-server.sh), and servers of our own that
answer 404 or trickle their answer. The device runs on the system clock: the peer CA is made
now."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from engine import Engine
from engine.revocation.cache import crl_for
from engine.revocation.fetch import fetch_crl
from engine.revocation.index import revocation_of
from events.revocation import CrlFetched, CrlFetchFailed
from tests.revocation.revocation_support import configure, ok, record
from tests.support.peer_support import free_port, peers_dir
from tests.trustpoint.tp_support import pem_lines

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Directory:
    port: int
    ca_dir: Path

    def cert(self, name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((self.ca_dir / f"{name}.pem").read_bytes())


def _wait(what: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    """Until the peer listens, 60 s at most (a peer's start-up on a busy machine is no
    bound under test: 200 tries of 0.05 s were some 10 s)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"{what} did not start")


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Directory]:
    peers = peers_dir("slapd", "slapadd")
    root = tmp_path_factory.mktemp("ldap")
    port = free_port()
    proc = subprocess.Popen(["bash", str(peers / "ldap-server.sh"), "run", str(root), str(port)],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait("slapd", port, proc)
        yield Directory(port, root / "ca")
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture(scope="module")
def http_cdp(slapd: Directory) -> Iterator[str]:
    """crl-http-server.sh serving the peer CA's directory; its base URL."""
    peers = peers_dir()
    port = free_port()
    proc = subprocess.Popen(["bash", str(peers / "crl-http-server.sh"), "run", str(slapd.ca_dir),
                             str(port)], start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        _wait("http.server", port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


@pytest.fixture
def device(slapd: Directory) -> Engine:
    """A device whose trustpoint `peer` authenticated the peer's root CA."""
    e = Engine.in_memory()
    configure(e, "crypto ca trustpoint peer", "enrollment terminal")
    ca_der = (slapd.ca_dir / "root-ca.der").read_bytes()
    ok(e, "crypto ca authenticate peer", *pem_lines(ca_der), "yes")
    return e


def test_the_ldap_cdp_gives_the_crl_that_revokes_one_leaf_and_not_the_other(
        slapd: Directory, device: Engine) -> None:
    ca, revoked, good = slapd.cert("root-ca"), slapd.cert("revoked"), slapd.cert("good")
    now = device.ports.clock.now_us()
    (ev,) = record(device, fetch_crl(device.state, revoked, ca, now))
    assert isinstance(ev, CrlFetched), ev
    assert ev.source == (slapd.ca_dir / "ldap-cdp.url").read_text().strip()  # the first CDP
    assert ev.trustpoint == "peer" and ev.count == 1 and ev.attempts == ()
    assert ev.issuer_text == "CN=Example Root CA,O=Example,C=US"
    cached = crl_for(device.state, revoked, ca)
    assert cached is not None and crl_for(device.state, good, ca) == cached
    hit = revocation_of(device.crl_blobs, cached, revoked.serial_number)
    assert hit is not None and hit.serial == 0x1001 and hit.reason == "keyCompromise"
    assert revocation_of(device.crl_blobs, cached, good.serial_number) is None
    assert device.crl_blobs.get(ev.sha256) == (slapd.ca_dir / "root-ca.crl").read_bytes()


def test_crl_request_over_ldap_and_a_missing_entry(slapd: Directory, device: Engine) -> None:
    base = f"ldap://127.0.0.1:{slapd.port}"
    out = ok(device, f"crypto ca crl request {base}/cn=Root%20CA,dc=example,dc=com")
    assert out.startswith(f"% CRL fetched from {base}/cn=Root%20CA,dc=example,dc=com: issuer "
                          "CN=Example Root CA,O=Example,C=US, number 4096, 1 entry, next update ")
    r = device.execute(f"crypto ca crl request {base}/cn=Nobody,dc=example,dc=com")
    assert r.output == (f"% CRL request failed: {base}/cn=Nobody,dc=example,dc=com: no entry "
                        "cn=Nobody,dc=example,dc=com in the directory. Nothing was cached.\n")
    r = device.execute(f"crypto ca crl request {base}/dc=example,dc=com")
    assert r.output == (f"% CRL request failed: {base}/dc=example,dc=com: the entry "
                        "dc=example,dc=com has no certificateRevocationList. Nothing was "
                        "cached.\n")


def test_a_directory_that_does_not_answer_is_named(device: Engine) -> None:
    port = free_port()  # nobody listens there
    r = device.execute(f"crypto ca crl request ldap://127.0.0.1:{port}/cn=x")
    assert r.output.startswith(f"% CRL request failed: ldap://127.0.0.1:{port}/cn=x: ")
    assert r.output.endswith(". Nothing was cached.\n") and not r.ok


def test_crl_request_over_http_and_a_404(slapd: Directory, http_cdp: str,
                                         device: Engine) -> None:
    out = ok(device, f"crypto ca crl request {http_cdp}/root-ca.crl")
    assert out.startswith(f"% CRL fetched from {http_cdp}/root-ca.crl: issuer CN=Example Root "
                          "CA,O=Example,C=US, number 4096, 1 entry")
    r = device.execute(f"crypto ca crl request {http_cdp}/missing.crl")
    assert r.output == (f"% CRL request failed: {http_cdp}/missing.crl: the server answered "
                        "HTTP 404. Nothing was cached.\n")
    (rec,) = r.events
    assert isinstance(rec.event, CrlFetchFailed)


class Trickler:
    """Answers every request with headers promising 1 MB, then one byte every 0.4 s."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pkix-crl\r\n"
                             b"Content-Length: 1000000\r\n\r\n")
                while not self.stop.is_set():
                    conn.sendall(b"0")
                    time.sleep(0.4)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.mark.slow
def test_a_server_that_trickles_is_cut_off_at_the_curl_timeout(device: Engine) -> None:
    server = Trickler()
    try:
        url = f"http://127.0.0.1:{server.port}/slow.crl"
        configure(device, "crypto ca crl curl-timeout 5")
        started = time.monotonic()
        r = device.execute(f"crypto ca crl request {url}")
        took = time.monotonic() - started
    finally:
        server.close()
    assert r.output == (f"% CRL request failed: {url}: no complete answer within the 5 s "
                        "curl-timeout. Nothing was cached.\n")
    # Each read was far shorter than 5 s: the total deadline cut it. The bound under test is
    # "at the curl-timeout, not when the peer is done" (1 MB at a byte per 0.4 s); 10 s leaves a
    # busy machine its slack (the fetch appends its failure, an fdatasync).
    assert 4.5 < took < 10


@pytest.mark.slow
def test_a_directory_that_never_answers_is_cut_off_at_the_curl_timeout(device: Engine) -> None:
    """ldap3's timeouts are per operation: the whole read still ends at the curl-timeout."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # accepts (the kernel does), never answers the bind
    url = f"ldap://127.0.0.1:{silent.getsockname()[1]}/cn=x"
    try:
        started = time.monotonic()
        r = device.execute(f"crypto ca crl request {url}")
        took = time.monotonic() - started
    finally:
        silent.close()
    assert r.output == (f"% CRL request failed: {url}: no complete answer within the 5 s "
                        "curl-timeout. Nothing was cached.\n")
    assert 4.5 < took < 10  # the deadline's message, not ldap3's (6 s): slack as above
