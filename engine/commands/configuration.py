"""Modes and the IOS XR two-stage commit: configure, exit, end, commit, abort, do,
show configuration, the commit database and rollback."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from engine.config import Change, ConfigConflict
from engine.effects import Ask, Effect, Outcome
from engine.errors import CommandError, Reason
from engine.grammar import CONFIG_MODES, GRAMMAR, LINE, WORD, ArgSpec, Mode, int_range
from engine.state import FIRST_COMMIT_ID, Commit, DeviceState
from events.device import ConfigurationCommitted
from projections.config import (
    render_commit_changes,
    render_commit_list,
    render_running,
    render_target,
)

if TYPE_CHECKING:
    from engine.engine import Ctx

G = GRAMMAR
COMMIT_ID = ArgSpec(int_range(FIRST_COMMIT_ID, 2_000_000_000), "Commit ID")
TEXT = ArgSpec(LINE, "Text")
ANY_MODE = (Mode.EXEC, *CONFIG_MODES)


@G.action("configure [terminal]", help="Enter the configuration mode")
def configure(ctx: Ctx) -> Outcome:
    return Outcome(enter=(Mode.CONFIG, ()))


# -- commit ------------------------------------------------------------------------------------


def commit_event(state: DeviceState, user: str, changes: list[Change], label: str = "",
                 comment: str = "", rollback_to: int = 0) -> ConfigurationCommitted:
    """The event for committing `changes` onto the running config (checked to apply)."""
    try:
        state.config.apply_all(changes)
    except ConfigConflict as err:
        raise CommandError(Reason.NOT_ALLOWED,
                           "% Failed to commit: the running configuration changed since this "
                           f"session started ({err}). Use 'abort' and configure again.") from err
    return ConfigurationCommitted(state.next_commit_id, user, label, comment,
                                  tuple(c.to_wire() for c in changes), rollback_to)


def _commit(ctx: Ctx, label: str = "", comment: str = "") -> Outcome:
    changes = ctx.session.pending()
    if not changes:
        return Outcome(output="% No configuration changes to commit.", commit_done=True)
    if label and any(c.label == label for c in ctx.state.commits):
        raise CommandError(Reason.INVALID_VALUE, f"% Label {label!r} is already in use.")
    return Outcome(events=[commit_event(ctx.state, ctx.user, changes, label, comment)],
                   commit_done=True)


@G.action("commit [label <label>] [comment <comment>]", modes=CONFIG_MODES,
          help="Commit the configuration changes to running",
          args={"label": ArgSpec(WORD, "Commit label"),
                "comment": TEXT})
def commit(ctx: Ctx) -> Outcome:
    label = ctx.args.get("label", "")
    if label and label[0].isdigit():
        raise CommandError(Reason.INVALID_VALUE, "% A commit label must start with a letter.")
    return _commit(ctx, label, ctx.args.get("comment", ""))


@G.action("abort", modes=CONFIG_MODES, help="Discard all uncommitted changes and exit")
def abort(ctx: Ctx) -> Outcome:
    return Outcome(abort=True)


def _leave(ctx: Ctx, how: str) -> Generator[Effect, Any, Outcome]:
    if how == "one" and ctx.session.mode is not Mode.CONFIG:
        return Outcome(leave="one")
    if not ctx.session.pending():
        return Outcome(leave=how)
    reply = ""
    while reply not in ("yes", "no", "cancel"):
        reply = (yield Ask("Uncommitted changes found, commit them? [yes]:", default="yes"))
        reply = {"y": "yes", "n": "no", "c": "cancel"}.get(reply.lower(), reply.lower())
    if reply == "cancel":
        return Outcome()
    if reply == "no":
        return Outcome(abort=True)
    done = _commit(ctx)
    done.leave = "exec"
    return done


@G.action("end", modes=CONFIG_MODES, help="Exit from configure mode")
def end(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    return _leave(ctx, "exec")


@G.action("exit", modes=CONFIG_MODES, help="Exit from this submode")
def exit_(ctx: Ctx) -> Generator[Effect, Any, Outcome]:
    return _leave(ctx, "one")


@G.action("do <command>", modes=CONFIG_MODES, help="Run an exec command",
          args={"command": ArgSpec(LINE, "Exec command")})
def do(ctx: Ctx) -> Outcome:
    return Outcome(extra={"do": ctx.args["command"]})


# -- show ----------------------------------------------------------------------------------------


@G.action("show configuration", modes=CONFIG_MODES,
          help="Contents of the target configuration (uncommitted changes)")
def show_configuration(ctx: Ctx) -> Outcome:
    return Outcome(output=render_target(ctx.session.pending()))


@G.action("show running-config [<section>]", modes=ANY_MODE,
          help="Current operating configuration",
          args={"section": ArgSpec(LINE, "Configuration section (e.g. crypto ca trustpoint)")})
def show_running(ctx: Ctx) -> Outcome:
    return Outcome(output=render_running(ctx.grammar, ctx.state.config, ctx.state.commits,
                                         ctx.args.get("section")))


@G.action("show configuration commit list", modes=ANY_MODE, help="List of commits")
def show_commit_list(ctx: Ctx) -> Outcome:
    return Outcome(output=render_commit_list(ctx.state.commits))


@G.action("show configuration commit changes <id>", modes=ANY_MODE,
          help="Display the changes made by a commit", args={"id": COMMIT_ID})
def show_commit_changes(ctx: Ctx) -> Outcome:
    return Outcome(output=render_commit_changes(_find(ctx, ctx.args["id"])))


def _find(ctx: Ctx, commit_id: int) -> Commit:
    found = ctx.state.commits.find(commit_id)
    if found is None:
        raise CommandError(Reason.NOT_FOUND, f"% Commit ID {commit_id} not found.")
    return found


# -- rollback ------------------------------------------------------------------------------------


def _rollback(ctx: Ctx, undo: list[Commit], back_to: int) -> Outcome:
    if ctx.session.mode is not Mode.EXEC:
        raise CommandError(Reason.NOT_ALLOWED, "% Rollback is an exec command; 'end' first.")
    changes = [c.inverse() for commit in undo for c in reversed(commit.changes)]
    if not changes:
        return Outcome(output="% No changes to roll back.")
    ev = commit_event(ctx.state, ctx.user, changes, comment=f"rollback to {back_to}",
                      rollback_to=back_to)
    return Outcome(events=[ev], output="\n".join([
        "Loading Rollback Changes.", "Loaded Rollback Changes.", "Committing.",
        f"{len(changes)} items committed.",
        f"Configuration successfully rolled back {len(undo)} commits."]))


@G.action("rollback configuration last <n>", help="Roll back the last N commits",
          args={"n": ArgSpec(int_range(1, 100), "Number of commits to roll back")})
def rollback_last(ctx: Ctx) -> Outcome:
    commits = list(ctx.state.commits)
    n = ctx.args["n"]
    if n > len(commits):
        raise CommandError(Reason.INVALID_VALUE,
                           f"% Only {len(commits)} commits exist; cannot roll back {n}.")
    back_to = commits[n].commit_id if n < len(commits) else 0
    return _rollback(ctx, commits[:n], back_to)


@G.action("rollback configuration to <id>",
          help="Roll back to the configuration right after a commit", args={"id": COMMIT_ID})
def rollback_to(ctx: Ctx) -> Outcome:
    target = _find(ctx, ctx.args["id"])
    undo = []
    for c in ctx.state.commits:
        if c.commit_id == target.commit_id:
            break
        undo.append(c)
    return _rollback(ctx, undo, target.commit_id)
