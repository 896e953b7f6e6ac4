"""A clock for the service under test that moves only when the test moves it (`create_app(clock=...)`)."""

from __future__ import annotations

import math

NANOSECONDS = 1_000_000_000
START = 1_800_000_000  # 2027-01-15: a whole second, far from the machine's own time


class MovableClock:
    """Nanoseconds since the Unix epoch, as `time.time_ns` answers them; forward only, as real time goes
    (the SQLite backend deletes what has expired, and a clock moved back would not bring it back)."""

    def __init__(self, seconds: int = START) -> None:
        self._now = seconds * NANOSECONDS

    def __call__(self) -> int:
        return self._now

    @property
    def seconds(self) -> int:
        """The whole second it is now, as the service counts expiry."""
        return self._now // NANOSECONDS

    def move_to(self, seconds: float) -> None:
        """To that instant (epoch seconds), to the millisecond: `move_to(expires_at - 0.001)` is the last
        millisecond before a state expires."""
        target = round(seconds * 1000) * (NANOSECONDS // 1000)
        assert target >= self._now, "the clock only moves forward"
        self._now = target

    def move_to_next_second(self) -> int:
        """To the start of the next whole second, which it returns."""
        self.move_to(math.floor(self._now / NANOSECONDS) + 1)
        return self.seconds
