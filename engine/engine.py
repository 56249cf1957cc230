"""The Engine: opens a data directory, folds its log into state, and executes command lines.

    engine = Engine.open("/var/lib/trustledger")
    result = engine.execute("show running-config")
    print(result.output)

One command = one atomic append: its events are written and made durable as one batch before
the state moves and before `execute` returns. A command that fails (bad syntax, a refused
state transition, a peer error, the operator saying no) appends nothing. Neither does one whose
append fails (a full disk, an I/O error): the log cuts itself back to the last acknowledged
frame (events/filelog.py), the state does not move, the keys it made are discarded, and the
operator reads `% Could not write the event log: <reason>. Nothing was changed.`
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import engine.commands  # noqa: F401  (registers every command into GRAMMAR)
from engine import pipe, snapshot
from engine.audit.note import NoteError, verify_note
from engine.audit.trail import AuditMismatch, AuditTrail, open_trail, read_saved
from engine.config import Change, ConfigConflict
from engine.context import Ctx
from engine.devicelog import DeviceLog, LogConflict, StoreLost
from engine.effects import Outcome
from engine.errors import OperatorError, Reason, TrustledgerError, ambiguous
from engine.folds import UnfoldedEvent
from engine.grammar import GRAMMAR, Mode, hide_userinfo
from engine.keys import KeyAlgorithm
from engine.keytidy import KEYSTORE_DIR, ORPHANED_DIR, tidy_keystore
from engine.logsetup import get_logger
from engine.parser import (
    Choice,
    Match,
    choices,
    complete_word,
    help_ambiguous,
    parse,
    render_choices,
)
from engine.ports import Clock, EngineClock, FakeClock, PinnedClock, Prompter, SystemClock
from engine.revocation.store import CRL_DIR, CrlBlobs, FileCrlBlobs, MemoryCrlBlobs, crl_blobs_of
from engine.runtime import Ports, drive, perform, queue, require_utf8, run
from engine.schedule import Job, due_jobs, walk, walk_cut_short
from engine.session import Session
from engine.state import DeviceState, evolve, replay_rows
from engine.storebinding import STORE_FILE
from engine.system import ACTOR, CORRELATION, make_audit_key, record_builtins
from engine.trustpoints import trustpoint_names
from engine.trustpool.builtin import BuiltinSource
from events.filelog import FileEventLog, LogCorrupted, LogError, LogWriteFailed
from events.memory import MemoryEventLog
from events.registry import UnknownEventType, event_from
from events.store import EventStore, PendingEvent, Recorded
from projections.render import render

if TYPE_CHECKING:
    from datetime import datetime

    from engine.audit.cosigner import Cosigner  # the first checkpoint's witness round-trip
    from engine.audit.witness_client import LeafSource, Witness
    from engine.keystore import KeyGenerator, Keystore
    from engine.scep_client import ScepTransport  # loaded by the first CA exchange
    from engine.validation.chain import ChainInput
    from engine.validation.verdict import Purpose, Verdict

logger = get_logger("trustledger.engine")


class DueWork(NamedTuple):
    """A scheduled job performed against the state at `seq`, not yet appended. (A
    NamedTuple: every open defines it, and a frozen dataclass costs ~0.3 ms to define;
    issue 12.)"""

    job: Job
    now: int
    seq: int
    outcome: Outcome | None
    error: TrustledgerError | None
    output: list[str]


@dataclass
class Result:
    """What one executed line did, for programs that embed the engine."""

    output: str
    events: list[Recorded] = field(default_factory=list)
    error: TrustledgerError | None = None
    prompt: str = ""
    due: list[Result] = field(default_factory=list)  # the jobs a `clock set` ran, in order

    @property
    def ok(self) -> bool:
        return self.error is None



_NOT_BY_DO = ("configure", "exit")
"""Exec commands `do` refuses from a configuration mode (`do ?` does not list them)."""


class Engine:
    def __init__(self, store: EventStore, state: DeviceState, ports: Ports,
                 data_dir: Path | None, user: str) -> None:
        self.store = store
        self.state = state
        self.ports = ports
        self.data_dir = data_dir
        self.session = Session(user=user)
        self.grammar = GRAMMAR
        self._since_snapshot = 0
        self._failure: TrustledgerError | None = None
        self._walked: list[Result] = []  # the jobs the current `clock set` ran
        self._line = ""
        self.recovered: str | None = None  # what opening the log repaired (a torn tail)
        self.snapshots_ignored: list[snapshot.Ignored] = []  # passed over at open, and why
        self.notices: list[str] = []  # other things opening the data directory did or found
        self._grouped: DeviceState | None = None  # the state a group_commit() block began at
        self.audit: AuditTrail | None = None  # the log's audit trail, once it has a key
        self.log: DeviceLog | None = None  # the store as a data directory's log (not memory)
        self._cosigner: Cosigner | None = None  # co-signs checkpoints, once one is asked
        self._closed = False  # close() ran: the log's writer lock is released

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], *, clock: Clock | None = None,
             prompter: Prompter | None = None, user: str | None = None,
             write: Callable[[str], None] | None = None, use_snapshots: bool = True,
             keygen: KeyGenerator | None = None, scep: ScepTransport | None = None,
             builtins: BuiltinSource | None = None, audit: bool = False,
             log: DeviceLog | None = None) -> Engine:
        """Open (or create) a device's data directory: the log in `log/`, snapshots in
        `snapshots/`, the keystore in `keystore/` and `master.key`. Ports left None get their
        real adapters (system clock, cryptography key generation, httpx SCEP transport).
        `builtins`: where the trustpool's built-in bundle comes from (the CLI passes
        `engine.trustpool.builtin.certifi_bundle`), recorded when the log does not hold this
        one yet; None (the default, for programs that embed the engine and have a trust
        store of their own): not looked at, the log stays as it is. `audit`: make the log's
        audit key if it has none yet (the CLI does; engine/audit/). A log that has one keeps
        its audit trail and is checked against its latest checkpoint either way. `log`: the
        device's log when it is not the data directory's own file log (a stream in a shared
        store, engine/sharedlog.py; the engine closes it); the keystore, snapshots and audit
        trail stay in the data directory."""
        root = Path(data_dir)
        if log is None and (root / STORE_FILE).is_file():
            bound = root / STORE_FILE
            raise LogError(f"Data directory {root} keeps its log in a shared store ({bound} "
                           "names it): open it with that store (the CLI does; "
                           "engine/storebinding.py), not as a file log.", sentence=True)
        for private in (root, *([root / "log"] if log is None else [])):
            private.mkdir(mode=0o700, parents=True, exist_ok=True)  # whatever the umask
        with contextlib.suppress(FileExistsError):  # a file there: no snapshot (a cache)
            (root / "snapshots").mkdir(mode=0o700, exist_ok=True)
        if log is None:
            log = FileEventLog.open(root / "log")
        try:
            ignored: list[snapshot.Ignored] = []
            found = _newest_snapshot(root, log, ignored, use_snapshots)
            if log.recovered:
                logger.warning("event log repaired at open", repaired=log.recovered)
            snapshot.remove_leftovers(root / "snapshots")
            for bad in ignored:
                logger.warning("snapshot ignored", path=str(bad.path), reason=bad.reason)
            state, rows = found or (DeviceState(), log.read_rows(typed=True))
            covered = state.seq
            state = replay_rows(state, rows)
        except UnfoldedEvent as err:
            foreign = _foreign_log(root, log)
            log.close()
            if foreign is not None:
                raise foreign from err
            raise
        except BaseException:
            log.close()
            raise
        ports = Ports(data_dir=root, clock=EngineClock(clock or SystemClock(),
                                                       state.clock_offset_us),
                      prompter=prompter, render=render, write=write, keygen=keygen, scep=scep,
                      crl_blobs=crl_blobs_of(log, FileCrlBlobs(root / CRL_DIR)))
        engine = cls(log, state, ports, root, user or _default_user())
        engine.log = log
        try:
            engine._open_audit(log, create=audit)  # before anything is appended
        except BaseException:
            log.close()
            raise
        engine.recovered = log.recovered
        engine.snapshots_ignored = ignored
        engine._since_snapshot = state.seq - covered  # so close() replaces an ignored snapshot
        engine._tidy_keystore(log)
        if builtins is not None:
            engine._record_builtins(builtins)
        return engine

    def _record_builtins(self, source: BuiltinSource) -> None:
        """Record the shipped trustpool bundle if the log does not hold it yet (the first
        open, or an upgrade brought another): a system command (engine/system.py)."""
        outcome = run(record_builtins(self.state, source), self.ports)
        try:
            self._append_system(outcome)
        except LogWriteFailed as err:
            self.notices.append(f"%PKI-4-TRUSTPOOL_BUILTIN: the built-in CA bundle could not "
                                f"be recorded ({err.reason}); it is tried again at the next "
                                "open.")

    def _append_system(self, outcome: Outcome) -> list[Recorded]:
        """Append a system command's events (engine/system.py) as one batch, by the actor
        `system`, at the time they are appended, and fold them."""
        if not outcome.events:
            return []
        now = self.ports.clock.now_us()
        records = self.store.append([PendingEvent(ev, outcome.stream, now, ACTOR, CORRELATION)
                                     for ev in outcome.events])
        self.fold(records)
        return records

    def _tidy_keystore(self, log: DeviceLog) -> None:
        """Finish what an interrupted key write or zeroize left, and move aside the data keys
        the log does not know (engine/keystore.py, "Files and failures")."""
        assert self.data_dir is not None
        live = _live_key_ids(self.state)
        try:
            tidied = tidy_keystore(self.data_dir, live, lambda: _zeroized_key_ids(log))
        except OSError as e:
            self.notices.append(f"%KEYS-4-TIDY: the keystore could not be tidied ({e}); data "
                                "keys of zeroized keys may remain until the next open.")
            return
        if tidied.destroyed:
            self.notices.append(f"%KEYS-4-TIDY: destroyed {len(tidied.destroyed)} data key(s) "
                                "of keys the log says were zeroized (an unfinished zeroize).")
        if tidied.orphaned:
            aside = self.data_dir / KEYSTORE_DIR / ORPHANED_DIR
            self.notices.append(f"%KEYS-4-ORPHANED: moved {len(tidied.orphaned)} data key(s) "
                                f"the log does not know to {aside} (a key generation that did "
                                "not complete, or a log restored from an older backup)")

    @classmethod
    def in_memory(cls, *, clock: Clock | None = None, prompter: Prompter | None = None,
                  user: str = "admin", keygen: KeyGenerator | None = None,
                  scep: ScepTransport | None = None) -> Engine:
        ports = Ports(clock=EngineClock(clock or SystemClock()), prompter=prompter,
                      keygen=keygen, scep=scep, render=render, crl_blobs=MemoryCrlBlobs())
        return cls(MemoryEventLog(), DeviceState(), ports, None, user)

    @classmethod
    def frozen(cls, state: DeviceState, at: int = 0,
               crl_blobs: CrlBlobs | None = None) -> Engine:
        """An engine over a replayed state, as it was at `at` (µs; the clock stands still
        there): show commands work; anything that would append an event, or perform an
        effect other than printing (a CA exchange, a question, a key), is refused. Audit
        replays never change history and never touch the network. `crl_blobs`: where the
        CRLs the log names are read (a data directory's `crls/`), for revocation decisions."""
        ports = Ports(clock=FakeClock(at), offline=True, render=render, crl_blobs=crl_blobs)
        return cls(_ReadOnlyStore(state.seq), state, ports, None, "auditor")

    def close(self) -> None:
        """Snapshot, write the audit trail out, release the log. A second close does nothing;
        executing on a closed engine raises ValueError (its log is no longer locked for it)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.log is not None and self._since_snapshot:
                self._snapshot()
            if self.audit is not None:
                said = self.witness_results()  # a round-trip still in flight is abandoned
                if said:
                    self.ports.say(said)
                self.audit.write_out()
        finally:  # the writer lock is given back whatever failed before
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def _require_open(self) -> None:
        if self._closed:
            raise ValueError("this Engine is closed: open the data directory again")

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def crl_blobs(self) -> CrlBlobs:
        """Where the CRLs the log names are stored (engine.revocation.store)."""
        if self.ports.crl_blobs is None:
            self.ports.crl_blobs = MemoryCrlBlobs()
        return self.ports.crl_blobs

    # -- executing -----------------------------------------------------------------------------

    @property
    def prompt(self) -> str:
        return self.session.mode.prompt(self.state.hostname)

    def execute(self, line: str, answers: Iterable[str] | None = None) -> Result:
        """Run one line as typed at the prompt. Errors come back in `Result.error`."""
        self._require_open()
        self.ports.out = []
        self.ports.answers = queue(answers)
        width = len(self.prompt)
        self._failure = None
        self._walked = []
        try:
            records = self._execute(line)
        except TrustledgerError as err:
            self.ports.say(err.render(width) + "\n")
            return Result(_joined(self.ports.out), [], err, self.prompt, self._walked)
        return Result(_joined(self.ports.out), records, self._failure, self.prompt,
                      self._walked)

    def _execute(self, line: str) -> list[Recorded]:
        if len(line) > 4096:
            raise OperatorError(Reason.INVALID_INPUT, "Line too long (4096 characters at most).")
        line = line.rstrip("\r\n")
        if any((ord(ch) < 32 and ch != "\t") or ch == "\x7f" for ch in line):
            raise OperatorError(Reason.INVALID_INPUT, "Control characters are not allowed.")
        require_utf8(line)
        if line.rstrip().endswith("?"):
            self.ports.say(self.help(line.rstrip()[:-1]) + "\n")
            return []
        self._line = line
        self._follow_other_writers()
        piped = pipe.split(line)
        if piped is not None:
            return self._piped(line, *piped)
        return self._run_line(line)

    def _run_line(self, line: str) -> list[Recorded]:
        match, pops = self._parse(line)
        if match is None:
            return []
        for _ in range(pops):
            self.session.exit()
        return self._dispatch(match)

    def _piped(self, line: str, head: str, bar: int) -> list[Recorded]:
        """`show ... | modifier [| modifier ...]`: the show's output is held back, filtered by
        each modifier in turn, then printed."""
        modifiers = pipe.parse_modifiers(line, bar)
        write, self.ports.write = self.ports.write, None
        start = len(self.ports.out)
        try:
            records = self._run_line(head)
        finally:
            self.ports.write = write
            text = "".join(self.ports.out[start:])
            del self.ports.out[start:]
        self.ports.say(pipe.apply_all(modifiers, text))
        return records

    def help(self, text: str) -> str:
        """What `?` shows after `text` in the current mode (after `do `, in exec mode)."""
        found = self._choices(text)
        if not found and pipe.split(text) is None and help_ambiguous(self.grammar,
                                                                     *self._help_context(text)):
            return str(ambiguous(text))
        return render_choices(found)

    def complete(self, text: str) -> str | None:
        """Tab: the word a unique partial last word completes to (with a trailing space)."""
        if not text or text[-1].isspace():
            return None
        words = {c.word for c in self._choices(text) if c.keyword}
        return words.pop() + " " if len(words) == 1 else None

    def completions(self, text: str) -> list[Choice]:
        """What Tab may put in place of the partial last word: keywords and known values."""
        if text and text[-1].isspace():
            return []
        return [c for c in self._choices(text) if c.keyword]

    def _choices(self, text: str) -> list[Choice]:
        """`?` after `text`: the grammar's choices, `|` after a complete show command, the
        modifiers after `|`, and the values of arguments the engine knows (trustpoint names,
        key labels), which a partial word lists as if they were keywords."""
        piped = pipe.split(text)
        if piped is not None:
            return pipe.help_after(text, piped[1])
        mode, rest = self._help_context(text)
        found = choices(self.grammar, mode, rest)
        complete_words = rest.split() if rest[-1:].isspace() else rest.split()[:-1]
        if mode is not self.session.mode and not complete_words:  # `do ?`: what `do` runs
            found = [c for c in found if c.word not in _NOT_BY_DO]
        if pipe.is_show(text) and any(c.word == "<cr>" for c in found):
            found.append(pipe.PIPE_CHOICE)
        partial = bool(rest.strip()) and not rest[-1:].isspace()
        want = rest.split()[-1] if partial else ""
        out: list[Choice] = []
        for c in found:
            if c.source and partial:
                out += [Choice(v, c.help, True) for v in self._values(c.source)
                        if v.startswith(want)]
                out.append(c)  # the word may name a new one (`crypto ca trustpoint NEW`)
            else:
                out.append(c)
        return out

    def _values(self, source: str) -> list[str]:
        if source == "trustpoint":
            return sorted(trustpoint_names(self.state))
        if source in ("rsa", "ecdsa", "ed25519"):
            return list(self.state.keys.labels(KeyAlgorithm(source)))
        if source == "key":
            return sorted({lb for a in KeyAlgorithm for lb in self.state.keys.labels(a)})
        return []

    def _help_context(self, text: str) -> tuple[Mode, str]:
        words = text.split(maxsplit=1)
        if self.session.mode is Mode.EXEC:
            return self.session.mode, text
        if len(words) == 2 and (words[0].lower() == "do" or complete_word(  # not `d`: domain
                self.grammar, self.session.mode, words[0]) == "do "):
            return Mode.EXEC, words[1] if not text[-1:].isspace() else words[1] + " "
        if len(words) == 1 and words[0].lower() == "do" and text[-1:].isspace():
            return Mode.EXEC, ""  # `do ?` lists what exec mode takes, as `do show ?` does
        return self.session.mode, text

    def _parse(self, line: str) -> tuple[Match | None, int]:
        """Parse in the current mode; a line a submode does not know is tried in the modes
        above it (as IOS does), and a match there leaves the submode."""
        first_error: TrustledgerError | None = None
        for pops, (mode, _path) in enumerate(reversed(self.session.modes)):
            try:
                return parse(self.grammar, mode, line, typed=True), pops
            except TrustledgerError as err:
                if first_error is None:
                    first_error = err
                if mode is not Mode.TRUSTP and mode is not Mode.TRUSTPOOL:
                    break
        assert first_error is not None
        raise first_error

    def _dispatch(self, match: Match) -> list[Recorded]:
        cmd = match.command
        if cmd.handler is None:
            self._edit_config(match)
            return []
        now = self.ports.clock.now_us()
        ctx = Ctx(self.state, self.session, now, self.session.user, match, self.grammar,
                  self._line)
        outcome = run(cmd.handler(ctx), self.ports)
        if "do" in outcome.extra:
            return self._do(outcome.extra["do"])
        records = self._apply(outcome, now)
        if any(r.type == "ClockSet" for r in records):
            self._walk(now)
        return records

    def _walk(self, before: int) -> None:
        """After a `clock set` forward: run the jobs due up to the new time, in order, each at
        its own time, as its own command (engine/schedule.py). Moving back runs nothing. While
        a step runs, the engine clock reads that step's time (so whatever follows it, such as a
        test's CA, is at the same moment as the job); it reads the set time again after."""
        until = self.ports.clock.now_us()
        if until <= before:
            return
        out, failure = self.ports.out, self._failure
        clock = self.ports.clock if isinstance(self.ports.clock, EngineClock) else None
        offset = None if clock is None else clock.offset_us
        try:
            for step in walk(lambda: self.state, before, until):
                if clock is not None and offset is not None:  # the world is at the step's
                    clock.offset_us = offset + step.now - until  # moment while it runs
                result = self.commit_due(self._perform(step.job, step.now))
                if result is not None:
                    self._walked.append(result)
                    out.append(result.output)
            if walk_cut_short(self.state, until, len(self._walked)):
                self.ports.out = out
                self.ports.say(f"%SCHED-4-WALK_LIMIT: clock set ran {len(self._walked)} "
                               "scheduled jobs; what is still due runs from now on, at the "
                               "current time.\n")
        finally:
            if clock is not None and offset is not None:
                clock.offset_us = offset
            self.ports.out, self._failure = out, failure

    def _do(self, line: str) -> list[Recorded]:
        """`do <exec command>` from a configuration mode: run it as exec, stay in the mode."""
        try:
            match = parse(self.grammar, Mode.EXEC, line, typed=True)
        except TrustledgerError as err:
            if err.caret is not None:  # point into the whole line, not the part after `do`
                err.caret += max(self._line.rfind(line), 0)
            raise
        if match is None:
            return []
        if match.command.name.startswith("configure"):
            raise OperatorError(Reason.NOT_ALLOWED, "Already in configuration mode.")
        if match.command.name == "exit":  # it would end nothing: the frontends end sessions
            raise OperatorError(Reason.NOT_ALLOWED, "'exit' is not run with 'do': type 'exit' "
                                                    "or 'end' to leave configuration mode.")
        saved = list(self.session.modes)
        self.session.modes = [(Mode.EXEC, ())]
        try:
            return self._dispatch(match)
        finally:
            self.session.modes = saved

    def _edit_config(self, match: Match) -> None:
        cmd, session = match.command, self.session
        assert session.target is not None
        path = (*session.path, cmd.key_for(match.args))
        if cmd.removes is not None:
            _check_no_form(session.target.line(path), cmd.key_for(match.args),
                           match.args.get("rest"))
            session.edit(session.target.removal(path))
            return
        old = session.target.line(path)
        if old != match.text:
            session.edit([Change(path, old, match.text)])
        if cmd.enters is not None:
            session.enter(cmd.enters, path)

    def _apply(self, outcome: Outcome, now: int) -> list[Recorded]:
        records: list[Recorded] = []
        if outcome.then and self._grouped is not None:
            raise OperatorError(Reason.NOT_ALLOWED, "This command cannot run inside a group "
                                                    "commit (what it does must follow a "
                                                    "durable append).")
        if outcome.events:
            self._require_folded()
            corr = f"cmd:{self.store.head[0] + 1}"
            batch = [PendingEvent(ev, outcome.stream, now, self.session.user, corr)
                     for ev in outcome.events]
            try:
                records = self.store.append(batch)
            except LogWriteFailed as err:
                raise self._append_failed(err) from err
            except LogConflict as err:
                raise self._conflict(err, outcome.commit_done) from err
            except (OverflowError, TypeError) as err:  # a value the log cannot encode
                raise self._unencodable(err) from err
            self.fold(records)
            for eff in outcome.then:
                perform(eff, self.ports)
        session = self.session
        if outcome.edits:
            try:
                session.edit(list(outcome.edits))
            except ConfigConflict as err:
                raise OperatorError(Reason.INVALID_VALUE, f"{err}") from err
        if outcome.commit_done:
            session.commit(self.state.config)
        if outcome.abort:
            session.abort()
        if outcome.enter is not None:
            if session.mode is Mode.EXEC:
                session.configure(self.state.config)
            if outcome.enter[0] is not Mode.CONFIG:
                session.enter(*outcome.enter)
        if outcome.leave == "exec":
            session.end()
        elif outcome.leave == "one":
            session.exit()
        output = self.ports.render(outcome.output)
        if output:
            self.ports.say(output if output.endswith("\n") else output + "\n")
        self._failure = outcome.failure
        return records

    def _require_folded(self) -> None:
        """Nothing is appended on top of events this engine has not folded (a shared log's
        catch-up that could not read them): the command would decide on an older state
        than the log's, and the store would take its events after the others'. (A replay's
        read-only store has no log: its refusal is its own.)"""
        head = self.log.head[0] if self.log is not None else self.state.seq
        if head != self.state.seq:
            raise OperatorError(Reason.NOT_ALLOWED, (
                f"Another engine of this device appended seq {self.state.seq + 1}-{head}, "
                "which this one could not read yet: nothing was written. Enter the command "
                "again once the event store answers."))

    def _unencodable(self, err: Exception) -> TrustledgerError:
        """An event holds a value the log's encoding cannot carry (a bug: event fields are
        chosen to fit msgpack). Sealing encodes before anything is written or folded, so the
        log and state are untouched: refuse the command like a failed write, and discard the
        data keys it made (no event names them)."""
        return self._append_failed(LogWriteFailed(ValueError(
            f"an event cannot be encoded ({err})"), True))

    def _conflict(self, err: LogConflict, commit: bool = False) -> TrustledgerError:
        """Another engine appended to this device's log (a shared store) since this one read
        it: the command's events were not written. Discard the data keys it made, catch up
        (fold what the other engine appended, so the next command decides on it) and say so.

        A refused `commit` also discards the session's uncommitted changes and leaves any
        submode: they were made against a running configuration that is not the current
        one any more (IOS XR would refuse to commit them: "running configuration changed"),
        and kept, they would make the next `end` ask whether to commit them, a question a
        script cannot foresee (it would take the script's next line as the answer). The
        session is left in configuration mode with nothing pending, as after a commit."""
        self._discard_unrecorded_keys()
        self.catch_up()
        if not commit or self.session.target is None:
            return OperatorError(Reason.NOT_ALLOWED, f"{err.text} This command changed "
                                 f"nothing; caught up to seq {self.state.seq}: enter it "
                                 "again if it still applies.")
        session = self.session
        while session.mode not in (Mode.EXEC, Mode.CONFIG):
            session.exit()
        session.base = session.target = self.state.config
        return OperatorError(Reason.NOT_ALLOWED, f"{err.text} This commit changed nothing; "
                             f"caught up to seq {self.state.seq}. Its uncommitted changes "
                             "were discarded: enter them again if they still apply.")

    def _follow_other_writers(self) -> None:
        """Before a command in EXEC mode, fold what other engines of this device appended to
        a shared log meanwhile (a second shell's commit, `exec` or `validate`), so that what
        `show` prints and what the command decides on is what the log says, not this
        engine's older view. A configuration session keeps the running configuration it
        started from: its commit is refused if another writer appended meanwhile
        (`_conflict`). A store that cannot be reached is not a reason to refuse a `show`:
        the command runs on what this engine has folded, and an append says what failed."""
        if self.log is None or self.session.base is not None:
            return
        try:
            self.catch_up()
        except (LogCorrupted, UnknownEventType, TrustledgerError) as err:  # damaged, or newer
            why = err.text if isinstance(err, (LogError, TrustledgerError)) else str(err)
            raise OperatorError(Reason.NOT_ALLOWED, (
                f"Another engine of this device appended events this one cannot fold "
                f"({why.rstrip('.')}): nothing was run. Open the device again to see what "
                "its log holds.")) from None
        except LogError:  # the store is away or refused: `_apply` appends nothing on top of
            return        # what stays unfolded, and says what failed

    def catch_up(self) -> int:
        """Fold what other writers of a shared log appended since this engine's head; how
        many events that was. The open session's uncommitted edits stay as they are."""
        self._require_open()
        if self.log is None:
            return 0
        self.log.refresh()
        if self.log.head[0] == self.state.seq:
            return 0
        records = list(self.log.read(self.state.seq + 1))
        if records:
            self.fold(records)
        return len(records)

    def _discard_unrecorded_keys(self) -> None:
        """Best effort: the data keys no event names (a command's whose append failed)."""
        with contextlib.suppress(OSError, TrustledgerError):
            store = _keystore(self.ports)
            live = set(_live_key_ids(self.state))
            for key_id in store.key_ids():
                if key_id not in live:
                    store.discard(key_id)

    def _append_failed(self, err: LogWriteFailed) -> TrustledgerError:
        """The command's events are not in the log: discard the data keys it made (no event
        names them) and say so. Best effort: `tidy_keystore` finishes it at the next open.
        If the log could not be cut back, the frame may be found at the next open: its keys
        are kept until then (that open's `tidy_keystore` moves them aside if it is not found)."""
        if isinstance(err, StoreLost):  # a shared store: it says what became of the command
            if err.rolled_back:
                self._discard_unrecorded_keys()
            return OperatorError(Reason.NOT_ALLOWED, f"Could not write the event log: "
                                                    f"{err.reason}. {err.outcome}")
        if err.rolled_back:
            self._discard_unrecorded_keys()
            return OperatorError(Reason.NOT_ALLOWED, f"Could not write the event log: "
                                                    f"{err.reason}. Nothing was changed.")
        return OperatorError(Reason.NOT_ALLOWED, (
            f"Could not write the event log: {err.reason}. The log could not be cut back "
            "either: it takes no more commands until the data directory is reopened, and "
            "this command may then be found in it."))

    def run_due(self) -> list[Result]:
        """Run the scheduled work due at the engine clock's now (enrollment polls, ...), each
        job as one command by the actor `scheduler`. Frontends call this between commands."""
        self._require_open()
        results = []
        said = self.witness_results()  # asynchronous messages: the witnesses' answers
        if said:
            self.ports.out = []
            self.ports.say(said)
            results.append(Result(said, [], None, self.prompt, []))
        now = self.ports.clock.now_us()
        for job in due_jobs(self.state, now):
            result = self.commit_due(self._perform(job, now))
            if result is not None:
                results.append(result)
        return results

    def perform_due(self) -> list[DueWork]:
        """Perform the jobs due now (their CA exchanges, bounded by the transport's deadline)
        and append nothing; `commit_due` appends each one later. Safe to call from another
        thread while a command runs: it reads the state once and uses ports of its own."""
        self._require_open()
        now = self.ports.clock.now_us()
        jobs = due_jobs(self.state, now)
        if jobs:
            from engine.scep_client import transport_of

            transport_of(self.ports)  # one transport for the engine, not one per job
        return [self._perform(job, now) for job in jobs]

    def _perform(self, job: Job, now: int) -> DueWork:
        state = self.state
        # Nobody is at the keyboard for scheduled work: a job that asked would fail. The job
        # runs at `now`: `yield Now()` in it answers that time (a `clock set` walk's step).
        ports = replace(self.ports, prompter=None, answers=queue(()), out=[], write=None,
                        clock=PinnedClock(now))
        try:
            return DueWork(job, now, state.seq, run(job.run(state, now), ports), None,
                           ports.out)
        except TrustledgerError as err:
            return DueWork(job, now, state.seq, None, err, ports.out)

    def commit_due(self, work: DueWork) -> Result | None:
        """Append what a performed job decided, as a command by the actor `scheduler`, and
        print its output. A job performed against a state that has moved on since (a command
        ran meanwhile) is dropped: None; it runs again if it is still due."""
        self._require_open()
        if work.seq != self.state.seq:
            return None
        self.ports.out = []
        self.ports.answers = queue(())
        self._failure = None
        for text in work.output:
            self.ports.say(text)
        user, self.session.user = self.session.user, "scheduler"
        try:
            if work.error is not None:
                raise work.error
            assert work.outcome is not None
            records = self._apply(work.outcome, work.now)
        except TrustledgerError as err:
            self.ports.say(f"%PKI-3-{work.job.name.split()[0].upper()}: {err.text}\n")
            return Result(_joined(self.ports.out), [], err, self.prompt)
        finally:
            self.session.user = user
        return Result(_joined(self.ports.out), records, self._failure, self.prompt)

    @contextlib.contextmanager
    def group_commit(self) -> Iterator[None]:
        """For bursts of `validate_peer` (a gateway's handshakes): every event appended
        inside the block is made durable by ONE fdatasync at its end, instead of one each.
        Nothing appended inside is durable before the block ends: a crash inside loses the
        block's records (whole events, never part of one), so a caller that must not act on
        an unrecorded decision validates outside a block. If a write or the closing sync
        fails, the log keeps only what was acknowledged before: the state is refolded from
        it, and the error is raised. Commands that act once their events are durable
        (`crypto key zeroize`) are refused inside. Blocks do not nest (an inner one is part
        of the outer); an engine without a file log has nothing to sync. Over a shared store
        the block is one transaction; another writer's append meanwhile refuses all of it
        (`LogConflict`: the engine catches up, as after a refused command)."""
        log = self.log
        if self._grouped is not None or log is None:
            yield
            return
        self._grouped = self.state
        conflict: LogConflict | None = None
        try:
            with log.group_commit():
                yield
        except LogWriteFailed as err:
            raise self._append_failed(err) from err
        except LogConflict as err:
            conflict = err
        finally:
            before, self._grouped = self._grouped, None
            if self.state.seq != log.head[0]:  # the log cut back what it could not sync
                self.state = before if log.head[0] == before.seq else replay_rows(
                    before, log.read_rows(before.seq + 1, typed=True))  # (a lost store: no read)
                self._forget_unlogged_audit(log)
        if conflict is not None:
            raise self._conflict(conflict) from conflict
        if self._since_snapshot >= snapshot.EVERY and self.data_dir is not None:
            self._snapshot()

    def validate_peer(self, chain: ChainInput, purpose: Purpose | str, at: datetime | int,
                      peer_name: str | None = None) -> Verdict:
        """Decide whether to trust a peer's certificate chain (engine/validation/): the
        verdict is recorded (`PeerValidated`, after the CRLs fetched for it), one atomic
        append like a command's. `chain`: PEM or DER, bytes or a list (the peer's own
        certificate first); `purpose`: ike, tls-server, tls-client or any; `at`: an aware
        datetime or µs since the epoch. A frozen (replay) engine decides without fetching
        or recording. ValueError for a purpose or time that is not one."""
        from engine.validation.decide import decide_validation
        from engine.validation.validate import moment_us, validate
        from engine.validation.verdict import Purpose

        self._require_open()
        when, kind = moment_us(at), Purpose(purpose)
        if self.ports.offline:
            return decide_validation(self.state, self.crl_blobs, chain, kind, when, peer_name)
        self.ports.out = []
        now = self.ports.clock.now_us()
        verdict, events = drive(validate(self.state, self.crl_blobs, chain, kind, when,
                                         peer_name, now), self.ports)
        self._apply(Outcome(events=events), now)
        return verdict

    def fold(self, records: Iterable[Recorded]) -> None:
        state = self.state
        records = list(records)
        for rec in records:
            state = evolve(state, rec.event, rec.at, rec.seq)
            self._since_snapshot += 1
        self.state = state
        if self.audit is not None and self.log is not None and \
                self.audit.observe(records, self.log.position):
            self._checkpoint()
        if isinstance(self.ports.clock, EngineClock):  # a frozen replay's clock stands still
            self.ports.clock.offset_us = state.clock_offset_us
        if (self._since_snapshot >= snapshot.EVERY and self.log is not None
                and self._grouped is None):
            self._snapshot()  # never inside group_commit(): it would cover unsynced events

    def _snapshot(self) -> None:
        """Save a snapshot; it is a cache, so failing to write one is said, never raised
        (the command that triggered it is already durable). The one place that decides a
        snapshot was written: what must follow a written snapshot goes after `save`."""
        assert self.data_dir is not None and self.log is not None
        self._since_snapshot = 0  # a failed write is retried EVERY events later, not per command
        try:
            snapshot.save(self.data_dir / "snapshots", self.state, self.log.head,
                          self.log.position)
            self.log.mark_head()  # its step writes the audit trail too
        except OSError as e:  # said as the engine's other messages are (%AUDIT-3-...)
            self.ports.say(f"%SNAPSHOT-4-NOT_WRITTEN: no snapshot written at event "
                           f"{self.state.seq} ({e}); the event log holds every event\n")
        except snapshot.SnapshotUnencodable as e:
            logger.error("snapshot not written: a bug", error=str(e), seq=self.state.seq)

    # -- the audit trail (engine/audit/) ---------------------------------------------------------

    def _open_audit(self, log: DeviceLog, create: bool) -> None:
        """Check the log against its audit trail (AuditMismatch refuses the open); make the
        audit key first if asked and there is none."""
        key = self.state.audit_key
        if key is None and read_saved(log.root) is not None:
            raise AuditMismatch(f"The event log {log.root} has an audit trail beside it but "
                                "no audit key: it is not the log the trail was kept for. "
                                "Refusing to open.")
        if key is None and create:
            self._create_audit_key()  # folded: no trail yet, so it is opened below
            key = self.state.audit_key
        if key is None:
            return
        ports = self.ports
        self.audit = open_trail(log.root, log, key, lambda: key.open(_keystore(ports)))
        log.on_mark = self.audit.on_mark
        log.while_syncing = self.audit.sign_pending
        try:  # the first checkpoint (the key, the upgrade), or those a crash kept back
            self.audit.sign_on_open()
        except TrustledgerError as err:
            self.notices.append(f"%AUDIT-3-CHECKPOINT: no checkpoint signed: {err.text}")

    def _forget_unlogged_audit(self, log: DeviceLog) -> None:
        """The tree (and any checkpoint signed inside a failed group) covered events the log
        does not hold: reopen the trail from its files, as the log is now. A checkpoint of
        such events must never be written out: another history may take those seqs."""
        if self.audit is None:
            return
        try:
            self._open_audit(log, create=False)
        except (TrustledgerError, LogError) as err:
            self.audit = None
            log.on_mark = None
            log.while_syncing = None
            self.ports.say(f"%AUDIT-3-CHECKPOINT: the audit trail is closed until the next "
                           f"open: {err.text}\n")

    def _create_audit_key(self) -> None:
        """Make, seal and record the audit key: a system command (engine/system.py). If it
        cannot be (a keystore or log write failed), the open goes on without it and says so;
        the next open tries again."""
        try:
            outcome = run(make_audit_key(self.state), self.ports)
        except (OSError, TrustledgerError) as err:
            why = err.text if isinstance(err, TrustledgerError) else (err.strerror or str(err))
            self.notices.append(f"%AUDIT-4-NO_KEY: the audit key could not be made ({why}); "
                                "it is tried again at the next open.")
            return
        try:
            self._append_system(outcome)
        except LogWriteFailed as err:
            from events.audit import AuditKeyCreated

            with contextlib.suppress(OSError, TrustledgerError):
                for ev in outcome.events:
                    if isinstance(ev, AuditKeyCreated):  # no event names its data key
                        _keystore(self.ports).discard(ev.key_id)
            self.notices.append(f"%AUDIT-4-NO_KEY: the audit key could not be recorded "
                                f"({err.reason}); it is tried again at the next open.")

    def _checkpoint(self) -> None:
        """Sign a checkpoint of the tree as it is (after a trust decision), synchronously;
        the witnesses' round-trip runs in the background (engine/audit/cosigner.py). The
        events are durable already: a key that cannot be opened is said, never raised."""
        assert self.audit is not None
        try:
            self.audit.checkpoint()
        except TrustledgerError as err:
            self.ports.say(f"%AUDIT-3-CHECKPOINT: no checkpoint signed: {err.text}\n")
            return
        self._submit_cosign()

    def _submit_cosign(self) -> bool:
        """Hand the latest checkpoint to the configured witnesses (`audit witness url ...`)
        that have not co-signed it; False if there is nothing to ask."""
        from engine.commands.witness import configured_witnesses

        configured = configured_witnesses(self.state.config)
        if not configured or self.audit is None or self.log is None:
            return False  # before `latest`, which waits for the signature being made
        latest = self.audit.latest
        if latest is None:
            return False
        from engine.audit.cosigner import Cosigner
        from engine.audit.cosigner import Job as CosignJob
        from engine.audit.witness_client import HttpxWitnessTransport, WitnessClient

        witnesses = tuple(w for w in configured if not _cosigned_by(latest.note, w))
        if not witnesses:
            return False
        if self._cosigner is None:
            if self.ports.witness is None:
                self.ports.witness = HttpxWitnessTransport()
            self._cosigner = Cosigner(WitnessClient(self.ports.witness),
                                      _reader_leaves(self.log))
        assert self.audit is not None
        self._cosigner.submit(CosignJob(witnesses, latest.note, latest.checkpoint,
                                  self.audit.range.copy()))
        return True

    def cosign_latest(self, timeout: float | None = None) -> str:
        """Have the witnesses co-sign the latest checkpoint and wait for them (`audit
        checkpoint`); what they said, as `witness_results` returns it."""
        self._require_open()
        said = self.witnesses_settled(timeout)  # a round-trip in flight may co-sign it
        if self._submit_cosign():
            said += self.witnesses_settled(timeout)
        return said

    def witnesses_settled(self, timeout: float | None = None) -> str:
        """Wait until the witnesses' round-trips are done (or `timeout` runs out), then
        `witness_results`."""
        if self._cosigner is not None:
            self._cosigner.wait(timeout)
        return self.witness_results()

    def write_out_audit(self) -> None:
        """Write the audit trail out now if it changed (the interactive shell, between
        commands): `audit export` and `audit prove` then see a checkpoint within a second of
        its decision, not only at the next command's head-marker step. A failure is logged;
        the next step writes it."""
        if self.audit is None or self.log is None or self._grouped is not None:
            return
        self.audit.write_out(self.log.head[0])

    def witness_results(self) -> str:
        """Apply what the witnesses answered since the last call (called between commands):
        cosignatures on the checkpoint they were asked for, if it is still the latest; the
        refusals and failures as `%AUDIT` lines (the events are durable: never raised)."""
        if self._cosigner is None or self.audit is None:
            return ""
        said: list[str] = []
        for done in self._cosigner.collect():
            latest = self.audit.latest
            if done.outcome.lines and latest is not None and latest.note == done.note:
                self.audit.add_cosignatures(done.outcome.lines)
            said.extend(m + "\n" for m in done.outcome.messages)
        return "".join(said)


def _reader_leaves(log: DeviceLog) -> Callable[[], contextlib.AbstractContextManager[LeafSource]]:
    """The log's leaves through a read-only log of its own (for the cosigner's thread)."""

    @contextlib.contextmanager
    def leaves() -> Iterator[LeafSource]:
        from engine.audit.witness_client import LogLeaves

        with log.reader() as reader:
            yield LogLeaves(reader.read_rows)

    return leaves


def _cosigned_by(note: bytes, witness: Witness) -> bool:
    try:
        verify_note(note, [witness.key])
    except NoteError:
        return False
    return True


def _newest_snapshot(root: Path, log: DeviceLog, ignored: list[snapshot.Ignored],
                     use: bool) -> tuple[DeviceState, snapshot.Rows] | None:
    """The state of the newest usable snapshot in `root`/snapshots and the log's rows after
    it (None without `use`), each file read once. A log that ends before the newest intact
    snapshot refuses to open, `use` or not: events it acknowledged are missing."""
    directory = root / "snapshots"
    try:
        if use:
            return snapshot.load_with_tail(directory, log, ignored)
        known = snapshot.newest_seq(directory)
        if known > log.head[0]:
            raise snapshot.LogBehind(known)
        return None
    except snapshot.LogBehind as e:
        raise LogError(
            f"event log {root / 'log'} ends at seq {log.head[0]}, but a snapshot of "
            f"seq {e.seq} exists: acknowledged events are missing. Restore the log "
            f"from a backup (or move {directory} aside to accept the loss).") from None


class ForeignLog(UnfoldedEvent):
    """A data directory whose log is a CA's or a witness's: said as such, not as events of a
    newer build (an UnfoldedEvent, so every reader refusing those refuses this too)."""

    def __init__(self, root: Path, stream: str, type_name: str, seq: int) -> None:
        owner, users = {"ca": ("a CA's", "`trustledger ca` commands"),
                        "witness": ("a witness's", "`trustledger audit witness` commands")
                        }.get(stream, (f"a {stream}'s", "another program"))
        OperatorError.__init__(self, Reason.INVALID_VALUE,
                               f"{root} is not a device's data directory: its log is "
                               f"{owner} (seq {seq} is {type_name}); {users} use it.")
        self.type_name, self.seq = type_name, seq


def _foreign_log(root: Path, log: DeviceLog) -> ForeignLog | None:
    """Why a log refused to fold, when its first event is not a device's."""
    try:
        first = next(iter(log.read_rows()), None)
    except (TrustledgerError, LogError):
        return None
    if first is None or first[1] == "device":
        return None
    return ForeignLog(root, first[1], first[2], first[0])


def _check_no_form(current: str | None, key: str, rest: str | None) -> None:
    """`no enrollment terminal` must not remove `enrollment url ...`: words typed after the
    key must match (as abbreviations) the configured line's words after the key."""
    if current is None or not rest:
        return
    have = current.split()[len(key.split()):]
    typed = rest.split()
    if len(typed) > len(have) or not all(h.lower().startswith(t.lower())
                                         for h, t in zip(have, typed, strict=False)):
        raise OperatorError(Reason.INVALID_VALUE,  # a password typed is not echoed
                           hide_userinfo(f"The configuration holds '{current}', not "
                                         f"'{key} {rest.strip()}': nothing removed."))


def _keystore(ports: Ports) -> Keystore:
    """The data directory's keystore (engine/keystore.py), loaded when a key is made or used:
    opening a data directory needs only engine/keytidy.py."""
    from engine.keystore import keystore_of

    return keystore_of(ports)


class _ReadOnlyStore(MemoryEventLog):
    def __init__(self, seq: int) -> None:
        super().__init__()
        self._seq = seq

    def append(self, batch: Sequence[PendingEvent]) -> list[Recorded]:
        raise OperatorError(Reason.NOT_ALLOWED,
                           f"This is a replay of the log at seq {self._seq}: read-only.")


def _live_key_ids(state: DeviceState) -> list[str]:
    """The key ids whose data keys the keystore must keep: every key pair's, the audit key's."""
    live = [p.key_id for ps in state.keys.pairs.values() for p in ps]
    if state.audit_key is not None:
        live.append(state.audit_key.key_id)
    return live


def _joined(parts: list[str]) -> str:
    return "".join(parts)


def _default_user() -> str:
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER", "admin")


def _zeroized_key_ids(log: DeviceLog) -> set[str]:
    """Every key id a `KeyPairZeroized` in the log names (zeroized or replaced). A full read of
    the log: `tidy_keystore` asks for it only when a data key has no live pair (rare)."""
    from events.keys import KeyPairZeroized

    gone: set[str] = set()
    for row in log.read_rows():
        if row[2] == KeyPairZeroized.type_name:
            ev = event_from(row[2], row[3], row[7])
            assert isinstance(ev, KeyPairZeroized)
            gone.update(ev.key_ids)
    return gone
