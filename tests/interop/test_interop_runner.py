"""The interop matrix's own machinery, without peers: how a cell's outcome is classified, that a
cell's processes and directory are gone when it ends, what the recording proxy reads and
rewrites, and the runner's output format."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools.interop import run as runner
from tools.interop.matrix import Cell, all_cells, run_cell
from tools.interop.proxy import RecordingProxy, read_pki_message
from tools.interop.support import Failed, PeerFault, Workspace

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "scep"


def _cell(func: object, case: str = "case") -> Cell:
    return Cell("peer", case, func)  # type: ignore[arg-type]


def test_outcomes_are_classified() -> None:
    def ok(ws: Workspace) -> str:
        return "fine"

    def ours(ws: Workspace) -> str:
        raise Failed("our CA answered FAILURE badRequest")

    def theirs(ws: Workspace) -> str:
        raise PeerFault("our CA answered SUCCESS", "peer bug #1")

    def broken(ws: Workspace) -> str:
        raise RuntimeError("not installed: pki")

    assert run_cell(_cell(ok)).line() == "PASS peer case: fine"
    got = run_cell(_cell(ours))
    assert (got.passed, got.peer_bug) == (False, None)
    assert got.line() == "FAIL peer case: our CA answered FAILURE badRequest"
    got = run_cell(_cell(theirs))
    assert (got.passed, got.peer_bug) == (False, "peer bug #1")
    assert got.line() == "FAIL peer case: our CA answered SUCCESS [peer bug: peer bug #1]"
    got = run_cell(_cell(broken))
    assert not got.passed and got.peer_bug is None
    assert got.detail.startswith("error: RuntimeError: not installed: pki")


def test_a_cell_leaves_no_process_and_no_directory(tmp_path: Path) -> None:
    seen: dict[str, object] = {}

    def cell(ws: Workspace) -> str:
        seen["root"] = ws.root
        seen["proc"] = ws.start(["sleep", "60"], ws.root / "sleep.log")
        raise Failed("red")

    assert not run_cell(_cell(cell), tmp_path).passed
    proc = seen["proc"]
    assert proc.poll() is not None  # type: ignore[attr-defined]
    assert not Path(str(seen["root"])).exists()


def test_a_hanging_peer_is_killed_and_reported(tmp_path: Path) -> None:
    def cell(ws: Workspace) -> str:
        ws.run(["sh", "-c", "sleep 30"], timeout=0.5)
        return "unreachable"

    got = run_cell(_cell(cell), tmp_path)
    assert not got.passed
    assert "TimeoutError: sh did not finish within 0.5 s" in got.detail


@pytest.fixture
def upstream() -> Iterator[str]:
    """A fake SCEP server: micromdm's caps, a 500 for GetNextCACert, a CertRep for POSTs."""
    certrep = (VECTORS / "certrep_failure_badrequest_ours.der").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            """Quiet: the test reads the proxy's record, not the server's log lines."""

        def do_GET(self) -> None:
            if "GetCACaps" in self.path:
                self._send(200, b"Renewal\nSHA-1\nSHA-256\nAES\nDES3\nSCEPStandard\n"
                                b"POSTPKIOperation")
            else:
                self._send(500, b"operation not implemented")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(200, certrep, "application/x-pki-message")

        def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.mark.integration
def test_proxy_records_answers_and_server_errors(upstream: str) -> None:
    proxy = RecordingProxy(upstream)
    try:
        request = (VECTORS / "pkcsreq_wrong_challenge_micromdm.der").read_bytes()
        status, body = _post(f"{proxy.url}/scep?operation=PKIOperation", request)
        assert status == 200 and body.startswith(b"\x30")
        assert _get(f"{proxy.url}/scep?operation=GetNextCACert")[0] == 500
        (x,) = proxy.operations()
        assert x.request is not None and x.request.message_type == "PKCSReq"
        assert x.reply is not None
        assert (x.reply.message_type, x.reply.pki_status, x.reply.fail_info) == (
            "CertRep", "FAILURE", "badRequest")
        assert proxy.summary() == "POST PKIOperation -> 200 [PKCSReq -> FAILURE badRequest]"
        assert [e.operation for e in proxy.server_errors()] == ["GetNextCACert"]
    finally:
        proxy.close()


