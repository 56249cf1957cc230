"""`--store URL --device ID` on the entry points (engine/storebinding.py): shell, exec, log
verify|show, replay over a PostgreSQL store; the data directory records the binding (no
password) so `--data DIR` alone finds it; flags naming another device or store are refused."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.storebinding import BindingError, redact, resolve

REPO = Path(__file__).resolve().parents[2]
SETUP = "configure\nhostname pg-edge\ndomain name example.net\ncommit\nend\n"


def _cli(*args: str | Path, stdin: str = "",
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], input=stdin,
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
                          env={**os.environ, **(env or {})})


def _with_password(url: str) -> str:
    return url.replace("trustledger@", "trustledger:Pa55-w0rd-never-stored@", 1)


@pytest.mark.integration
@pytest.mark.usefixtures("cli_locale")
def test_every_entry_point_runs_over_the_store(pg_url: str, tmp_path: Path) -> None:
    data = tmp_path / "dev"
    url = _with_password(pg_url)
    done = _cli("exec", "--data", data, "--store", url, "--device", "edge-7", "-f", "-",
                stdin=SETUP)
    assert done.returncode == 0, done.stderr
    store_file = data / "STORE"
    assert stat.S_IMODE(store_file.stat().st_mode) == 0o600
    assert json.loads(store_file.read_text()) == {"store": pg_url, "device": "edge-7"}
    assert not (data / "log").exists()
    shown = _cli("shell", "--data", data, stdin="show running-config\n")  # STORE alone
    assert shown.returncode == 0 and "hostname pg-edge\n" in shown.stdout
    verified = _cli("log", "verify", data)
    assert verified.returncode == 0, verified.stderr
    assert "chain     : OK" in verified.stdout and "events    : 3" in verified.stdout
    assert "snapshot  : 00000000000000000003.snap seq 3 OK" in verified.stdout
    bare = _cli("log", "verify", "--store", pg_url, "--device", "edge-7")  # no data dir
    assert bare.returncode == 0 and bare.stdout.splitlines()[:2] == ["events    : 3",
                                                                   "head seq  : 3"]
    listed = _cli("log", "show", data, "--json")
    assert [json.loads(line)["type"] for line in listed.stdout.splitlines()][-1] == \
        "ConfigurationCommitted"
    replayed = _cli("replay", "--store", pg_url, "--device", "edge-7", "--until", "2")
    assert replayed.returncode == 0 and "! state at seq 2" in replayed.stdout
    assert "hostname pg-edge" not in replayed.stdout  # the commit is seq 3
    secret = b"Pa55-w0rd-never-stored"
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or secret not in path.read_bytes(), path
    for out in (done, shown, verified, listed, replayed):
        assert secret.decode() not in out.stdout + out.stderr


@pytest.mark.integration
def test_a_data_directory_of_another_device_or_store_is_refused(pg_url: str,
                                                                tmp_path: Path) -> None:
    data = tmp_path / "dev"
    assert _cli("exec", "--data", data, "--store", pg_url, "--device", "a1", "-f", "-",
                stdin=SETUP).returncode == 0
    before = sorted(p.name for p in data.rglob("*"))
    other = _cli("exec", "--data", data, "--store", pg_url, "--device", "b2", "-f", "-",
                 stdin="configure\nhostname nope\ncommit\nend\n")
    assert other.returncode == 2 and other.stdout == ""
    assert other.stderr == (f"% Data directory {data} belongs to device a1 in {pg_url}, not "
                            f"to device b2 in {pg_url}: refusing to mix them.\n")
    elsewhere = pg_url.rsplit("/", 1)[0] + "/another"
    assert _cli("shell", "--data", data, "--store", elsewhere, "--device", "a1",
                stdin="show running-config\n").returncode == 2
    assert sorted(p.name for p in data.rglob("*")) == before
    file_dev = tmp_path / "filedev"
    assert _cli("exec", "--data", file_dev, "-f", "-", stdin=SETUP).returncode == 0
    mixed = _cli("exec", "--data", file_dev, "--store", pg_url, "--device", "a1", "-f", "-",
                 stdin="show running-config\n")
    assert mixed.returncode == 2 and "keeps its own event log" in mixed.stderr
    assert not (file_dev / "STORE").exists()


@pytest.mark.integration
def test_a_device_moved_into_the_store_as_the_refusal_says_keeps_its_keys(
        pg_url: str, tmp_path: Path) -> None:
    """The refusal of --store on a directory with a file log names the way that keeps the
    device's keys (a new data directory would have none); following it word for word works."""
    dev = tmp_path / "filedev"
    made = _cli("exec", "--data", dev, "-f", "-", stdin=SETUP + "crypto key generate "
                "ed25519 k1\n")
    assert made.returncode == 0, made.stderr
    refused = _cli("exec", "--data", dev, "--store", pg_url, "--device", "m1", "-f", "-",
                   stdin="show running-config\n")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"% Data directory {dev} keeps its own event log ({dev}/log): it cannot use --store. "
        f"To move the device into the store with its keys (they stay in {dev}; a new data "
        f"directory would have none of them): `trustledger log export {dev} | trustledger log "
        f"import --store URL --device ID`, move {dev}/log aside, then use {dev} with --store "
        "URL --device ID --adopt.\n")
    export = subprocess.run(f"{sys.executable} -m engine.cli log export {dev} | "
                            f"{sys.executable} -m engine.cli log import --store {pg_url} "
                            "--device m1", shell=True, cwd=REPO, capture_output=True, text=True,
                            timeout=120, check=False)
    assert export.returncode == 0, export.stderr
    (dev / "log").rename(tmp_path / "log.moved")
    moved = _cli("exec", "--data", dev, "--store", pg_url, "--device", "m1", "--adopt", "-f",
                 "-", stdin="show crypto key mypubkey ed25519\nshow running-config\n")
    assert moved.returncode == 0, moved.stderr
    assert "Key label:k1" in moved.stdout and "hostname pg-edge" in moved.stdout
    assert moved.stderr == ""  # no snapshot ignored, nothing rebuilt
    assert json.loads((dev / "STORE").read_text()) == {"store": pg_url, "device": "m1"}


