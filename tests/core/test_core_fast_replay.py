"""The fast replay path folds to the same state as the live path, for any history.

Live: each event folded on its own by `evolve` (what the engine does after each command), every
state a new immutable value. Fast: `replay_rows` over the rows read back from the log, one
private state changed in place (`engine.state.with_state`). The histories mix every kind of
device event: configuration commits (trustpoints included, so their removal drops a status),
key pairs and imported keys, each step of a trustpoint's enrollment, of its automatic
renewal and of a CA rollover, expiry notices, `clock set`, and CRLs fetched, failed and
cleared. An
event the live fold refuses (an illegal lifecycle transition) is left out, as the engine would
never record it. `tests/core/test_core_replay.py` proves the same through `Engine.execute`
for commands.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from engine import snapshot
from engine.config import Change, ConfigConflict, ConfigTree, Node, OwnedConfig
from engine.config import Path as ConfigPath
from engine.device_folds import DEVICE_FOLDS
from engine.machines.table import IllegalTransition
from engine.state import MAX_COMMITS, CommitHistory, DeviceState, evolve, replay_rows
from engine.trustpoints import touching
from events import filelog
from events.audit import AuditKeyCreated
from events.clock import ClockSet
from events.device import ConfigurationCommitted
from events.filelog import FileEventLog
from events.keys import KeyPairGenerated, KeyPairZeroized, PublicKeyImported, PublicKeyRemoved
from events.registry import Event
from events.renewal import (
    CertificateExpiryWarned,
    NextCertificateActivated,
    RenewalCertificateReceived,
    RenewalFailed,
    RenewalPending,
    RenewalRequested,
)
from events.revocation import CrlCacheCleared, CrlFetched, CrlFetchFailed
from events.rollover import (
    ShadowCAAccepted,
    ShadowCAActivated,
    ShadowCAFetchFailed,
    ShadowCANotOffered,
    ShadowCARechecked,
    ShadowCertificateActivated,
)
from events.runs import RUN_MAX, RowRuns
from events.store import PendingEvent
from events.trustpoint import (
    CACertificateAccepted,
    CACertificateRefused,
    CertificateReceived,
    EnrollmentFailed,
    EnrollmentPending,
    EnrollmentRequested,
    RouterCertificateRevoked,
    TrustpointCertificatesRemoved,
)
from events.validation import PeerValidated

TRUSTPOINTS = ("ca1", "ca2")
LABELS = ("k1", "k2")
KEY_IDS = ("a" * 32, "b" * 32, "c" * 32)
TXIDS = ("t1", "t2")
USAGES = ("general", "signature", "encryption")
PURPOSES = ("renew", "shadow")


def _certificate() -> bytes:
    """A real DER certificate (a renewal's message names its serial and end)."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name.from_rfc4514_string("CN=r1")
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(0x1A2B)
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=365))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


CERT = _certificate()

# A configuration line's key and the lines it may hold (None: removed).
LINES: dict[ConfigPath, tuple[str, ...]] = {
    ("hostname",): ("hostname r1", "hostname r2"),
    ("domain name",): ("domain name a.example",),
    **{(f"crypto ca trustpoint {tp}",): (f"crypto ca trustpoint {tp}",) for tp in TRUSTPOINTS},
    **{(f"crypto ca trustpoint {tp}", "enrollment"): (f"enrollment url http://{tp}.example",
                                                      "enrollment terminal")
       for tp in TRUSTPOINTS},
    # auto-enroll keeps a retrying renewal through a commit (its back-off is reset instead)
    **{(f"crypto ca trustpoint {tp}", "auto-enroll"): ("auto-enroll 80",) for tp in TRUSTPOINTS},
}


@st.composite
def commit(draw: st.DrawFn, config: ConfigTree, commit_id: int) -> ConfigurationCommitted:
    """A commit that applies to `config`: one to three line changes, children removed
    before their parent and added after it."""
    changes = []
    tree = config
    for path in draw(st.lists(st.sampled_from(sorted(LINES)), min_size=1, max_size=3)):
        if len(path) == 2 and tree.line(path[:1]) is None:
            continue  # no parent to hang it under
        new = draw(st.sampled_from((None, *LINES[path])))
        steps = tree.removal(path) if new is None else [Change(path, tree.line(path), new)]
        for change in steps:
            if change.old != change.new:
                tree = tree.apply(change)
                changes.append(change.to_wire())
    rollback_to = draw(st.sampled_from((0, commit_id - 1)))
    return ConfigurationCommitted(commit_id, "admin", draw(st.sampled_from(("", "lbl"))), "",
                                  tuple(changes), rollback_to)


