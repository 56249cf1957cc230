"""The text frontends: the interactive shell (prompt_toolkit) and batch scripts.

Batch: each line is typed as at the prompt and echoed after it; a question asked by a command
takes the next line as its answer (an empty line takes the default); `!` lines are comments.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from engine.engine import Engine, Result
from engine.errors import OperatorError, Reason
from engine.grammar import Mode
from engine.ports import EngineClock
from engine.scrub import ScrubSchedule

if TYPE_CHECKING:
    from prompt_toolkit.key_binding import KeyBindings


class ScriptPrompter:
    """Answers questions from the following lines of a script."""

    def __init__(self, lines: Iterator[str], out: TextIO) -> None:
        self.lines = lines
        self.out = out

    def ask(self, prompt: str, secret: bool) -> str | None:
        raw = next(self.lines, None)
        if raw is None:
            return None
        line = raw.rstrip("\r\n")
        self.out.write(prompt + ("" if secret else printable(line)) + "\n")
        self.out.flush()
        return line


def printable(line: str) -> str:
    """A script line as it can be echoed on any terminal: bytes that were not UTF-8 (read with
    surrogateescape, refused as input by the engine) are shown as `\\xNN` escapes."""
    if line.isascii():
        return line
    return "".join(f"\\x{ord(ch) - 0xDC00:02x}" if 0xDC80 <= ord(ch) <= 0xDCFF else ch
                   for ch in line)


def run_batch(engine: Engine, lines: Iterator[str], out: TextIO, keep_going: bool) -> int:
    """Run a script; the exit status is 1 at the first error unless `keep_going`."""
    status = 0
    engine.ports.prompter = ScriptPrompter(lines, out)
    engine.ports.write = _writer(out)
    for raw in lines:
        engine.run_due()  # scheduled work (enrollment polls) prints as it happens
        line = raw.rstrip("\r\n")
        out.write(engine.prompt + printable(line) + "\n")
        if line.strip() in ("exit", "quit", "logout") and engine.session.mode is Mode.EXEC:
            break  # leaving the exec prompt ends the session, as at the console
        out.flush()
        result = engine.execute(line)
        if not result.ok:
            status = 1
            if not keep_going:
                break
    return status


def _writer(out: TextIO) -> Callable[[str], None]:
    def write(text: str) -> None:
        out.write(text)
        out.flush()

    return write


def private_file(path: Path) -> Path:
    """Create `path` 0600 if it does not exist (the umask cannot widen it): the shell history
    holds what the operator typed."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    return path


class PastedLines:
    """The lines of a multi-line paste, run one by one as if typed.

    A terminal in bracketed-paste mode (xterm, GNOME Terminal, iTerm2, Windows Terminal, tmux;
    prompt_toolkit turns it on) hands a pasted block over as one piece, newlines and all: the
    way an operator configures a router is to paste a block of configuration, and each of its
    lines is a command (or the answer to the question the command before it asked), as on
    IOS. The first line is run at once; the rest wait here and are taken, in order, by the
    prompt and by questions, each echoed after its prompt. Text after the last newline is
    left on the next prompt to be edited. CR LF and CR end lines as LF does. Ctrl-C drops what
    is left."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.fragment = ""

    def paste(self, data: str) -> str | None:
        """Take a pasted block: the first line to run now, or None for a paste with no line
        end (typed into the line as it is)."""
        text = data.replace("\r\n", "\n").replace("\r", "\n")
        if "\n" not in text:
            return None
        first, *rest = text.split("\n")
        self.lines += rest[:-1]
        self.fragment = rest[-1]
        return first

    def next_line(self) -> str | None:
        """The next whole pasted line, or None when none is left."""
        return self.lines.pop(0) if self.lines else None

    def take_fragment(self) -> str:
        """What follows the paste's last line end (once no whole line is left)."""
        text, self.fragment = self.fragment, ""
        return text

    def drop(self) -> None:
        self.lines, self.fragment = [], ""


