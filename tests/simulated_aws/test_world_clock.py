from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from simulated_aws import ClockEvent, ClockTimeout, VirtualClock

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def test_timers_fire_in_time_then_insertion_order() -> None:
    clock = VirtualClock(START)
    fired: list[tuple[str, datetime]] = []
    clock.call_later(10, lambda: fired.append(("b", clock.now())))
    clock.call_later(5, lambda: fired.append(("a", clock.now())))
    clock.call_later(10, lambda: fired.append(("c", clock.now())))
    cancelled = clock.call_later(7, lambda: fired.append(("x", clock.now())))
    cancelled.cancel()
    clock.advance(9)
    assert fired == [("a", START + timedelta(seconds=5))]
    assert clock.now() == START + timedelta(seconds=9)
    clock.advance(1)
    assert [name for name, _ in fired] == ["a", "b", "c"]
    assert clock.now() == START + timedelta(seconds=10)


def test_timer_scheduled_by_a_timer_runs_within_the_same_advance() -> None:
    clock = VirtualClock(START)
    seen: list[float] = []
    clock.call_later(1, lambda: clock.call_later(1, lambda: seen.append(clock.timestamp())))
    clock.advance(5)
    assert seen == [START.timestamp() + 2]


def test_installed_clock_drives_time_and_datetime_everywhere() -> None:
    clock = VirtualClock(START)
    with clock:
        assert time.time() == START.timestamp()
        assert datetime.now(UTC) == START
        assert datetime.utcnow() == START.replace(tzinfo=None)
        clock.advance(3600.5)
        assert time.time() == START.timestamp() + 3600.5
        seen: list[datetime] = []
        thread = threading.Thread(target=lambda: seen.append(datetime.now(UTC)))
        thread.start()
        thread.join()
        assert seen == [START + timedelta(seconds=3600.5)]
    assert time.time() > START.timestamp() + 10**6  # back to real time (2026-11 or later)


def test_run_wakes_two_sleeping_threads_in_order_and_covers_48h_fast() -> None:
    clock = VirtualClock(START)
    woke: list[tuple[str, datetime]] = []
    done = threading.Event()
    lock = threading.Lock()
    actors = {"n": 2}

    def actor(name: str, seconds: float, rounds: int) -> None:
        for _ in range(rounds):
            clock.sleep(seconds)
            woke.append((name, clock.now()))
        with lock:
            actors["n"] -= 1
            if actors["n"] == 0:
                done.set()

    threads = [
        threading.Thread(target=actor, args=("slow", 6 * 3600, 8)),  # 48 h
        threading.Thread(target=actor, args=("fast", 3600, 24)),  # 24 h
    ]
    wall = time.monotonic()
    with clock:
        for thread in threads:
            thread.start()
        assert clock.run(done.is_set, lambda: actors["n"], max_virtual_seconds=72 * 3600)
        elapsed = time.monotonic() - wall
    for thread in threads:
        thread.join(1)
    assert clock.now() == START + timedelta(hours=48)
    assert elapsed < 1.0
    times = [when for _, when in woke]
    assert times == sorted(times)
    assert woke[0] == ("fast", START + timedelta(hours=1))
    assert ("slow", START + timedelta(hours=6)) in woke
    # At 6 h both wake; the one that went to sleep first (slow, at 0 h) wakes first.
    six = [name for name, when in woke if when == START + timedelta(hours=6)]
    assert six == ["slow", "fast"]


def test_run_waits_for_busy_actors_and_times_out_with_a_clear_message() -> None:
    clock = VirtualClock(START)
    clock.call_later(60, lambda: None)
    with pytest.raises(ClockTimeout, match=r"1 of 1 actor\(s\) busy"):
        clock.run(lambda: False, active=lambda: 1, wall_timeout=0.1)
    assert clock.now() == START  # never advanced while the actor was busy


def test_run_stops_when_idle_or_at_the_virtual_limit() -> None:
    clock = VirtualClock(START)
    assert clock.run(lambda: False) is False
    assert clock.stop_reason == "idle"
    clock.call_later(3600, lambda: None)
    assert clock.run(lambda: False, max_virtual_seconds=60) is False
    assert clock.stop_reason == "limit"
    assert clock.now() == START + timedelta(seconds=60)