def other_event(draw: st.DrawFn) -> Event:
    tp = draw(st.sampled_from(TRUSTPOINTS))
    txid = draw(st.sampled_from(TXIDS))
    key_id = draw(st.sampled_from(KEY_IDS))
    label = draw(st.sampled_from(LABELS))
    kinds: list[Any] = [
        KeyPairGenerated(key_id, label, "rsa", draw(st.sampled_from(USAGES)), 2048, "",
                         b"spki", b"sealed", b"n" * 12, "v1"),
        KeyPairZeroized(label, "rsa", tuple(draw(st.sets(st.sampled_from(KEY_IDS)))), "cli"),
        PublicKeyImported(label, "rsa", draw(st.sampled_from(USAGES)), 2048, b"spki", "spki"),
        PublicKeyRemoved(label, "rsa", "zeroize"),
        CACertificateAccepted(tp, b"ca", (b"ra",), ("POSTPKIOperation",), "scep"),
        CACertificateRefused(tp, "AB:CD", "CN=ca"),
        EnrollmentRequested(tp, (key_id,), ("general",), (txid,), "CN=r1", ("F1",), "scep",
                            1, 3),
        EnrollmentPending(tp, txid, draw(st.integers(1, 3)), 5_000_000,
                          draw(st.sampled_from(("", "timed out")))),
        CertificateReceived(tp, key_id, draw(st.sampled_from(USAGES)), b"cert", txid),
        EnrollmentFailed(tp, txid, draw(st.sampled_from(("failure", "timeout"))),
                         draw(st.sampled_from(("", "badRequest"))), "refused"),
        TrustpointCertificatesRemoved(tp, "commit", 1, ("ca",), ("01",), ("AB",)),
        RouterCertificateRevoked(tp, key_id, "0A1B", draw(st.integers(0, 2**40)),
                                 draw(st.sampled_from(("unspecified", "keyCompromise"))),
                                 "ab" * 32),
        ClockSet(draw(st.integers(0, 2**40)), draw(st.integers(-2**40, 2**40))),
        *_renewal_events(draw, tp, txid, key_id),
        crl_fetched(draw),
        CrlFetchFailed(draw(st.sampled_from((None, tp))), "CN=ca",
                       ((draw(st.sampled_from(CRL_URIS)), "HTTP 404"),)),
        CrlCacheCleared(draw(st.integers(0, 3))),
        PeerValidated(("ab",), "ike", 5, None, draw(st.booleans()), tuple(draw(st.lists(
            st.sampled_from(("REVOKED", "EXPIRED", "CRL_BYPASSED")), max_size=2))),
            "trustpool", "trustpool", "cd", ("ab", "cd"), (), ""),
        AuditKeyCreated("trustledger.example/r/0011", key_id, b"k" * 32, b"spki", b"sealed",
                        b"n" * 12, "aes"),
        ShadowCAAccepted(tp, CERT, 9_000_000),  # CA rollover (engine/rollover/)
        ShadowCAFetchFailed(tp, "unreachable", 6_000_000),
        ShadowCANotOffered(tp, 9_000_000),
        ShadowCARechecked(tp, 8_000_000, draw(st.sampled_from(("", "unreachable")))),
        ShadowCAActivated(tp, "02", "01"),
        ShadowCertificateActivated(tp, key_id, draw(st.sampled_from(USAGES)), "03"),
    ]
    event: Event = draw(st.sampled_from(kinds))
    return event


def _renewal_events(draw: st.DrawFn, tp: str, txid: str, key_id: str) -> list[Event]:
    purpose = draw(st.sampled_from(PURPOSES))
    usage = draw(st.sampled_from(USAGES))
    return [
        RenewalRequested(tp, purpose, (key_id,), (usage,), (txid,), "CN=r1",
                         draw(st.sampled_from(("pkcsreq", "renewalreq"))), 1, 3),
        RenewalPending(tp, purpose, txid, draw(st.integers(0, 3)), 7_000_000,
                       draw(st.sampled_from(("", "timed out")))),
        RenewalCertificateReceived(tp, purpose, key_id, usage, CERT, txid,
                                   draw(st.sampled_from((0, 2**51)))),  # installed or held
        RenewalFailed(tp, purpose, txid, draw(st.sampled_from(("failure", "peer"))),
                      draw(st.sampled_from(("", "badRequest"))), "refused",
                      draw(st.sampled_from((9_000_000, 2**51)))),  # a retry before/after a commit
        NextCertificateActivated(tp, key_id, usage, "1A2B"),
        CertificateExpiryWarned(tp, draw(st.sampled_from(("CA", usage))), "1A2B", "CN=r1",
                                2**50, draw(st.integers(0, 60)), draw(st.booleans())),
    ]


