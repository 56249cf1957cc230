"""`trustledger replay DIR --until SEQ|TIME --show LINE` prints, byte for byte, what the device
showed at that moment: random histories (configuration commits, keys generated and zeroized,
a trustpoint authenticated and enrolled against the built-in CA, clock sets, timers that ran,
trustpool imports) run on a live device; after each step every show is captured live, and
the replay at that step's seq (or at that moment's time) must print the same bytes."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings

from engine import Engine
from engine.adapters.scep_inprocess import InProcessTransport
from engine.cli import main
from engine.ports import FakeClock, from_micros
from events.clock import ClockSet
from events.filelog import FileEventLog
from tests.support.crl_support import InProcessCrlFetcher
from tests.trustpoint.tp_support import CHALLENGE, CAFactory, device_pool, open_device
from tests.trustpool.pool_certs import ca, pem, years

SHOWS = ("show clock", "show logging", "show running-config",
         "show configuration commit list", "show configuration commit changes last 1",
         "show crypto key mypubkey rsa", "show crypto ca certificates",
         "show crypto ca trustpoint", "show crypto ca trustpool",
         "show crypto ca trustpool policy")
URL = "http://ca.invalid"
_ROOTS = [ca(f"Replay Show Root {n}", *years(2020, 2026 + n))[0] for n in range(3)]
BUNDLES = {"a": pem(_ROOTS[:2]), "b": pem(_ROOTS[1:])}

CONFIGS = {
    "hostname": ["hostname r1", "domain name example.com"],
    "rename": ["hostname edge-7"],
    "declare": ["crypto ca trustpoint myca", f"enrollment url {URL}",
                "enrollment retry period 1", "rsakeypair mykey"],
    "crl": ["crypto ca trustpoint myca", "crl optional"],
    "policy": ["crypto ca trustpool policy", "cabundle url file:///nonexistent.pem"],
}
STEPS = st.lists(st.one_of(
    st.tuples(st.just("config"), st.sampled_from(sorted(CONFIGS))),
    st.tuples(st.just("exec"), st.sampled_from([
        "keygen", "zeroize", "authenticate", "enroll", "rollback"])),
    st.tuples(st.just("clock"), st.sampled_from([-400, -3, 1, 30, 400])),  # days
    st.tuples(st.just("wait"), st.sampled_from([1, 61, 3600, 86_400 * 20])),  # seconds
    st.tuples(st.just("pool"), st.sampled_from(sorted(BUNDLES))),
), min_size=1, max_size=12)

EXEC = {
    "keygen": ("crypto key generate rsa mykey", ["yes", "2048"]),
    "zeroize": ("crypto key zeroize rsa mykey", ["yes"]),
    "authenticate": ("crypto ca authenticate myca", ["yes"]),
    "enroll": ("crypto ca enroll myca", [CHALLENGE, CHALLENGE]),
    "rollback": ("rollback configuration last 1", ["yes"]),
}


def live_shows(e: Engine) -> dict[str, str]:
    return {line: e.execute(line).output for line in SHOWS}


def replayed_shows(root: Path, until: str) -> dict[str, str]:
    """What `trustledger replay ROOT --until UNTIL --show ...` printed for each show."""
    args = ["replay", str(root), "--until", until]
    for line in SHOWS:
        args += ["--show", line]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(args)  # exit 1 when a show was refused, live as well: the outputs say which
    return dict(_split(out.getvalue()))


def _split(text: str) -> Iterator[tuple[str, str]]:
    """Cut replay's output at each `<prompt><show line>` it echoes before the show's output."""
    body = text.split("\n", 1)[1]  # after "! state at seq N"
    starts = sorted((body.index("#" + line + "\n"), line) for line in SHOWS)
    for (at, line), nxt in zip(starts, [*starts[1:], (len(body), "")], strict=True):
        begin = at + len(line) + 2
        end = body.rindex("\n", 0, nxt[0]) + 1 if nxt[1] else len(body)
        yield line, body[begin:end]


def iso(us: int) -> str:
    return from_micros(us).isoformat(timespec="microseconds")


def step(e: Engine, clock: FakeClock, root: Path, kind: str, arg: object) -> None:
    if kind == "config":
        for line in ["configure", *CONFIGS[str(arg)], "commit", "end"]:
            e.execute(line, answers=["yes"])
    elif kind == "exec":
        line, answers = EXEC[str(arg)]
        e.execute(line, answers=answers)
    elif kind == "clock":
        at = from_micros(e.ports.clock.now_us()) + timedelta(days=int(str(arg)))
        e.execute(at.strftime("clock set %H:%M:%S %d %b %Y"))
    elif kind == "wait":
        clock.advance(int(str(arg)))
        while e.run_due():
            pass
    else:
        e.execute(f"crypto ca trustpool import url file://{root / f'{arg}.pem'}")


ENROLLED = [("config", "hostname"), ("exec", "keygen"), ("config", "declare"),
            ("exec", "authenticate"), ("exec", "enroll"), ("wait", 61), ("pool", "a"),
            ("clock", 400), ("clock", -3), ("exec", "zeroize"), ("config", "crl")]


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STEPS)
@example(ENROLLED)  # a whole enrollment, then the certificate expires
@example([("exec", "keygen")] * 4)  # more keys than a device's usual pool of three
def test_replay_shows_what_the_device_showed(steps: list[tuple[str, object]]) -> None:
    root = Path(tempfile.mkdtemp(prefix="tl-replay-show-"))
    try:
        _check(root, steps)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _check(root: Path, steps: list[tuple[str, object]]) -> None:
    for name, data in BUNDLES.items():
        (root / f"{name}.pem").write_bytes(data)
    clock = FakeClock()
    network = InProcessTransport()
    cas = CAFactory(root, clock, network)
    cas(challenge=CHALLENGE)
    seen: list[tuple[int, int, dict[str, str]]] = []  # (seq, engine time, live shows)
    e = open_device(root / "dev", clock)
    e.ports.keygen = device_pool(count=len(steps))  # a key for each step, were all `keygen`
    e.ports.scep = network
    e.ports.crls = InProcessCrlFetcher(network)  # the CRL refresh's CDP: in process, no DNS
    try:
        for kind, arg in steps:
            step(e, clock, root, kind, arg)
            seen.append((e.state.seq, e.ports.clock.now_us(), live_shows(e)))
    finally:
        e.close()
        cas.close()
    with FileEventLog.open(root / "dev" / "log", readonly=True) as log:
        stamps = [(r.seq, r.at, r.event) for r in log.read()]
    for seq, now, shows in seen:
        if seq and _moment_after(stamps[seq - 1]) == now:  # nothing ran since its last event
            assert replayed_shows(root / "dev", str(seq)) == shows, f"--until {seq}"
        if all((at <= now) == (s <= seq) for s, at, _ in stamps):  # the time reaches seq
            assert replayed_shows(root / "dev", iso(now)) == shows, f"--until {iso(now)}"


def _moment_after(stamp: tuple[int, int, object]) -> int:
    """The engine time right after an event: its own, or the time a `clock set` set."""
    _, at, event = stamp
    return event.set_to_us if isinstance(event, ClockSet) else at
