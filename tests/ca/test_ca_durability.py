"""What the CA shows is durable: after a failed fdatasync it answers nothing until reopened,
and polls, GetCert and the CRL file wait for the sync of the events they show."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from engine.ca import BuiltinCA, Policy
from engine.ca.decide import Approval, ReplyStatus
from engine.ca.errors import CAUnavailable
from engine.ca.server import serve
from engine.ca.service import CRL_FILE, challenge_digest
from engine.scep import build_pkcs_req
from tests.ca.ca_support import ScepTestClient, enroll_cmd, http_request, make_ca, rsa_key
from tests.ca.cli_support import REPO, cli

PW = "durable-pw"
POLICY = Policy(Approval.AUTO, challenge_digest(PW))
_real_fdatasync = os.fdatasync


class Sync:
    """os.fdatasync, made to fail with EIO (`failing`) or to wait for `go` (`blocking`)."""

    def __init__(self) -> None:
        self.failing = False
        self.blocking = False
        self.go = threading.Event()
        self.entered = threading.Event()

    def __call__(self, fd: int) -> None:
        if self.failing:
            self.failing = False  # once: the next sync would succeed, and must not count
            raise OSError(errno.EIO, "simulated EIO")
        if self.blocking:
            self.entered.set()
            self.go.wait(30)
        _real_fdatasync(fd)


@pytest.fixture
def sync(monkeypatch: pytest.MonkeyPatch) -> Sync:
    fake = Sync()
    monkeypatch.setattr(os, "fdatasync", fake)
    return fake


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[BuiltinCA]:
    with make_ca(tmp_path / "ca") as ca:
        ca.crl_url = "http://127.0.0.1:1/crl/ca.crl"
        yield ca


def crl_number_on_disk(root: Path) -> int:
    crl = x509.load_der_x509_crl((root / CRL_FILE).read_bytes())
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_after_a_failed_sync_nothing_is_answered_until_reopened(ca: BuiltinCA,
                                                                sync: Sync) -> None:
    first = enroll_cmd(rsa_key(1), "d1", challenge=PW)
    issued = ca.enroll(first, POLICY).certificate
    assert issued is not None
    second = enroll_cmd(rsa_key(2), "d2", challenge=PW)
    sync.failing = True
    with pytest.raises(CAUnavailable):
        ca.enroll(second, POLICY)
    assert not sync.failing  # the sync did fail; the next one would succeed ...
    with pytest.raises(CAUnavailable):  # ... but the re-send is not answered from memory
        ca.enroll(second, POLICY)
    for ask in (lambda: ca.poll(second.transaction_id), lambda: ca.poll(first.transaction_id),
                lambda: ca.certificate(issued.serial), ca.current_crl, ca.mint_challenge,
                lambda: ca.revoke(issued.serial)):
        with pytest.raises(CAUnavailable, match="could not be made durable"):
            ask()
    assert ca.unavailable is not None
    ca.close()
    with BuiltinCA.open(ca.root, clock=ca.clock) as reopened:  # recovery: what is on disk
        assert reopened.unavailable is None
        assert reopened.poll(first.transaction_id).status is ReplyStatus.SUCCESS
        reopened.mint_challenge()


def test_the_crl_file_is_published_only_once_durable(ca: BuiltinCA, sync: Sync) -> None:
    issued = ca.enroll(enroll_cmd(rsa_key(3), "d3", challenge=PW), POLICY).certificate
    assert issued is not None
    assert crl_number_on_disk(ca.root) == 1
    sync.failing = True
    with pytest.raises(CAUnavailable):
        ca.revoke(issued.serial, "keyCompromise")
    assert ca.state.crl is not None and ca.state.crl.number == 2  # in memory only
    assert crl_number_on_disk(ca.root) == 1  # a crash now must not leave CRL 2 published
    ca.close()
    with BuiltinCA.open(ca.root, clock=ca.clock) as reopened:
        reopened.publish_crl()
        assert crl_number_on_disk(ca.root) == reopened.current_crl().number


def test_a_poll_waits_for_the_sync_of_what_it_shows(ca: BuiltinCA, sync: Sync) -> None:
    cmd = enroll_cmd(rsa_key(4), "d4", challenge=PW)
    sync.blocking = True
    enrolling = threading.Thread(target=ca.enroll, args=(cmd, POLICY))
    enrolling.start()
    assert sync.entered.wait(10)  # appended and folded; its fdatasync has not returned
    assert ca.state.requests[cmd.transaction_id].serial is not None
    answers: list[ReplyStatus] = []
    polling = threading.Thread(target=lambda: answers.append(ca.poll(cmd.transaction_id).status))
    polling.start()
    polling.join(0.3)
    assert polling.is_alive() and answers == []  # no SUCCESS for a certificate not on disk
    sync.go.set()
    enrolling.join(10)
    polling.join(10)
    assert answers == [ReplyStatus.SUCCESS]


@pytest.mark.integration
@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "workers"])
def test_the_servers_answer_503_once_the_log_cannot_be_made_durable(
        ca: BuiltinCA, sync: Sync, workers: int) -> None:
    with serve(ca, challenge=PW, admin=False, workers=workers) as srv:
        client = ScepTestClient(srv.scep_url, rsa_key(5), "d5", signing_time=None)
        message = build_pkcs_req(client.params(), client.csr(PW), random_bytes=os.urandom)
        url = f"{srv.scep_url}?operation=PKIOperation"
        sync.failing = True
        assert http_request(url, "POST", message)[0] == 503
        assert http_request(url, "POST", message)[0] == 503  # the re-send too
        if workers == 1:  # (workers serve the CRL file, which holds only durable CRLs)
            assert http_request(srv.crl_url)[0] == 503
        assert http_request(f"{srv.scep_url}?operation=GetCACaps")[0] == 200


SERVE_WITH_FAILING_SYNC = textwrap.dedent("""
    import errno, os, sys
    from pathlib import Path
    flag = Path(sys.argv[1])
    real = os.fdatasync
    def fdatasync(fd):
        if flag.exists():
            raise OSError(errno.EIO, "simulated EIO")
        real(fd)
    os.fdatasync = fdatasync
    from engine.ca.cli import main
    sys.exit(main(["serve", sys.argv[2], "--port", "0", "--workers", "1"]))
""")


@pytest.mark.integration
def test_ca_serve_exits_non_zero_once_the_log_cannot_be_made_durable(tmp_path: Path) -> None:
    root = tmp_path / "ca"
    cli("init", root)
    flag = tmp_path / "fail-syncs"
    proc = subprocess.Popen([sys.executable, "-c", SERVE_WITH_FAILING_SYNC, str(flag),
                             str(root)], cwd=REPO, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.lstrip().startswith("approval:"):
                break
        flag.touch()
        refused = cli("challenge", root, check=False)  # through the admin endpoint
        assert refused.returncode == 1 and "could not be made durable" in refused.stderr
        assert proc.wait(timeout=20) == 1
        assert proc.stderr is not None
        last = proc.stderr.read().splitlines()[-1]
        assert last.endswith("; stopped serving.") and ".;" not in last, last
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