def crl_fetched(draw: st.DrawFn) -> CrlFetched:
    """CRLs of two issuers and two scopes, older and newer ones (the cache keeps the newest
    per issuer and scope)."""
    issuer = draw(st.sampled_from((b"ca1", b"ca2")))
    return CrlFetched(draw(st.sampled_from(("1" * 64, "2" * 64, "3" * 64))), issuer,
                      issuer.decode(), None,
                      draw(st.sampled_from((None, "1", "2", str(2**100)))),  # up to 20 octets
                      draw(st.integers(0, 3)), draw(st.sampled_from((None, 10))),
                      draw(st.sampled_from(CRL_URIS)), 5, draw(st.sampled_from((None, "ca1"))),
                      draw(st.sampled_from(((), ("http://x/ca.crl",)))), 3, "k" * 64,
                      draw(st.sampled_from(("", "user"))),
                      draw(st.sampled_from(((), (("http://y/ca.crl", "HTTP 404"),)))))


CRL_URIS = ("http://x/ca.crl", "http://y/ca.crl")  # sources: the fetch back-off is per URI


@st.composite
def history(draw: st.DrawFn) -> tuple[DeviceState, list[PendingEvent]]:
    """A history the live path accepts, and the state it folds to event by event."""
    state, accepted = DeviceState(), []
    at = 1_700_000_000_000_000
    for _ in range(draw(st.integers(1, 40))):
        at += draw(st.integers(0, 2_000_000))
        kind = draw(st.integers(0, 5))
        if kind < 3:
            evs: list[Event] = [draw(commit(state.config, state.next_commit_id))]
        elif kind == 3:  # a failed attempt, its request and answer: a renewal's back-off
            evs = _failed_attempt(draw)
        else:
            evs = [other_event(draw)]
        for ev in evs:
            try:
                after = evolve(state, ev, at, state.seq + 1)
            except IllegalTransition:
                continue  # the engine would have refused the command: never recorded
            state = after
            accepted.append(PendingEvent(ev, "device", at, "admin", f"cmd-{len(accepted)}"))
    return state, accepted


def _failed_attempt(draw: st.DrawFn) -> list[Event]:
    """A renewal attempt and its failure, retried before or after what follows."""
    tp, purpose = draw(st.sampled_from(TRUSTPOINTS)), draw(st.sampled_from(PURPOSES))
    key_id, txid = draw(st.sampled_from(KEY_IDS)), draw(st.sampled_from(TXIDS))
    return [RenewalRequested(tp, purpose, (key_id,), ("general",), (txid,), "CN=r1", "pkcsreq",
                             1, 3),
            RenewalFailed(tp, purpose, txid, "peer", "", "unreachable",
                          draw(st.sampled_from((9_000_000, 2**51))))]


def fast_replay(events: list[PendingEvent], frame: int, gather: int) -> DeviceState:
    """Replay as `Engine.open` does: rows read in runs (`events.runs.RowRuns`) of up to
    `gather` rows, a run of commits folded by its run fold; and the same rows one by one (a
    plain iterable), which must fold to the same state."""
    with tempfile.TemporaryDirectory(prefix="tl-fast-") as tmp, \
            FileEventLog.open(Path(tmp)) as log:
        for i in range(0, len(events), frame):  # frames of one and of several events
            log.append(events[i:i + frame])
        with mock.patch.object(filelog, "RUN_MAX", gather):
            rows = log.read_rows(typed=True)
            assert isinstance(rows, RowRuns)
            fast = replay_rows(DeviceState(), rows)
        one_by_one = replay_rows(DeviceState(), list(log.read_rows(typed=True)))
        assert one_by_one == fast and list(one_by_one.commits) == list(fast.commits)
        return fast


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(history(), st.sampled_from((1, 3)), st.sampled_from((1, 2, 5, RUN_MAX)))
def test_fast_replay_equals_the_live_folds(case: tuple[DeviceState, list[PendingEvent]],
                                           frame: int, gather: int) -> None:
    live, events = case
    fast = fast_replay(events, frame, gather)
    assert type(fast) is DeviceState  # the replay's private state does not leak
    assert fast == live
    assert list(fast.commits) == list(live.commits)
    assert fast.trustpoints == live.trustpoints and fast.messages == live.messages
    # ...and the same bytes in a snapshot: the same chunks of history, the same dict orders
    assert snapshot.encode(fast, (fast.seq, bytes(32))) == \
        snapshot.encode(live, (live.seq, bytes(32)))


