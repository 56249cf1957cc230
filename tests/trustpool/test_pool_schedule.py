"""The automatic update on a fake engine clock: the whole retry schedule (20, 15, 10, 5, 4, 3,
2, 1 days before the earliest expiry, then hourly), restarts in the middle, the success that
ends it, and the daily warning when no `cabundle url` is configured."""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from engine.machines.trustpool import UpdateTimer
from engine.ports import FakeClock
from engine.trustpool.schedule import DAY, HOUR, attempt_after
from events.trustpool import TrustpoolImported, TrustpoolPolicyWarned, TrustpoolUpdateFailed
from tests.trustpool.pool_certs import ca, key, pem
from tests.trustpool.pool_support import fixed_builtins

T0 = 1_764_201_600_000_000  # 2025-11-27 00:00:00 UTC
EXPIRY = T0 + 60 * DAY


def _builtins(tmp_path: Path, expiry_us: int = EXPIRY) -> Path:
    import datetime as dt

    k = key()
    start = dt.datetime.fromtimestamp(T0 / 1e6 - 86400, dt.UTC)
    end = dt.datetime.fromtimestamp(expiry_us / 1e6, dt.UTC)
    (tmp_path / "builtin.pem").write_bytes(pem([ca("Soon Root", start, end, k=k)[0]]))
    (tmp_path / "renewed.pem").write_bytes(pem([ca("Soon Root", start, end + dt.timedelta(
        days=3650), k=k)[0]]))
    return tmp_path / "builtin.pem"


def _open(tmp_path: Path, clock: FakeClock) -> Engine:
    return Engine.open(tmp_path / "dev", clock=clock, user="admin",
                       builtins=fixed_builtins(tmp_path / "builtin.pem"))


def _configure(dev: Engine, url: str) -> None:
    for line in ("configure", "crypto ca trustpool policy", f"cabundle url {url}", "commit",
                 "end"):
        assert dev.execute(line).ok, line


def _events(results: list) -> list:  # type: ignore[type-arg]
    return [r.event for res in results for r in res.events]


def test_the_schedule_points() -> None:
    t = EXPIRY
    assert attempt_after(t, T0) == t - 20 * DAY
    assert attempt_after(t, t - 20 * DAY) == t - 15 * DAY
    assert attempt_after(t, t - 2 * DAY) == t - DAY
    assert attempt_after(t, t - DAY) == t - DAY + HOUR
    assert attempt_after(t, t + 5 * HOUR) == t + 6 * HOUR  # hourly, until one succeeds
    assert attempt_after(t, t - 7 * DAY) == t - 5 * DAY  # armed inside the window: next point


def test_walk_the_whole_retry_schedule_across_restarts(tmp_path: Path) -> None:
    _builtins(tmp_path)
    clock = FakeClock(T0)
    url = f"file://{tmp_path / 'bundle.pem'}"  # missing until the end: every attempt fails
    dev = _open(tmp_path, clock)
    assert dev.state.trustpool.timer is UpdateTimer.SCHEDULED
    assert dev.state.trustpool.target == EXPIRY
    _configure(dev, url)
    points = [EXPIRY - d * DAY for d in (20, 15, 10, 5, 4, 3, 2, 1)]
    points += [EXPIRY - DAY + h * HOUR for h in range(1, 4)]
    for n, point in enumerate(points, 1):
        clock.us = point - 1
        assert dev.run_due() == [], f"nothing due just before attempt {n}"
        clock.us = point
        results = dev.run_due()
        evs = _events(results)
        assert len(evs) == 1 and isinstance(evs[0], TrustpoolUpdateFailed), evs
        assert evs[0].url == url and "cannot read" in evs[0].cause
        assert dev.state.trustpool.failures == n
        assert dev.state.trustpool.timer is UpdateTimer.RETRYING
        assert results[0].output.startswith("%PKI-3-TRUSTPOOL_DOWNLOAD_FAIL: Automatic "
                                            f"trustpool update from {url} failed: cannot read")
        if n % 3 == 0:  # a restart resumes where the log says
            dev.close()
            dev = _open(tmp_path, clock)
            assert dev.state.trustpool.failures == n
    policy = dev.execute("show crypto ca trustpool policy").output
    assert "(retrying after 11 failed attempts; watching expiry" in policy, policy
    assert f"failed: cannot read {tmp_path / 'bundle.pem'}" in policy
    # The bundle appears: the next hourly attempt succeeds and the timer watches the new pool.
    (tmp_path / "bundle.pem").write_bytes((tmp_path / "renewed.pem").read_bytes())
    clock.us = points[-1] + HOUR
    evs = _events(dev.run_due())
    assert len(evs) == 1 and isinstance(evs[0], TrustpoolImported) and evs[0].automatic
    pool = dev.state.trustpool
    assert pool.timer is UpdateTimer.SCHEDULED and pool.failures == 0
    assert pool.target == EXPIRY + 3650 * DAY  # the built-in is shadowed by its renewal
    logged = dev.execute("show logging").output
    assert logged.count("%PKI-3-TRUSTPOOL_DOWNLOAD_FAIL") == len(points)
    assert f"%PKI-6-TRUSTPOOL_DOWNLOAD_SUCCESS: Automatic trustpool update from {url}" in logged
    clock.us += 30 * DAY
    assert dev.run_due() == []
    dev.close()


