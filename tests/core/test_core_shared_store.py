"""The device engine over a PostgreSQL store (engine/sharedlog.py): the same commands, state,
snapshots and audit trail as over its file log, with the data directory keeping only the
keystore, snapshots and the audit trail's files; two engines on one device never fork it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from engine import Engine
from engine.audit.trail import AuditMismatch
from engine.ports import FakeClock
from engine.sharedlog import SharedLog
from engine.trustpool.builtin import certifi_bundle
from events.filelog import LogError
from events.pgstore import PostgresEventStore, verify_log
from tests.core.engine_support import open_engine, run, views

pytestmark = pytest.mark.integration


def _open(url: str, data: Path, device: str = "r1", **kw: object) -> Engine:
    log = SharedLog.open(url, device, data / "audit")
    return Engine.open(data, clock=FakeClock(), user="tester", log=log,  # type: ignore[arg-type]
                       **kw)


def test_commands_state_and_snapshots_survive_a_reopen_over_the_store(
        pg_url: str, tmp_path: Path) -> None:
    data = tmp_path / "dev"
    with _open(pg_url, data) as eng:
        run(eng, "configure", "hostname edge1", "domain name example.net", "commit", "end")
        before = views(eng)
        seq = eng.state.seq
    assert not (data / "log").exists()  # the log is the store's: no file log beside it
    assert [p.name for p in (data / "snapshots").iterdir()] == [f"{seq:020d}.snap"]
    with PostgresEventStore.open(pg_url, "r1", readonly=True) as store:
        assert store.head[0] == seq
    with _open(pg_url, data) as eng:
        assert eng.snapshots_ignored == []
        assert eng.state.seq == seq and views(eng) == before
    with _open(pg_url, tmp_path / "no-snapshot") as eng:  # a full replay from the store
        assert views(eng) == before


def test_a_snapshot_of_another_history_is_ignored_not_trusted(pg_url: str,
                                                               tmp_path: Path) -> None:
    """Snapshots are bound to (seq, chain hash): one taken of device r1 is no state of r2."""
    data = tmp_path / "dev"
    with _open(pg_url, data, "r1") as eng:
        run(eng, "configure", "hostname one", "commit", "end")
    with _open(pg_url, tmp_path / "other", "r2") as eng:
        run(eng, "configure", "hostname two", "commit", "end")
    with _open(pg_url, data, "r2") as eng:
        assert [i.reason for i in eng.snapshots_ignored] == [
            "it covers seq 1 of another log (the chain hash differs)"]
        assert eng.state.hostname == "two"


def test_the_audit_trail_is_kept_beside_the_store_and_checked_at_open(
        pg_url: str, tmp_path: Path) -> None:
    data = tmp_path / "dev"
    with _open(pg_url, data, audit=True, builtins=certifi_bundle) as eng:
        run(eng, "configure", "hostname audited", "commit", "end")
        assert eng.audit is not None and eng.audit.latest is not None
        signed = eng.audit.latest.checkpoint.size
    assert (data / "audit" / "AUDIT").is_file() and (data / "audit" / "CHECKPOINTS").is_file()
    with _open(pg_url, data, audit=True) as eng:  # reopens against the saved trail
        assert eng.audit is not None and eng.audit.size == eng.state.seq
    assert signed >= 2
    with psycopg.connect(pg_url, autocommit=True) as conn:  # cut the log behind it
        conn.execute("DELETE FROM trustledger_events WHERE log_id = 'r1' AND seq >= %s",
                     (signed,))
    with pytest.raises(LogError, match="acknowledged events are missing"):
        _open(pg_url, data)  # the snapshot sees it first
    for snap in (data / "snapshots").iterdir():
        snap.unlink()
    with pytest.raises(AuditMismatch, match=f"covers seq 1-{signed}: .* missing"):
        _open(pg_url, data)


def test_two_engines_on_one_device_conflict_and_the_second_catches_up(
        pg_url: str, tmp_path: Path) -> None:
    first, second = _open(pg_url, tmp_path / "a"), _open(pg_url, tmp_path / "b")
    try:
        run(second, "configure", "hostname from-b")  # an edit, not yet committed
        run(first, "configure", "hostname from-a", "commit", "end")
        refused = second.execute("commit")
        assert not refused.ok and refused.events == []
        assert refused.output == (
            "% Another writer appended seq 1 to the event log r1 since this one read it: "
            "nothing was written. This command changed nothing; caught up to seq 1: enter it "
            "again if it still applies.\n")
        assert second.state.hostname == "from-a"  # it folded the other engine's commit
        stale = second.execute("commit")  # the session's base moved: IOS XR's own refusal
        assert not stale.ok and "running configuration changed" in stale.output
        run(second, "abort", "configure", "hostname from-b")
        again = second.execute("commit")
        assert again.ok and [r.seq for r in again.events] == [2]
        run(second, "end")
        assert first.catch_up() == 1 and first.state.hostname == "from-b"
    finally:
        first.close()
        second.close()
    report = verify_log(pg_url, "r1")
    assert report.damage is None and report.head_seq == 2  # one chain, no fork


@pytest.mark.integration
def test_a_data_directory_bound_to_a_store_never_grows_a_file_log(pg_url: str,
                                                                   tmp_path: Path) -> None:
    """Opened without its store (an embedding program that forgot it), a bound data
    directory is refused instead of starting a second, local history."""
    from engine.cli import device_log

    data = tmp_path / "dev"
    data.mkdir()
    log = device_log(data, pg_url, "bound1")
    assert log is not None
    Engine.open(data, clock=FakeClock(), log=log).close()
    with pytest.raises(LogError, match=r"keeps its log in a shared store \(.*STORE names it\)"):
        Engine.open(data, clock=FakeClock())
    assert not (data / "log").exists()


@pytest.mark.integration
def test_the_shell_schedules_no_segment_scrub_for_a_store(pg_url: str, tmp_path: Path) -> None:
    """The scheduled scrub checks a file log's segments; over a store there are none, and it
    must not make a DATA/log directory of its own."""
    from engine.frontends import Scheduler

    with _open(pg_url, tmp_path / "dev") as eng:
        assert Scheduler(eng).scrub is None
    with open_engine(tmp_path / "filedev") as eng:
        assert Scheduler(eng).scrub is not None
    assert not (tmp_path / "dev" / "log").exists()


@pytest.mark.integration
def test_a_lost_connection_is_a_percent_line_and_the_log_takes_no_more_commands(
        pg_url: str, tmp_path: Path) -> None:
    """The server drops the engine's connection: whether a batch committed may be unknown,
    so the command says so, the engine takes no more commands until reopened, and the
    reopened engine finds the log whole."""
    with _open(pg_url, tmp_path / "dev") as eng:
        run(eng, "configure", "hostname before", "commit", "end")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                          "datname = current_database() AND pid <> pg_backend_pid()")
        lost = eng.execute("crypto key generate ed25519 k1")
        assert not lost.ok and lost.events == []
        assert "\n% Could not write the event log: Lost the connection to the event store " \
            "postgresql://" in lost.output
        assert "it takes no more commands until the data directory is reopened" in lost.output
        again = eng.execute("crypto key generate ed25519 k2")
        assert not again.ok and "takes no more commands" in again.output
    report = verify_log(pg_url, "r1")
    assert report.damage is None
    with _open(pg_url, tmp_path / "dev") as eng:
        assert eng.state.hostname == "before" and eng.state.seq == report.head_seq


@pytest.mark.integration
def test_a_group_commit_refused_by_another_writer_leaves_no_phantom_checkpoint(
        pg_url: str, tmp_path: Path) -> None:
    """Inside a group commit the audit trail signs over events not yet committed; when the
    store refuses the group (another engine took those seqs), no checkpoint of them may
    survive, or the next open would find the log "rewritten" under it."""
    from engine.errors import OperatorError
    from tests.validation.validation_support import AT_US, Pki, Spec

    pki = Pki.make("Group")
    chain = [pki.leaf(Spec("peer.example", dns=["peer.example"])), pki.inter]
    first = _open(pg_url, tmp_path / "a", audit=True)
    second = _open(pg_url, tmp_path / "b")
    try:
        with pytest.raises(OperatorError, match="Another writer appended seq"), \
                first.group_commit():
            first.validate_peer(chain, "any", AT_US)
            assert first.audit is not None and first.audit.size == first.state.seq
            run(second, "configure", "hostname from-b", "commit", "end")
        assert first.state.hostname == "from-b"
        assert [r.type for r in first.log.read()][-1] == "ConfigurationCommitted"  # type: ignore[union-attr]
    finally:
        first.close()
        second.close()
    with _open(pg_url, tmp_path / "a", audit=True) as again:  # the trail is the log's
        assert again.audit is not None and again.audit.size == again.state.seq
