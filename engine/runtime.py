"""The runtime: drives a handler, performing each effect it yields through the ports.

One runtime for the device (engine/engine.py) and the CA (engine/ca/service.py): both build
one `Ports` where they are opened and `drive` their handlers with it; each then appends the
command's events as one atomic batch.
"""

from __future__ import annotations

import inspect
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from engine.effects import (
    PERFORMERS,
    Ask,
    DrawRandom,
    Effect,
    Now,
    Outcome,
    ReadBlock,
    Say,
    performs,
)
from engine.errors import OperatorError, Reason, TrustledgerError
from engine.ports import Clock, Prompter, Randomness, SystemClock, SystemRandomness

if TYPE_CHECKING:
    from engine.audit.witness_client import WitnessTransport
    from engine.ca.commands import Signer
    from engine.keystore import KeyGenerator, Keystore
    from engine.revocation.store import CrlBlobs
    from engine.revocation.transport import CrlFetcher
    from engine.scep_client import ScepTransport
    from engine.trustpool.fetch import BundleFetcher


def _unrendered(view: object) -> str:
    if isinstance(view, str):
        return view
    raise TypeError(f"no renderer plugged into the ports for {type(view).__name__}")


R = TypeVar("R")


@dataclass
class Ports:
    """Everything a performer may use, for the device and the CA. Features add their ports
    here, each with a default that works for an in-memory engine and is replaced by
    `Engine.open` for a data dir (or `BuiltinCA.open` for a CA)."""

    data_dir: Path | None = None
    clock: Clock = field(default_factory=SystemClock)
    prompter: Prompter | None = None
    answers: deque[str] = field(default_factory=deque)  # scripted answers, used first
    write: Callable[[str], None] | None = None  # streams output as it is produced
    out: list[str] = field(default_factory=list)  # everything printed by the current command
    keystore: Keystore | None = None  # engine.keystore: built from data_dir on first use
    keygen: KeyGenerator | None = None  # engine.keystore: real key generation unless injected
    scep: ScepTransport | None = None  # engine.scep_client: httpx unless injected
    bundles: BundleFetcher | None = None  # engine.trustpool.fetch: http/https/file unless injected
    crls: CrlFetcher | None = None  # engine.revocation.transport: http/ldap unless injected
    crl_blobs: CrlBlobs | None = None  # engine.revocation.store: <data>/crls/, or in memory
    randomness: Randomness = field(default_factory=SystemRandomness)  # nonces, serials, CEKs
    signer: Signer | None = None  # engine.ca.commands: the CA's signing key (CA only)
    witness: WitnessTransport | None = None  # engine.audit.witness_client: httpx unless injected
    offline: bool = False  # an audit replay: no effect but printing may be performed
    # Views to text (engine/views/): the application plugs projections.render in.
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


@performs(Now)
def _now(ports: Ports, eff: Now) -> int:
    return ports.clock.now_us()


@performs(DrawRandom)
def _draw_random(ports: Ports, eff: DrawRandom) -> bytes:
    return ports.randomness.token_bytes(eff.size)


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
    """Drive a device handler's result (an Outcome, or a generator of effects) to its Outcome."""
    if inspect.isgenerator(handler_result):
        result = drive(cast(Generator[Effect, Any, object], handler_result), ports)
        if not isinstance(result, Outcome):
            raise TypeError("handler generator did not return an Outcome")
        return result
    if not isinstance(handler_result, Outcome):
        raise TypeError(f"handler returned {type(handler_result).__name__}")
    return handler_result


def drive(handler: Generator[Effect, Any, R], ports: Ports) -> R:
    """Run a handler generator to its return value, performing each effect it yields."""
    reply: Any = None
    failed: TrustledgerError | None = None
    try:
        while True:
            # A peer's error is thrown into the handler at its `yield`, so a handler that
            # can make sense of it (a poll that counts a failed attempt) may catch it.
            eff = handler.send(reply) if failed is None else handler.throw(failed)
            try:
                reply, failed = perform(eff, ports), None
            except TrustledgerError as err:
                failed = err
    except StopIteration as stop:
        return cast(R, stop.value)


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
