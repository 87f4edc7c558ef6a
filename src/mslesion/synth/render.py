"""From tissue maps to MR images: partial-volume mixing, then what the scanner does to it.

The ideal image is the partial-volume sum of tissue means (lesions with their own mean
each); the scanner then applies its contrast nonlinearity, a smooth multiplicative bias
field, in-plane blur, thick 2D slices (averaged over the slice and interpolated back to
the grid), and Rician noise. Images stay skull-stripped (zero outside the brain mask).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mslesion.synth.fields import smooth_field
from mslesion.synth.lesions import LesionSpec
from mslesion.synth.sites import ContrastModel, SiteProfile

BIAS_WAVELENGTH_MM = 150.0
TEXTURE_AMPLITUDE = 0.03


@dataclass(frozen=True)
class TissueMaps:
    """Partial-volume maps on the crop: tissues already make room for lesions (they sum to <= 1)."""

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    lesion: np.ndarray
    lesion_id: np.ndarray
    brain: np.ndarray
    spacing_mm: float


def tissue_maps(
    gm: np.ndarray, wm: np.ndarray, brain: np.ndarray, lesion: np.ndarray, lesion_id: np.ndarray, spacing_mm: float
) -> TissueMaps:
    """Combine anatomy and lesions: CSF fills the brain after GM and WM; lesions displace all three."""
    lesion = lesion * brain
    keep = 1.0 - lesion
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    return TissueMaps(
        gm=(gm * keep).astype(np.float32, copy=False),
        wm=(wm * keep).astype(np.float32, copy=False),
        csf=(csf * keep).astype(np.float32, copy=False),
        lesion=lesion.astype(np.float32, copy=False),
        lesion_id=lesion_id,
        brain=brain > 0.5,
        spacing_mm=spacing_mm,
    )


def lesion_means(specs: list[LesionSpec], model: ContrastModel, n_ids: int) -> np.ndarray:
    """Mean intensity of each lesion id (index 0: a medium lesion, for boundary voxels without id)."""
    mild, severe = model.means["lesion_mild"], model.means["lesion_severe"]
    table = np.full(n_ids, 0.5 * (mild + severe), dtype=np.float32)
    for spec in specs:
        table[spec.id] = (mild + spec.severity * (severe - mild)) * (1.0 + spec.jitter)
    return table


def mix(tissues: TissueMaps, model: ContrastModel, lesion_table: np.ndarray, dawm: np.ndarray | None = None) -> np.ndarray:
    """Ideal image: sum over tissues of partial volume x tissue mean.

    `dawm` (fraction of the way from WM to a mild lesion, per voxel) shifts the white
    matter's mean towards the lesion's in every contrast: brighter on FLAIR/T2/PD, darker on T1.
    """
    m = model.means
    img = tissues.gm * np.float32(m["GM"]) + tissues.wm * np.float32(m["WM"]) + tissues.csf * np.float32(m["CSF"])
    if dawm is not None:
        img += tissues.wm * dawm * np.float32(m["lesion_mild"] - m["WM"])
    where = np.nonzero(tissues.lesion)
    img[where] += tissues.lesion[where] * lesion_table[tissues.lesion_id[where]]
    return img


def _interp_last_axis(a: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of `a` along its last axis at fractional positions (clamped to the ends)."""
    n = a.shape[-1]
    pos = np.clip(pos, 0.0, n - 1.0)
    i0 = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
    w = (pos - i0).astype(np.float32)
    i1 = np.minimum(i0 + 1, n - 1)
    return a[..., i0] * (1.0 - w) + a[..., i1] * w


def thick_slices(img: np.ndarray, thickness_vox: float, offset_vox: float) -> np.ndarray:
    """Acquire axial slices `thickness_vox` thick (box profile, contiguous), then interpolate back to the grid."""
    if thickness_vox <= 1.01:
        return img
    n = img.shape[2]
    cum = np.zeros(img.shape[:2] + (n + 1,), dtype=np.float32)
    np.cumsum(img, axis=2, out=cum[..., 1:])
    centres = np.arange(offset_vox - thickness_vox, n + thickness_vox, thickness_vox)
    half = thickness_vox / 2.0
    # integral of the piecewise-constant profile from the grid's start: cum at boundary positions (z + 0.5)
    upper = _interp_last_axis(cum, centres + half + 0.5)
    lower = _interp_last_axis(cum, centres - half + 0.5)
    width = np.clip(centres + half + 0.5, 0, n) - np.clip(centres - half + 0.5, 0, n)
    slices = (upper - lower) / np.maximum(width, 1e-6).astype(np.float32)
    positions = (np.arange(n) - centres[0]) / thickness_vox
    return _interp_last_axis(slices, positions).astype(np.float32)


def rician_noise(img: np.ndarray, sd: float, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of the signal plus complex Gaussian noise (Rician), inside `mask` only."""
    if sd <= 0:
        return img
    where = np.nonzero(mask)
    s = img[where]
    n1 = rng.standard_normal(s.shape, dtype=np.float32) * np.float32(sd)
    n2 = rng.standard_normal(s.shape, dtype=np.float32) * np.float32(sd)
    out = img.copy()
    out[where] = np.sqrt((s + n1) ** 2 + n2**2)
    return out


def render(
    tissues: TissueMaps,
    contrast: str,
    site: SiteProfile,
    lesion_table: np.ndarray,
    texture: np.ndarray | None,
    rng: np.random.Generator,
    dawm: np.ndarray | None = None,
) -> np.ndarray:
    """One contrast as `site` acquires it (crop array, float32, zero outside the brain)."""
    from scipy import ndimage as ndi

    model = site.contrasts[contrast]
    r = tissues.spacing_mm
    img = mix(tissues, model, lesion_table, dawm)
    if texture is not None:
        img *= 1.0 + np.float32(TEXTURE_AMPLITUDE) * texture
    np.maximum(img, 0.0, out=img)
    img **= np.float32(model.gamma)
    if site.bias_strength > 0:
        img *= np.exp(np.float32(site.bias_strength) * smooth_field(img.shape, r, BIAS_WAVELENGTH_MM, rng))
    sigma = site.blur_sigma_mm / r
    if sigma >= 0.1:
        img = ndi.gaussian_filter(img, (sigma, sigma, 0.0), output=np.float32, truncate=3.0)
    img = thick_slices(img, model.slice_thickness_mm / r, float(rng.uniform(0, model.slice_thickness_mm / r)))
    wm_level = model.means["WM"] ** model.gamma
    img = rician_noise(img, site.noise_sd * wm_level, tissues.brain, rng)
    img *= tissues.brain
    img *= np.float32(model.scale)
    return img.astype(np.float32, copy=False)