def test_replay_leaves_the_state_it_started_from_unchanged(tmp_path: Path) -> None:
    start = evolve(DeviceState(), ConfigurationCommitted(
        1000000001, "admin", "", "", ((("hostname",), None, "hostname r1"),)), 1, 1)
    events = [PendingEvent(ConfigurationCommitted(1000000001 + i, "admin", "", "", (
        (("hostname",), f"hostname r{i}", f"hostname r{i + 1}"),)), "device", 2 + i)
        for i in range(1, 4)]
    with FileEventLog.open(tmp_path) as log:
        log.append([PendingEvent(ConfigurationCommitted(
            1000000001, "admin", "", "", ((("hostname",), None, "hostname r1"),)), "device", 1)])
        log.append(events)
        after = replay_rows(start, log.read_rows(2, typed=True))
    assert start.hostname == "r1" and start.seq == 1 and start.commits.count == 1
    assert after.hostname == "r4" and after.seq == 4 and after.commits.count == 4


def test_the_commit_history_keeps_exactly_the_newest_max_commits() -> None:
    state = DeviceState()
    for i in range(MAX_COMMITS + 25):
        old = f"hostname r{i - 1}" if i else None
        state = evolve(state, ConfigurationCommitted(
            state.next_commit_id, "admin", "", "", ((("hostname",), old, f"hostname r{i}"),)),
            i, i + 1)
    ids = [c.commit_id for c in state.commits]
    assert len(ids) == MAX_COMMITS and state.commits.count == MAX_COMMITS + 25
    assert ids == list(range(state.next_commit_id - 1, state.next_commit_id - 1 - MAX_COMMITS,
                             -1))
    assert state.commits.find(ids[-1]) is not None
    assert state.commits.find(ids[-1] - 1) is None  # the 101st newest is not shown


def _commits(first: int, count: int) -> list[ConfigurationCommitted]:
    """Commits `first`.. of a hostname that changes each time (commit ids from 1000000001)."""
    return [ConfigurationCommitted(1000000001 + i, "admin", f"l{i}", "", ((
        ("hostname",), f"hostname r{i - 1}" if i else None, f"hostname r{i}"),))
        for i in range(first, first + count)]


@pytest.mark.parametrize("before", [0, 1, 7, 10, 95, 113])
@pytest.mark.parametrize("added", [1, 3, 10, 104, 125])
def test_replay_keeps_the_history_in_the_chunks_the_live_pushes_make(
        tmp_path: Path, before: int, added: int) -> None:
    """Replay keeps commits as events and builds the history once at the end: the same
    commits in the same chunks as `push`, however many commits the state it starts from
    (a snapshot) already had and however many the replay adds."""
    start = DeviceState()
    for i, ev in enumerate(_commits(0, before)):
        start = evolve(start, ev, i, i + 1)
    live = start
    with FileEventLog.open(tmp_path) as log:
        for i, ev in enumerate(_commits(before, added)):
            log.append([PendingEvent(ev, "device", before + i)])
            live = evolve(live, ev, before + i, before + i + 1)
    with FileEventLog.open(tmp_path, readonly=True) as log:
        rows = [(before + row[0], *row[1:]) for row in log.read_rows(typed=True)]
    for fast in (replay_rows(start, rows),  # row by row, and as one run of commits
                 replay_rows(start, RowRuns(iter([("ConfigurationCommitted", rows)])))):
        assert (fast.commits.newest, fast.commits.older, fast.commits.count) == \
            (live.commits.newest, live.commits.older, live.commits.count)
        assert type(fast.commits) is CommitHistory and type(fast.config) is ConfigTree
        assert fast.hostname == f"r{before + added - 1}" and fast == live


