"""What a cohort worker does with one task: run the pipeline into scratch, publish, sidecar last.

`SegmentSpec` (one session through `pipeline.segment`) and `PairSpec` (two consecutive
sessions through `new_lesions.detect_new_lesions`) are the picklable recipes the engines
ship to their workers; `start()` reads the model once per worker process. A task found
already done (its sidecar in place: an earlier attempt finished but its result was lost)
is returned as it is, not redone.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mslesion.cohort.engines import Outcome
from mslesion.cohort.layout import WORK_PREFIX, Attempts, here, publish, read_done
from mslesion.errors import InputError

logger = logging.getLogger(__name__)

# segment() output name -> BIDS-derivatives name ending, after `sub-X[_ses-Y]_`.
SEGMENT_NAMES = {
    "lesion_mask.nii.gz": "space-orig_label-lesion_mask.nii.gz",
    "lesion_prob.nii.gz": "space-orig_label-lesion_probseg.nii.gz",
    "brain_mask.nii.gz": "space-orig_label-brain_mask.nii.gz",
    "lesions.csv": "space-orig_desc-lesions_table.csv",
    "report.html": "report.html",
    "report.json": "report.json",
}
SEGMENT_SIDECAR = "space-orig_label-lesion_mask.json"
# detect_new_lesions() output name -> name ending, in the follow-up session's folder.
PAIR_NAMES = {
    "new_lesion_mask.nii.gz": "space-orig_label-newlesion_mask.nii.gz",
    "new_lesion_prob.nii.gz": "space-orig_label-newlesion_probseg.nii.gz",
    "brain_mask.nii.gz": "space-orig_label-brain_mask.nii.gz",
    "new_lesions.csv": "space-orig_desc-newlesions_table.csv",
    "report.html": "desc-newlesions_report.html",
    "report.json": "desc-newlesions_report.json",
}
PAIR_SIDECAR = "space-orig_label-newlesion_mask.json"


@dataclass(frozen=True)
class Task:
    """One unit of work: its key (the output prefix `sub-X[_ses-Y]`), output folder and inputs (absolute paths)."""

    key: str
    rel_dir: str  # the anat folder, relative to the output
    images: dict[str, str]  # contrast -> file (the follow-up visit's for a pair)
    baseline: dict[str, str] = field(default_factory=dict)  # a pair's baseline visit
    record: dict[str, Any] = field(default_factory=dict)  # extra sidecar fields (Sources, BaselineSession)


def one_line(exc: BaseException) -> str:
    """A failure in one line: the InputError's own message, else the type and first line."""
    if isinstance(exc, InputError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _load(model: str, threads: int | None, use_gpu: bool, pairs: bool = False) -> Any:
    """The worker's model, read once (on the GPU when asked and present): a LoadedModel for `segment`, or
    for pairs the change method with the network it runs (`new_lesions.load_change_method`; none for subtraction)."""
    import torch

    if threads:
        torch.set_num_threads(threads)  # this process is the worker's own: its CPUs, not the machine's
    if pairs:
        from mslesion.new_lesions import load_change_method

        method = load_change_method(model)
        loaded: Any = method
        net = None if method.model is None else method.model.net
    else:
        from mslesion.pipeline import load_model_once

        single = load_model_once(model)
        loaded, net = single, single.net
    if use_gpu and net is not None:
        if not torch.cuda.is_available():
            raise RuntimeError("a GPU was asked for (--gpus-per-task) but torch sees none on this worker")
        net.to("cuda")
    return loaded


@dataclass(frozen=True)
class _Spec:
    """Common to both kinds: the output folder, the model, the attempt cap, test-time flips."""

    out: str
    model: str
    max_attempts: int = 3
    flips: int | None = None  # None: the model card's

    names: Any = None  # set by each kind
    sidecar: str = ""
    pairs: ClassVar[bool] = False  # two visits per task (`new_lesions`) or one (`segment`)

    def start(self, threads: int | None, use_gpu: bool) -> CohortWorker:
        return CohortWorker(self, _load(self.model, threads, use_gpu, self.pairs))

    def compute(self, model: Any, task: Task, scratch: Path) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class SegmentSpec(_Spec):
    names: Any = field(default_factory=lambda: SEGMENT_NAMES)
    sidecar: str = SEGMENT_SIDECAR

    def compute(self, model: Any, task: Task, scratch: Path) -> dict[str, Any]:
        from mslesion.pipeline import segment

        return segment({k: Path(v) for k, v in task.images.items()}, scratch, model=model, flips=self.flips).summary


@dataclass(frozen=True)
class PairSpec(_Spec):
    names: Any = field(default_factory=lambda: PAIR_NAMES)
    sidecar: str = PAIR_SIDECAR
    pairs: ClassVar[bool] = True

    def compute(self, model: Any, task: Task, scratch: Path) -> dict[str, Any]:
        from mslesion.new_lesions import detect_new_lesions

        baseline = {k: Path(v) for k, v in task.baseline.items()}
        followup = {k: Path(v) for k, v in task.images.items()}
        return detect_new_lesions(baseline, followup, scratch, model=model, flips=self.flips).summary


class CohortWorker:
    """Runs tasks of one spec with a model read once; never raises for a task's own failure."""

    def __init__(self, spec: _Spec, model: Any) -> None:
        self.spec, self.model = spec, model
        self.out = Path(spec.out)
        self.attempts = Attempts(self.out)

    def __call__(self, task: Task) -> Outcome:
        anat = self.out / task.rel_dir
        done = read_done(anat / f"{task.key}_{self.spec.sidecar}")
        if done is not None and all(done.get(k) == v for k, v in task.record.items()):
            return Outcome(task.key, summary=done, attempts=0, where=here())  # finished by an attempt whose result was lost
        attempt = self.attempts.start(task.key)
        if attempt > self.spec.max_attempts:
            self.attempts.finish(task.key)
            return Outcome(
                task.key,
                error=f"worker lost {attempt - 1} time(s) while running it (killed, out of memory or node lost)",
                attempts=attempt - 1,
                where=here(),
            )
        work = self.out / f"{WORK_PREFIX}{uuid.uuid4().hex[:8]}"
        scratch = work / task.key  # the pipelines name the report's case after their output folder
        try:
            summary = {**self.spec.compute(self.model, task, scratch), **task.record}
            publish(scratch, anat, task.key, self.spec.names, self.spec.sidecar, summary)
            return Outcome(task.key, summary=summary, attempts=attempt, where=here())
        except Exception as exc:  # one bad session must not stop the cohort: its reason is listed
            logger.debug("%s traceback", task.key, exc_info=True)
            return Outcome(task.key, error=one_line(exc), attempts=attempt, where=here())
        finally:
            shutil.rmtree(work, ignore_errors=True)
            self.attempts.finish(task.key)
