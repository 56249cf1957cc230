"""The device engine over a PostgreSQL store (engine/sharedlog.py): the same commands, state,
snapshots and audit trail as over its file log, with the data directory keeping only the
keystore, snapshots and the audit trail's files; two engines on one device never fork it."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from engine import Engine
from engine.audit.trail import AuditMismatch
from engine.grammar import Mode
from engine.ports import FakeClock
from engine.sharedlog import SharedLog
from engine.trustpool.builtin import certifi_bundle
from events.filelog import LogError
from events.pgstore import PostgresEventStore, verify_log
from tests.core.engine_support import open_engine, run, views
from tests.support.postgres import end_sessions

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
            "nothing was written. This commit changed nothing; caught up to seq 1. Its "
            "uncommitted changes were discarded: enter them again if they still apply.\n")
        assert second.state.hostname == "from-a"  # it folded the other engine's commit
        assert second.session.pending() == [] and second.session.mode is Mode.CONFIG
        run(second, "hostname from-b")
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
def test_an_exec_mode_command_sees_what_another_engine_of_the_device_committed(
        pg_url: str, tmp_path: Path) -> None:
    """Two shells on one device: what the idle one shows (and decides on) next is what the
    log says, not its older view; its open configuration session keeps its base (the commit
    conflict refuses it, as before)."""
    first, second = _open(pg_url, tmp_path / "a"), _open(pg_url, tmp_path / "b")
    try:
        run(second, "configure", "hostname from-b")  # a session open on the old config
        run(first, "configure", "hostname from-a", "commit", "end")
        assert second.state.seq == 0  # config mode: not caught up under the edit
        assert not second.execute("commit").ok
        run(second, "end")
        run(first, "configure", "domain name example.org", "commit", "end")
        shown = second.execute("show running-config")
        assert shown.ok and "hostname from-a" in shown.output
        assert "domain name example.org" in shown.output, shown.output
        assert second.prompt.startswith("RP/0/RP0/CPU0:from-a")
        assert second.state.seq == first.state.seq
    finally:
        first.close()
        second.close()


@pytest.mark.integration
def test_a_show_still_answers_from_the_engine_while_the_store_is_away(
        pg_url: str, tmp_path: Path) -> None:
    """The EXEC-mode catch-up is best effort: a store that cannot be reached refuses no
    `show`; the next write says what failed, and once the store is back the engine follows."""
    with _open(pg_url, tmp_path / "dev") as eng:
        run(eng, "configure", "hostname before", "commit", "end")
        end_sessions(pg_url, allow=False)
        try:
            shown = eng.execute("show running-config")
            assert shown.ok and "hostname before" in shown.output, shown.output
        finally:
            end_sessions(pg_url, allow=True)
        with _open(pg_url, tmp_path / "other") as other:
            run(other, "configure", "hostname after", "commit", "end")
        assert "hostname after" in eng.execute("show running-config").output


@pytest.mark.integration
def test_a_device_moved_from_its_file_log_into_the_store_keeps_its_snapshot(
        pg_url: str, tmp_path: Path) -> None:
    """`log export DIR | log import --store`, then the same directory on the store: the
    file log's snapshot (which records a file position) is found by seq and chain hash, not
    ignored with a warning; one of another history still is."""
    from engine.cli import main

    data = tmp_path / "dev"
    with open_engine(data) as eng:
        run(eng, "configure", "hostname moved", "domain name example.net", "commit", "end")
        before, seq = views(eng), eng.state.seq
    export = tmp_path / "dev.export"
    assert main(["log", "export", str(data), "-o", str(export)]) == 0
    assert main(["log", "import", "--store", pg_url, "--device", "r1", str(export)]) == 0
    (data / "log").rename(tmp_path / "log.moved")
    assert [p.name for p in (data / "snapshots").iterdir()] == [f"{seq:020d}.snap"]
    with _open(pg_url, data) as eng:
        assert eng.snapshots_ignored == []
        assert eng.state.seq == seq and views(eng) == before
    with _open(pg_url, tmp_path / "other", "r2") as eng:
        run(eng, "configure", "hostname other", "commit", "end")
    with _open(pg_url, data, "r2") as eng:
        assert [i.reason for i in eng.snapshots_ignored] == ["seq 1 has another chain hash"]
        assert eng.state.hostname == "other"


@pytest.mark.integration
def test_a_store_that_refuses_the_append_is_a_clean_refusal_not_a_traceback(
        pg_url: str, tmp_path: Path) -> None:
    """The database turned read-only under a running engine (a failover to a standby, a
    maintenance switch): the append is refused by the server, the command says so in one `%`
    line and changes nothing (no event, no key left behind); once writable, it just works."""
    name = pg_url.rsplit("/", 1)[1]
    with _open(pg_url, tmp_path / "dev") as eng:
        run(eng, "configure", "hostname before", "commit", "end",
            "crypto key generate ed25519 k0")
        keystore = tmp_path / "dev" / "keystore"
        seq, keys = eng.state.seq, sorted(p.name for p in keystore.iterdir())
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        end_sessions(pg_url)  # its next connection is read-only
        try:
            refused = eng.execute("crypto key generate ed25519 k1")
            assert not refused.ok and refused.events == [] and eng.state.seq == seq
            assert refused.output.endswith(
                f"\n% Could not write the event log: The event store {pg_url} refused the "
                "append to r1: cannot execute INSERT in a read-only transaction. Nothing was "
                "changed.\n"), refused.output
            assert sorted(p.name for p in keystore.iterdir()) == keys
        finally:
            with psycopg.connect(pg_url, autocommit=True,
                                 options="-c default_transaction_read_only=off") as admin:
                admin.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
            end_sessions(pg_url)
        again = eng.execute("crypto key generate ed25519 k1")
        assert again.ok and eng.state.seq == seq + 1, again.output
    assert verify_log(pg_url, "r1").damage is None


@pytest.mark.integration
def test_a_conflicted_commit_in_a_script_leaves_no_question_to_swallow_its_next_lines(
        pg_url: str, tmp_path: Path) -> None:
    """Two `exec` scripts on one device: the other one commits while this one is in a
    trustpoint submode. The refused commit discards this session's changes, so the script's
    `end` asks nothing and every later line runs as a command."""
    import io

    from engine.frontends import run_batch

    first, second = _open(pg_url, tmp_path / "a"), _open(pg_url, tmp_path / "b")

    def script() -> object:
        yield from ("configure\n", "crypto ca trustpoint tb1\n", "enrollment url "
                    "http://127.0.0.1:1/scep\n")
        run(first, "configure", "hostname from-a", "commit", "end")  # meanwhile
        yield from ("commit\n", "end\n", "configure\n", "crypto ca trustpoint tb2\n",
                    "commit\n", "end\n", "show running-config\n")

    try:
        out = io.StringIO()
        status = run_batch(second, iter(script()), out, True)  # type: ignore[arg-type]
        text = out.getvalue()
        assert "Its uncommitted changes were discarded: enter them again" in text
        assert "Uncommitted changes found" not in text and "No answer" not in text
        assert "crypto ca trustpoint tb2" in text and "crypto ca trustpoint tb1" not in \
            text.split("show running-config")[-1]
        assert "hostname from-a" in text and status != 0  # the refused commit is a failure
    finally:
        first.close()
        second.close()


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
def test_a_lost_connection_reconnects_and_says_the_command_changed_nothing(
        pg_url: str, tmp_path: Path) -> None:
    """The server drops the engine's connection mid-command: the log reconnects at once,
    finds the command not committed, says so, and the next command just works."""
    with _open(pg_url, tmp_path / "dev") as eng:
        run(eng, "configure", "hostname before", "commit", "end")
        log = eng.log
        assert isinstance(log, SharedLog) and log.while_syncing is None

        def kill_once() -> None:  # inside the command, after its EXEC-mode catch-up
            log.while_syncing = None
            end_sessions(pg_url)

        log.while_syncing = kill_once
        lost = eng.execute("crypto key generate ed25519 k1")
        assert not lost.ok and lost.events == []
        assert "\n% Could not write the event log: Lost the connection to the event store " \
            "postgresql://" in lost.output
        assert lost.output.endswith("Reconnected: the store holds nothing of this command. "
                                    "Nothing was changed.\n")
        assert "cut back" not in lost.output
        run(eng, "configure", "hostname after")
        again = eng.execute("commit")
        assert again.ok and eng.state.hostname == "after", again.output
    report = verify_log(pg_url, "r1")
    assert report.damage is None
    with _open(pg_url, tmp_path / "dev") as eng:
        assert eng.state.hostname == "after" and eng.state.seq == report.head_seq


@pytest.mark.integration
def test_a_store_still_away_is_retried_by_each_command_until_it_is_back(
        pg_url: str, tmp_path: Path) -> None:
    with _open(pg_url, tmp_path / "dev") as eng:
        run(eng, "configure", "hostname before", "commit", "end")
        end_sessions(pg_url, allow=False)
        try:
            lost = eng.execute("crypto key generate ed25519 k1")
            assert not lost.ok and lost.output.endswith(
                "The store could not be reached again to find out whether it committed this "
                "command: the next command reconnects and finds out.\n")
            away = eng.execute("crypto key generate ed25519 k2")
            assert not away.ok and away.events == []
            assert "\n% Could not write the event log: Cannot open the event store " in away.output
            assert away.output.endswith("This command changed nothing; the next one tries "
                                        "to reconnect again.\n")
        finally:
            end_sessions(pg_url, allow=True)
        run(eng, "configure", "hostname after")
        back = eng.execute("commit")
        assert back.ok and eng.state.hostname == "after", back.output
    assert verify_log(pg_url, "r1").damage is None


@pytest.mark.integration
def test_a_batch_the_store_committed_before_the_loss_is_found_and_folded(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection drops after the store committed the batch but before it said so:
    asked again, the store's chain hash at the batch's last seq shows it is there."""
    from events.pgstore import StoreUnavailable

    def committed_then_lost(batch: object) -> object:
        real(batch)
        raise StoreUnavailable("Lost the connection to the event store (test)")

    with _open(pg_url, tmp_path / "dev") as eng:
        store = eng.log.store  # type: ignore[union-attr]
        real = store.append
        monkeypatch.setattr(store, "append", committed_then_lost)
        run(eng, "configure", "hostname kept")
        done = eng.execute("commit")
        assert done.ok and eng.state.hostname == "kept", done.output
        # The same, with the store away when asked: the NEXT command finds the batch there
        # and catches up instead of appending over it.
        store = eng.log.store  # type: ignore[union-attr]
        real = store.append
        monkeypatch.setattr(store, "append", committed_then_lost)
        reopen = SharedLog._reopen

        def away_once(log: SharedLog) -> None:
            monkeypatch.setattr(SharedLog, "_reopen", reopen)
            raise StoreUnavailable("Cannot open the event store (test)")

        monkeypatch.setattr(SharedLog, "_reopen", away_once)
        run(eng, "hostname late")
        lost = eng.execute("commit")
        assert not lost.ok and "could not be reached again" in lost.output
        assert eng.state.hostname == "kept"
        run(eng, "abort")
        nxt = eng.execute("crypto key generate ed25519 k3")
        assert not nxt.ok and nxt.output.endswith(
            f"\n% Reconnected to the event store: it holds seq {eng.state.seq}-"
            f"{eng.state.seq} that this engine had not read (the command whose connection "
            "was lost was committed after all): nothing was written. This command changed "
            f"nothing; caught up to seq {eng.state.seq}: enter it again if it still applies.\n")
        assert eng.state.hostname == "late"
    assert verify_log(pg_url, "r1").damage is None


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


