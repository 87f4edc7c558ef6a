"""Raw clinical scans in, model-ready arrays out, with every geometric step recorded.

`preprocess_raw` runs, on NIfTI scans of any orientation and resolution (with skull):

1. reorient each image to RAS voxel order (exact, recorded: `orient.Reorientation`);
2. N4 bias-field correction of each contrast (`bias.n4_correct`);
3. affine registration of FLAIR to the MNI152 2009a template nilearn ships, and rigid
   registration of T1/T2/PD to FLAIR (`register.register`, Mattes MI), each with a
   normalised-mutual-information quality number and a warning when it is poor;
4. brain extraction: HD-BET (`hdbet`, registration then brain to brain) or the MNI brain
   mask carried onto FLAIR and refined by intensity (`skullstrip`); QC flags for an
   implausible volume, a mask far outside the registered MNI brain, or no convergence;
5. resampling of every contrast in ONE interpolation onto the model's working grid, the
   FSL MNI152 1 mm grid 182x218x182 of the training data (`resample`).

The result, `Preprocessed`, holds the working-grid images (bias-corrected, zero outside
the brain, NOT intensity-normalised: the model card decides that, see
`normalize.normalised_channels`), the brain mask, the transforms and QC, and brings
any working-grid array back onto the native FLAIR grid with `to_native`.

Wiring into `segment` (a sketch; names from pipeline.py):

    pre = preprocess_raw(images)                      # InputError on bad input
    x = normalised_channels(pre.images, pre.brain, card.contrasts, card.normalisation)
    prob = predict_probability(net, x, pre.brain, card.patch_size, ...)
    prob_native = pre.to_native(prob, is_label=False) # linear, float32, native FLAIR voxel order
    mask = binarise(prob_native, card.threshold, card.min_lesion_mm3, flair.voxel_volume, min_mean_probability=card.min_mean_probability)
    save_like(mask, load_volume(images["FLAIR"]), ...)  # lands on the input grid and header
    summary["preprocessing"] = pre.qc; warnings += pre.warnings

Thresholding the native-grid probability (rather than resampling a working-grid mask
with nearest neighbour) keeps thin lesions on thick slices; `to_native(mask, is_label=True)`
is there when a label map must be carried over as is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from nibabel.affines import voxel_sizes

from mslesion import timing
from mslesion.errors import InputError, parse_choice
from mslesion.io.volume import Volume, load_volume
from mslesion.preprocess.orient import Reorientation
from mslesion.preprocess.resample import from_working, resample, to_working
from mslesion.space.grid import WORKING_AFFINE, WORKING_SHAPE

logger = logging.getLogger(__name__)

CONTRASTS = ("FLAIR", "T1", "T2", "PD")
# Normalised mutual information (32 bins, inside the brain) below which a registration is flagged.
# Seen on raw Lesjak patient01 with good alignment: FLAIR-MNI template 1.026 (brain Dice 0.95),
# T2-FLAIR 1.058. Set below those; not yet calibrated on deliberate failures (see the report).
MIN_NMI_MNI = 1.01
MIN_NMI_CONTRAST = 1.03
# A plausible adult brain on the scan (mL); outside it the mask is flagged.
BRAIN_ML_RANGE = (900.0, 1900.0)
# The same on the MNI grid, where a brain may have been affinely normalised to the MNI152 template
# (1.88 L): `mslesion preprocess` puts patient01's study-1 brain of 1309 mL at 2517 mL (scale 0.80).
MNI_BRAIN_ML_RANGE = (900.0, 3000.0)
# Share of the brain mask farther than OUTSIDE_MNI_MM from the registered MNI brain above which it is flagged.
MAX_OUTSIDE_MNI = 0.05
OUTSIDE_MNI_MM = 10.0
# Linear scale of the MNI registration (cube root of the determinant) outside this range is implausible.
MNI_SCALE_RANGE = (0.7, 1.4)
MIN_OVERLAP = 0.5
# A raw scan smaller than this cannot hold a head; N4 and the MNI registration fail on it.
MIN_RAW_VOXELS = 16
MIN_RAW_FOV_MM = 32.0


class BrainExtraction(StrEnum):
    """How the brain is found on a raw scan.

    HDBET: the trained HD-BET network (any contrast, any scanner; `preprocess.hdbet`); the MNI
    registration then runs brain to brain, started from the brains' centres of mass.
    TEMPLATE: the MNI152 brain mask carried through a whole-head registration and refined by
    intensity (`preprocess.skullstrip`); fast, no network, but only as good as that registration.
    """

    HDBET = "hdbet"
    TEMPLATE = "template"

    @classmethod
    def parse(cls, value: str | BrainExtraction) -> BrainExtraction:
        """The enum member, or a one-line InputError naming the choices."""
        return parse_choice(cls, value, "brain extraction")


@dataclass
class Preprocessed:
    """Preprocessed scans on the working grid, and the record needed to go back to native space.

    - `images[name]`: float32 (182, 218, 182) on the FSL MNI152 1 mm grid, N4-corrected, 0 outside `brain`.
    - `brain`: bool brain mask on the working grid. `native_brain`: the same on the native FLAIR grid.
    - `flair_grid`: the native FLAIR grid (shape, affine) and its reorientation to RAS.
    - `mni_to_flair`: 4x4 RAS matrix, MNI world point -> FLAIR world point (affine).
    - `flair_to_contrast[name]`: 4x4 RAS matrix, FLAIR world point -> that contrast's world point (rigid).
    - `qc`: registration quality (NMI), brain volume, seconds per step. `warnings`: what looked poor.
    """

    images: dict[str, np.ndarray]
    brain: np.ndarray
    native_brain: np.ndarray
    flair_grid: Reorientation
    mni_to_flair: np.ndarray
    flair_to_contrast: dict[str, np.ndarray]
    qc: dict[str, Any]
    warnings: list[str]
    inputs: dict[str, Path | None]
    working_affine: np.ndarray = field(default_factory=lambda: WORKING_AFFINE.copy())
    working_shape: tuple[int, int, int] = WORKING_SHAPE
    _corrected: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_native(self, array: np.ndarray, is_label: bool) -> np.ndarray:
        """A working-grid array resampled onto the native FLAIR grid (native voxel order and affine).

        Nearest neighbour for labels (dtype kept), linear for images and probabilities (float32).
        The result can be saved with the input FLAIR's affine and header (`save_like`).
        """
        if tuple(array.shape) != tuple(self.working_shape):
            raise ValueError(f"array of shape {array.shape} is not on the working grid {self.working_shape}")
        canonical = from_working(array, self.flair_grid.canonical_affine, self.flair_grid.canonical_shape, self.mni_to_flair, is_label)
        return self.flair_grid.to_native(canonical)

    def to_working(self, native_array: np.ndarray, is_label: bool) -> np.ndarray:
        """An array on the native FLAIR grid (e.g. a given brain or lesion mask) onto the working grid."""
        if tuple(native_array.shape) != tuple(self.flair_grid.native_shape):
            raise ValueError(f"array of shape {native_array.shape} is not on the FLAIR grid {self.flair_grid.native_shape}")
        canonical = self.flair_grid.to_canonical(native_array)
        return to_working(canonical, self.flair_grid.canonical_affine, self.mni_to_flair, is_label)

    def moved(self, mni_to_flair: np.ndarray, brain: np.ndarray | None = None) -> Preprocessed:
        """The same scans resampled again through another working-grid -> FLAIR mapping.

        Used to place a visit in a pair's halfway space (`preprocess.pair`). `brain` (working
        grid) replaces the brain mask, e.g. by the union of both visits' masks; by default the
        native brain mask is carried through the new mapping.
        """
        from dataclasses import replace

        if brain is None:
            brain = self.working_brain(mni_to_flair)
        images = _working_images(self._corrected, self.flair_to_contrast, mni_to_flair, brain)
        return replace(self, images=images, brain=brain, mni_to_flair=np.asarray(mni_to_flair, dtype=float).copy())

    def working_brain(self, mni_to_flair: np.ndarray) -> np.ndarray:
        """The native brain mask on the working grid through another working-grid -> FLAIR mapping."""
        grid = self.flair_grid
        canonical_brain = grid.to_canonical(self.native_brain).astype(np.float32)
        return to_working(canonical_brain, grid.canonical_affine, mni_to_flair) > 0.5

    def native_images(self) -> dict[str, np.ndarray]:
        """Every contrast N4-corrected and co-registered on the native FLAIR grid (one interpolation; FLAIR none)."""
        out = {}
        grid = self.flair_grid
        for name, (array, affine) in self._corrected.items():
            if name == "FLAIR":
                canonical = array
            else:
                canonical = resample(array, affine, grid.canonical_affine, grid.canonical_shape, self.flair_to_contrast[name])
            out[name] = grid.to_native(canonical).astype(np.float32)
        return out

    def transforms_json(self) -> dict[str, Any]:
        """Every geometric step as plain JSON (RAS mm matrices; see the field docs for directions)."""
        return {
            "convention": "4x4 matrices in RAS mm; 'a_to_b' maps a point of space a to the matching point of space b",
            "reorientation": self.flair_grid.to_json(),
            "mni_to_flair": np.round(self.mni_to_flair, 8).tolist(),
            "flair_to_contrast": {k: np.round(v, 8).tolist() for k, v in self.flair_to_contrast.items()},
            "working_grid": {"shape": list(self.working_shape), "affine": self.working_affine.tolist(), "space": "FSL MNI152 1 mm"},
        }


class _Timer:
    """Seconds per named step, for the QC record."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()
        self._cpu_start = time.process_time()

    def cpu(self) -> float:
        """CPU seconds of this process (all threads) since the timer started: independent of machine load."""
        return round(time.process_time() - self._cpu_start, 2)

    def lap(self, name: str) -> None:
        """The step `name` ended now: its seconds go to the QC record and to the run's stage times."""
        now = time.perf_counter()
        self.seconds[name] = round(self.seconds.get(name, 0.0) + now - self._start, 2)
        timing.record(f"preprocess: {name}", now - self._start)
        self._start = now


