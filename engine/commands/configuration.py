"""Modes and the IOS XR two-stage commit: configure, exit, end, commit, abort, do,
show configuration, the commit database and rollback."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from engine.config import Change, ConfigConflict
from engine.destruction import confirm_removal, removal_events, removed_trustpoints
from engine.effects import Ask, Effect, Outcome, Say
from engine.errors import OperatorError, Reason, ambiguous
from engine.grammar import (
    CONFIG_MODES,
    GRAMMAR,
    LINE,
    WORD,
    ArgKind,
    ArgSpec,
    Mode,
    int_range,
)
from engine.machines import session as session_machine
from engine.machines.session import SESSION
from engine.messages import certificates_removed, plural
from engine.state import FIRST_COMMIT_ID, Commit, DeviceState
from engine.views.config import (
    CommitChangesView,
    CommitListView,
    RunningConfigView,
    TargetConfigView,
)
from events.registry import Event

if TYPE_CHECKING:
    from engine.context import Ctx
    from events.device import ConfigurationCommitted

G = GRAMMAR
_COMMIT_ID = int_range(FIRST_COMMIT_ID, 2_000_000_000)


def _commit_ref(s: str) -> int | str:
    """A commit ID (1000000001, ...) or a commit label (which starts with a letter)."""
    if s[:1].isdigit():
        return int(_COMMIT_ID.parse(s))
    if not s[:1].isalpha():
        raise ValueError(s)
    return s


COMMIT_REF = ArgSpec(ArgKind(f"{_COMMIT_ID.label}|WORD", _commit_ref), "Commit ID or label")
TEXT = ArgSpec(LINE, "Text")
ANY_MODE = (Mode.EXEC, *CONFIG_MODES)


@G.action("configure [terminal]", modes=SESSION.sources("configure"),
          help="Enter the configuration mode")
def configure(ctx: Ctx) -> Outcome:
    return Outcome(enter=(Mode.CONFIG, ()))


# -- commit ------------------------------------------------------------------------------------


def commit_event(state: DeviceState, user: str, changes: list[Change], label: str = "",
                 comment: str = "", rollback_to: int = 0) -> ConfigurationCommitted:
    """The event for committing `changes` onto the running config (checked to apply)."""
    from events.device import ConfigurationCommitted

    try:
        state.config.apply_all(changes)
    except ConfigConflict as err:
        raise OperatorError(Reason.NOT_ALLOWED,
                           "Failed to commit: the running configuration changed since this "
                           f"session started ({err}). Use 'abort' and configure again.") from err
    return ConfigurationCommitted(state.next_commit_id, user, label, comment,
                                  tuple(c.to_wire() for c in changes), rollback_to)


def _commit(ctx: Ctx, label: str = "", comment: str = ""
            ) -> Generator[Effect, Any, Outcome]:
    changes = ctx.session.pending()
    if not changes:
        return Outcome(output="% No configuration changes to commit.", commit_done=True)
    if label and _labelled(ctx.state, label) is not None:
        raise OperatorError(Reason.INVALID_VALUE, f"Label {label!r} is already in use.")
    ev = commit_event(ctx.state, ctx.user, changes, label, comment)
    removed = yield from _removals(ctx.state, changes, "commit", ev.commit_id)
    if removed is None:
        return Outcome(output="% Commit cancelled: nothing was committed.")
    return Outcome(events=[*removed, ev], output="\n".join(_removal_lines(removed)),
                   commit_done=True)


def _removals(state: DeviceState, changes: list[Change], reason: str, commit_id: int
              ) -> Generator[Effect, Any, list[Event] | None]:
    """The events recording the certificates these changes destroy (none: no question);
    None when the operator said no."""
    doomed = removed_trustpoints(state, changes)
    if not doomed:
        return []
    if not (yield from confirm_removal(doomed)):
        return None
    return list(removal_events(doomed, reason, commit_id))


def _removal_lines(removed: list[Event]) -> list[str]:
    """`%PKI-4-TRUSTPOINT_REMOVED` for each removal, the line `show logging` keeps for it."""
    from events.trustpoint import TrustpointCertificatesRemoved

    return [certificates_removed(ev.trustpoint, len(ev.serials), ev.reason)
            for ev in removed if isinstance(ev, TrustpointCertificatesRemoved)]


@G.action("commit [label <label>] [comment <comment>]", modes=SESSION.sources("commit"),
          help="Commit the configuration changes to running",
          args={"label": ArgSpec(WORD, "Commit label"),
                "comment": TEXT},
          words={"label": "Assign a label to this commit",
                 "comment": "Assign a comment to this commit"})
def commit(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    label = ctx.args.get("label", "")
    if label and label[0].isdigit():
        raise OperatorError(Reason.INVALID_VALUE, "A commit label must start with a letter.")
    return (yield from _commit(ctx, label, ctx.args.get("comment", "")))


@G.action("abort", modes=SESSION.sources("abort"), help="Discard all uncommitted changes and exit")
def abort(ctx: Ctx) -> Outcome:
    return Outcome(abort=True)


def _leave(ctx: Ctx, how: str) -> Generator[Effect, Any, Outcome]:
    """`end` or `exit`: at once if the session machine takes it (a submode's `exit`, or no
    uncommitted changes), else after asking whether to commit the changes first."""
    if session_machine.fire(ctx.session, "end" if how == "exec" else "exit") is not None:
        return Outcome(leave=how)
    while True:
        reply = (yield Ask("Uncommitted changes found, commit them? [yes]:", default="yes"))
        reply = {"y": "yes", "n": "no", "c": "cancel"}.get(reply.lower(), reply.lower())
        if reply in ("yes", "no", "cancel"):
            break
        yield Say("% Please answer 'yes', 'no' or 'cancel' (stay in configuration mode).\n")
    if reply == "cancel":
        return Outcome()
    if reply == "no":
        return Outcome(abort=True)
    done: Outcome = yield from _commit(ctx)
    if done.commit_done:
        done.leave = "exec"
    return done


@G.action("end", modes=SESSION.sources("end"), help="Exit from configure mode")
def end(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    return _leave(ctx, "exec")


@G.action("exit", modes=SESSION.sources("exit"), help="Exit from this submode")
def exit_(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    return _leave(ctx, "one")


@G.action("exit", help="Exit from the EXEC (end this session)")
def exit_exec(ctx: Ctx) -> Outcome:
    """At the exec prompt the frontends end the session before running the line; a program
    that embeds the engine has nothing to leave."""
    return Outcome()


@G.action("do <command>", modes=CONFIG_MODES, help="Run an exec command",
          args={"command": ArgSpec(LINE, "Exec command")})
def do(ctx: Ctx) -> Outcome:
    return Outcome(extra={"do": ctx.args["command"]})


# -- show ----------------------------------------------------------------------------------------


@G.action("show configuration", modes=CONFIG_MODES,
          help="Contents of the target configuration (uncommitted changes)",
          words={"configuration": "Contents of the target configuration and the commit "
                                  "database"})
def show_configuration(ctx: Ctx) -> Outcome:
    return Outcome(output=TargetConfigView(ctx.grammar, ctx.session.pending()))


@G.action("show running-config [<section>]", modes=ANY_MODE,
          help="Current operating configuration",
          args={"section": ArgSpec(LINE, "Configuration section (e.g. crypto ca trustpoint)")})
def show_running(ctx: Ctx) -> Outcome:
    from engine.parser import section_ambiguous

    section = ctx.args.get("section")
    if section and section_ambiguous(ctx.grammar, section):  # `cry ca trustp`: point or pool
        raise ambiguous(ctx.line.strip())
    return Outcome(output=RunningConfigView(ctx.grammar, ctx.state.config, ctx.state.commits,
                                             ctx.args.get("section")))


_COMMIT_DB = {"commit": "Commit database: the list of commits and what each changed"}


@G.action("show configuration commit list", modes=ANY_MODE, help="List of commits",
          words=_COMMIT_DB)
def show_commit_list(ctx: Ctx) -> Outcome:
    return Outcome(output=CommitListView(ctx.state.commits))


@G.action("show configuration commit changes <id>", modes=ANY_MODE,
          help="Display the changes made by a commit", args={"id": COMMIT_REF},
          words=_COMMIT_DB)
def show_commit_changes(ctx: Ctx) -> Outcome:
    return Outcome(output=CommitChangesView(ctx.grammar, [_find(ctx, ctx.args["id"])]))


@G.action("show configuration commit changes last <n>", modes=ANY_MODE,
          help="Display the changes made by the last N commits",
          args={"n": ArgSpec(int_range(1, 100), "Number of commits")},
          words={**_COMMIT_DB, "last": "Changes made by the last N commits"})
def show_last_changes(ctx: Ctx) -> Outcome:
    commits = list(ctx.state.commits)[: ctx.args["n"]]
    if not commits:
        raise OperatorError(Reason.NOT_FOUND, "No commits to show.")
    return Outcome(output=CommitChangesView(ctx.grammar, commits[::-1]))


def _labelled(state: DeviceState, label: str) -> Commit | None:
    return next((c for c in state.commits if c.label == label), None)


def _find(ctx: Ctx, ref: int | str) -> Commit:
    if isinstance(ref, str):
        by_label = _labelled(ctx.state, ref)
        if by_label is None:
            raise OperatorError(Reason.NOT_FOUND, f"Commit label {ref} not found.")
        return by_label
    found = ctx.state.commits.find(ref)
    if found is None:
        raise OperatorError(Reason.NOT_FOUND, f"Commit ID {ref} not found.")
    return found


# -- rollback ------------------------------------------------------------------------------------


def _rollback(ctx: Ctx, undo: list[Commit], back_to: int
              ) -> Generator[Effect, Any, Outcome]:
    if session_machine.fire(ctx.session, "rollback") is None:
        raise OperatorError(Reason.NOT_ALLOWED, "Rollback is an exec command; 'end' first.")
    changes = [c.inverse() for commit in undo for c in reversed(commit.changes)]
    if not changes:
        return Outcome(output="% No changes to roll back.")
    ev = commit_event(ctx.state, ctx.user, changes, comment=f"rollback to {back_to}",
                      rollback_to=back_to)
    removed = yield from _removals(ctx.state, changes, "rollback", ev.commit_id)
    if removed is None:
        return Outcome(output="% Rollback cancelled: nothing was changed.")
    n = len(undo)
    return Outcome(events=[*removed, ev], output="\n".join([
        "Loading Rollback Changes.", "Loaded Rollback Changes.", "Committing.",
        f"{plural(len(changes), 'item')} committed.",
        f"Configuration successfully rolled back {plural(n, 'commit')}.",
        *_removal_lines(removed)]))


_ROLLBACK_WORDS = {"configuration": "Roll back to the configuration of an earlier commit"}


@G.action("rollback configuration last <n>", help="Roll back the last N commits",
          args={"n": ArgSpec(int_range(1, 100), "Number of commits to roll back")},
          words=_ROLLBACK_WORDS)
def rollback_last(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    commits = list(ctx.state.commits)
    n = ctx.args["n"]
    if n > len(commits):
        raise OperatorError(Reason.INVALID_VALUE,
                           f"Only {plural(len(commits), 'commit')} exist; cannot roll "
                           f"back {n}.")
    back_to = commits[n].commit_id if n < len(commits) else 0
    return _rollback(ctx, commits[:n], back_to)


@G.action("rollback configuration to <id>",
          help="Roll back to the configuration right after a commit", args={"id": COMMIT_REF},
          words=_ROLLBACK_WORDS)
def rollback_to(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    target = _find(ctx, ctx.args["id"])
    undo = []
    for c in ctx.state.commits:
        if c.commit_id == target.commit_id:
            break
        undo.append(c)
    return _rollback(ctx, undo, target.commit_id)
