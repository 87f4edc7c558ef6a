"""`run_tasks`: the one entry to the engines (local processes or Ray), chosen by `EngineOptions.kind`.

Apart from `engines` (the shared types and the local engine) and `ray_engine`, so neither
engine module imports the other.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from mslesion.cohort.engines import EngineKind, EngineOptions, Outcome, WorkerSpec, run_locally


def run_tasks(options: EngineOptions, spec: WorkerSpec, tasks: Sequence[Any]) -> Generator[Outcome, None, None]:
    """Run every task (each has a `key`); yield one Outcome per task as they finish."""
    if not tasks:
        return
    if options.kind is EngineKind.RAY:
        from mslesion.cohort.ray_engine import run_on_ray

        yield from run_on_ray(options, spec, tasks)
    else:
        yield from run_locally(options, spec, tasks)