def _group_chain() -> list[object]:
    from tests.validation.validation_support import Pki, Spec

    pki = Pki.make("Lost")
    return [pki.leaf(Spec("peer.example", dns=["peer.example"])), pki.inter]


@pytest.mark.integration
@pytest.mark.parametrize("away", [False, True], ids=["back-at-once", "still-away"])
def test_a_store_lost_inside_a_group_commit_is_a_clean_refusal(
        pg_url: str, tmp_path: Path, away: bool) -> None:
    """The store is lost while a group commit's block runs: the block ends in one `%`
    refusal saying its events were not committed (never a psycopg error or a read from a
    dead connection), the state is what the store holds, and the next commands reconnect."""
    from engine.errors import OperatorError
    from tests.validation.validation_support import AT_US

    chain = _group_chain()
    with _open(pg_url, tmp_path / "dev") as eng:
        run(eng, "configure", "hostname before", "commit", "end")
        acknowledged = eng.state.seq
        try:
            with pytest.raises(OperatorError) as refused, eng.group_commit():
                eng.validate_peer(chain, "any", AT_US)
                eng.validate_peer(chain, "any", AT_US)
                assert eng.state.seq == acknowledged + 2
                end_sessions(pg_url, allow=False if away else None)
            text = refused.value.render()
            assert text.startswith("% Could not write the event log: Lost the connection to "
                                   "the event store postgresql://"), text
            assert text.endswith(
                "the next command reconnects and finds out." if away else
                "Reconnected: the store holds none of the 2 events of this block: they were "
                "not committed. Nothing was changed."), text
            assert eng.state.seq == acknowledged and eng.state.hostname == "before"
        finally:
            if away:  # (the engine has no session left to kill)
                end_sessions(pg_url, allow=True)
        run(eng, "configure", "hostname after")
        again = eng.execute("commit")
        assert again.ok and eng.state.hostname == "after", again.output
    report = verify_log(pg_url, "r1")
    assert report.damage is None and report.head_seq == acknowledged + 1