def run_interactive(engine: Engine, history_file: Path | None) -> int:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.completion import CompleteEvent, Completer, Completion
    from prompt_toolkit.document import Document
    from prompt_toolkit.history import FileHistory, InMemoryHistory
    from prompt_toolkit.patch_stdout import patch_stdout

    class GrammarCompleter(Completer):
        def get_completions(self, document: Document, event: CompleteEvent
                            ) -> Iterator[Completion]:
            text = document.text_before_cursor
            word = document.get_word_before_cursor(WORD=True)
            for ch in engine.completions(text):  # keywords, trustpoint names, key labels
                yield Completion(ch.word + " ", start_position=-len(word),
                                 display=ch.word, display_meta=ch.help)

    pasted = PastedLines()
    keys = _key_bindings(engine, pasted)
    history = FileHistory(str(private_file(history_file))) if history_file \
        else InMemoryHistory()
    session: PromptSession[str] = PromptSession(history=history, completer=GrammarCompleter(),
                                                key_bindings=keys, complete_while_typing=False)

    # Questions get their own session: arguments given to PromptSession.prompt() stick to
    # the session, and the command line must keep its completer and never turn to `***`.
    questions: PromptSession[str] = PromptSession(key_bindings=_paste_binding(pasted))
    write = _writer(sys.stdout)

    class TerminalPrompter:
        def ask(self, prompt: str, secret: bool) -> str | None:
            line = pasted.next_line()
            if line is not None:  # the next line of a paste answers, as typed
                write(prompt + ("" if secret else printable(line)) + "\n")
                return line
            try:
                if secret:  # as on the router: nothing at all is echoed, not even `*`
                    return _read_secret(prompt, write)
                return questions.prompt(prompt, default=pasted.take_fragment())
            except EOFError:
                return None
            except KeyboardInterrupt:  # Ctrl-C at a question: the command changes nothing
                raise OperatorError(Reason.CANCELLED, "Aborted.") from None

    engine.ports.prompter = TerminalPrompter()
    engine.ports.write = write

    def width() -> int:  # asked per message: the terminal may have been resized
        return session.output.get_size().columns

    scheduler = Scheduler(engine, width)
    stop = threading.Event()
    ticker = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler",
                              daemon=True)
    with patch_stdout(raw=True):
        ticker.start()
        try:
            while True:
                line = pasted.next_line()
                if line is not None:
                    write(engine.prompt + printable(line) + "\n")  # shown as typed
                    session.history.append_string(line)  # Up finds it, as a typed one
                else:
                    try:
                        line = session.prompt(engine.prompt, default=pasted.take_fragment())
                    except KeyboardInterrupt:
                        continue
                    except EOFError:
                        if _ends_session(scheduler):
                            return 0
                        continue
                if line.strip() in ("exit", "quit", "logout") and \
                        engine.session.mode is Mode.EXEC:
                    return 0
                with scheduler.lock:
                    try:
                        engine.execute(line)
                    except KeyboardInterrupt:
                        # The command was abandoned: it appended nothing unless its batch
                        # was already durable (the log refuses to go on after a cut write).
                        write(interrupted_mark() + "\n")  # before the next prompt
                        pasted.drop()
        finally:
            stop.set()
            ticker.join()


def _ends_session(scheduler: Scheduler) -> bool:
    """Ctrl-D (end of input) at the prompt: in a configuration mode it is `end` first, so
    uncommitted changes are asked about, not dropped without a word. The session ends unless
    the operator chose to stay (`cancel`, Ctrl-C); a second Ctrl-D at the question ends it,
    dropping them."""
    engine = scheduler.engine
    if engine.session.mode is not Mode.EXEC:
        result = scheduler.execute("end")
        if result.error is not None and result.error.reason is Reason.NO_INPUT:
            return True
    return engine.session.mode is Mode.EXEC


def interrupted_mark() -> str:
    """What ends the line of a command Ctrl-C stopped: `^C`, unless the terminal echoed it
    already (a tty with ECHO and ECHOCTL, the default: it printed `^C` as the key was typed,
    and a second one read `^C^C`)."""
    import termios  # the terminal shell only

    try:
        flags = termios.tcgetattr(sys.stdin.fileno())[3]
    except (termios.error, OSError, ValueError):
        return "^C"
    return "" if flags & termios.ECHO and flags & termios.ECHOCTL else "^C"


def _read_secret(prompt: str, write: Callable[[str], None]) -> str:
    """A secret typed at the terminal, echoing nothing. Ctrl-C leaves the cursor after the
    prompt (getpass ends the line only when Enter is typed): end the line, so the `% Aborted.`
    that follows starts one."""
    from getpass import getpass  # the terminal shell only

    try:
        return secret_text(getpass(prompt))
    except KeyboardInterrupt:
        write("\n")
        raise


def secret_text(typed: str) -> str:
    """What a secret prompt keeps of a typed line: no control characters. The terminal's line
    discipline has already applied the editing keys (erase, kill, word-erase); the others it
    passes through (Ctrl-L, Ctrl-A, Tab...) IOS ignores at a password prompt, so they never
    become part of a challenge password the operator cannot see. The control characters are
    Unicode's category Cc: C0 (U+0000-U+001F), DEL and C1 (U+007F-U+009F), tested here
    without `unicodedata`, which a `show` would otherwise import at start-up."""
    return "".join(ch for ch in typed if not (ch < " " or "\x7f" <= ch <= "\x9f"))