@pytest.mark.integration
def test_a_read_only_store_is_a_runtime_failure_not_a_usage_error(pg_url: str,
                                                                   tmp_path: Path) -> None:
    """A database the server keeps read-only (a standby, a maintenance switch) refuses the
    open of a new device: one `%` line, exit 1 (as an unreachable store), no directory made."""
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    data = tmp_path / "dev"
    done = _cli("exec", "--data", data, "--store", pg_url, "--device", "ro-1", "-f", "-",
                stdin=SETUP)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (f"% The event store {pg_url} failed to open the event store: "
                           "cannot execute CREATE TABLE in a read-only transaction.\n")
    assert not data.exists()


@pytest.mark.integration
def test_an_unreachable_store_is_one_percent_line(tmp_path: Path) -> None:
    from tests.support.peer_support import free_port

    url = f"postgresql://trustledger:hunter22@127.0.0.1:{free_port()}/none"
    (tmp_path / "d").mkdir()
    for args in (["log", "verify"], ["log", "export"], ["replay", "--until", "1"],
                 ["audit", "checkpoint", tmp_path / "d"]):  # a runtime failure: exit 1
        down = _cli(*args, "--store", url, "--device", "x")
        assert (down.returncode, down.stdout) == (1, ""), (args, down.stderr)
        assert down.stderr.startswith("% Cannot open the event store postgresql://"
                                      "trustledger@127.0.0.1:"), args
    done = _cli("exec", "--data", tmp_path / "dev", "--store", url, "--device", "x", "-f", "-",
                stdin="show running-config\n")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("% Cannot open the event store postgresql://trustledger@"
                                  "127.0.0.1:")
    assert len(done.stderr.splitlines()) == 1 and "hunter22" not in done.stderr
    assert not (tmp_path / "dev").exists()  # no data directory for a store that never answered


@pytest.mark.parametrize("url", ["postgresql://u:S3cr3t-pw@[::1/fleet",
                                 "postgresql://u:S3cr3t-pw@h:bad/x",
                                 "http://u:S3cr3t-pw@h:bad/x"])
