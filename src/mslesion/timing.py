"""Wall seconds per stage of one run (`segment`, `new-lesions`): where the time goes, kept in summary.json.

A run opens `timed_run()`; any code it calls, at any layer, wraps a step in `stage(name)`.
The stages reach the run's `StageTimes` through a context variable, so the raw-scan
preprocessing can time its own steps without a timer handed down every call. Outside a
timed run `stage` only logs. On an interactive terminal each stage's name is shown as it
starts (INFO); in logs and CI it is a DEBUG line.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

logger = logging.getLogger(__name__)


class StageTimes:
    """Seconds per stage name, in the order stages first ran (a stage run twice adds up)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def as_dict(self) -> dict[str, float]:
        """Rounded seconds per stage, plus `other` (what ran outside any stage) and `total`."""
        total = time.perf_counter() - self._start
        out = {name: round(s, 3) for name, s in self.seconds.items()}
        out["other"] = round(max(0.0, total - sum(self.seconds.values())), 3)
        out["total"] = round(total, 3)
        return out


_current: ContextVar[StageTimes | None] = ContextVar("mslesion_stage_times", default=None)


def interactive() -> bool:
    """An interactive terminal, not a log or CI: where progress is shown."""
    return sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def timed_run() -> Iterator[StageTimes]:
    """Collect the stages run inside this block (nested runs keep their own)."""
    times = StageTimes()
    token = _current.set(times)
    try:
        yield times
    finally:
        _current.reset(token)


def record(name: str, seconds: float) -> None:
    """Add `seconds` to stage `name` of the current run (if any): for steps timed by their own clock."""
    times = _current.get()
    if times is not None:
        times.add(name, seconds)


def announce(name: str) -> None:
    """Say that stage `name` starts: on an interactive terminal (INFO), else only in debug logs."""
    logger.log(logging.INFO if interactive() else logging.DEBUG, "%s ...", name)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block as stage `name` of the current run (if any)."""
    announce(name)
    start = time.perf_counter()
    try:
        yield
    finally:
        record(name, time.perf_counter() - start)