def _key_bindings(engine: Engine, pasted: PastedLines) -> KeyBindings:
    """`?` lists what may come next; Ctrl-Z in a configuration mode is `end`; Ctrl-V (the IOS
    convention) or Ctrl-Q types the next key as it is, so `?` can go into an LDAP URL's
    `?attributes?scope` instead of opening help; a pasted block runs line by line."""
    from prompt_toolkit.key_binding import KeyPressEvent
    from prompt_toolkit.key_binding.bindings.named_commands import get_by_name

    keys = _paste_binding(pasted)
    keys.add("c-v")(get_by_name("quoted-insert"))

    @keys.add("c-z")
    def _end(event: KeyPressEvent) -> None:
        """Ctrl-Z in a configuration mode is `end` (with its commit question)."""
        if engine.session.mode is not Mode.EXEC:
            event.app.current_buffer.text = "end"
            event.app.current_buffer.validate_and_handle()

    @keys.add("?")
    def _help(event: KeyPressEvent) -> None:
        buf = event.app.current_buffer
        text = buf.document.text_before_cursor
        listing = engine.help(text)

        def show() -> None:
            print(engine.prompt + text + "?")
            print(listing)

        from prompt_toolkit.application import run_in_terminal

        run_in_terminal(show)

    return keys


def _paste_binding(pasted: PastedLines) -> KeyBindings:
    """A bracketed paste (the whole pasted block at once): its first line is entered at once,
    the rest are queued in `pasted` (at the prompt and at questions alike)."""
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.keys import Keys

    keys = KeyBindings()

    @keys.add(Keys.BracketedPaste)
    def _paste(event: KeyPressEvent) -> None:
        buf = event.app.current_buffer
        first = pasted.paste(event.data)
        if first is None:
            buf.insert_text(event.data)
            return
        buf.insert_text(first)
        buf.validate_and_handle()

    return keys


class Scheduler:
    """Scheduled work (enrollment polls) beside the interactive prompt, never in its way.

    A due job's exchange with the CA runs in the ticker thread without `lock` (the transport's
    deadline bounds it); only appending what it decided takes `lock`, which a command holds from
    its line to its last answer, so scheduled work lands between two commands. A job performed
    against a state that a command changed meanwhile is dropped and, if still due, runs again.
    What a job prints is an asynchronous message: written whole, wrapped at word boundaries,
    through the patched stdout, which prints it above the prompt and redraws the prompt and any
    half-typed line.
    """

    def __init__(self, engine: Engine, width: Callable[[], int] = lambda: 80) -> None:
        self.engine = engine
        self.width = width
        self.lock = threading.Lock()
        clock = engine.ports.clock  # the scrub runs on real time (engine/scrub.py)
        # Only a file log has segments to scrub; a shared store checks rows as it reads them.
        log_dir = None if engine.data_dir is None else engine.data_dir / "log"
        self.scrub = (ScrubSchedule(log_dir,
                                    clock.base if isinstance(clock, EngineClock) else clock)
                      if log_dir is not None and log_dir.is_dir() else None)

    def execute(self, line: str) -> Result:
        with self.lock:
            return self.engine.execute(line)

    def tick(self) -> None:
        with self.lock:
            said = self.engine.witness_results()  # the witnesses' answers, when they come
            self.engine.write_out_audit()  # checkpoints on disk for `audit export` at once
        if said:
            self._say(said)
        for work in self.engine.perform_due():
            with self.lock:
                write, self.engine.ports.write = self.engine.ports.write, None
                try:
                    result = self.engine.commit_due(work)
                finally:
                    self.engine.ports.write = write
            if result is not None and result.output:
                self._say(result.output)
        damage = self.scrub.due() if self.scrub is not None else None
        if damage is not None:
            self._say(damage)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            try:
                self.tick()
            except Exception as e:  # report and keep scheduling: never die quietly
                self._say(f"%SCHED-3-FAILED: scheduled work failed: {type(e).__name__}: {e}")

    def _say(self, text: str) -> None:
        print(async_message(text, self.width()), end="", flush=True)


def async_message(text: str, width: int) -> str:
    """`text` as whole lines no wider than the terminal, broken between words only."""
    from textwrap import wrap  # a scheduler's message: a batch `show` never wraps one

    out = []
    for line in text.splitlines():
        out += wrap(line, max(width - 1, 20), break_long_words=False,
                    break_on_hyphens=False) or [""]
    return "".join(ln + "\n" for ln in out)