def test_a_malformed_store_url_is_one_percent_line_on_every_entry_point(
        url: str, tmp_path: Path) -> None:
    shown = url.replace(":S3cr3t-pw@", "@")
    for args in (["log", "verify"], ["log", "export"], ["replay", "--until", "1"],
                 ["shell", "--data", tmp_path / "d"], ["exec", "--data", tmp_path / "d", "-f",
                                                       "-"], ["ca", "init", tmp_path / "c"]):
        done = _cli(*args, "--store", url, "--device", "d1")
        # `ca init` (engine/ca/cli.py) says 1 for every refusal: its exit codes are its own
        assert (done.returncode, done.stdout) == (1 if args[0] == "ca" else 2, ""), args
        assert done.stderr == ("% --store must be a PostgreSQL URL (postgresql://USER@HOST:"
                               f"PORT/DATABASE), not {shown!r}.\n"), args
    assert list(tmp_path.iterdir()) == []  # no directory made for a URL that cannot be used


@pytest.mark.integration
def test_an_equivalent_url_is_the_same_store(pg_url: str, tmp_path: Path) -> None:
    data = tmp_path / "dev"
    assert _cli("exec", "--data", data, "--store", pg_url, "--device", "e1", "-f", "-",
                stdin=SETUP).returncode == 0
    dbname = pg_url.rsplit("/", 1)[1]
    for same in (pg_url.replace("postgresql://", "postgres://", 1),
                 f"{pg_url}?application_name=x&connect_timeout=5",
                 _with_password(pg_url)):
        done = _cli("exec", "--data", data, "--store", same, "--device", "e1", "-f", "-",
                    stdin="show running-config\n")
        assert done.returncode == 0 and "hostname pg-edge" in done.stdout, (same, done.stderr)
    other = _cli("exec", "--data", data, "--store", pg_url.replace(f"/{dbname}", "/elsewhere"),
                 "--device", "e1", "-f", "-", stdin="show running-config\n")
    assert other.returncode == 2 and "refusing to mix them" in other.stderr


@pytest.mark.integration
def test_a_new_data_directory_for_a_device_with_history_needs_adopt(pg_url: str,
                                                                    tmp_path: Path) -> None:
    first = tmp_path / "d1"
    assert _cli("exec", "--data", first, "--store", pg_url, "--device", "h1", "-f", "-",
                stdin=SETUP).returncode == 0
    second = tmp_path / "d1b"
    refused = _cli("exec", "--data", second, "--store", pg_url, "--device", "h1", "-f", "-",
                   stdin="show running-config\n")
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == (
        f"% Device h1 in {pg_url} already has 3 events: its keys and its audit key are in the "
        f"data directory it was first used with, not in {second}. Use that directory, or "
        f"--adopt to bind {second} to it anyway (without those keys).\n")
    assert not second.exists()
    adopted = _cli("exec", "--data", second, "--store", pg_url, "--device", "h1", "--adopt",
                   "-f", "-", stdin="show running-config\n")
    assert adopted.returncode == 0 and "hostname pg-edge" in adopted.stdout, adopted.stderr
    assert json.loads((second / "STORE").read_text())["device"] == "h1"
    again = _cli("exec", "--data", second, "-f", "-", stdin="show running-config\n")
    assert again.returncode == 0  # bound now: no --adopt needed any more


def test_a_store_is_named_with_bracketed_ipv6_and_its_socket_directory() -> None:
    from events.pgstore import redacted

    assert redacted("postgresql://trustledger:pw@[::1]:41659/fleet") == \
        "postgresql://trustledger@[::1]:41659/fleet"
    assert redacted("postgresql://trustledger:pw@%2Ftmp%2Fx:41659/nodb") == \
        "postgresql://trustledger@:41659/nodb?host=/tmp/x"
    assert redacted("postgresql://u:pw@h:5/db") == "postgresql://u@h:5/db"