def test_run_for_with_a_sleeping_actor() -> None:
    clock = VirtualClock(START)
    ticks: list[datetime] = []
    running = {"n": 1}

    def actor() -> None:
        for _ in range(3):
            clock.sleep(100)
            ticks.append(clock.now())
        running["n"] = 0

    thread = threading.Thread(target=actor)
    thread.start()
    clock.run_for(250, active=lambda: running["n"])
    assert clock.now() == START + timedelta(seconds=250)
    assert ticks == [START + timedelta(seconds=100), START + timedelta(seconds=200)]
    clock.run(lambda: running["n"] == 0, active=lambda: running["n"])
    thread.join(1)
    assert ticks[-1] == START + timedelta(seconds=300)


class _Waiter:
    """An actor thread that waits on `event` for `seconds`, then records when and how it woke."""

    def __init__(self, clock: VirtualClock, event: ClockEvent, seconds: float | None) -> None:
        self.result: list[tuple[bool, datetime]] = []
        self.done = threading.Event()

        def wait() -> None:
            woken = clock.wait(event, seconds)
            time.sleep(0.05)  # a slow actor: the driver must not move time meanwhile
            self.result.append((woken, clock.now()))
            self.done.set()

        self.thread = threading.Thread(target=wait)
        self.thread.start()

    def active(self) -> int:
        return 0 if self.done.is_set() else 1


def test_wait_returns_at_once_for_an_event_already_set() -> None:
    clock = VirtualClock(START)
    event = ClockEvent()
    event.set()
    assert clock.wait(event, 3600) is True
    assert clock.now() == START
    assert clock.sleeping == 0


def test_wait_times_out_after_its_virtual_seconds() -> None:
    clock = VirtualClock(START)
    event = ClockEvent()
    waiter = _Waiter(clock, event, 3600)
    clock.call_later(4000, lambda: None)  # later than the timeout: never reached by the waiter
    assert clock.run(waiter.done.is_set, waiter.active, wall_timeout=5)
    waiter.thread.join(1)
    assert waiter.result == [(False, START + timedelta(seconds=3600))]
    assert clock.sleeping == 0
    event.set()  # a set after the timeout wakes nobody and fails nothing
    assert not event._hooks


def test_wait_ends_when_a_timer_sets_the_event_and_time_stays_there() -> None:
    clock = VirtualClock(START)
    event = ClockEvent()
    waiter = _Waiter(clock, event, 3600)
    clock.call_later(100, event.set)
    clock.call_later(101, lambda: None)  # the next event the driver would take too early
    assert clock.run(waiter.done.is_set, waiter.active, wall_timeout=5)
    waiter.thread.join(1)
    assert waiter.result == [(True, START + timedelta(seconds=100))]


def test_wait_ends_when_another_actor_sets_the_event() -> None:
    clock = VirtualClock(START)
    event = ClockEvent()
    waiter = _Waiter(clock, event, None)  # no timeout at all
    setter_done = threading.Event()

    def setter() -> None:
        clock.sleep(250)
        event.set()
        setter_done.set()

    thread = threading.Thread(target=setter)
    thread.start()
    assert clock.run(
        waiter.done.is_set, lambda: waiter.active() + (not setter_done.is_set()), wall_timeout=5
    )
    thread.join(1)
    waiter.thread.join(1)
    assert waiter.result == [(True, START + timedelta(seconds=250))]


def test_wait_from_the_driving_thread_is_refused() -> None:
    clock = VirtualClock(START)
    refused: list[Exception] = []

    def from_a_timer() -> None:
        try:
            clock.wait(ClockEvent(), 10)
        except RuntimeError as error:
            refused.append(error)

    clock.call_later(1, from_a_timer)
    clock.run(lambda: bool(refused))
    assert "driving thread" in str(refused[0])


def test_many_sleepers_wake_earliest_first_interleaved_with_timers() -> None:
    clock = VirtualClock(START)
    woke: list[float] = []
    running = [0]
    lock = threading.Lock()

    def actor(seconds: float) -> None:
        clock.sleep(seconds)
        with lock:
            woke.append(seconds)
            running[0] -= 1

    waits = [float((i * 37) % 101) + 0.5 for i in range(60)]  # distinct, shuffled
    running[0] = len(waits)
    for seconds in waits:
        threading.Thread(target=actor, args=(seconds,), daemon=True).start()
        clock.call_later(seconds + 0.25, lambda s=seconds: woke.append(s + 0.25))
    assert clock.run(until=lambda: len(woke) == 2 * len(waits), active=lambda: running[0])
    assert woke == sorted(woke)
