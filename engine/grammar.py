"""The command grammar: one declaration per command, used by the parser, `?` help, Tab
completion and `show running-config` alike.

A command is declared with a compact pattern:

    crypto key generate rsa [{usage: general-keys | usage-keys}] [<label>]

- a bare word is a keyword (`crypto`), matched by any unique prefix (`cry`);
- `<name>` is an argument whose kind (and help) comes from the `args` mapping;
- `[ ... ]` is optional; `{name: a | b}` chooses one keyword and binds it to `name`.

Patterns are expanded once into linear variants (every optional taken or not), so the parser
walks flat token lists. Keywords beat arguments at the same position (IOS does the same: `rsa
usage` is the keyword, not a label called "usage").

A choice keyword may have other spellings (SPELLINGS: the reference's `usage keys` for
`usage-keys`): taken when typed in full, never abbreviated, never offered by `?` or Tab.

Configuration commands name a *key* template (`hostname`, `crypto ca trustpoint {name}`): the
line they produce replaces the line under that key, and `no <key words>` removes it.
"""

from __future__ import annotations

import enum
import importlib
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


class Mode(enum.Enum):
    EXEC = ""
    CONFIG = "config"
    TRUSTP = "config-trustp"
    TRUSTPOOL = "config-trustpool"

    def prompt(self, hostname: str) -> str:
        suffix = f"({self.value})" if self.value else ""
        return f"RP/0/RP0/CPU0:{hostname}{suffix}#"


CONFIG_MODES = (Mode.CONFIG, Mode.TRUSTP, Mode.TRUSTPOOL)


# -- argument kinds ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ArgKind:
    """How one argument is shown in `?` help and what it accepts. `parse` raises ValueError.
    `screen`, if set, is a rule for what an operator types now, never applied to a line a
    configuration already holds (an older build accepted it, and replay must read it): it
    raises ArgRefused, whose reason the parser shows under its caret."""

    label: str
    parse: Callable[[str], Any]
    rest_of_line: bool = False
    screen: Callable[[str], None] | None = None
    # Whether more typing could make a partial word one (`?` after part of it names the
    # argument, engine/parser.py); None: any word may, a <number> if it is digits.
    may_become: Callable[[str], bool] | None = None


class ArgRefused(ValueError):
    """A typed argument refused with a reason (shown instead of a bare "Invalid input")."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _word(s: str) -> str:
    return s


def int_range(lo: int, hi: int) -> ArgKind:
    def parse(s: str) -> int:
        if not s.isdigit():
            raise ValueError(s)
        n = int(s)
        if not lo <= n <= hi:
            raise ValueError(s)
        return n

    return ArgKind(f"<{lo}-{hi}>", parse)


_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _hostname(s: str) -> str:
    """RFC 1123 §2.1: letters, digits and hyphens; a label may start with a digit."""
    if not _LABEL.match(s):
        raise ValueError(s)
    return s


def _domain(s: str) -> str:
    labels = s.rstrip(".").split(".")
    if len(s) > 253 or not all(_LABEL.match(x) for x in labels):
        raise ValueError(s)
    return s.rstrip(".")


def _url(s: str) -> str:
    if not re.match(r"^[a-z][a-z0-9+.-]*://[^\s]+$", s, re.IGNORECASE):
        raise ValueError(s)
    return well_formed_authority(s)


def http_url(s: str) -> str:
    """What the SCEP client can reach: http:// or https:// (RFC 8894 §4.1 runs SCEP over
    HTTP), with a host."""
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", s, re.IGNORECASE):
        raise ValueError(s)
    return well_formed_authority(s)


def well_formed_authority(url: str) -> str:
    """`url`, if its host and port parse (RFC 3986 §3.2: a port is digits, at most 65535; an
    IPv6 literal is bracketed); else ValueError, so the parser puts its caret there and no
    configuration ever holds a URL no client can use."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(url) from None
    if parts.netloc and not parts.hostname:
        raise ValueError(url)
    return url