@pytest.mark.integration
def test_settle_waits_for_the_answer_in_flight_to_be_recorded() -> None:
    """Our CA logs a request (a cell sees it pending) before its answer is back through the
    proxy: a cell that then read the proxy's record could find no CertRep yet. `settle`
    waits until every request taken is recorded."""
    certrep = (VECTORS / "certrep_failure_badrequest_ours.der").read_bytes()
    arrived, release = threading.Event(), threading.Event()

    class Held(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            """Quiet: the test reads the proxy's record, not the server's log lines."""

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived.set()
            release.wait(30)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-pki-message")
            self.send_header("Content-Length", str(len(certrep)))
            self.end_headers()
            self.wfile.write(certrep)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Held)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = RecordingProxy(f"http://127.0.0.1:{server.server_address[1]}")
    request = (VECTORS / "pkcsreq_wrong_challenge_micromdm.der").read_bytes()
    posting = threading.Thread(target=_post, args=(f"{proxy.url}/scep?operation=PKIOperation",
                                                   request))
    try:
        posting.start()
        assert arrived.wait(30)  # the server has it: the proxy took it and waits
        assert not proxy.settle(0.1) and proxy.replies() == []
        release.set()
        assert proxy.settle(30)
        assert [r.pki_status for r in proxy.replies()] == ["FAILURE"]
    finally:
        release.set()
        posting.join(30)
        proxy.close()
        server.shutdown()
        server.server_close()


@pytest.mark.integration
def test_get_only_proxy_hides_post_and_refuses_it(upstream: str) -> None:
    proxy = RecordingProxy(upstream, get_only=True)
    try:
        status, caps = _get(f"{proxy.url}/scep?operation=GetCACaps")
        # SCEPStandard implies POSTPKIOperation (RFC 8894 §3.5.2): both must go
        assert (status, caps.split(b"\n")) == (200, [b"Renewal", b"SHA-1", b"SHA-256", b"AES",
                                                     b"DES3"])
        assert _post(f"{proxy.url}/scep?operation=PKIOperation", b"0")[0] == 405
        assert [(x.method, x.status) for x in proxy.operations()] == [("POST", 405)]
    finally:
        proxy.close()


@pytest.mark.integration
def test_caps_proxy_answers_only_the_given_keywords(upstream: str) -> None:
    proxy = RecordingProxy(upstream, caps=("DES3", "SHA-1"))
    try:
        assert _get(f"{proxy.url}/scep?operation=GetCACaps") == (200, b"DES3\nSHA-1\n")
        assert _get(f"{proxy.url}/scep?operation=GetNextCACert")[0] == 500  # untouched
    finally:
        proxy.close()


def test_pki_message_reader_says_which_cipher_and_digest_a_request_used() -> None:
    got = read_pki_message((VECTORS / "renewalreq_des_sha1_micromdm.der").read_bytes())
    assert (got.cipher, got.digest) == ("des", "sha1")
    got = read_pki_message((VECTORS / "certrep_failure_badrequest_ours.der").read_bytes())
    assert got.cipher == ""  # a FAILURE carries no envelope


def test_pki_message_reader_on_micromdm_vectors() -> None:
    got = read_pki_message((VECTORS / "certrep_failure_badrequest_micromdm.der").read_bytes())
    assert (got.message_type, got.pki_status, got.fail_info) == ("CertRep", "FAILURE",
                                                                 "badRequest")
    assert got.signature_oid == "1.2.840.113549.1.1.5"  # micromdm: sha1WithRSAEncryption
    got = read_pki_message((VECTORS / "renewalreq_des_sha1_micromdm.der").read_bytes())
    assert got.message_type == "RenewalReq"
    assert read_pki_message(b"junk").error.startswith("not a SignedData pkiMessage")


def test_runner_prints_one_line_per_cell_then_the_counts(capsys: pytest.CaptureFixture[str],
                                                         ) -> None:
    def ok(ws: Workspace) -> str:
        return "issued"

    def red(ws: Workspace) -> str:
        raise Failed("refused")

    status = runner.run([_cell(ok, "one"), _cell(red, "two"), _cell(ok, "three")], jobs=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["PASS peer one: issued", "FAIL peer two: refused",
                     "PASS peer three: issued", "2 passed, 1 failed"]
    assert status == 1


def test_the_matrix_has_every_cell_of_the_issue() -> None:
    ids = {c.id for c in all_cells()}
    wanted = {
        "scepclient-auto", "scepclient-wrong-challenge", "scepclient-manual-approve",
        "scepclient-manual-reject", "scepclient-ra-mode", "scepclient-renewal",
        "scepclient-renewal-no-challenge",
        "certmonger-auto", "certmonger-wrong-challenge", "certmonger-ra-mode",
        "strongswan-san", "strongswan-no-san", "strongswan-des3", "strongswan-sha1",
        "strongswan-sha384", "strongswan-sha512", "strongswan-pss", "strongswan-renewal",
        "strongswan-manual-certpoll", "strongswan-ra-mode", "strongswan-scepca",
        "scepserver-reference-session", "scepserver-usage-keys", "scepserver-subject-name",
        "scepserver-get-only", "scepserver-wrong-challenge",
        "openssl-crl-download",
        # session 8: gaps met by outsiders
        "certmonger-renewal", "strongswan-rsa4096", "strongswan-rollover",
        "strongswan-rollover-renewal",
        "scepserver-aes-sha256", "scepserver-aes-sha1", "scepserver-des3-sha256",
        "scepserver-des3-sha1",
    }
    assert wanted <= ids, wanted - ids
