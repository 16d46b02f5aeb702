"""Progress on long hashing work: a rich bar on a terminal, a line every 10 s in CI, nothing below 1 GiB."""

from __future__ import annotations

import threading
import time
from typing import Any

from mlgate.console import err, is_terminal

THRESHOLD = 1 << 30  # show progress past about 1 GiB
CI_INTERVAL = 10.0  # seconds between CI progress lines


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.2f} GiB"


class Progress:
    """Thread-safe byte counter that reports itself; use as a context manager."""

    def __init__(self, total: int, *, label: str = "hashing", ci: bool = False, interval: float = CI_INTERVAL,
                 threshold: int = THRESHOLD) -> None:
        self.total = total
        self.done = 0
        self.label = label
        self._lock = threading.Lock()
        self._interval = interval
        self._start = time.monotonic()
        self._last = self._start
        self._bar: Any = None
        self._task: Any = None
        self._mode = "off"
        if total >= threshold:
            self._mode = "bar" if (is_terminal() and not ci) else "lines"

    def __enter__(self) -> Progress:
        if self._mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self._mode == "off":
            return
        with self._lock:
            self.done += n
            if self._mode == "bar":
                self._bar.advance(self._task, n)
                return
            now = time.monotonic()
            if now - self._last < self._interval:
                return
            self._last = now
            done = self.done
        self._line(done, now)

    def _line(self, done: int, now: float) -> None:
        elapsed = max(now - self._start, 1e-9)
        pct = 100.0 * done / self.total if self.total else 100.0
        err(f"{self.label}: {_gib(done)} / {_gib(self.total)} ({pct:.0f}%) at {done / elapsed / 1e9:.2f} GB/s")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
        elif self._mode == "lines" and exc[0] is None:
            self._line(self.done, time.monotonic())
