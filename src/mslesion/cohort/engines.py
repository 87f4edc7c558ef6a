"""Where a cohort's tasks run: `local` (this machine's processes) or `ray` (a Ray cluster).

One interface, `cohort.dispatch.run_tasks(options, spec, tasks)`: it yields exactly one `Outcome` per task,
in any order. A `WorkerSpec` is the picklable recipe of a worker: `start()` runs once per
worker process (it reads the model there) and returns the callable that does one task.
Lost workers are the engine's business: the local pool is rebuilt and Ray restarts the
actor; either way the task runs again, and the worker's attempt record (`layout.Attempts`)
turns a task that kills every worker into a failure after `max_retries` retries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from mslesion.errors import InputError

logger = logging.getLogger(__name__)


class EngineKind(StrEnum):
    LOCAL = "local"
    RAY = "ray"


@dataclass(frozen=True)
class Outcome:
    """One task's result: its sidecar summary, or the one-line reason it failed."""

    key: str
    summary: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 1
    where: str = ""  # host:pid that ran it


class Worker(Protocol):
    def __call__(self, task: Any) -> Outcome: ...


class WorkerSpec(Protocol):
    def start(self, threads: int | None, use_gpu: bool) -> Worker: ...


@dataclass(frozen=True)
class EngineOptions:
    """How and where to run: engine, worker count, Ray address and resources per task, retries."""

    kind: EngineKind = EngineKind.LOCAL
    workers: int | None = None  # local: 1 (this process); ray: as many as the cluster fits
    address: str | None = None  # ray: None starts a Ray on this machine; "auto" or "ray://HOST:PORT" joins a cluster
    cpus_per_task: float | None = None  # local: this machine's cores shared among the workers; ray: 1
    gpus_per_task: float = 0.0
    max_retries: int = 2  # runs of a task after a lost worker

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", EngineKind(self.kind))
        except ValueError:
            raise InputError(None, f"--engine must be one of {[k.value for k in EngineKind]}, not {self.kind!r}") from None
        if self.workers is not None and self.workers < 1:
            raise InputError(None, f"--workers must be at least 1, not {self.workers}")
        if (self.cpus_per_task is not None and self.cpus_per_task <= 0) or self.gpus_per_task < 0:
            raise InputError(None, "--cpus-per-task must be above 0 and --gpus-per-task at least 0")
        if self.max_retries < 0:
            raise InputError(None, f"--max-retries must be at least 0, not {self.max_retries}")
        if self.address and self.kind is not EngineKind.RAY:
            raise InputError(None, "--address is for --engine ray")

    @property
    def threads(self) -> int:
        """Torch threads per worker: its CPUs per task, else this machine's cores shared among the workers."""
        if self.cpus_per_task is not None:
            return max(1, int(self.cpus_per_task))
        return max(1, (os.cpu_count() or 1) // (self.workers or 1))


def lost(key: str, attempts: int, why: str) -> Outcome:
    """The outcome of a task whose workers died under it."""
    return Outcome(key, error=f"worker lost {attempts} time(s) while running it ({why})", attempts=attempts)


def run_locally(options: EngineOptions, spec: WorkerSpec, tasks: Sequence[Any]) -> Iterator[Outcome]:
    """The local engine: in this process for one worker, else a pool of worker processes."""
    if (options.workers or 1) == 1:
        yield from _run_here(options, spec, tasks)
    else:
        yield from _run_on_pool(options, spec, tasks)


def _run_here(options: EngineOptions, spec: WorkerSpec, tasks: Sequence[Any]) -> Iterator[Outcome]:
    """One worker in this process: torch keeps its threads unless --cpus-per-task is given (then restored after)."""
    import torch

    before = torch.get_num_threads()
    try:
        worker = spec.start(options.threads if options.cpus_per_task else None, options.gpus_per_task > 0)
        for task in tasks:
            yield worker(task)
    finally:
        torch.set_num_threads(before)


_WORKER: Worker | None = None  # the worker of a local pool process, made once by its initializer


def _init_process(spec: WorkerSpec, threads: int, use_gpu: bool) -> None:
    global _WORKER
    _WORKER = spec.start(threads, use_gpu)


def _run_in_process(task: Any) -> Outcome:
    if _WORKER is None:
        raise RuntimeError("pool process started without its worker")
    return _WORKER(task)


def _run_on_pool(options: EngineOptions, spec: WorkerSpec, tasks: Sequence[Any]) -> Iterator[Outcome]:
    """A pool of `workers` spawned processes; a dead process breaks the pool, which is rebuilt for the unfinished tasks."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    workers, threads = options.workers or 1, options.threads
    remaining, barren = list(tasks), 0
    while remaining:
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_process,
            initargs=(spec, threads, options.gpus_per_task > 0),
        )
        try:
            futures = {pool.submit(_run_in_process, task): task for task in remaining}
            remaining, finished = [], 0
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    remaining.append(futures[future])
                    continue
                finished += 1
                yield outcome
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if remaining:
            barren = 0 if finished else barren + 1
            if barren > options.max_retries + 1:  # the processes die before finishing anything, e.g. while starting
                for task in remaining:
                    yield lost(task.key, barren, "local worker processes keep dying")
                return
            logger.warning("a worker process died: %d unfinished task(s) go to a new pool", len(remaining))
