"""The runtime: drives a handler, performing each effect it yields through the ports."""

from __future__ import annotations

import inspect
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from engine.effects import PERFORMERS, Ask, Effect, Outcome, ReadBlock, Say, performs
from engine.errors import OperatorError, Reason, TrustledgerError
from engine.ports import Clock, Prompter, SystemClock

if TYPE_CHECKING:
    from engine.keystore import KeyGenerator, Keystore
    from engine.scep_client import ScepTransport


def _unrendered(view: object) -> str:
    if isinstance(view, str):
        return view
    raise TypeError(f"no renderer plugged into the ports for {type(view).__name__}")


@dataclass
class Ports:
    """Everything a performer may use. Features add their ports here, each with a default
    that works for an in-memory engine and is replaced by `Engine.open` for a data dir."""

    data_dir: Path | None = None
    clock: Clock = field(default_factory=SystemClock)
    prompter: Prompter | None = None
    answers: deque[str] = field(default_factory=deque)  # scripted answers, used first
    write: Callable[[str], None] | None = None  # streams output as it is produced
    out: list[str] = field(default_factory=list)  # everything printed by the current command
    keystore: Keystore | None = None  # engine.keystore: built from data_dir on first use
    keygen: KeyGenerator | None = None  # engine.keystore: real key generation unless injected
    scep: ScepTransport | None = None  # engine.scep_client: httpx unless injected
    random: Callable[[int], bytes] = os.urandom  # nonces, serials, content-encryption keys
    offline: bool = False  # an audit replay: no effect but printing may be performed
    # Views to text (engine/views.py): the application plugs projections.render in.
    render: Callable[[object], str] = _unrendered

    def say(self, text: str) -> None:
        self.out.append(text)
        if self.write is not None:
            self.write(text)

    def answer(self, prompt: str, secret: bool) -> str:
        if self.answers:
            reply = require_utf8(self.answers.popleft())
            self.say(prompt + ("" if secret else reply) + "\n")
            return reply
        if self.prompter is not None:
            self.out.append(prompt)
            got = self.prompter.ask(prompt, secret)
            if got is not None:
                self.out.append(("" if secret else require_utf8(got)) + "\n")
                return require_utf8(got)
        raise OperatorError(Reason.NO_INPUT, f"No answer to {prompt.strip()!r}: input ended.")


def require_utf8(text: str) -> str:
    """Input that is not valid Unicode text (bytes a frontend decoded with surrogateescape)
    cannot be stored or sent: refuse it as the operator's error, before anything happens."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise OperatorError(Reason.INVALID_INPUT,
                           f"Input is not valid UTF-8 text (at character {e.start}).") from e
    return text


@performs(Say)
def _say(ports: Ports, eff: Say) -> None:
    ports.say(ports.render(eff.text))


@performs(Ask)
def _ask(ports: Ports, eff: Ask) -> str:
    # A password is taken as typed (spaces are characters); other answers are trimmed.
    raw = ports.answer(eff.prompt, eff.secret)
    reply = raw.rstrip("\r\n") if eff.secret else raw.strip()
    if not reply and eff.default is not None:
        return eff.default
    return reply


@performs(ReadBlock)
def _read_block(ports: Ports, eff: ReadBlock) -> str:
    if eff.intro:
        ports.say(eff.intro)
    lines: list[str] = []
    while True:
        line = ports.answer("", False).rstrip("\r\n")
        if not line.strip() or line.strip().lower() == "quit":
            return "\n".join(lines)
        lines.append(line)


def run(handler_result: Any, ports: Ports) -> Outcome:
    """Drive a handler's result (an Outcome, or a generator of effects) to its Outcome."""
    if not inspect.isgenerator(handler_result):
        if not isinstance(handler_result, Outcome):
            raise TypeError(f"handler returned {type(handler_result).__name__}")
        return handler_result
    gen = cast(Generator[Effect, Any, Outcome], handler_result)
    reply: Any = None
    failed: TrustledgerError | None = None
    try:
        while True:
            # A peer's error is thrown into the handler at its `yield`, so a handler that
            # can make sense of it (a poll that counts a failed attempt) may catch it.
            eff = gen.send(reply) if failed is None else gen.throw(failed)
            try:
                reply, failed = perform(eff, ports), None
            except TrustledgerError as err:
                failed = err
    except StopIteration as stop:
        if not isinstance(stop.value, Outcome):
            raise TypeError("handler generator did not return an Outcome") from None
        return stop.value


def perform(eff: Effect, ports: Ports) -> Any:
    if ports.offline and not isinstance(eff, Say):
        raise OperatorError(Reason.NOT_ALLOWED,
                           "This is a replay of the log: commands that reach a CA, ask a "
                           "question or use a key are not available.")
    fn = PERFORMERS.get(type(eff))
    if fn is None:
        raise TypeError(f"no performer for {type(eff).__name__}")
    return fn(ports, eff)


def queue(answers: Iterable[str] | None) -> deque[str]:
    return deque(answers or ())
