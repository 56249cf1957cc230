"""The engine clock (issue 15): `clock set` records a `ClockSet` (the offset over the system
clock), the engine clock runs on from the time set, `show clock` prints it in IOS XR's
layout, bad input changes nothing, the offset survives a restart and replays exactly, and the
walk of `clock set` forward runs due jobs in order, each at its own time, never twice."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import Engine
from engine.messages import MONTHS
from engine.ports import EngineClock, FakeClock, PinnedClock, to_micros
from engine.schedule import WALK_LIMIT, Job, device_timers, walk
from engine.state import DeviceState, evolve
from events.clock import ClockSet
from tests.core.engine_support import open_engine

T0 = FakeClock().us  # 2025-11-27 00:00:00 UTC, where every FakeClock starts
DAY = 86_400_000_000


def us(*args: int) -> int:
    return to_micros(datetime(*args, tzinfo=UTC))  # type: ignore[misc]


def engine_at(clock: FakeClock | None = None) -> Engine:
    return Engine.in_memory(clock=clock or FakeClock())


# -- given / when / then over events ---------------------------------------------------------------


def test_given_nothing_when_clock_set_then_one_clock_set_with_the_offset() -> None:
    clock = FakeClock()
    e = engine_at(clock)
    r = e.execute("clock set 14:30:00 1 December 2026")
    assert r.ok and r.output == "14:30:00.000 UTC Tue Dec 01 2026\n"
    (rec,) = r.events
    assert rec.event == ClockSet(us(2026, 12, 1, 14, 30), us(2026, 12, 1, 14, 30) - T0)
    assert rec.at == T0  # the engine time before the set
    assert rec.actor == "admin"
    assert e.state.clock_offset_us == us(2026, 12, 1, 14, 30) - T0


def test_given_a_clock_set_when_another_then_the_offset_is_over_the_system_clock() -> None:
    clock = FakeClock()
    e = engine_at(clock)
    e.execute("clock set 14:30:00 1 December 2026")
    clock.advance(10)
    r = e.execute("clock set 09:00:00 2 Dec 2026")
    (rec,) = r.events
    assert rec.at == us(2026, 12, 1, 14, 30, 10)
    assert rec.event == ClockSet(us(2026, 12, 2, 9), us(2026, 12, 2, 9) - (T0 + 10_000_000))


def test_the_fold_takes_the_offset_and_logs_the_update() -> None:
    st = evolve(DeviceState(), ClockSet(us(2026, 12, 1, 14, 30), 42), T0, 1)
    assert st.clock_offset_us == 42
    assert st.messages == ((T0, "%SYS-6-CLOCKUPDATE: System clock has been updated from "
                                "00:00:00.000 UTC Thu Nov 27 2025 to 14:30:00.000 UTC Tue Dec 01 "
                                "2026, configured from console."),)
    back = evolve(st, ClockSet(us(2020, 1, 1, 0, 0), -7), us(2026, 12, 1, 14, 30), 2)
    assert back.clock_offset_us == -7  # set back behind the system clock: allowed


# -- the clock runs on from the time set -----------------------------------------------------------


def test_show_clock_runs_on_from_the_time_set() -> None:
    clock = FakeClock()
    e = engine_at(clock)
    assert e.execute("show clock").output == "00:00:00.000 UTC Thu Nov 27 2025\n"
    e.execute("clock set 23:59:58 31 Dec 2026")
    clock.advance(2.345)
    assert e.execute("show clock").output == "00:00:00.345 UTC Fri Jan 01 2027\n"
    assert e.ports.clock.now_us() == us(2027, 1, 1) + 345_000
    # Events appended after the set carry engine times.
    e.execute("configure")
    e.execute("hostname r1")
    r = e.execute("commit")
    assert r.events[0].at == us(2027, 1, 1) + 345_000


def test_both_orders_and_month_prefixes_in_any_case() -> None:
    e = engine_at()
    for line, shown in (("clock set 1:2:3 Jun 3 2030", "01:02:03.000 UTC Mon Jun 03 2030"),
                        ("clock set 10:00:00 3 jun 2030", "10:00:00.000 UTC Mon Jun 03 2030"),
                        ("clock set 10:00:00 29 FEBRUARY 2028", "10:00:00.000 UTC Tue Feb 29 "
                                                                "2028"),
                        ("clock set 00:00:00 1 s 1993", "00:00:00.000 UTC Wed Sep 01 1993"),
                        ("clock set 23:59:59 31 d 2035", "23:59:59.000 UTC Mon Dec 31 2035")):
        r = e.execute(line)
        assert (r.ok, r.output) == (True, shown + "\n"), line
        assert e.execute("show clock").output == shown + "\n"


def test_do_clock_set_from_configuration_mode() -> None:
    e = engine_at()
    e.execute("configure")
    r = e.execute("do clock set 08:00:00 5 January 2027")
    assert r.ok and [x.type for x in r.events] == ["ClockSet"]
    assert e.prompt.endswith("(config)#")
    assert e.execute("do show clock").output == "08:00:00.000 UTC Tue Jan 05 2027\n"


def test_help_for_each_argument() -> None:
    e = engine_at()
    assert e.help("clock ") == "  set  Set the time and date"
    assert e.help("clock set ") == "  hh:mm:ss  Current Time"
    assert e.help("clock set 10:00:00 ") == ("  <1-31>  Day of the month\n"
                                             "  MONTH   Month of the year")
    assert e.help("clock set 10:00:00 1 ") == "  MONTH  Month of the year"
    assert e.help("clock set 10:00:00 dec ") == "  <1-31>  Day of the month"
    assert e.help("clock set 10:00:00 1 dec ") == "  <1993-2035>  Year"
    assert e.help("clock set 10:00:00 1 dec 2026 ") == "  <cr>"
    assert next(ln.split(None, 1) for ln in e.help("show ").splitlines()) == [
        "clock", "Display the system clock"]
    assert ["clock", "Manage the system clock"] in [ln.split(None, 1)
                                                    for ln in e.help("").splitlines()]


# -- bad input: a % error, nothing changes -------------------------------------------------------


@pytest.mark.parametrize(("line", "caret_word", "message"), [
    ("clock set 25:00:00 1 December 2026", "25:00:00", "% Invalid input detected at '^' marker."),
    ("clock set 12:60:00 1 December 2026", "12:60:00", "% Invalid input detected at '^' marker."),
    ("clock set 12:00:60 1 December 2026", "12:00:60", "% Invalid input detected at '^' marker."),
    ("clock set 12:00 1 December 2026", "12:00", "% Invalid input detected at '^' marker."),
    ("clock set 12:00:00 32 December 2026", "32", "% Invalid input detected at '^' marker."),
    ("clock set 12:00:00 1 Ju 2026", "Ju", "% Invalid input detected at '^' marker."),
    ("clock set 12:00:00 1 Smarch 2026", "Smarch", "% Invalid input detected at '^' marker."),
    ("clock set 12:00:00 1 December 1992", "1992", "% Invalid input detected at '^' marker."),
    ("clock set 12:00:00 1 December 2036", "2036", "% Invalid input detected at '^' marker."),
    ("clock set 12:00:00 31 February 2026", None,
     "% Invalid date: February 2026 has no day 31."),
    ("clock set 12:00:00 February 29 2027", None,
     "% Invalid date: February 2027 has no day 29."),
    ("clock set 12:00:00 31 april 2027", None, "% Invalid date: April 2027 has no day 31."),
    ("clock set 12:00:00 1 December", None, "% Incomplete command."),
])
def test_bad_input_changes_nothing(line: str, caret_word: str | None, message: str) -> None:
    clock = FakeClock()
    e = engine_at(clock)
    before = e.state
    r = e.execute(line)
    assert not r.ok and r.events == []
    lines = r.output.splitlines()
    assert lines[-1] == message
    if caret_word is not None:
        assert lines[0].index("^") == len(e.prompt) + line.index(" " + caret_word) + 1
    assert e.state is before
    assert e.execute("show clock").output == "00:00:00.000 UTC Thu Nov 27 2025\n"


# -- restart and replay ----------------------------------------------------------------------------


def test_the_offset_survives_a_restart_and_replays_exactly(tmp_path: Path) -> None:
    clock = FakeClock()
    with open_engine(tmp_path, clock) as e:
        e.execute("clock set 14:30:00 1 December 2026")
        clock.advance(60)
        e.execute("clock set 06:00:00 1 December 2026")  # back
        live = e.state
    clock.advance(30)
    for snapshots in (True, False):
        with open_engine(tmp_path, clock, use_snapshots=snapshots) as again:
            assert again.state == live
            assert isinstance(again.ports.clock, EngineClock)
            assert again.execute("show clock").output == "06:00:30.000 UTC Tue Dec 01 2026\n"


def test_a_frozen_replay_shows_its_own_moment_and_refuses_clock_set() -> None:
    e = engine_at()
    e.execute("clock set 14:30:00 1 December 2026")
    frozen = Engine.frozen(e.state, us(2026, 12, 1, 15))
    assert frozen.execute("show clock").output == "15:00:00.000 UTC Tue Dec 01 2026\n"
    r = frozen.execute("clock set 10:00:00 1 January 2030")
    assert not r.ok and "read-only" in r.output


# -- the walk (engine/schedule.py) -----------------------------------------------------------------


@dataclass
class Timer:
    """A timer that is due at `next_at` and, each time it runs, moves `next_at` by `every`
    (µs) — like a trustpool retry or a poll; `ran` records the times it ran at."""

    name: str
    next_at: int
    every: int
    ran: list[int] = field(default_factory=list)
    notice: bool = False
    until: int | None = None  # a notice that is moot from then on (the work fixed it)

    def due(self, state: DeviceState, now: int) -> list[Job]:
        if self.until is not None and now >= self.until:
            return []
        return ([Job(self.name, self.next_at, self._run, self.notice)]
                if self.next_at <= now else [])

    def _run(self, state: DeviceState, now: int) -> None:
        self.ran.append(now)
        self.next_at = now + self.every


def drive(timers: list[Timer], start: int, until: int) -> list[tuple[str, int]]:
    steps = []
    for step in walk(DeviceState, start, until, [t.due for t in timers]):
        step.job.run(DeviceState(), step.now)
        steps.append((step.job.name, step.now))
    return steps


def test_a_walk_runs_jobs_in_order_each_at_its_own_time() -> None:
    hour = 3_600_000_000
    daily = Timer("daily", T0 + 5 * hour, 24 * hour)
    hourly = Timer("hourly", T0 + 30 * hour, hour)
    steps = drive([daily, hourly], T0, T0 + 32 * hour)
    assert steps == [("daily", T0 + 5 * hour), ("daily", T0 + 29 * hour),
                     ("hourly", T0 + 30 * hour), ("hourly", T0 + 31 * hour),
                     ("hourly", T0 + 32 * hour)]


def test_an_overdue_job_runs_at_the_start_never_before_it() -> None:
    late = Timer("late", T0 - 10, 1_000_000)
    assert drive([late], T0, T0 + 1_500_000) == [("late", T0), ("late", T0 + 1_000_000)]


def test_a_job_that_does_not_move_its_time_runs_once_per_walk() -> None:
    stuck = Timer("stuck", T0 + 1, 0)  # runs, but stays due at the same time
    assert drive([stuck], T0, T0 + 100) == [("stuck", T0 + 1)]
    assert stuck.ran == [T0 + 1]


def test_a_notice_runs_once_at_the_end_of_a_walk_after_the_work() -> None:
    hour = 3_600_000_000
    warning = Timer("warning", T0 + hour, 24 * hour, notice=True)
    work = Timer("work", T0 + 2 * hour, 24 * hour)
    steps = drive([warning, work], T0, T0 + 700 * 24 * hour)
    assert steps[-1] == ("warning", T0 + 700 * 24 * hour)
    assert [s for s in steps if s[0] == "warning"] == [steps[-1]]
    assert len(steps) == 700 + 1  # every day's work, one warning
    assert warning.next_at > T0 + 700 * 24 * hour  # not due again: a tick will not repeat it


def test_a_notice_the_work_made_moot_does_not_run() -> None:
    hour = 3_600_000_000
    moot = Timer("warning", T0 + hour, hour, notice=True, until=T0 + 10 * hour)
    assert drive([moot], T0, T0 + 20 * hour) == []
    assert drive([moot], T0, T0 + 5 * hour) == [("warning", T0 + 5 * hour)]


def test_a_walk_stops_at_its_limit() -> None:
    every_second = Timer("tick", T0 + 1_000_000, 1_000_000)
    steps = drive([every_second], T0, T0 + 10 * WALK_LIMIT * 1_000_000)
    assert len(steps) == WALK_LIMIT


def test_the_timer_table_is_the_one_list() -> None:
    from engine.commands.trustpoint import due_polls
    from engine.device_timers import DEVICE_TIMERS

    assert device_timers() is DEVICE_TIMERS
    assert due_polls in DEVICE_TIMERS
    assert all(callable(t) for t in DEVICE_TIMERS)


def test_a_job_runs_on_a_clock_pinned_at_its_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """`yield Now()` inside a job answers the job's time, not the engine clock's."""
    from engine import schedule
    from engine.effects import Now, Outcome

    seen: list[int] = []
    due_at = T0 + 3_600_000_000

    def job(state: DeviceState, now: int):  # type: ignore[no-untyped-def]
        seen.append((yield Now()))
        return Outcome()

    fired: list[bool] = []

    def due(state: DeviceState, now: int) -> list[Job]:
        return [] if fired or due_at > now else [Job("probe", due_at, _once(job, fired))]

    monkeypatch.setattr(schedule, "_TABLE", [(due,)])
    e = engine_at()
    r = e.execute("clock set 05:00:00 27 November 2025")
    assert seen == [due_at] and len(r.due) == 1
    assert isinstance(e.ports.clock, EngineClock)
    assert PinnedClock(5).now_us() == 5


def test_during_a_walk_the_engine_clock_reads_the_steps_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever follows the engine clock (a test's CA) is at the job's moment while it runs;
    after the walk the clock reads the time that was set."""
    from engine import schedule
    from engine.effects import Outcome

    e = engine_at()
    seen: list[int] = []
    due_at = T0 + 3_600_000_000

    def job(state: DeviceState, now: int) -> Outcome:
        seen.append(e.ports.clock.now_us())
        return Outcome()

    fired: list[bool] = []

    def due(state: DeviceState, now: int) -> list[Job]:
        return [] if fired or due_at > now else [Job("probe", due_at, _once(job, fired))]

    monkeypatch.setattr(schedule, "_TABLE", [(due,)])
    assert e.execute("clock set 05:00:00 27 November 2025").ok
    assert abs(seen[0] - due_at) < 1_000_000
    assert abs(e.ports.clock.now_us() - us(2025, 11, 27, 5)) < 1_000_000


