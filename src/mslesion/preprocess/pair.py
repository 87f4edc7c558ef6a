"""Two visits of one patient, preprocessed together for new-lesion detection.

`preprocess_pair` runs the single-visit pipeline (`preprocess.raw`) on each visit and ties
them together:

1. the follow-up goes through the whole pipeline (N4, affine registration to MNI, brain
   extraction, its other contrasts co-registered);
2. the baseline FLAIR is registered rigidly onto the follow-up FLAIR (Mattes MI inside the
   dilated follow-up brain), giving R: follow-up world point -> baseline world point;
3. halfway space: with S the rigid square root of R (S @ S = R), the working grid reaches
   the follow-up through S^-1 @ A and the baseline through S @ A (A: the follow-up's MNI
   mapping). Each visit is moved by half the motion between them and interpolated once,
   so neither carries more interpolation blur than the other (a difference image would
   otherwise light up at every edge of the resampled visit);
4. each visit's brain mask is carried into that space and their UNION masks both images,
   so tissue that one mask clipped cannot look like a change.

Joint intensity normalisation of the pair happens with the model's own normalisation
(`normalize.normalised_channels` matches the follow-up to the baseline), so training and
inference share it. Results go back to the follow-up's native grid (`to_native`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.errors import InputError
from mslesion.io.volume import Volume, load_volume
from mslesion.preprocess.raw import Preprocessed, preprocess_raw
from mslesion.preprocess.resample import resample

logger = logging.getLogger(__name__)

# NMI (32 bins, in the follow-up brain) below which the visit-to-visit registration is flagged.
# Two FLAIRs of one patient on one scanner align far better than two contrasts; set below
# the raw Lesjak pairs' values, not calibrated on failures.
MIN_NMI_VISITS = 1.05
# The sd (brain z-score units) of follow-up minus baseline FLAIR in normal-appearing white
# matter above which the visits' alignment is flagged (`nawm_residual`). Measured on the two raw
# Lesjak pairs after `preprocess_pair` (throwaway script): 0.37 (patient01) and 0.53 (patient03)
# as aligned; the baseline moved further by 1 / 2 / 3 mm along one axis: 0.38-0.46 / 0.44-0.58 /
# 0.52-0.68 (patient01) and 0.56-0.62 / 0.72-0.74 / 0.84-0.88 (patient03); rotated 2 degrees:
# 0.49 / 0.65. So it flags about 2 mm on a clean pair, 0.5-1 mm on a noisier one.
MAX_NAWM_RESIDUAL_SD = 0.55
# The same without a white-matter prior (`brain_residual`, visits off the MNI grid), measured on the
# raw Lesjak pairs resampled into the database's common space (0.72 x 0.72 x 3 mm) by its own
# transforms (throwaway script): 0.30 (patient01) and 0.70 (patient03) for one patient's visits;
# patient01 against patient03 (by world coordinates) 1.15, Lesjak patient07 against patient19 on
# the MNI grid 1.07. Set between them: it flags two different brains, not a noisy pair.
MAX_BRAIN_RESIDUAL_SD = 0.9
NAWM_PRIOR = 0.9  # deep white matter: MNI152 white-matter probability above this
NAWM_MAX_Z = 2.0  # bright at either visit (a lesion, or a changing one): not normal-appearing


@dataclass
class PreprocessedPair:
    """Both visits on the working grid in halfway space, and the way back to the follow-up grid.

    - `images`: `baseline_X` / `followup_X` float32 working-grid arrays (N4-corrected, 0 outside `brain`).
    - `brain`: the union of both visits' brain masks on the working grid.
    - `followup`, `baseline`: each visit's `Preprocessed`, already placed in halfway space.
    - `followup_to_baseline`: 4x4 RAS matrix R, follow-up world point -> baseline world point.
    """

    images: dict[str, np.ndarray]
    brain: np.ndarray
    followup: Preprocessed
    baseline: Preprocessed
    followup_to_baseline: np.ndarray
    qc: dict[str, Any]
    warnings: list[str]

    def to_native(self, array: np.ndarray, is_label: bool) -> np.ndarray:
        """A working-grid array on the follow-up's native FLAIR grid."""
        return self.followup.to_native(array, is_label)

    @property
    def mni_to_flair(self) -> np.ndarray:
        """The working grid (halfway space) -> follow-up FLAIR mapping: where results go back through."""
        return self.followup.mni_to_flair

    @property
    def native_brain(self) -> np.ndarray:
        """The union brain mask on the follow-up's native grid."""
        return self.to_native(self.brain.astype(np.uint8), is_label=True) > 0

    def native_flairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(baseline, follow-up) N4-corrected FLAIR on the follow-up's native grid, for the report.

        The follow-up is not resampled; the baseline is, once, through R.
        """
        grid = self.followup.flair_grid
        fu_array, _ = self.followup._corrected["FLAIR"]
        bl_array, bl_affine = self.baseline._corrected["FLAIR"]
        bl = resample(bl_array, bl_affine, grid.canonical_affine, grid.canonical_shape, self.followup_to_baseline)
        return grid.to_native(bl).astype(np.float32), grid.to_native(fu_array).astype(np.float32)


def rigid_square_root(matrix: np.ndarray) -> np.ndarray:
    """The rigid S with S @ S = `matrix` (a 4x4 rigid RAS transform): the halfway transform.

    Rotation by half the angle about the same axis (scipy's rotation vector halved), and
    the translation t_s solving (R_s + I) t_s = t.
    """
    from scipy.spatial.transform import Rotation

    rot = np.asarray(matrix, dtype=float)[:3, :3]
    half = Rotation.from_matrix(rot).as_rotvec() / 2.0
    rot_s = Rotation.from_rotvec(half).as_matrix()
    out = np.eye(4)
    out[:3, :3] = rot_s
    out[:3, 3] = np.linalg.solve(rot_s + np.eye(3), np.asarray(matrix, dtype=float)[:3, 3])
    return out


def _visit_registration(followup: Preprocessed, baseline_flair: Volume, qc: dict[str, Any], warnings: list[str]) -> np.ndarray:
    """Rigid baseline -> follow-up FLAIR registration; returns R (follow-up point -> baseline point)."""
    from mslesion.preprocess.orient import reorient_canonical
    from mslesion.preprocess.raw import rigid_in_brain
    from mslesion.space.sitkio import to_sitk

    fu_array, fu_affine = followup._corrected["FLAIR"]
    bl_array, bl_affine, _ = reorient_canonical(np.asarray(baseline_flair.array, dtype=np.float32), baseline_flair.affine)
    moving = to_sitk(bl_array, bl_affine)  # raw: mutual information does not mind the bias field
    brain = followup.flair_grid.to_canonical(followup.native_brain)
    reg, quality = rigid_in_brain(to_sitk(fu_array, fu_affine), moving, brain, baseline_flair.path, "baseline FLAIR to follow-up FLAIR")
    angle = float(np.degrees(np.arccos(np.clip((np.trace(reg.matrix[:3, :3]) - 1) / 2, -1, 1))))
    qc["visit_registration"] = {
        **reg.to_json(),
        "nmi": round(quality, 4),
        "translation_mm": round(float(np.linalg.norm(reg.matrix[:3, 3])), 2),
        "rotation_deg": round(angle, 2),
    }
    if not reg.converged:
        warnings.append("registration of the baseline to the follow-up stopped at its iteration limit without converging")
    if not quality >= MIN_NMI_VISITS:
        warnings.append(
            f"registration of the baseline to the follow-up looks poor (NMI {quality:.3f} < {MIN_NMI_VISITS}): new lesions may be misregistration"
        )
    return reg.matrix


def nawm_residual(baseline: np.ndarray, followup: np.ndarray, brain: np.ndarray, white_matter: np.ndarray) -> float:
    """How well the visits line up: the sd of follow-up minus baseline FLAIR over normal-appearing
    white matter (not a robust sd: misalignment shows at the edges the white matter shares with
    ventricles and cortex, a minority of its voxels that a median would ignore), both z-scored in the brain and the follow-up matched linearly to
    the baseline (`normalize.match_linear`, as the models see them).

    Normal-appearing white matter: `white_matter` inside the brain eroded by 3 voxels, below
    NAWM_MAX_Z at both visits. There the two visits should differ by noise only; misalignment
    puts the white matter of one visit on grey matter, CSF or lesion of the other.
    """
    from scipy import ndimage

    inside = np.asarray(brain, bool)
    return _difference_sd(baseline, followup, inside, ndimage.binary_erosion(inside, iterations=3) & np.asarray(white_matter, bool))


def _difference_sd(baseline: np.ndarray, followup: np.ndarray, brain: np.ndarray, tissue: np.ndarray) -> float:
    """The sd of follow-up minus baseline FLAIR (z-scored in `brain`, as the models see them) over
    `tissue` where neither visit is bright (NAWM_MAX_Z); NaN when fewer than 100 voxels are left."""
    from mslesion.preprocess.normalize import normalised_channels

    base, follow = normalised_channels(
        {"baseline_FLAIR": baseline, "followup_FLAIR": followup}, brain, ["baseline_FLAIR", "followup_FLAIR"]
    )
    normal = tissue & (base < NAWM_MAX_Z) & (follow < NAWM_MAX_Z)
    if normal.sum() < 100:
        return float("nan")
    return float(np.std(follow[normal] - base[normal]))


def visit_alignment(
    baseline_flair: np.ndarray, followup_flair: np.ndarray, brain: np.ndarray, spacing_mm: tuple[float, ...] | None = None
) -> tuple[float, list[str]]:
    """How well two FLAIRs of a pair line up, and the warning when they do not: misregistration,
    or two different brains.

    On the MNI working grid (`spacing_mm` None): `nawm_residual` over the MNI white-matter prior
    (Lesjak patient07 against patient19: 0.90; limit MAX_NAWM_RESIDUAL_SD). Elsewhere (ready
    visits on their own grid, no prior there): `brain_residual`, limit MAX_BRAIN_RESIDUAL_SD.
    """
    if spacing_mm is None:
        from mslesion.space.priors import mni_tissues_1mm

        residual = nawm_residual(baseline_flair, followup_flair, brain, mni_tissues_1mm()["wm"] > NAWM_PRIOR)
        limit, where = MAX_NAWM_RESIDUAL_SD, "normal-appearing white matter"
    else:
        residual = brain_residual(baseline_flair, followup_flair, brain, spacing_mm)
        limit, where = MAX_BRAIN_RESIDUAL_SD, "the brain's normal-appearing tissue"
    if not residual > limit:  # NaN (too little tissue to tell) is not flagged
        return residual, []
    return residual, [
        f"the visits do not line up well: follow-up minus baseline FLAIR in {where} varies by "
        f"{residual:.2f} sd (more than {limit}); changes may be misregistration, or the visits two different brains"
    ]


def brain_residual(baseline: np.ndarray, followup: np.ndarray, brain: np.ndarray, spacing_mm: tuple[float, ...]) -> float:
    """`nawm_residual` without a white-matter prior, for visits off the MNI grid: the sd of follow-up
    minus baseline FLAIR over the brain more than 3 mm inside its edge, bright voxels left out."""
    from scipy import ndimage

    inside = np.asarray(brain, bool)
    return _difference_sd(baseline, followup, inside, ndimage.distance_transform_edt(inside, sampling=spacing_mm) > 3.0)


def _load(images: Mapping[str, Path | Volume]) -> dict[str, Volume]:
    return {name: src if isinstance(src, Volume) else load_volume(Path(src)).validate() for name, src in images.items()}


def preprocess_pair(
    baseline: Mapping[str, Path | Volume], followup: Mapping[str, Path | Volume], n4: bool = True, threads: int = 2
) -> PreprocessedPair:
    """Preprocess two visits (FLAIR required in each; T1/T2/PD optional) into one halfway space.

    Bad input raises `InputError` naming the file; poor registrations become `warnings`.
    """
    for visit, given in (("baseline", baseline), ("follow-up", followup)):
        if "FLAIR" not in given:
            raise InputError(None, f"the {visit} FLAIR is required")
    baseline, followup = _load(baseline), _load(followup)
    qc: dict[str, Any] = {}
    fu = preprocess_raw(followup, n4=n4, threads=threads)
    warnings = [f"follow-up: {w}" for w in fu.warnings]
    to_baseline = _visit_registration(fu, baseline["FLAIR"], qc, warnings)
    half = rigid_square_root(to_baseline)
    fu_map, bl_map = np.linalg.inv(half) @ fu.mni_to_flair, half @ fu.mni_to_flair
    bl = preprocess_raw(baseline, n4=n4, threads=threads, mni_to_flair=bl_map)
    warnings += [f"baseline: {w}" for w in bl.warnings]
    union = fu.working_brain(fu_map) | bl.brain
    # Both visits resampled again, masked by the union (their first pass was masked by their own brain).
    fu, bl = fu.moved(fu_map, brain=union), bl.moved(bl_map, brain=union)
    images = {**{f"baseline_{k}": v for k, v in bl.images.items()}, **{f"followup_{k}": v for k, v in fu.images.items()}}
    residual, alignment_warnings = visit_alignment(images["baseline_FLAIR"], images["followup_FLAIR"], union)
    qc["visit_residual_nawm_sd"] = round(residual, 3)
    warnings += alignment_warnings
    qc.update({"followup": fu.qc, "baseline": bl.qc, "brain_volume_ml_union": round(float(union.sum()) / 1000.0, 1)})
    return PreprocessedPair(
        images=images, brain=union, followup=fu, baseline=bl, followup_to_baseline=to_baseline, qc=qc, warnings=warnings
    )