def test_an_update_that_renews_nothing_goes_on_with_the_schedule(tmp_path: Path) -> None:
    """A success that leaves the same certificate earliest tries again at the next point,
    recording only that the bundle was the same (no loop, no copy of the bundle)."""
    _builtins(tmp_path)
    (tmp_path / "same.pem").write_bytes(pem([ca("Other", *_years(2020, 2040))[0]]))
    clock = FakeClock(T0)
    with _open(tmp_path, clock) as dev:
        _configure(dev, f"file://{tmp_path / 'same.pem'}")
        clock.us = EXPIRY - 20 * DAY
        first = _events(dev.run_due())
        assert isinstance(first[0], TrustpoolImported) and len(first[0].certificates) == 1
        assert dev.run_due() == []
        clock.us = EXPIRY - 15 * DAY
        second = _events(dev.run_due())
        assert isinstance(second[0], TrustpoolImported)
        assert second[0].unchanged and second[0].certificates == ()
        assert len(dev.state.trustpool.downloaded) == 1


def _years(a: int, b: int):  # type: ignore[no-untyped-def]
    from tests.trustpool.pool_certs import years

    return years(a, b)


def test_a_two_year_clock_jump_warns_once_not_daily(tmp_path: Path) -> None:
    """The no-url warning is a notice: a `clock set` walk prints it once, at the new time."""
    _builtins(tmp_path)
    dev = _open(tmp_path, FakeClock(T0))
    r = dev.execute("clock set 00:00:00 27 November 2027")
    assert r.ok, r.output
    assert r.output.count("TRUSTPOOL_AUTO_UPDATE_DISABLED") == 1
    assert "WALK_LIMIT" not in r.output
    assert dev.execute("show logging").output.count("TRUSTPOOL_AUTO_UPDATE_DISABLED") == 1
    assert dev.run_due() == []
    dev.close()


def test_no_url_warns_daily(tmp_path: Path) -> None:
    _builtins(tmp_path)
    clock = FakeClock(T0)
    dev = _open(tmp_path, clock)
    clock.us = T0 + DAY - 1
    assert dev.run_due() == []
    for day in (1, 2, 3):
        clock.us = T0 + day * DAY
        results = dev.run_due()
        evs = _events(results)
        assert len(evs) == 1 and isinstance(evs[0], TrustpoolPolicyWarned)
        assert results[0].output.startswith("%PKI-4-TRUSTPOOL_AUTO_UPDATE_DISABLED: ")
        assert dev.run_due() == []
        if day == 2:
            dev.close()
            dev = _open(tmp_path, clock)
    clock.us = EXPIRY - 20 * DAY  # an attempt point, but nothing to fetch from
    assert all(isinstance(e, TrustpoolPolicyWarned) for e in _events(dev.run_due()))
    assert dev.execute("show logging").output.count("TRUSTPOOL_AUTO_UPDATE_DISABLED") >= 3
    assert "no cabundle url is configured" in dev.execute(
        "show crypto ca trustpool policy").output
    dev.close()


def test_the_timer_machine_guards(tmp_path: Path) -> None:
    """`fetch` only with a cabundle url, `warn` only without; nothing from idle."""
    from engine.machines import trustpool as machine

    _builtins(tmp_path)
    with _open(tmp_path, FakeClock(T0)) as dev:
        assert machine.fire(dev.state, "fetch") is None
        assert machine.fire(dev.state, "warn") is UpdateTimer.SCHEDULED
        _configure(dev, "file:///nonexistent.pem")
        assert machine.fire(dev.state, "fetch") is UpdateTimer.FETCHING
        assert machine.fire(dev.state, "warn") is None
    with Engine.open(tmp_path / "empty", clock=FakeClock(T0), builtins=None) as empty:
        assert empty.state.trustpool.timer is UpdateTimer.IDLE
        assert machine.fire(empty.state, "fetch") is None
        assert machine.fire(empty.state, "warn") is None


def test_clock_set_walks_the_retry_schedule_each_attempt_at_its_time(tmp_path: Path) -> None:
    """`clock set` past the whole schedule runs every attempt in order, each stamped with its
    own point; a replay of the log gives the same pool; setting the clock back runs nothing."""
    from datetime import UTC, datetime

    _builtins(tmp_path)
    clock = FakeClock(T0)
    dev = _open(tmp_path, clock)
    _configure(dev, f"file://{tmp_path / 'bundle.pem'}")
    end = EXPIRY - DAY + 2 * HOUR + 30 * 60_000_000
    when = datetime.fromtimestamp(end / 1e6, UTC)
    result = dev.execute(f"clock set {when:%H:%M:%S} {when.day} {when:%B %Y}")
    assert result.ok, result.output
    points = [EXPIRY - d * DAY for d in (20, 15, 10, 5, 4, 3, 2, 1)]
    points += [EXPIRY - DAY + HOUR, EXPIRY - DAY + 2 * HOUR]
    ran = [r.events[0] for r in result.due]
    assert [type(r.event) for r in ran] == [TrustpoolUpdateFailed] * len(points)
    assert [r.at for r in ran] == points
    assert result.output.count("%PKI-3-TRUSTPOOL_DOWNLOAD_FAIL") == len(points)
    expected = dev.state.trustpool
    assert expected.failures == len(points)
    back = datetime.fromtimestamp((T0 + DAY) / 1e6, UTC)
    assert dev.execute(f"clock set {back:%H:%M:%S} {back.day} {back:%B %Y}").due == []
    dev.close()
    with Engine.open(tmp_path / "dev", clock=clock, builtins=None,
                     use_snapshots=False) as replayed:
        assert replayed.state.trustpool == expected
