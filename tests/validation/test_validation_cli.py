"""`trustledger validate`: exit 0 valid, 1 invalid, 2 bad input (nothing recorded); the
report names the anchor, the path, each certificate's revocation status and the reasons;
--json has stable keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import Engine
from engine.cli import main
from engine.ports import FakeClock
from events.filelog import FileEventLog
from tests.validation.validation_support import AT, AT_US, Pki, Spec, pem

AT_ISO = AT.isoformat()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.make("Cli")  # no CRL distribution points: no CRL can be had, no network


@pytest.fixture
def data(tmp_path: Path, pki: Pki) -> Path:
    """A device whose pool holds the root, with `crl optional`."""
    (tmp_path / "pool.pem").write_bytes(pem([pki.root]))
    with Engine.open(tmp_path / "dev", clock=FakeClock(AT_US), builtins=None) as dev:
        for line in (f"crypto ca trustpool import url file://{tmp_path / 'pool.pem'}",
                     "configure", "crypto ca trustpool policy", "crl optional", "commit",
                     "end"):
            assert dev.execute(line).ok
    return tmp_path / "dev"


def _chain(tmp_path: Path, pki: Pki) -> Path:
    leaf = pki.leaf(Spec("peer.example", dns=["peer.example"]))
    (tmp_path / "chain.pem").write_bytes(pem([leaf, pki.inter]))
    return tmp_path / "chain.pem"


def _validations(data: Path) -> int:
    with FileEventLog.open(data / "log", readonly=True) as log:
        return sum(1 for r in log.read() if r.type == "PeerValidated")


def test_a_valid_chain_is_exit_0_and_the_report_names_everything(
        tmp_path: Path, data: Path, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    chain = _chain(tmp_path, pki)
    code = main(["validate", "--data", str(data), str(chain), "--purpose", "ike", "--at",
                 AT_ISO, "--name", "peer.example"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[:6] == ["Peer validation : VALID",
                       "  Purpose       : ike",
                       "  At            : 00:00:00 UTC Sat Jan 31 2026",
                       "  Peer name     : peer.example",
                       "  Anchor        : trustpool",
                       "                  CN=Cli Root,O=Example"]
    assert out[6] == "  Path          :"
    assert [line.strip() for line in out if line.startswith("    [")] == [
        "[0] CN=peer.example,O=Example", "[1] CN=Cli Issuing CA,O=Example",
        "[2] CN=Cli Root,O=Example"]
    assert [line.split(":", 1)[1].strip() for line in out if "Revocation  :" in line] == [
        "bypassed (crl optional)", "bypassed (crl optional)", "anchor"]
    assert out[-2] == "  Reasons       : CRL_BYPASSED"
    assert out[-1].startswith("  Detail        : no current CRL for certificate serial ")
    assert out[-1].endswith(": accepted, `crl optional` (trustpool)")
    assert _validations(data) == 1


def test_json_has_stable_keys_and_an_invalid_chain_is_exit_1(
        tmp_path: Path, data: Path, pki: Pki, capsys: pytest.CaptureFixture[str]) -> None:
    chain = _chain(tmp_path, pki)
    code = main(["validate", "--data", str(data), str(chain), "--purpose", "tls-server",
                 "--at", AT_ISO, "--name", "other.example", "--json"])
    got = json.loads(capsys.readouterr().out)
    assert code == 1
    assert sorted(got) == ["anchor", "at", "chain", "detail", "ok", "path", "peer_name",
                           "purpose", "reasons", "revocation"]
    assert got["ok"] is False and got["reasons"] == ["NAME_MISMATCH"]  # no fetch: no CRL reason
    assert got["at"] == AT_US and got["anchor"]["source"] == "trustpool"
    assert sorted(got["revocation"][0]) == ["crl", "fingerprint", "reason", "revoked_at",
                                            "serial", "status"]
    assert len(got["path"]) == 3 and got["path"][:2] == got["chain"]


@pytest.mark.parametrize(("args", "message"), [
    (["missing.pem"], "% Cannot read"),
    (["garbage.pem"], "not a certificate chain (the PEM does not parse"),
    (["empty.pem"], "holds no certificate"),
    (["cut.pem"], "2 CERTIFICATE blocks but only 1 complete one (truncated?)"),
    (["chain.pem", "--at", "yesterday"], "% --at 'yesterday' is not an ISO-8601 time"),
])
def test_bad_input_is_exit_2_and_records_nothing(
        tmp_path: Path, data: Path, pki: Pki, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    whole = _chain(tmp_path, pki).read_bytes()  # the leaf, then the issuer cut short:
    (tmp_path / "cut.pem").write_bytes(whole[: whole.index(b"-----END", whole.index(b"BEGIN", 20))])
    (tmp_path / "garbage.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n"
                                           b"-----END CERTIFICATE-----\n")
    (tmp_path / "empty.pem").write_bytes(b"")
    args = [str(tmp_path / args[0]), *args[1:]]
    assert main(["validate", "--data", str(data), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("%")
    assert _validations(data) == 0


def test_a_bad_purpose_is_a_usage_error(tmp_path: Path, data: Path, pki: Pki,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["validate", "--data", str(data), str(_chain(tmp_path, pki)), "--purpose",
              "smtp"])
    assert stop.value.code == 2 and "invalid choice" in capsys.readouterr().err