def test_the_commit_run_fold_outside_a_replay_folds_as_the_table_does() -> None:
    """A run fold given a state that is not a replay's own folds it one commit at a time
    through the listed folds: the same state, and none of them changed in place."""
    start = evolve(DeviceState(), ConfigurationCommitted(
        1000000001, "admin", "", "", ((("hostname",), None, "hostname r0"),)), 1, 1)
    commits = [ConfigurationCommitted(1000000002, "admin", "", "", (
        (("crypto ca trustpoint ca1",), None, "crypto ca trustpoint ca1"),)),
        ConfigurationCommitted(1000000003, "admin", "", "", (
            (("hostname",), "hostname r0", "hostname r1"),))]
    live = start
    for i, ev in enumerate(commits):
        live = evolve(live, ev, 10 + i, 2 + i)
    rows = [(2 + i, "device", ev.type_name, 1, 10 + i, "admin", "c", ev, b"")
            for i, ev in enumerate(commits)]
    folded = DEVICE_FOLDS.runs["ConfigurationCommitted"](start, rows)
    assert replace(folded, seq=live.seq) == live and "ca1" in folded.trustpoint_configs
    assert start.hostname == "r0" and not start.trustpoint_configs


_KEYS = ("hostname", "crypto ca trustpoint a", "domain name")
_change = st.tuples(
    st.one_of(st.tuples(st.sampled_from(_KEYS)),
              st.tuples(st.sampled_from(_KEYS), st.sampled_from(("enrollment", "query")))),
    st.one_of(st.none(), st.sampled_from(("l1", "l2"))),
    st.one_of(st.none(), st.sampled_from(("l1", "l2"))))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_change, min_size=1, max_size=4), max_size=12))
def test_the_owned_configuration_applies_changes_as_the_tree_does(
        commits: list[list[tuple[ConfigPath, str | None, str | None]]]) -> None:
    """Replay's configuration (changed in place) ends where `apply_all` ends, in the same
    order, and refuses a change that does not apply with the same ConfigConflict: random
    changes, most of which do not apply."""
    tree, owned = ConfigTree(), OwnedConfig.of(ConfigTree())
    for changes in commits:
        try:
            tree = tree.apply_all([Change(*c) for c in changes])
        except ConfigConflict as e:
            with pytest.raises(ConfigConflict) as raised:
                owned.apply_wire(changes)
            assert str(raised.value) == str(e)
            return
        owned.apply_wire(changes)
        assert list(owned.walk()) == list(tree.walk())
    assert owned.frozen() == tree and type(owned.frozen()) is ConfigTree


_TOPS = ("hostname", "crypto ca trustpoint a", "crypto ca trustpoint ", "crypto ca trustpoin",
         "x\ncrypto ca trustpoint b", "description crypto ca trustpoint c", "")


@settings(max_examples=300)
@given(st.lists(st.lists(st.tuples(st.tuples(st.sampled_from(_TOPS)), st.none(),
                                   st.just("l")), max_size=4), max_size=12))
def test_a_run_of_commits_is_screened_for_trustpoint_changes_without_missing_one(
        commits: list[list[tuple[ConfigPath, str | None, str | None]]]) -> None:
    """The commits of a run whose folds replay runs (`touching`: any change of a line that
    starts with `crypto ca trustpoint `, in any place of a commit) are exactly those the
    change-by-change test finds, whatever else the lines hold."""
    expected = [i for i, changes in enumerate(commits)
                if any(path[0].startswith("crypto ca trustpoint ") for path, _, _ in changes)]
    assert touching(commits) == expected


def test_the_owned_configuration_changes_no_node_of_the_tree_it_started_from() -> None:
    """Replay's configuration sets a line it set before in place (its own node): the nodes
    of the state it started from (a snapshot's, shared with whoever holds that state) keep
    their lines, and the configuration it hands out holds plain Nodes only."""
    start = ConfigTree().apply_all([Change(("hostname",), None, "hostname a"),
                                    Change(("domain name",), None, "domain name x")])
    before = list(start.walk())
    owned = OwnedConfig.of(start)
    owned.apply_wire([(("hostname",), "hostname a", "hostname b")])
    owned.apply_wire([(("hostname",), "hostname b", "hostname c"),
                      (("domain name",), "domain name x", None),
                      (("domain name",), None, "domain name y")])
    owned.apply_wire([(("domain name",), "domain name y", "domain name z")])
    assert list(start.walk()) == before and start.line(("hostname",)) == "hostname a"
    frozen = owned.frozen()
    assert [(p, n.line) for p, n in frozen.walk()] == [(("hostname",), "hostname c"),
                                                       (("domain name",), "domain name z")]
    assert {type(n) for _, n in frozen.walk()} == {Node}