def _check_names(images: Mapping[str, Path | Volume]) -> None:
    unknown = sorted(set(images) - set(CONTRASTS))
    if unknown:
        raise InputError(None, f"unknown contrast name(s) {unknown}; use {list(CONTRASTS)}")
    if "FLAIR" not in images:
        raise InputError(None, "a FLAIR image is required (--flair)")


def _canonical(volume: Volume) -> tuple[np.ndarray, np.ndarray, Reorientation]:
    """Refuse empty or constant scans, and reorient to RAS."""
    from mslesion.preprocess.orient import reorient_canonical

    data = np.asarray(volume.array, dtype=np.float32)
    if not np.any(data != data.flat[0]):
        raise InputError(volume.path, "image is constant (empty scan)")
    fov = tuple(round(n * s, 1) for n, s in zip(volume.shape, volume.spacing))
    if min(volume.shape) < MIN_RAW_VOXELS or min(fov) < MIN_RAW_FOV_MM:  # N4 and registration need a head's extent
        raise InputError(
            volume.path,
            f"image of shape {volume.shape} ({fov} mm) is too small for a head scan "
            f"(at least {MIN_RAW_VOXELS} voxels and {MIN_RAW_FOV_MM:g} mm per axis)",
        )
    return reorient_canonical(data, volume.affine)