_DN_START = re.compile(r"^[A-Za-z][A-Za-z0-9.-]*=")


def no_userinfo(url: str) -> None:
    """Refuse a URL with a user name or password (RFC 3986 §3.2.1 userinfo; that section
    deprecates "user:password"): the configuration, the event log, snapshots and `show` would
    keep it in clear. The reason never repeats the URL, so the password is not echoed. An
    LDAP URL whose host position holds a DN (IOS's `ldap://CN=ca,O=x`) is no userinfo."""
    authority = url.partition("://")[2].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    userinfo, at, _ = authority.rpartition("@")
    if not at or (_DN_START.match(userinfo) and ":" not in userinfo):
        return
    raise ArgRefused("A URL with a user name or password is refused: the configuration, the "
                     "log and 'show' would keep the password in clear. Give the URL without "
                     "'user:password@'.")


_USERINFO = re.compile(r"(://)[^/\s@?#]*:[^/\s@?#]*@")


def hide_userinfo(text: str) -> str:
    """`text` with each URL's `user:password@` shown as `***@`: for messages that quote what
    was typed or what an older configuration holds."""
    return _USERINFO.sub(r"\1***@", text)


def ldap_only(url: str) -> None:
    """`query url` names the directory CRLs are read from: an LDAP URL (the reference's
    `query url LDAP-URL`; RFC 4516), never http:// or another scheme."""
    no_userinfo(url)
    if url.partition("://")[0].lower() != "ldap":
        raise ArgRefused("The query url is an LDAP URL (ldap://host[:port][/dn]): the "
                         "directory certificates and CRLs are read from.")


DESCRIPTION_MAX = 80


def up_to_80(text: str) -> None:
    if len(text) > DESCRIPTION_MAX:
        raise ArgRefused(f"A description is up to {DESCRIPTION_MAX} characters; this one has "
                         f"{len(text)}.")


def _ip(s: str) -> str:
    return str(ipaddress.ip_address(s))


WORD = ArgKind("WORD", _word)
LINE = ArgKind("LINE", _word, rest_of_line=True)
HOSTNAME = ArgKind("WORD", _hostname)
DOMAIN = ArgKind("WORD", _domain)
URL = ArgKind("WORD", _url, screen=no_userinfo)
ENROLLMENT_URL = ArgKind("WORD", http_url, screen=no_userinfo)
LDAP_URL = ArgKind("WORD", _url, screen=ldap_only)
DESCRIPTION = ArgKind("LINE", _word, rest_of_line=True, screen=up_to_80)
IP_ADDRESS = ArgKind("A.B.C.D|X:X::X", _ip)


@dataclass(frozen=True)
class ArgSpec:
    """How an argument is checked and described (`?`, Tab)."""

    kind: ArgKind
    help: str
    source: str = ""  # Tab and `?` offer the values the engine knows under this name


# -- tokens and patterns -----------------------------------------------------------------------


@dataclass(frozen=True)
class Kw:
    """A keyword of a command pattern."""

    word: str
    help: str
    binds: str | None = None  # a `{name: a | b}` choice binds args[name] = word (or value)
    value: str | None = None  # what a hidden spelling binds (`usage` of `usage keys`)
    hidden: bool = False  # accepted typed in full, never abbreviated nor offered (`?`, Tab)


SPELLINGS: dict[str, tuple[str, ...]] = {
    # The reference writes `crypto key generate rsa [usage keys | general-keys]` (and the same
    # for `crypto key import authentication rsa`): IOS XR's keyword is `usage-keys`, and read
    # literally `usage keys` would make usage keys labelled "keys". Both spellings are taken;
    # `?` and Tab offer only `usage-keys`.
    "usage-keys": ("usage keys",),
}
"""Other spellings of a choice keyword, as words typed one after the other."""


