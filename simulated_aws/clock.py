"""A virtual clock shared by the simulated world, moto and every thread of a test.

Virtual time only moves when the driver (`run`, `run_for` or `advance`) moves it. Through
time-machine, `time.time()`, `datetime.now()` and `datetime.utcnow()` read virtual time in
every thread; monotonic clocks and lock timeouts keep running in real time, which the driver
uses for its wall-clock limit. Whatever blocks for a while takes the clock and calls `sleep`,
or `wait` to block until a `ClockEvent` is set with a virtual timeout (moto's Wait states and
callback Tasks, which take no clock, are put on it by moto_waits.py).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import time_machine

_US = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seconds_to_us(seconds: float) -> int:
    return round(seconds * _US)


def _datetime_to_us(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError(f"naive datetime {when!r}: the virtual clock only takes aware ones")
    return (when - _EPOCH) // timedelta(microseconds=1)


class ClockTimeout(AssertionError):
    """The driver ran out of wall time (some actor never went back to sleep)."""


@dataclass(eq=False)
class Timer:
    """A world timer; `cancel()` keeps it from firing."""

    when_us: int
    seq: int
    fn: Callable[[], object]
    label: str = ""
    cancelled: bool = field(default=False)

    @property
    def when(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.when_us)

    def cancel(self) -> None:
        self.cancelled = True


class ClockEvent(threading.Event):
    """A threading.Event that `VirtualClock.wait` can wait on.

    `set()` runs the waiting clocks' hooks in the setting thread, before it returns: the waiter
    has left the clock's sleepers by then, so a driver that fired the timer which set it cannot
    move time on while the woken thread is still on its way.
    """

    def __init__(self) -> None:
        super().__init__()
        self._hooks_lock = threading.Lock()
        self._hooks: list[Callable[[], None]] = []

    def set(self) -> None:
        with self._hooks_lock:  # a waiter registers under this lock: it sees the flag or is run
            super().set()
            hooks, self._hooks = self._hooks, []
        for hook in hooks:
            hook()


class VirtualClock:
    """Virtual time for a test: timers, cross-thread sleep and a deterministic driver."""

    def __init__(self, start: datetime) -> None:
        self._now_us = _datetime_to_us(start)
        self._cond = threading.Condition(threading.RLock())
        self._seq = itertools.count()
        self._timers: list[tuple[int, int, Timer]] = []
        self._sleepers: dict[int, int | None] = {}  # seq -> wake time (µs); None: no timeout
        # The timed sleepers by (wake time, seq): the earliest without a scan of them all (with
        # thousands asleep that scan, once per event, was quadratic). A waiter whose event came
        # first leaves its entry behind; entries no longer in _sleepers are dropped when on top.
        self._sleeper_heap: list[tuple[int, int]] = []
        # seq -> that sleeper's own wake-up: waking one sleeper wakes one thread, not all of
        # them (with 500 executions asleep, a shared Condition cost minutes of system time).
        self._wakers: dict[int, threading.Event] = {}
        self._generation = 0  # bumped whenever the sleeper set changes
        self._travel: time_machine.travel | None = None
        self._traveller: Any = None
        self.stop_reason: str | None = None
        self._driver: int | None = None  # thread running run()/advance(), if any

    # ---- reading ---------------------------------------------------------------------------
    def now(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self._now_us)

    def timestamp(self) -> float:
        return self._now_us / _US

    @property
    def sleeping(self) -> int:
        """How many threads are blocked in `sleep()` right now."""
        with self._cond:
            return len(self._sleepers)

    def pending_timers(self) -> list[Timer]:
        with self._cond:
            return sorted(
                (t for _, _, t in self._timers if not t.cancelled),
                key=lambda t: (t.when_us, t.seq),
            )

    # ---- time-machine ----------------------------------------------------------------------
    def install(self) -> None:
        """Make datetime.now()/time.time() everywhere read virtual time."""
        if self._travel is not None:
            raise RuntimeError("clock already installed")
        with self._cond:
            self._travel = time_machine.travel(self.now(), tick=False)
            self._traveller = self._travel.start()

    def uninstall(self) -> None:
        with self._cond:
            if self._travel is None:
                return
            self._travel.stop()
            self._travel = None
            self._traveller = None

    def __enter__(self) -> VirtualClock:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # ---- timers and sleep ------------------------------------------------------------------
    def call_at(self, when: datetime, fn: Callable[[], object], label: str = "") -> Timer:
        with self._cond:
            when_us = max(_datetime_to_us(when), self._now_us)
            timer = Timer(when_us, next(self._seq), fn, label)
            heapq.heappush(self._timers, (timer.when_us, timer.seq, timer))
            self._cond.notify_all()
            return timer

    def call_later(self, seconds: float, fn: Callable[[], object], label: str = "") -> Timer:
        with self._cond:
            return self.call_at(self.now() + timedelta(seconds=seconds), fn, label)

    def sleep(self, seconds: float) -> None:
        """Block the calling (actor) thread until virtual time reaches now + seconds."""
        if seconds <= 0:
            return
        if threading.get_ident() == self._driver:
            raise RuntimeError("clock.sleep() from the driving thread would never wake up")
        wake = threading.Event()
        with self._cond:
            seq = next(self._seq)
            self._sleepers[seq] = self._now_us + _seconds_to_us(seconds)
            heapq.heappush(self._sleeper_heap, (self._sleepers[seq], seq))
            self._wakers[seq] = wake
            self._generation += 1
            self._cond.notify_all()  # the driver recounts the sleepers
        wake.wait()  # set by the driver when it consumes this sleeper

    def wait(self, event: ClockEvent, seconds: float | None) -> bool:
        """Block the calling (actor) thread until `event` is set or `seconds` of virtual time
        pass (None: no timeout); True if the event was set, False on the timeout.

        Meanwhile the thread counts as asleep for the driver, as in `sleep`. Whichever comes
        first ends the wait, under the clock's lock: the driver reaching the timeout, or
        `event.set()` from any thread (which takes the waiter out of the sleepers at once).
        """
        if threading.get_ident() == self._driver:
            raise RuntimeError("clock.wait() from the driving thread would never wake up")
        wake = threading.Event()
        set_first: list[bool] = []
        with self._cond, event._hooks_lock:
            if event.is_set():
                return True
            if seconds is not None and seconds <= 0:
                return False
            seq = next(self._seq)

            def on_set() -> None:
                with self._cond:
                    if seq in self._sleepers:  # else the timeout was consumed first
                        set_first.append(True)
                        self._release_locked(seq)

            deadline = None if seconds is None else self._now_us + _seconds_to_us(seconds)
            self._sleepers[seq] = deadline
            if deadline is not None:
                heapq.heappush(self._sleeper_heap, (deadline, seq))
            self._wakers[seq] = wake
            event._hooks.append(on_set)
            self._generation += 1
            self._cond.notify_all()  # the driver recounts the sleepers
        wake.wait()  # set by the driver at the timeout, or by on_set
        with event._hooks_lock:
            if on_set in event._hooks:  # timed out: the hook is stale
                event._hooks.remove(on_set)
        return bool(set_first)

    # ---- driving ---------------------------------------------------------------------------
    def _set_now_locked(self, when_us: int) -> None:
        delta = when_us - self._now_us
        if delta <= 0:
            return
        self._now_us = when_us
        if self._traveller is not None:
            self._traveller.shift(timedelta(microseconds=delta))

    def _next_event_locked(self) -> tuple[int, int, Timer | None] | None:
        """Earliest pending (time, seq, timer-or-None-for-a-sleeper)."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        best: tuple[int, int, Timer | None] | None = None
        if self._timers:
            when_us, seq, timer = self._timers[0]
            best = (when_us, seq, timer)
        heap = self._sleeper_heap
        while heap and heap[0][1] not in self._sleepers:  # its event woke it first
            heapq.heappop(heap)
        if heap:
            wake_us, seq = heap[0]
            if best is None or (wake_us, seq) < (best[0], best[1]):
                best = (wake_us, seq, None)
        return best

    def _take_locked(self, event: tuple[int, int, Timer | None]) -> Timer | None:
        """Move time to the event and consume it; returns a timer to fire outside the lock."""
        when_us, seq, timer = event
        self._set_now_locked(when_us)
        if timer is not None:
            heapq.heappop(self._timers)
            return timer
        heapq.heappop(self._sleeper_heap)  # the earliest: this sleeper
        self._release_locked(seq)
        return None

    def _release_locked(self, seq: int) -> None:
        """Wake one sleeper; the driver recounts."""
        del self._sleepers[seq]
        self._wakers.pop(seq).set()
        self._generation += 1
        self._cond.notify_all()

    def advance(self, seconds: float) -> None:
        """Move virtual time forward, firing timers and waking sleepers on the way.

        For tests without actor threads: woken sleepers are not waited for.
        """
        with self._cond:
            target = self._now_us + _seconds_to_us(seconds)
        while True:
            with self._cond:
                event = self._next_event_locked()
                if event is None or event[0] > target:
                    self._set_now_locked(target)
                    return
                timer = self._take_locked(event)
            if timer is not None:
                timer.fn()

    def run(
        self,
        until: Callable[[], bool],
        active: Callable[[], int] = lambda: 0,
        max_virtual_seconds: float = 7 * 86400,
        wall_timeout: float = 30.0,
        poll_seconds: float = 0.002,
    ) -> bool:
        """Drive virtual time while actor threads run.

        `active()` is how many actors (e.g. RUNNING executions) exist. Time only moves when
        every one of them is blocked in `sleep()`; then the earliest timer or sleeper (by time,
        then insertion order) is consumed, one at a time, so runs are deterministic.
        Returns True once `until()` holds; False when nothing can happen any more
        (`stop_reason == "idle"`) or the virtual limit is reached (`"limit"`).
        Raises ClockTimeout after `wall_timeout` real seconds.
        """
        self._driver = threading.get_ident()
        try:
            return self._run(until, active, max_virtual_seconds, wall_timeout, poll_seconds)
        finally:
            self._driver = None

    def _run(
        self,
        until: Callable[[], bool],
        active: Callable[[], int],
        max_virtual_seconds: float,
        wall_timeout: float,
        poll_seconds: float,
    ) -> bool:
        wall_deadline = time.monotonic() + wall_timeout
        self.stop_reason = None
        with self._cond:
            limit_us = self._now_us + _seconds_to_us(max_virtual_seconds)
        while True:
            if until():
                self.stop_reason = "until"
                return True
            with self._cond:
                generation = self._generation
            n_active = active()  # outside the lock: it may call moto
            timer: Timer | None = None
            with self._cond:
                if time.monotonic() > wall_deadline:
                    raise ClockTimeout(
                        f"VirtualClock.run: wall timeout ({wall_timeout}s) at virtual "
                        f"{self.now().isoformat()}: {max(n_active - len(self._sleepers), 0)} "
                        f"of {n_active} actor(s) busy (not in clock.sleep), "
                        f"{len(self._sleepers)} sleeping, {len(self.pending_timers())} timer(s)"
                    )
                if generation != self._generation:
                    continue  # someone slept or woke meanwhile: count again
                if len(self._sleepers) < n_active:
                    self._cond.wait(poll_seconds)
                    continue
                event = self._next_event_locked()
                if event is not None and event[0] <= limit_us:
                    timer = self._take_locked(event)
                elif event is not None:
                    self._set_now_locked(limit_us)
                    self.stop_reason = "limit"
                else:
                    self.stop_reason = "idle"
            if self.stop_reason in ("idle", "limit"):
                # until() may have turned true since it was read (an actor just finished).
                if until():
                    self.stop_reason = "until"
                    return True
                return False
            if timer is not None:
                timer.fn()

    def run_for(
        self,
        seconds: float,
        active: Callable[[], int] = lambda: 0,
        wall_timeout: float = 30.0,
    ) -> None:
        """Drive the clock (as `run`) until `seconds` of virtual time have passed."""
        target = self.now() + timedelta(seconds=seconds)
        self.call_at(target, lambda: None, "run_for")
        reached = self.run(
            lambda: self.now() >= target, active, seconds + 1, wall_timeout=wall_timeout
        )
        assert reached, f"run_for stopped early: {self.stop_reason}"
