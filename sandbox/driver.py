"""Moves the world's virtual clock while the orchestrator has work, paced or flat out.

Virtual time only moves while something is under way (a running execution, an event on its way,
an interruption still to come): a sandbox left alone waits for its user instead of letting
lifecycle hooks time out. Within that, `speed` paces it (60: a virtual minute per wall second,
so a human can watch) or, at 0, jumps from one timer or Wait state to the next.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

from simulated_aws import ClockTimeout, VirtualClock

TICK_SECONDS = 0.05  # wall time between pacing steps
FLAT_OUT_VIRTUAL_SECONDS = 7 * 86400  # one clock.run may cover this much when unpaced
STUCK_AFTER_SECONDS = 120.0  # wall time an actor may stay busy before we say so


class ClockDriver:
    """The one thread that moves `clock` (VirtualClock.run's driver)."""

    def __init__(
        self,
        clock: VirtualClock,
        busy: Callable[[], bool],
        active: Callable[[], int],
        speed: float,
    ) -> None:
        self.clock = clock
        self.busy = busy
        self.active = active
        self.speed = speed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="clock-driver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            wall, last = now - last, now
            if self.busy():
                self._drive(wall)
            # Flat out, only idle waits: work arrives over HTTP, a few ms is plenty.
            self._stop.wait(TICK_SECONDS if self.speed > 0 or not self.busy() else 0.001)

    def _drive(self, wall_seconds: float) -> None:
        if self.speed > 0:
            # Never more than a few ticks' worth at once: a slow step is not made up in a jump.
            budget = min(wall_seconds, 4 * TICK_SECONDS) * self.speed
        else:
            budget = FLAT_OUT_VIRTUAL_SECONDS
        try:
            self.clock.run(
                until=lambda: self._stop.is_set() or not self.busy(),
                active=self.active,
                max_virtual_seconds=budget,
                wall_timeout=STUCK_AFTER_SECONDS,
            )
        except ClockTimeout as stuck:  # report and go on: the sandbox keeps serving
            print(f"sandbox: {stuck}", file=sys.stderr)
        except Exception as error:  # a timer failed (e.g. a delivery): keep the clock alive
            print(f"sandbox: clock driver: {type(error).__name__}: {error}", file=sys.stderr)