def _spelled(choice: str, name: str, helps: Mapping[str, str]) -> list[tuple[Kw, ...]]:
    """The token runs a `{name: ...}` choice accepts for `choice`: the keyword itself, and
    each other spelling with every run of its leading words (`usage`, `usage keys`): a first
    word typed in full beats the keyword it abbreviates, so the shorter run keeps `usage` the
    abbreviation of `usage-keys` it always was."""
    runs: list[tuple[Kw, ...]] = [(Kw(choice, helps.get(choice, ""), name),)]
    for other in SPELLINGS.get(choice, ()):
        first, *rest = other.split()
        lead = Kw(first, "", name, value=choice, hidden=True)
        runs += [(lead, *(Kw(w, "", hidden=True) for w in rest[:n]))
                 for n in range(len(rest) + 1)]
    return runs


@dataclass(frozen=True)
class Arg:
    """An argument of a command pattern (`<name>`)."""

    name: str
    spec: ArgSpec


Token = Kw | Arg
Variant = tuple[Token, ...]


class GrammarError(Exception):
    """A command declaration is wrong (a bug in the grammar, found at import)."""


def expand(pattern: str, args: Mapping[str, ArgSpec], helps: Mapping[str, str]) -> list[Variant]:
    """All linear variants of a pattern, shortest first."""
    items = re.findall(r"\[|\]|\{[^}]*\}|<[^>]+>|[^\s\[\]{}<>]+", pattern)
    pos = 0

    def seq(stop: str | None) -> list[Variant]:
        nonlocal pos
        variants: list[Variant] = [()]
        while pos < len(items):
            it = items[pos]
            pos += 1
            if it == stop:
                return variants
            if it == "[":
                inner = seq("]")
                variants = [v + w for v in variants for w in [(), *inner]]
            elif it.startswith("{"):
                name, _, alts = it[1:-1].partition(":")
                choices = [a.strip() for a in alts.split("|")]
                variants = [(*v, *run) for v in variants for c in choices
                            for run in _spelled(c, name.strip(), helps)]
            elif it.startswith("<"):
                name = it[1:-1]
                if name not in args:
                    raise GrammarError(f"{pattern!r}: argument <{name}> has no ArgSpec")
                variants = [(*v, Arg(name, args[name])) for v in variants]
            else:
                variants = [(*v, Kw(it, helps.get(it, ""))) for v in variants]
        if stop is not None:
            raise GrammarError(f"{pattern!r}: unclosed {stop!r}")
        return variants

    out = seq(None)
    return sorted(set(out), key=len)


# -- commands ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """A declared command: its variants, modes, help, and handler or config key."""

    name: str  # the pattern as declared, for messages and docs
    modes: tuple[Mode, ...]
    variants: tuple[Variant, ...]
    help: str
    handler: Callable[..., Any] | None  # exec and action commands (see engine.engine)
    key: str | None = None  # configuration lines: the key template
    enters: Mode | None = None  # a configuration line that opens a submode
    removes: str | None = None  # the `no` form: the key template it removes
    order: int = 0
    rank: int = 50  # where its lines go in `show running-config` (then declaration order)
    words: Mapping[str, str] = field(default_factory=dict)  # this command's keyword helps

    def key_for(self, args: Mapping[str, Any]) -> str:
        template = self.key or self.removes or ""
        return template.format(**args)


@dataclass(frozen=True)
class Handler:
    """A handler named by "package.module:function" and imported when its command first runs,
    so that declaring the command (parsing, `?`, Tab, `show running-config`) never loads the
    module that does it, nor what that module imports (engine/commands/__init__.py)."""

    target: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def resolve(self) -> Callable[..., Any]:
        module, _, name = self.target.partition(":")
        handler: Callable[..., Any] = getattr(importlib.import_module(module), name)
        return handler