def test_the_binding_rules_without_a_server(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRUSTLEDGER_STORE", raising=False)
    assert redact("postgresql://u:pw@h:5/db?sslmode=require&password=x") == \
        "postgresql://u@h:5/db?sslmode=require"
    assert resolve(tmp_path, None, None) is None  # a file log device
    with pytest.raises(BindingError, match="--store needs --device ID"):
        resolve(tmp_path, "postgresql://u@h/db", None)
    with pytest.raises(BindingError, match="--device d1 needs --store URL"):
        resolve(tmp_path, None, "d1")
    with pytest.raises(BindingError, match="must be a PostgreSQL URL"):
        resolve(tmp_path, "mysql://u:secret@h/db", "d1")
    with pytest.raises(BindingError, match="a device ID is 1-128 printable"):
        resolve(tmp_path, "postgresql://u@h/db", "two words")
    with pytest.raises(BindingError) as long:
        resolve(tmp_path, "postgresql://u@h/db", "x" * 5000)
    assert long.value.text == (f"--device '{'x' * 40}...': a device ID is 1-128 printable "
                               "ASCII characters without spaces.")  # not 5,000 of them
    monkeypatch.setenv("TRUSTLEDGER_STORE", "postgresql://u:pw@h/db")
    found = resolve(tmp_path, None, "d1")
    assert found is not None and found.url == "postgresql://u:pw@h/db"
    assert found.shown == "postgresql://u@h/db"
    (tmp_path / "STORE").write_text("{not json")
    with pytest.raises(BindingError, match="STORE is damaged"):
        resolve(tmp_path, None, None)


@pytest.mark.integration
def test_the_audit_commands_over_the_store(pg_url: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """Checkpoints kept in DIR/audit/, proofs and the bundle read the store's events, and the
    outsider's `audit verify` accepts the bundle with the public key alone."""
    from engine.cli import main

    data = tmp_path / "dev"
    assert _cli("exec", "--data", data, "--store", pg_url, "--device", "aud1", "-f", "-",
                stdin=SETUP).returncode == 0
    capsys.readouterr()
    assert main(["audit", "checkpoint", str(data)]) == 0
    note = capsys.readouterr().out
    assert note.splitlines()[1] == "3"  # the tree size: all three events
    assert (data / "audit" / "CHECKPOINTS").read_text().endswith(note)
    assert main(["audit", "key", str(data)]) == 0
    key = capsys.readouterr().out.strip()
    assert main(["audit", "prove", str(data), "--seq", "3"]) == 0
    assert capsys.readouterr().out.startswith("c2sp.org/tlog-proof@v1\n")
    bundle = tmp_path / "bundle"
    assert main(["audit", "export", str(data), "-o", str(bundle)]) == 0
    assert main(["audit", "verify", str(bundle), "--key", key]) == 0
    report = tmp_path / "report.html"
    assert main(["audit", "report", str(data), "-o", str(report)]) == 0
    assert "device aud1 in postgresql://" in report.read_text()
    assert main(["audit", "checkpoint", str(data), "--device", "other"]) == 2
    assert "refusing to mix them" in capsys.readouterr().err


@pytest.mark.integration
def test_validate_records_its_verdict_in_the_store(pg_url: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from engine.cli import main
    from events.pgstore import PostgresEventStore
    from tests.validation.validation_support import AT_US, Pki, Spec, pem

    pki = Pki.make("Store")
    leaf = pki.leaf(Spec("peer.example", dns=["peer.example"]))
    (tmp_path / "chain.pem").write_bytes(pem([leaf, pki.inter]))
    data = tmp_path / "dev"
    at = datetime.fromtimestamp(AT_US / 1e6, UTC).isoformat()
    code = main(["validate", "--data", str(data), "--store", pg_url, "--device", "gw1",
                 str(tmp_path / "chain.pem"), "--at", at, "--json"])
    assert code == 1 and json.loads(capsys.readouterr().out.splitlines()[-1])["ok"] is False
    with PostgresEventStore.open(pg_url, "gw1", readonly=True) as store:
        assert [r.type for r in store.read()][-1] == "PeerValidated"
    assert not (data / "log").exists()
