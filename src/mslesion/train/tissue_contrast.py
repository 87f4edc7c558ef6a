"""Grey matter brighter or darker than usual: so the network stops reading bright cortex as lesion.

Measured on the real leave-one-out maps (benchmarks/real_accuracy.py): most false lesions of a
model trained on one Lesjak scan lie on the cortex and insula of the other, and on the raw ISBI
FLAIR (another scanner) the cortex is brighter still. Two scans show the network only two
grey/white contrasts. This augmentation, in the spirit of SynthSeg's per-tissue intensity
randomisation but on real scans, adds to each channel `shift x GM prior` inside the brain, with
`shift` drawn per patch and channel in SHIFT_RANGE (z-score units; in the two Lesjak FLAIRs
lesions sit about 1.1-1.4 above white matter, the cortex about 0.1-0.15), lesion voxels
untouched. The grey-matter probability is MNI152 2009a's (nilearn), so only cases on the FSL
MNI 1 mm grid (as `lesjak-mni`) are changed; other cases are left as they are.

Written by hand: MONAI and TorchIO randomise intensities per image or per label map, not by a
tissue prior.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from mslesion.train.data import PreparedCase
from mslesion.train.sampling import extract_patch

logger = logging.getLogger(__name__)

SHIFT_RANGE = (-0.25, 0.75)


class TissueContrast:
    """Per-case grey-matter prior on the case's brain box; `apply` shifts grey matter in sampled patches."""

    def __init__(self, cases: Sequence[PreparedCase]) -> None:
        from mslesion.space.grid import on_mni_grid
        from mslesion.space.priors import mni_tissues_1mm

        grey = mni_tissues_1mm()["gm"]
        self.priors: dict[str, np.ndarray] = {}
        for case in cases:
            if on_mni_grid(case.grid_shape, case.affine):  # the prior then needs no registration
                box = tuple(slice(o, o + n) for o, n in zip(case.origin, case.label.shape))
                self.priors[case.case_id] = np.ascontiguousarray(grey[box], dtype=np.float32)
        logger.info("tissue contrast: %d of %d training cases on the MNI grid", len(self.priors), len(cases))

    def apply(self, items: list[dict], rng: np.random.Generator, probability: float) -> None:
        """Shift grey matter in each item's 'image' (in place) with `probability`; items need 'case' and 'centre'."""
        for item in items:
            prior = self.priors.get(item["case"].case_id)
            if prior is None or rng.random() >= probability:
                continue
            image = item["image"]
            grey = extract_patch(prior[None], item["centre"], image.shape[1:])[0] * (item["label"][0] == 0)
            shifts = rng.uniform(*SHIFT_RANGE, size=image.shape[0])
            for channel, shift in zip(image, shifts):
                inside = channel != 0  # brain only: zeros outside, and a dropped contrast stays zeros
                channel[inside] += shift * grey[inside]
