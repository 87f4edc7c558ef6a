"""The steps of one prediction, in the order `segment` and `new-lesions` both take them.

`prediction_run` opens the timed run; a `Predictor` holds the run's network and options and
gives: `prepare` (preprocessed or ready scans onto the model's grid, the `Geometry` recorded),
`probability` (the card's channels normalised, the network run), `Geometry.to_input` (back onto
the input grid), `label_lesions` (once: mask, table and locations share its labels) and `locate`.
What the two commands add is how they stack channels and what they report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mslesion import timing
from mslesion.errors import InputError
from mslesion.io.volume import Volume
from mslesion.models.store import is_test_time_flips
from mslesion.predict.geometry import Geometry, Preprocessing, record_geometry
from mslesion.predict.model import LoadedModel

if TYPE_CHECKING:
    from mslesion.infer.backends import Backend


@contextmanager
def prediction_run() -> Iterator[tuple[timing.StageTimes, ThreadPoolExecutor]]:
    """A timed run (seconds per stage, `mslesion.timing`) and two background threads that take one-off
    work (the backend's compilation, the location atlas) off the critical path while the scans load."""
    with timing.timed_run() as times, ThreadPoolExecutor(max_workers=2, thread_name_prefix="mslesion-warm-up") as background:
        yield times, background


class Predictor:
    """One run's network (None: a method without one, e.g. subtraction) and inference options.

    Made right after the model is read: it starts the warm-ups at once (`background`).
    """

    def __init__(
        self,
        model: LoadedModel | None,
        background: ThreadPoolExecutor,
        flips: int | None = None,
        overlap: float = 0.25,
        backend: Backend | str = "auto",
    ) -> None:
        from mslesion.infer.backends import Backend
        from mslesion.infer.sliding import prepare_windows
        from mslesion.postprocess.locations import load_atlas

        self.model = model
        # None: the flips the model's card asks for (its postprocessing was chosen with them)
        self.flips = flips if flips is not None else (model.card.test_time_flips if model is not None else 1)
        if not is_test_time_flips(self.flips):
            raise InputError(None, f"test-time flips must be 1, 2 or 4, not {self.flips!r}")
        if model is not None and model.regional and self.flips == 4:  # its regional vote mirrors left-right only (models.dlb)
            raise InputError(model.path, "a regional (dlb) model runs 1 or 2 test-time flips, not 4")
        self.overlap, self.backend = overlap, Backend.parse(backend)
        self._warm_ups: list[Future[Any]] = [background.submit(load_atlas)]
        if model is not None and not model.regional and not model.needs_metadata:
            card = model.card
            self._warm_ups.append(background.submit(prepare_windows, model.net, len(card.contrasts), card.patch_size, backend=self.backend))

    def _wait_for_warm_ups(self) -> None:
        """Let the warm-ups finish; their errors (if any) the foreground meets again."""
        for warm_up in self._warm_ups:
            warm_up.exception()

    def prepare(
        self,
        reference: Volume,
        preprocess: Callable[[], Preprocessing] | None,
        ready: Callable[[], tuple[dict[str, np.ndarray], np.ndarray]],
    ) -> tuple[dict[str, np.ndarray], Geometry]:
        """The model's images (channel name -> array on the model's grid) and the `Geometry` that made them.

        `preprocess` (raw scans; None when the scans are ready) runs the preprocessing; else `ready()`
        gives the channels and the brain on the input grid (stage "brain mask"), resampled to the
        model's voxel size when they differ. A regional model is never resampled: ready input must
        be on its grid (an InputError otherwise).
        """
        model = self.model
        if preprocess is not None:
            pre = preprocess()
            return record_geometry(reference, pre.images, pre.brain, None, preprocessed=pre)
        with timing.stage("brain mask"):
            images, brain = ready()
        spacing = None if model is None else tuple(model.card.spacing_mm)
        prepared = record_geometry(reference, images, brain, spacing, resample=model is not None and not model.regional)
        if model is not None and model.regional:
            from mslesion.infer.regional import check_grid

            check_grid(model.net, reference)
        return prepared

    def model_input(self, images: dict[str, np.ndarray], brain: np.ndarray) -> np.ndarray:
        """(C, D, H, W): the channels the card lists (a missing one zeros), normalised as in training (stage "normalise")."""
        from mslesion.preprocess.normalize import NyulStandardiser, normalised_channels

        model = self._network()
        card = model.card
        nyul = {name: NyulStandardiser.from_dict(d, model.path) for name, d in card.nyul.items()} or None
        with timing.stage("normalise"):
            return normalised_channels(images, brain, card.contrasts, card.normalisation, nyul)

    def probability(self, x: np.ndarray, brain: np.ndarray, metadata: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Lesion probability on the model's grid (stage "inference"); a regional model also gives its majority vote."""
        model = self._network()
        with timing.stage("inference"):  # includes waiting for the warm-ups
            self._wait_for_warm_ups()
            if model.regional:  # majority vote of the regional networks, then the usual minimum lesion size
                from mslesion.infer.regional import predict_regional

                return predict_regional(model.net, x, model.card.threshold, flips=self.flips)
            from mslesion.infer.sliding import predict_probability

            return predict_probability(
                model.net, x, brain, model.card.patch_size, overlap=self.overlap, flips=self.flips, metadata=metadata, backend=self.backend
            ), None

    def _network(self) -> LoadedModel:
        if self.model is None:
            raise ValueError("this method runs no network")
        return self.model

    def to_input(self, geometry: Geometry, maps: list[np.ndarray]) -> list[np.ndarray]:
        """Probability maps on the model's grid onto the input grid (stage "back to the input grid")."""
        with timing.stage("back to the input grid"):
            return [geometry.to_input(array) for array in maps]

    def locate(self, lesions: Lesions, geometry: Geometry) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """Each row's location (added to `lesions.rows`), the per-class summary, QC and warnings (stage "locations")."""
        from mslesion.postprocess.locations import annotate_locations

        self._wait_for_warm_ups()
        with timing.stage("locations"):
            return annotate_locations(lesions.rows, lesions.labels, geometry.brain, geometry.reference.affine, to_mni=geometry.to_mni)


@dataclass
class Lesions:
    """The lesions of one map, labelled once: the mask, the table rows and the locations share `labels`."""

    labels: np.ndarray
    mask: np.ndarray  # uint8
    rows: list[dict[str, Any]]
    volumes_ml: list[float]

    @property
    def count(self) -> int:
        return len(self.volumes_ml)

    @property
    def total_volume_ml(self) -> float:
        return round(float(sum(self.volumes_ml)), 4)


def label_lesions(
    prob: np.ndarray, threshold: float, min_lesion_mm3: float, reference: Volume, min_mean_probability: float = 0.0
) -> Lesions:
    """The lesions of `prob` on the input grid (`postprocess.lesions.lesion_labels`, stage "lesions")."""
    from mslesion.postprocess.lesions import describe_lesions, lesion_labels, lesion_rows

    with timing.stage("lesions"):
        labels, n = lesion_labels(prob, threshold, min_lesion_mm3, reference.voxel_volume, min_mean_probability=min_mean_probability)
        lesions = describe_lesions(labels, n, reference.affine)
        return Lesions(labels, (labels > 0).astype(np.uint8), lesion_rows(lesions), [les.volume_ml for les in lesions])