def _once(fn: Callable[..., object], fired: list[bool]) -> Callable[..., object]:
    def run(state: DeviceState, now: int) -> object:
        fired.append(True)
        return fn(state, now)

    return run


def test_clock_set_stops_its_walk_at_the_limit_and_says_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from engine import schedule
    from engine.effects import Outcome

    every_second = Timer("tick", T0 + 1_000_000, 1_000_000)

    def tick(state: DeviceState, now: int) -> Outcome:
        every_second.due(state, now)[0].run(state, now)
        return Outcome()

    def due(state: DeviceState, now: int) -> list[Job]:
        return [Job("tick", j.due_at, tick) for j in every_second.due(state, now)]

    monkeypatch.setattr(schedule, "_TABLE", [(due,)])
    e = engine_at()
    r = e.execute("clock set 01:00:00 27 November 2025")
    assert r.ok and len(r.due) == WALK_LIMIT
    assert every_second.ran == [T0 + s * 1_000_000 for s in range(1, WALK_LIMIT + 1)]
    assert r.output.endswith(f"%SCHED-4-WALK_LIMIT: clock set ran {WALK_LIMIT} scheduled jobs; "
                             "what is still due runs from now on, at the current time.\n")
    assert len(e.run_due()) == 1  # a tick runs what is still due, once, at the current time
    assert every_second.ran[-1] == us(2025, 11, 27, 1)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-400 * DAY, 400 * DAY), st.integers(0, 10 ** 9)),
                min_size=1, max_size=8))
def test_any_sequence_of_sets_replays_and_the_clock_reads_the_last_set(
        moves: list[tuple[int, int]]) -> None:
    clock = FakeClock()
    e = engine_at(clock)
    for delta, elapsed in moves:
        target = (T0 + delta) // 1_000_000 * 1_000_000
        t = datetime.fromtimestamp(target / 1e6, UTC)
        r = e.execute(f"clock set {t:%H:%M:%S} {t.day} {MONTHS[t.month - 1]} {t.year}")
        assert r.ok, r.output
        clock.us += elapsed
        assert e.ports.clock.now_us() == target + elapsed
    replayed = DeviceState()
    for rec in e.store.read():
        replayed = evolve(replayed, rec.event, rec.at, rec.seq)
    assert replayed == e.state
