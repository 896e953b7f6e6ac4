"""Telling the app that the server is stopping, the moment a stop signal arrives.

uvicorn runs the lifespan's shutdown only once every request in progress has finished, so that is too
late for requests that wait for a change: they would hold the shutdown for as long as they wait. Nor does
it tell the app when it begins to stop. So `on_stop_signal` chains a callback in front of uvicorn's own
handlers of SIGTERM and SIGINT (installed with `signal.signal`, which uvicorn restores when it exits), and
leaves uvicorn's handling as it was. `loop.add_signal_handler` would replace uvicorn's handler instead.
Only the main thread of a process can take signals: an app served on another thread (as in tests) is
told nothing.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def on_stop_signal(callback: Callable[[], None]) -> Iterator[None]:
    """Run `callback` on the event loop when a stop signal arrives, while the block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def chained(number: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        handler = previous[signal.Signals(number)]
        if callable(handler):
            handler(number, frame)
        else:  # the default action or none, as it was
            signal.signal(number, handler)
            signal.raise_signal(number)

    for sig in STOP_SIGNALS:
        signal.signal(sig, chained)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is chained:
                signal.signal(sig, handler)