def _overlap(flair_mask: np.ndarray, flair_affine: np.ndarray, shape: tuple[int, ...], affine: np.ndarray) -> float:
    """Fraction of FLAIR mask voxels that fall inside another image's field of view (scanner coordinates)."""
    idx = np.argwhere(flair_mask)[:: max(1, int(flair_mask.sum()) // 20000)]
    if idx.size == 0:
        return 0.0
    world = flair_affine[:3, :3] @ idx.T + flair_affine[:3, 3:4]
    vox = np.linalg.inv(affine)[:3, :3] @ world + np.linalg.inv(affine)[:3, 3:4]
    inside = np.all((vox > -0.5) & (vox < np.asarray(shape)[:, None] - 0.5), axis=0)
    return float(inside.mean())


def _mni_registration(
    flair_img: Any, path: Path | None, qc: dict[str, Any], warnings: list[str], brain: np.ndarray | None = None
) -> np.ndarray:
    """Affine FLAIR -> MNI registration; returns the MNI -> FLAIR RAS matrix and fills QC.

    With a `brain` mask (canonical FLAIR grid) the skull-stripped FLAIR is registered to the
    skull-stripped template, both started from their centres of mass (image moments): neck,
    eyes and scalp in the field of view no longer pull the fit.
    """
    from mslesion.preprocess.register import Init, register, registration_brain, registration_nmi, registration_target
    from mslesion.space.sitkio import from_sitk, sitk_affine, to_sitk

    template, fixed_mask = registration_target(2.0)
    moving = flair_img if brain is None else to_sitk(from_sitk(flair_img) * brain, sitk_affine(flair_img))
    qc["mni_registration_input"] = "brain" if brain is not None else "whole head"
    try:
        reg = register(
            template, moving, "affine", Init.MOMENTS, fixed_mask=fixed_mask, fixed_spacing_mm=None, name="FLAIR to the MNI152 template"
        )
    except InputError as exc:
        raise InputError(path, exc.problem) from None
    quality = registration_nmi(template, flair_img, reg.matrix, registration_brain(2.0))
    scale = float(abs(np.linalg.det(reg.matrix[:3, :3])) ** (1 / 3))
    qc["mni_registration"] = {**reg.to_json(), "nmi": round(quality, 4), "scale": round(scale, 4)}
    if not reg.converged:
        qc.setdefault("flags", []).append("mni_registration_not_converged")
        warnings.append("registration of FLAIR to MNI stopped at its iteration limit without converging: check the brain-mask overlay")
    if not quality >= MIN_NMI_MNI:
        warnings.append(f"registration of FLAIR to MNI looks poor (NMI {quality:.3f} < {MIN_NMI_MNI})")
    if not MNI_SCALE_RANGE[0] <= scale <= MNI_SCALE_RANGE[1]:
        warnings.append(f"registration of FLAIR to MNI scales the head by {scale:.2f}: check the brain mask")
    return reg.matrix


def _warped_mni_brain(shape: tuple[int, int, int], affine: np.ndarray, mni_to_flair: np.ndarray) -> np.ndarray:
    """The MNI152 brain mask (bool) carried onto the canonical FLAIR grid through the registration."""
    from mslesion.space.templates import mni_arrays

    _, template_brain, template_affine = mni_arrays()
    return resample(template_brain, template_affine, affine, shape, np.linalg.inv(mni_to_flair)) > 0.5


def _brain(flair: np.ndarray, affine: np.ndarray, mni_to_flair: np.ndarray, path: Path | None) -> np.ndarray:
    """Brain mask on the canonical FLAIR grid from the warped MNI mask, refined by intensity."""
    from mslesion.preprocess.skullstrip import brain_mask_or_fail, refine_brain_mask

    prior = _warped_mni_brain(flair.shape, affine, mni_to_flair)
    spacing = tuple(float(s) for s in voxel_sizes(affine))
    mask = refine_brain_mask(flair, prior, spacing)
    return brain_mask_or_fail(mask, float(abs(np.linalg.det(affine[:3, :3]))), path)


def _hdbet_brain(flair: np.ndarray, affine: np.ndarray, path: Path | None) -> np.ndarray:
    """HD-BET's brain mask on the canonical FLAIR grid (`preprocess.hdbet`)."""
    from mslesion.preprocess.hdbet import hdbet_brain_mask
    from mslesion.preprocess.skullstrip import brain_mask_or_fail

    mask = hdbet_brain_mask(flair, affine)
    return brain_mask_or_fail(mask, float(abs(np.linalg.det(affine[:3, :3]))), path)


def brain_volume_ml(brain: np.ndarray, affine: np.ndarray) -> float:
    """The volume of a brain mask in mL."""
    return float(brain.sum()) * float(abs(np.linalg.det(affine[:3, :3]))) / 1000.0


def brain_ml_limits(shape: tuple[int, ...], affine: np.ndarray) -> tuple[float, float]:
    """The plausible brain volume on this grid: MNI_BRAIN_ML_RANGE on the MNI grid (a brain may be normalised
    to the template there), BRAIN_ML_RANGE elsewhere."""
    from mslesion.space.grid import on_mni_grid

    return MNI_BRAIN_ML_RANGE if on_mni_grid(shape, affine) else BRAIN_ML_RANGE


def brain_volume_warnings(brain_ml: float, what: str = "brain mask", limits: tuple[float, float] = BRAIN_ML_RANGE) -> list[str]:
    """A warning when a brain's volume is outside `limits` (a mask with scalp, a partial scan, a tiny image)."""
    if limits[0] <= brain_ml <= limits[1]:
        return []
    return [f"{what} volume {brain_ml:.0f} mL is outside the usual {limits[0]:.0f}-{limits[1]:.0f} mL"]


def _check_brain(brain: np.ndarray, affine: np.ndarray, mni_to_flair: np.ndarray, qc: dict[str, Any], warnings: list[str]) -> None:
    """QC of the brain mask: its volume, and how much of it lies far outside the registered MNI brain.

    Either failing is a flag in `qc["flags"]` and a warning: a mask that took in the scalp, or a
    registration that put the template somewhere else, must not pass silently.
    """
    from mslesion.preprocess.skullstrip import dilate_mm

    brain_ml = brain_volume_ml(brain, affine)
    qc["brain_volume_ml"] = round(brain_ml, 1)
    flags = qc.setdefault("flags", [])
    if implausible := brain_volume_warnings(brain_ml):
        flags.append("brain_volume")
        warnings += implausible
    near = dilate_mm(_warped_mni_brain(brain.shape, affine, mni_to_flair), OUTSIDE_MNI_MM, tuple(float(s) for s in voxel_sizes(affine)))
    outside = float((brain & ~near).sum()) / max(int(brain.sum()), 1)
    qc["brain_outside_mni_brain"] = round(outside, 4)
    if outside > MAX_OUTSIDE_MNI:
        flags.append("brain_outside_mni")
        warnings.append(
            f"{outside:.0%} of the brain mask lies more than {OUTSIDE_MNI_MM:.0f} mm outside the registered MNI brain: "
            "check the brain mask and the registration"
        )


def rigid_in_brain(fixed_img: Any, moving_img: Any, brain: np.ndarray, path: Path | None, name: str) -> tuple[Any, float]:
    """Rigid `moving` -> `fixed` registration (Mattes MI) inside the fixed brain dilated by 5 mm.

    Returns the `register.Registration` (fixed point -> moving point) and its normalised
    mutual information inside the brain; a failure is an InputError naming `path`.
    """
    from mslesion.preprocess.register import Init, register, registration_nmi
    from mslesion.preprocess.skullstrip import dilate_mm
    from mslesion.space.sitkio import sitk_affine, to_sitk

    mask = to_sitk(dilate_mm(brain, 5.0, fixed_img.GetSpacing()).astype(np.uint8), sitk_affine(fixed_img), dtype=np.uint8)
    try:
        reg = register(fixed_img, moving_img, "rigid", Init.IDENTITY, fixed_mask=mask, fixed_spacing_mm=1.5, name=name)
    except InputError as exc:
        raise InputError(path, exc.problem) from None
    return reg, registration_nmi(fixed_img, moving_img, reg.matrix, brain)


def _coregister(
    name: str, path: Path | None, flair_img: Any, moving_img: Any, brain: np.ndarray, qc: dict[str, Any], warnings: list[str]
) -> np.ndarray:
    """Rigid contrast -> FLAIR registration inside the dilated brain; returns FLAIR -> contrast RAS matrix."""
    reg, quality = rigid_in_brain(flair_img, moving_img, brain, path, f"{name} to FLAIR")
    moved_mm = float(np.linalg.norm(reg.matrix[:3, 3]))
    qc[f"{name}_registration"] = {**reg.to_json(), "nmi": round(quality, 4), "translation_mm": round(moved_mm, 2)}
    if not reg.converged:
        warnings.append(f"registration of {name} to FLAIR stopped at its iteration limit without converging")
    if not quality >= MIN_NMI_CONTRAST:
        warnings.append(f"registration of {name} to FLAIR looks poor (NMI {quality:.3f} < {MIN_NMI_CONTRAST})")
    return reg.matrix


def preprocess_raw(
    images: Mapping[str, Path | Volume],
    brain_mask: Path | None = None,
    n4: bool = True,
    threads: int = 2,
    mni_to_flair: np.ndarray | None = None,
    brain_extraction: BrainExtraction | str = BrainExtraction.HDBET,
) -> Preprocessed:
    """Preprocess raw scans (FLAIR required; T1, T2, PD optional) onto the working grid.

    `images` maps contrast names ('FLAIR', 'T1', 'T2', 'PD') to NIfTI files (or DICOM
    folders, or volumes already loaded by the caller) of any orientation/resolution, with skull. `brain_mask`, when given, is a mask on the native
    FLAIR grid used instead of brain extraction (`brain_extraction`, see `BrainExtraction`). `mni_to_flair`, when given (e.g. a second
    visit placed through the first visit's registration), replaces the MNI registration.
    Bad input raises `InputError` (one line);
    poor registrations or an odd brain volume become `warnings` (also in `qc`).
    """
    from mslesion.preprocess.bias import n4_correct
    from mslesion.space.sitkio import from_sitk, itk_threads, to_sitk

    _check_names(images)
    method = BrainExtraction.parse(brain_extraction)
    volumes = {name: src if isinstance(src, Volume) else load_volume(Path(src)).validate() for name, src in images.items()}
    paths = {name: vol.path for name, vol in volumes.items()}
    timer = _Timer()
    qc: dict[str, Any] = {}
    warnings: list[str] = []
    with itk_threads(threads):
        loaded = {name: _canonical(vol) for name, vol in volumes.items()}
        flair, flair_affine, flair_grid = loaded["FLAIR"]
        head = flair > flair.mean()  # the head, roughly: enough to test that fields of view overlap
        for name in (n for n in CONTRASTS if n in paths and n != "FLAIR"):
            if _overlap(head, flair_affine, loaded[name][0].shape, loaded[name][1]) < MIN_OVERLAP:
                raise InputError(paths[name], f"{name} does not overlap the FLAIR in space (another subject or field of view?)")
        timer.lap("load_reorient")
        timing.announce("bias correction (N4)" if n4 else "reading the scans")
        sitk_images, corrected = {}, {}
        for name, (array, affine, _) in loaded.items():
            img = to_sitk(array, affine)
            if n4:
                img, _ = n4_correct(img)
            sitk_images[name] = img
            corrected[name] = (from_sitk(img).astype(np.float32), affine)
        timer.lap("n4")
        brain = None
        if brain_mask is not None:
            brain = _given_brain(brain_mask, flair_grid)
        elif method is BrainExtraction.HDBET:
            timing.announce("brain extraction (HD-BET)")
            brain = _hdbet_brain(corrected["FLAIR"][0], flair_affine, paths["FLAIR"])
        timer.lap("brain")
        if mni_to_flair is None:
            timing.announce("registration to MNI")
            mni_to_flair = _mni_registration(sitk_images["FLAIR"], paths["FLAIR"], qc, warnings, brain)
        timer.lap("register_mni")
        if brain is None:
            brain = _brain(corrected["FLAIR"][0], flair_affine, mni_to_flair, paths["FLAIR"])
            timer.lap("brain")
        _check_brain(brain, flair_affine, mni_to_flair, qc, warnings)
        flair_to_contrast: dict[str, np.ndarray] = {}
        for name in (n for n in CONTRASTS if n in paths and n != "FLAIR"):
            flair_to_contrast[name] = _coregister(name, paths[name], sitk_images["FLAIR"], sitk_images[name], brain, qc, warnings)
        timer.lap("register_contrasts")
        working_brain = to_working(brain.astype(np.float32), flair_affine, mni_to_flair) > 0.5
        working = _working_images(corrected, flair_to_contrast, mni_to_flair, working_brain)
        timer.lap("resample")
    qc["brain_mask"] = (
        "given"
        if brain_mask is not None
        else {BrainExtraction.HDBET: "HD-BET (fold 0)", BrainExtraction.TEMPLATE: "MNI152 mask warped and refined by intensity"}[method]
    )
    qc["inputs"] = {
        name: {
            "shape": list(loaded[name][2].native_shape),
            "spacing_mm": [round(float(s), 4) for s in voxel_sizes(loaded[name][2].native_affine)],
            "axcodes": loaded[name][2].to_json()["native_axcodes"],
        }
        for name in paths
    }
    qc["n4"] = bool(n4)
    qc["seconds"] = {**timer.seconds, "total": round(sum(timer.seconds.values()), 2), "cpu_total": timer.cpu()}
    qc["warnings"] = warnings
    for message in warnings:
        logger.warning("warning: %s", message)
    return Preprocessed(
        images=working,
        brain=working_brain,
        native_brain=flair_grid.to_native(brain),
        flair_grid=flair_grid,
        mni_to_flair=mni_to_flair,
        flair_to_contrast=flair_to_contrast,
        qc=qc,
        warnings=warnings,
        inputs=paths,
        _corrected=corrected,
    )


def _working_images(
    corrected: dict[str, tuple[np.ndarray, np.ndarray]],
    flair_to_contrast: dict[str, np.ndarray],
    mni_to_flair: np.ndarray,
    brain: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every N4-corrected contrast onto the working grid in one interpolation, 0 outside `brain`."""
    working = {}
    for name, (array, affine) in corrected.items():
        to_contrast = flair_to_contrast.get(name, np.eye(4)) @ mni_to_flair
        working[name] = to_working(array, affine, to_contrast) * brain
    return working


def _given_brain(path: Path, flair_grid: Reorientation) -> np.ndarray:
    """A user's brain mask on the native FLAIR grid, reoriented like the FLAIR."""
    volume = load_volume(path).validate()
    if tuple(volume.shape) != flair_grid.native_shape or not np.allclose(volume.affine, flair_grid.native_affine, atol=1e-3):
        raise InputError(path, f"brain mask grid {volume.shape} differs from the FLAIR grid {flair_grid.native_shape}")
    mask = flair_grid.to_canonical(np.asarray(volume.array) > 0)
    if not mask.any():
        raise InputError(path, "brain mask is empty")
    return mask