@pytest.mark.integration
def test_a_group_the_store_committed_before_the_loss_is_found_and_kept(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from events.pgstore import PostgresEventStore, StoreUnavailable
    from tests.validation.validation_support import AT_US

    real = PostgresEventStore._commit

    def committed_then_lost(self: PostgresEventStore, records: object, cores: object) -> None:
        real(self, records, cores)  # type: ignore[arg-type]
        raise StoreUnavailable("Lost the connection to the event store (test)")

    chain = _group_chain()
    with _open(pg_url, tmp_path / "dev") as eng:
        monkeypatch.setattr(PostgresEventStore, "_commit", committed_then_lost)
        with eng.group_commit():
            eng.validate_peer(chain, "any", AT_US)
        monkeypatch.setattr(PostgresEventStore, "_commit", real)
        kept = eng.state.seq
        assert eng.catch_up() == 0
        run(eng, "configure", "hostname after", "commit", "end")
    assert verify_log(pg_url, "r1").head_seq == kept + 1


@pytest.mark.integration
def test_a_catch_up_that_could_not_read_refuses_the_next_append(
        pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store answered the head query but was lost before the rows were read: the command
    runs on what the engine has, but appends nothing on top of the events it has not folded
    (they would land after them, and the engine would disagree with its log's replay)."""
    from events.pgstore import StoreUnavailable

    first, second = _open(pg_url, tmp_path / "a"), _open(pg_url, tmp_path / "b")
    try:
        run(first, "configure", "hostname first", "commit", "end")
        run(second, "configure", "hostname second", "commit", "end")
        real, failed = first.log.read, []  # type: ignore[union-attr]

        def lost_once(from_seq: int = 1) -> object:
            if not failed:
                failed.append(from_seq)
                raise StoreUnavailable("Lost the event store (test)", sentence=True)
            return real(from_seq)

        monkeypatch.setattr(first.log, "read", lost_once)
        refused = first.execute("clock set 10:00:00 1 December 2025")
        assert failed and not refused.ok
        assert refused.output == (
            "% Another engine of this device appended seq 2-2, which this one could not "
            "read yet: nothing was written. Enter the command again once the event store "
            "answers.\n")
        assert first.execute("clock set 10:00:00 1 December 2025").ok  # caught up first
        assert first.state.hostname == "second" and first.state.seq == 3
    finally:
        first.close()
        second.close()
    with _open(pg_url, tmp_path / "c") as fresh:
        assert (fresh.state.seq, fresh.state.hostname) == (3, "second")


@pytest.mark.integration
def test_an_event_another_engine_appended_that_this_build_cannot_fold_is_a_refusal(
        pg_url: str, tmp_path: Path) -> None:
    """A newer trustledger appended a type this build does not know: the next EXEC command
    is refused with one `%` line (it escaped `execute` as a traceback), nothing appended."""
    from tests.fleet.test_fleet_quarantine import _append_foreign

    with _open(pg_url, tmp_path / "a") as eng:
        run(eng, "configure", "hostname first", "commit", "end")
        _append_foreign(pg_url, "r1")
        for line in ("show clock", "clock set 10:00:00 1 December 2025"):
            refused = eng.execute(line)
            assert not refused.ok
            assert refused.output.startswith(
                "% Another engine of this device appended events this one cannot fold ("), \
                refused.output
            assert "FromTheFuture" in refused.output
        assert eng.state.seq == 1


@pytest.mark.integration
def test_a_damaged_row_another_engine_appended_refuses_the_next_command(
        pg_url: str, tmp_path: Path) -> None:
    """A row after this engine's head does not verify: the next EXEC command is refused and
    nothing is appended on top of it (the catch-up's failure was ignored, and the command's
    events were sealed after the damaged row)."""
    from tests.fleet.test_fleet_quarantine import _damage

    first, second = _open(pg_url, tmp_path / "a"), _open(pg_url, tmp_path / "b")
    try:
        run(first, "configure", "hostname first", "commit", "end")
        run(second, "configure", "hostname second", "commit", "end")
        _damage(pg_url, "r1", 2)
        for line in ("show clock", "clock set 10:00:00 1 December 2025"):
            refused = first.execute(line)
            assert refused.output.startswith(
                "% Another engine of this device appended events this one cannot fold ("), \
                refused.output
        assert first.state.seq == 1
        with PostgresEventStore.open(pg_url, "r1") as store:
            assert store.head[0] == 2
    finally:
        first.close()
        second.close()
