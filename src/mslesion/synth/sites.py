"""Scanner sites: what makes images from two hospitals look different.

A `SiteProfile` holds, per contrast, tissue intensities, a gamma-like nonlinearity, an
intensity scale and a slice thickness, and, per site, bias-field strength, noise level,
in-plane blur and metadata (name, scanner, field strength).

`make_sites(n, seed)[k]` depends only on (seed, k): adding sites never changes the
earlier ones. The key settings (noise, bias, blur, FLAIR GM/WM contrast, slice
thickness) walk a golden-ratio sequence from a random start, so consecutive sites sit at
least 38% of each setting's range apart (any two of the first three, 24%); noise SD is
spaced on a log scale, so it alone differs by a factor of 1.4 or more between any two of
the first three sites: sites always differ measurably.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

CONTRASTS: tuple[str, ...] = ("FLAIR", "T1", "T2", "PD")
TISSUES: tuple[str, ...] = ("CSF", "GM", "WM", "lesion_mild", "lesion_severe")

# Base tissue intensities (relative; WM of T1 = 1). Lesion intensity runs from "mild"
# (early, oedematous) to "severe" (T1 black hole) with each lesion's severity in [0, 1].
BASE_MEANS: dict[str, dict[str, float]] = {
    "FLAIR": {"CSF": 0.12, "GM": 0.62, "WM": 0.48, "lesion_mild": 0.64, "lesion_severe": 0.84},
    "T1": {"CSF": 0.25, "GM": 0.62, "WM": 1.00, "lesion_mild": 0.84, "lesion_severe": 0.45},
    "T2": {"CSF": 1.00, "GM": 0.52, "WM": 0.38, "lesion_mild": 0.70, "lesion_severe": 0.85},
    "PD": {"CSF": 0.86, "GM": 0.80, "WM": 0.66, "lesion_mild": 0.90, "lesion_severe": 0.98},
}
# FLAIR GM/WM ratio range walked by the site sequence.
FLAIR_GM_WM_RANGE = (1.08, 1.45)
NOISE_RANGE = (0.012, 0.055)  # Rician noise SD, as a fraction of the WM intensity
BIAS_RANGE = (0.04, 0.30)  # SD of the log bias field
BLUR_RANGE_MM = (0.0, 1.1)  # in-plane Gaussian sigma
THICK_SLICES_MM = (3.0, 4.0)
SCANNERS = {
    3.0: ("Siemens Prisma", "Siemens Skyra", "Philips Ingenia", "GE Discovery MR750"),
    1.5: ("Siemens Aera", "Siemens Avanto", "Philips Achieva", "GE Signa HDxt"),
}
_SITE_STREAM = 0x5173  # spawn key separating site randomness from subject randomness
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


@dataclass(frozen=True)
class ContrastModel:
    """How one contrast renders tissue: mean per tissue, nonlinearity, output scale, slice thickness."""

    means: dict[str, float]
    gamma: float = 1.0
    scale: float = 1000.0
    slice_thickness_mm: float = 1.0


@dataclass(frozen=True)
class SiteProfile:
    """One scanner site's acquisition: per-contrast rendering plus bias, noise, blur and metadata."""

    name: str
    scanner: str
    field_strength: float
    contrasts: dict[str, ContrastModel]
    bias_strength: float = 0.1
    noise_sd: float = 0.02
    blur_sigma_mm: float = 0.5
    index: int = 0
    degraded: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready description (for metadata files)."""
        return dataclasses.asdict(self)

    def flair_gm_wm_ratio(self) -> float:
        """FLAIR GM/WM intensity ratio after the nonlinearity (a handy summary of contrast)."""
        m = self.contrasts["FLAIR"]
        return (m.means["GM"] / m.means["WM"]) ** m.gamma


def _sequence_position(start: float, index: int) -> float:
    """Position in [0, 1) of site `index` on a golden-ratio walk from `start`."""
    return (start + index * _GOLDEN) % 1.0


def _lerp(lo_hi: tuple[float, float], u: float) -> float:
    return lo_hi[0] + u * (lo_hi[1] - lo_hi[0])


def _contrast_models(rng: np.random.Generator, flair_gm_wm: float, thick_mm: float) -> dict[str, ContrastModel]:
    """Per-contrast tissue means jittered by +-8% with the orderings MRI physics guarantees kept."""
    models = {}
    for contrast in CONTRASTS:
        means = {t: v * float(rng.uniform(0.92, 1.08)) for t, v in BASE_MEANS[contrast].items()}
        if contrast == "FLAIR":
            means["GM"] = means["WM"] * flair_gm_wm
            # Real FLAIR lesions are about 1.4x normal-appearing WM (Lesjak MNI cases: 1.39-1.44),
            # a little brighter than cortex: keep them so, not more conspicuous.
            means["lesion_mild"] = max(means["lesion_mild"], 1.08 * means["GM"])
            means["lesion_severe"] = max(means["lesion_severe"], means["lesion_mild"] * 1.15)
        if contrast == "T2":
            means["CSF"] = max(means["CSF"], 1.1 * max(v for t, v in means.items() if t != "CSF"))
        gamma = float(np.clip(math.exp(rng.normal(0.0, 0.12)), 0.8, 1.25))
        scale = float(np.exp(rng.uniform(math.log(300.0), math.log(1500.0))))
        # 2D sequences (FLAIR, T2, PD) get the site's slice thickness; T1 stays 3D isotropic.
        thickness = 1.0 if contrast == "T1" else thick_mm
        models[contrast] = ContrastModel(means=means, gamma=gamma, scale=scale, slice_thickness_mm=thickness)
    return models


def make_site(seed: int, index: int) -> SiteProfile:
    """Site `index` for `seed`: reproducible from (seed, index) alone."""
    starts = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SITE_STREAM,))).random(5)
    u = [_sequence_position(s, index) for s in starts]
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_SITE_STREAM, index)))
    noise = NOISE_RANGE[0] * (NOISE_RANGE[1] / NOISE_RANGE[0]) ** u[1]  # log-spaced
    field_strength = 1.5 if u[1] >= 0.6 else 3.0  # the noisier sites are the 1.5 T ones
    thick = 1.0 if u[0] < 0.45 else (THICK_SLICES_MM[0] if u[0] < 0.8 else THICK_SLICES_MM[1])
    return SiteProfile(
        name=f"site{index}",
        scanner=str(rng.choice(SCANNERS[field_strength])),
        field_strength=field_strength,
        contrasts=_contrast_models(rng, _lerp(FLAIR_GM_WM_RANGE, u[4]), thick),
        bias_strength=_lerp(BIAS_RANGE, u[2]),
        noise_sd=noise,
        blur_sigma_mm=_lerp(BLUR_RANGE_MM, u[3]),
        index=index,
    )


def make_sites(n_sites: int, seed: int) -> list[SiteProfile]:
    """`n_sites` scanner sites, reproducible from `seed` (site k does not depend on `n_sites`)."""
    return [make_site(seed, k) for k in range(n_sites)]


def degrade_site(site: SiteProfile, rng: np.random.Generator) -> SiteProfile:
    """A worse acquisition at the same site: more noise and blur, sometimes thicker 2D slices.

    Used for the second time point of a longitudinal pair when only one site exists.
    """
    thicker = bool(rng.random() < 0.5)
    contrasts = {
        name: dataclasses.replace(
            m,
            slice_thickness_mm=(max(m.slice_thickness_mm, 3.0) if thicker and name != "T1" else m.slice_thickness_mm),
            gamma=float(np.clip(m.gamma * math.exp(rng.normal(0.0, 0.05)), 0.8, 1.25)),
        )
        for name, m in site.contrasts.items()
    }
    return dataclasses.replace(
        site,
        contrasts=contrasts,
        noise_sd=site.noise_sd * float(rng.uniform(1.3, 2.0)),
        blur_sigma_mm=site.blur_sigma_mm + float(rng.uniform(0.2, 0.6)),
        bias_strength=site.bias_strength * float(rng.uniform(1.0, 1.5)),
        degraded=True,
    )


def default_site() -> SiteProfile:
    """A clean 3 T site with 1 mm 3D acquisitions (handy in tests and examples)."""
    contrasts = {c: ContrastModel(means=dict(BASE_MEANS[c]), gamma=1.0, scale=1000.0) for c in CONTRASTS}
    return SiteProfile(name="site0", scanner="Siemens Prisma", field_strength=3.0, contrasts=contrasts)


__all__ = [
    "BASE_MEANS",
    "CONTRASTS",
    "ContrastModel",
    "SiteProfile",
    "default_site",
    "degrade_site",
    "make_site",
    "make_sites",
]
