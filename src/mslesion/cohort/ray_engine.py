"""The `ray` engine: an ActorPool of workers, each reading the model once, on any Ray cluster.

Each actor asks Ray for `cpus_per_task` CPUs and `gpus_per_task` GPUs. Actors restart when
their process or node dies (`max_restarts=-1`) and Ray reruns the task they held
(`max_task_retries`), on whichever node has room; the worker's attempt record stops a task
that kills every worker after `max_retries` retries. The driver (this process) only
schedules and collects: the workers write each session's files on the shared filesystem.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

from mslesion.cohort.engines import EngineOptions, Outcome, WorkerSpec, lost
from mslesion.errors import InputError

logger = logging.getLogger(__name__)


def import_ray() -> Any:
    """Ray, or a one-line error naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise InputError(None, "--engine ray needs Ray: pip install 'mslesion[cluster]'") from None
    return ray


class CohortActor:
    """One worker process of the pool: `spec.start` once, then one task per `run` call."""

    def __init__(self, spec: WorkerSpec, threads: int, use_gpu: bool) -> None:
        self.worker = spec.start(threads, use_gpu)

    def run(self, task: Any) -> Outcome:
        return self.worker(task)

    def pid(self) -> int:
        return os.getpid()


def pool_size(options: EngineOptions, resources: dict[str, float], tasks: int) -> int:
    """--workers, else as many actors as the cluster's CPUs (and GPUs) fit, never more than the tasks."""
    if options.workers:
        return min(options.workers, tasks)
    fit = resources.get("CPU", 1.0) / (options.cpus_per_task or 1.0)
    if options.gpus_per_task:
        fit = min(fit, resources.get("GPU", 0.0) / options.gpus_per_task)
    return max(1, min(tasks, math.floor(fit)))


def run_on_ray(options: EngineOptions, spec: WorkerSpec, tasks: Sequence[Any]) -> Iterator[Outcome]:
    """Run the tasks on an ActorPool; yield one Outcome per task (a task whose actor is gone for good: a failure)."""
    ray = import_ray()
    from ray.util.actor_pool import ActorPool

    started = not ray.is_initialized()
    if started:
        try:
            extra = {} if options.address else {"include_dashboard": False}  # a Ray of our own needs no dashboard
            ray.init(address=options.address, logging_level=logging.WARNING, **extra)
        except Exception as exc:  # Ray raises plain Exception when its processes do not come up
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(None, f"cannot start or join Ray at {options.address or 'this machine'}: {first}") from None
    actor_class = ray.remote(CohortActor).options(
        num_cpus=options.cpus_per_task or 1.0,
        num_gpus=options.gpus_per_task,
        max_restarts=-1,
        max_task_retries=options.max_retries + 1,  # one more run than the worker's cap: it reports the failure
    )
    size = pool_size(options, ray.cluster_resources(), len(tasks))
    actors = [actor_class.remote(spec, options.threads if options.cpus_per_task else 1, options.gpus_per_task > 0) for _ in range(size)]
    logger.info("ray: %d worker(s) of %s CPU and %s GPU", size, options.cpus_per_task or 1.0, options.gpus_per_task)
    pool = ActorPool(actors)
    for task in tasks:
        pool.submit(lambda actor, t: actor.run.remote(t), task)
    pending, why = {task.key for task in tasks}, "ray actor died"
    try:
        while pool.has_next():
            try:
                outcome = pool.get_next_unordered()
            except ray.exceptions.RayActorError as exc:  # an actor gone for good (e.g. its start failed)
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                logger.error("ray worker lost: %s", why)
                continue
            pending.discard(outcome.key)
            yield outcome
        for task in tasks:
            if task.key in pending:
                yield lost(task.key, options.max_retries + 1, why)
    finally:
        for actor in actors:
            ray.kill(actor)
        if started:
            ray.shutdown()