@dataclass
class Grammar:
    """Every declared command, and the help texts of keywords."""

    commands: list[Command] = field(default_factory=list)
    keyword_help: dict[str, str] = field(default_factory=dict)

    def describe(self, helps: Mapping[str, str]) -> None:
        """Help texts for keywords, shared by every command that uses the word."""
        self.keyword_help.update(helps)

    def _add(self, cmd: Command) -> Command:
        self.commands.append(cmd)
        return cmd

    def action(self, pattern: str, *, modes: Sequence[Mode] = (Mode.EXEC,), help: str = "",
               args: Mapping[str, ArgSpec] | None = None,
               words: Mapping[str, str] | None = None) -> Callable[[Callable[..., Any]],
                                                                  Callable[..., Any]]:
        """Declare a command that runs a handler (exec commands, commit, show, ...). `words`
        gives keywords of this command their own `?` help (`commit label`, not the shared
        text of `label`)."""

        def register(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._add(Command(pattern, tuple(modes),
                              tuple(self._expand(pattern, args, words)), help, fn,
                              order=len(self.commands), words=dict(words or {})))
            return fn

        return register

    def declare(self, pattern: str, *, runs: str, modes: Sequence[Mode] = (Mode.EXEC,),
                help: str = "", args: Mapping[str, ArgSpec] | None = None,
                words: Mapping[str, str] | None = None) -> None:
        """`action`, for a handler that lives in another module: `runs` names it,
        "package.module:function" (a Handler), imported when the command first runs."""
        self.action(pattern, modes=modes, help=help, args=args, words=words)(Handler(runs))

    def config(self, pattern: str, *, key: str, mode: Mode = Mode.CONFIG, help: str = "",
               args: Mapping[str, ArgSpec] | None = None, enters: Mode | None = None,
               no_form: bool = True, rank: int = 50,
               words: Mapping[str, str] | None = None) -> None:
        """Declare a configuration line (and, unless no_form=False, its `no` form). `rank`
        places it in `show running-config` (identity 10, keys 30, PKI 50, ...)."""
        order = len(self.commands)
        self._add(Command(pattern, (mode,), tuple(self._expand(pattern, args, words)), help,
                          None, key=key, enters=enters, order=order, rank=rank,
                          words=dict(words or {})))
        if no_form:
            no_pattern = "no " + re.sub(r"\{(\w+)\}", r"<\1>", key) + " [<rest>]"
            rest = {**(args or {}), "rest": ArgSpec(LINE, "The value configured now (optional)")}
            self._add(Command("no " + pattern, (mode,),
                              tuple(self._expand(no_pattern, rest, words)), help, None,
                              removes=key, order=order, words=dict(words or {})))

    def _expand(self, pattern: str, args: Mapping[str, ArgSpec] | None,
                words: Mapping[str, str] | None = None) -> list[Variant]:
        return expand(pattern, args or {}, {**self.keyword_help, **(words or {})})

    def in_mode(self, mode: Mode) -> list[Command]:
        return [c for c in self.commands if mode in c.modes]


GRAMMAR = Grammar()
"""The one grammar every command module registers into."""

GRAMMAR.describe({
    "no": "Negate a command or set its defaults",
    "show": "Show commands",
    "configure": "Enter the configuration mode",
    "terminal": "Configure from the terminal",
    "exit": "Exit from this submode",
    "end": "Exit from configure mode",
    "commit": "Commit the configuration changes to running",
    "abort": "Discard all uncommitted changes and exit to exec mode",
    "do": "Run an exec command",
    "running-config": "Current operating configuration",
    "configuration": "Contents of the configuration (target, commits)",
    "commit-list": "List of commit identifiers",
    "rollback": "Roll back the configuration",
    "hostname": "Set system's network name",
    "domain": "Domain service configuration commands",
    "name": "Define the default domain name",
    "label": "Assign a label to this commit",
    "comment": "Assign a comment to this commit",
    "list": "List of commits",
    "changes": "Display the changes made by a commit",
    "last": "Roll back the last N commits",
    "to": "Roll back up to (but not including) a commit",
    "crypto": "Encryption module",
})