def test_a_run_of_commits_cancels_a_renewal_left_retrying_as_the_live_folds_do() -> None:
    """A renewal that fails (retrying) after `no auto-enroll` was committed is cancelled by
    the next commit, whatever it changes (engine/renewal/folds.py `cancelled`): a run of
    commits that touch no trustpoint must fold that first commit too."""
    def commit_of(commit_id: int, *changes: Change) -> ConfigurationCommitted:
        return ConfigurationCommitted(commit_id, "admin", "", "",
                                      tuple(c.to_wire() for c in changes), 0)

    tp, key = "ca1", KEY_IDS[0]
    history: list[Event] = [
        commit_of(1, Change((f"crypto ca trustpoint {tp}",), None, f"crypto ca trustpoint {tp}"),
                  Change((f"crypto ca trustpoint {tp}", "enrollment"), None,
                         "enrollment url http://ca1.example")),  # and no auto-enroll
        CACertificateAccepted(tp, b"ca", (), ("POSTPKIOperation",), "scep"),
        EnrollmentRequested(tp, (key,), ("general",), ("t0",), "CN=r1", ("F1",), "scep", 1, 3),
        CertificateReceived(tp, key, "general", b"cert", "t0"),
        RenewalRequested(tp, "renew", (key,), ("general",), ("t1",), "CN=r1", "pkcsreq", 1, 3),
        RenewalFailed(tp, "renew", "t1", "failure", "", "refused", 9_000_000),
        commit_of(2, Change(("hostname",), None, "hostname r1")),
        commit_of(3, Change(("hostname",), "hostname r1", "hostname r2")),
    ]
    live, events, at = DeviceState(), [], 1_700_000_000_000_000
    for ev in history:
        at += 1_000
        live = evolve(live, ev, at, live.seq + 1)
        events.append(PendingEvent(ev, "device", at, "admin", "cmd"))
    renewal = live.trustpoints[tp].renewal
    assert renewal is not None and renewal.phase.value == "idle"  # cancelled by commit 2
    for frame in (1, 3):
        assert fast_replay(events, frame, RUN_MAX) == live


def test_a_commit_that_changes_the_trustpoint_resets_the_back_off_as_the_live_folds_do() -> None:
    """Two failed attempts (the next one due four retry periods later), then a run of
    commits: one that touches no trustpoint (the back-off stays), then one that changes the
    trustpoint's lines (engine/renewal/folds.py `reconfigured`: the count starts again and
    the retry is brought forward to one retry period after that commit)."""
    def commit_of(commit_id: int, *changes: Change) -> ConfigurationCommitted:
        return ConfigurationCommitted(commit_id, "admin", "", "",
                                      tuple(c.to_wire() for c in changes), 0)

    tp, key, head = "ca1", KEY_IDS[0], ("crypto ca trustpoint ca1",)
    far = 2**51  # the backed-off retry, after the commits
    history: list[Event] = [
        commit_of(1, Change(head, None, "crypto ca trustpoint ca1"),
                  Change((*head, "enrollment"), None, "enrollment url http://ca1.example"),
                  Change((*head, "auto-enroll"), None, "auto-enroll 80")),
        CACertificateAccepted(tp, b"ca", (), ("POSTPKIOperation",), "scep"),
        EnrollmentRequested(tp, (key,), ("general",), ("t0",), "CN=r1", ("F1",), "scep", 1, 3),
        CertificateReceived(tp, key, "general", b"cert", "t0"),
        RenewalRequested(tp, "renew", (key,), ("general",), ("t1",), "CN=r1", "pkcsreq", 1, 3),
        RenewalFailed(tp, "renew", "t1", "failure", "", "refused", 9_000_000),
        RenewalRequested(tp, "renew", (key,), ("general",), ("t2",), "CN=r1", "pkcsreq", 1, 3),
        RenewalFailed(tp, "renew", "t2", "failure", "", "refused", far),
        commit_of(2, Change(("hostname",), None, "hostname r1")),
        commit_of(3, Change((*head, "description"), None, "description fixed the CA")),
    ]
    live, events, at = DeviceState(), [], 1_700_000_000_000_000
    states = []
    for ev in history:
        at += 1_000
        live = evolve(live, ev, at, live.seq + 1)
        events.append(PendingEvent(ev, "device", at, "admin", "cmd"))
        states.append(live)
    kept = states[-2].trustpoints[tp].renewal
    assert kept is not None and (kept.failures, kept.next_attempt_at) == (2, far)
    renewal = live.trustpoints[tp].renewal
    assert renewal is not None and renewal.phase.value == "retrying"
    assert (renewal.failures, renewal.next_attempt_at) == (0, at + 60_000_000)
    for frame in (1, 3):
        assert fast_replay(events, frame, RUN_MAX) == live
