"""Intensity normalisation inside the brain, so one model sees one intensity scale.

Each function is pure: image + brain mask in, float32 image out, background set to 0.
- `zscore_brain`: (x - mean) / sd in the brain (the default).
- `wm_peak_normalise`: divide by the white-matter peak of a kernel density estimate of
  the brain's histogram (as DeepLesionBrain), so normal-appearing WM sits at 1.
- `NyulStandardiser`: Nyul & Udupa's piecewise-linear histogram standardisation, with
  landmarks fitted on training images (`fit`) and stored as JSON (`save` / `load`).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import numpy as np

from mslesion.errors import InputError


class Normalisation(StrEnum):
    """Available intensity normalisations (the name is stored in each model card)."""

    ZSCORE_BRAIN = "zscore_brain"
    WM_PEAK = "wm_peak"
    NYUL = "nyul"


def zscore_brain(image: np.ndarray, brain: np.ndarray, clip: float = 5.0) -> np.ndarray:
    """(x - mean) / sd over brain voxels, robust to outliers (0.5-99.5 percentile window).

    Clipped to +-`clip` sd; voxels outside the brain are 0.
    """
    inside = brain > 0
    out = np.zeros(image.shape, np.float32)
    if not inside.any():
        return out
    values = image[inside].astype(np.float64)
    lo, hi = np.percentile(values, [0.5, 99.5])
    core = values[(values >= lo) & (values <= hi)]
    mean, sd = core.mean(), core.std()
    out[inside] = np.clip((image[inside] - mean) / max(sd, 1e-6), -clip, clip)
    return out


def normalised_channels(
    images: dict[str, np.ndarray],
    brain: np.ndarray,
    contrasts: list[str],
    method: Normalisation | str = Normalisation.ZSCORE_BRAIN,
    nyul: dict[str, NyulStandardiser] | None = None,
) -> np.ndarray:
    """(C, D, H, W) model input in `contrasts` order; a contrast missing from `images` is zeros.

    Zeros are what modality dropout trains the network to read as "not acquired".
    `nyul` holds one fitted standardiser per contrast (only for the Nyul method).
    The two visits of a pair (`baseline_X`, `followup_X`) are normalised jointly: each on
    its own, then the follow-up mapped linearly onto the baseline (`match_linear`).
    """
    out = {
        name: normalise(images[name], brain, method, contrast=name.rpartition("_")[2], nyul=(nyul or {}).get(name))
        for name in contrasts
        if name in images
    }
    for name in contrasts:
        head, _, contrast = name.partition("_")
        if head == "followup" and name in out and f"baseline_{contrast}" in out:
            out[name] = match_linear(out[name], out[f"baseline_{contrast}"], brain)
    return np.stack([out[name] if name in out else np.zeros(brain.shape, np.float32) for name in contrasts])


# Brain percentiles the joint normalisation of a pair matches (the tails hold the lesions).
MATCH_PERCENTILES = np.arange(5.0, 96.0, 5.0)


def match_linear(moving: np.ndarray, reference: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """`moving` after the one linear map a*x+b whose brain percentiles best fit `reference`'s.

    Two visits of one patient should have the same tissue histogram; a least-squares fit
    of their 5th..95th percentiles aligns them without letting new lesions (a tiny share of
    the brain, in the upper tail) pull the map. Outside the brain stays 0.
    """
    inside = brain > 0
    if not inside.any():
        return moving.astype(np.float32, copy=True)
    q_moving = np.percentile(moving[inside], MATCH_PERCENTILES)
    q_reference = np.percentile(reference[inside], MATCH_PERCENTILES)
    if np.ptp(q_moving) < 1e-6:  # a constant image cannot be matched; leave it as it is
        return moving.astype(np.float32, copy=True)
    slope, intercept = np.polyfit(q_moving, q_reference, 1)
    out = np.zeros(moving.shape, np.float32)
    out[inside] = slope * moving[inside] + intercept
    return out


def normalise(
    image: np.ndarray,
    brain: np.ndarray,
    method: Normalisation | str = Normalisation.ZSCORE_BRAIN,
    contrast: str = "FLAIR",
    nyul: NyulStandardiser | None = None,
) -> np.ndarray:
    """Apply the named normalisation (`contrast` picks the WM peak; Nyul needs fitted landmarks)."""
    method = Normalisation(method)
    if method is Normalisation.ZSCORE_BRAIN:
        return zscore_brain(image, brain)
    if method is Normalisation.WM_PEAK:
        return wm_peak_normalise(image, brain, contrast)
    if method is Normalisation.NYUL:
        if nyul is None:
            raise InputError(None, "Nyul normalisation needs landmarks fitted on training data (NyulStandardiser.load)")
        return nyul.transform(image, brain)
    raise ValueError(f"unknown normalisation {method!r}")  # pragma: no cover


# --- white-matter peak (DeepLesionBrain) -------------------------------------------------

KDE_GRID = 512


def kde_density(values: np.ndarray, lo: float, hi: float, bins: int = KDE_GRID) -> tuple[np.ndarray, np.ndarray]:
    """(grid, density): Gaussian kernel density estimate with Scott's bandwidth, binned.

    Binned (histogram on a fine grid, then a Gaussian filter of the bandwidth) rather than
    scipy.stats.gaussian_kde, which costs n_samples x n_grid exponentials (minutes for a
    brain); on a 512-point grid the two agree to well under a bin.
    """
    from scipy.ndimage import gaussian_filter1d

    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    grid = (edges[:-1] + edges[1:]) / 2.0
    bandwidth = 1.06 * float(np.std(values)) * values.size ** (-1.0 / 5.0)  # Scott's rule
    sigma_bins = max(bandwidth / (grid[1] - grid[0]), 0.5)
    density = gaussian_filter1d(counts.astype(np.float64), sigma_bins, mode="constant")
    return grid, density / max(density.sum() * (grid[1] - grid[0]), 1e-12)


def wm_peak(image: np.ndarray, brain: np.ndarray, contrast: str = "FLAIR") -> float:
    """Intensity of the white-matter peak of the brain's histogram, from a Gaussian KDE.

    T1: WM is the brightest tissue, so the last (rightmost) prominent peak. FLAIR, T2, PD:
    WM is the largest tissue class and the mode of the density (as intensity-normalization
    and DeepLesionBrain do).
    """
    from scipy.signal import find_peaks

    values = image[np.asarray(brain, bool)].astype(np.float64)
    if values.size < 10:
        raise InputError(None, "brain mask is empty: cannot find the white-matter peak")
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        return float(hi)
    values = values[(values >= lo) & (values <= hi)]
    grid, density = kde_density(values, float(lo), float(hi))
    if contrast.upper().startswith("T1"):
        peaks, _ = find_peaks(density, prominence=0.05 * density.max())
        if peaks.size:
            return float(grid[peaks[-1]])
    return float(grid[int(np.argmax(density))])


def wm_peak_normalise(image: np.ndarray, brain: np.ndarray, contrast: str = "FLAIR") -> np.ndarray:
    """Image divided by its white-matter peak (WM at 1), 0 outside the brain."""
    inside = np.asarray(brain, bool)
    out = np.zeros(image.shape, np.float32)
    if not inside.any():
        return out
    peak = wm_peak(image, inside, contrast)
    out[inside] = image[inside] / max(abs(peak), 1e-6)
    return out


# --- Nyul histogram standardisation -----------------------------------------------------

NYUL_PERCENTILES = (1.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 99.0)
NYUL_SCALE = (0.0, 100.0)


class NyulStandardiser:
    """Nyul & Udupa (1999) histogram standardisation: fit on training images, apply to any.

    `fit` maps each training image's percentiles (`percentiles`, inside its brain) linearly
    so the outer two land on `scale`, and averages the mapped landmarks into
    `landmarks_`. `transform` maps an image's own percentiles onto `landmarks_` piecewise
    linearly (extrapolating the end segments). Saved as JSON, never pickle.
    """

    def __init__(self, percentiles: tuple[float, ...] = NYUL_PERCENTILES, scale: tuple[float, float] = NYUL_SCALE) -> None:
        self.percentiles = tuple(float(p) for p in percentiles)
        self.scale = (float(scale[0]), float(scale[1]))
        self.landmarks_: np.ndarray | None = None

    def _image_landmarks(self, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
        values = image[np.asarray(brain, bool)]
        if values.size == 0:
            raise InputError(None, "brain mask is empty: cannot compute histogram landmarks")
        return np.percentile(values.astype(np.float64), self.percentiles)

    def fit(self, images: list[np.ndarray], brains: list[np.ndarray]) -> NyulStandardiser:
        """Learn the standard landmarks from training images and their brain masks."""
        if not images or len(images) != len(brains):
            raise InputError(None, "Nyul fitting needs at least one image and one brain mask per image")
        mapped = []
        for image, brain in zip(images, brains):
            marks = self._image_landmarks(image, brain)
            span = max(marks[-1] - marks[0], 1e-6)
            mapped.append(self.scale[0] + (marks - marks[0]) / span * (self.scale[1] - self.scale[0]))
        self.landmarks_ = np.mean(mapped, axis=0)
        return self

    def transform(self, image: np.ndarray, brain: np.ndarray) -> np.ndarray:
        """Piecewise-linear map of the image's landmarks onto the standard ones; 0 outside the brain."""
        if self.landmarks_ is None:
            raise InputError(None, "Nyul standardiser is not fitted")
        inside = np.asarray(brain, bool)
        out = np.zeros(image.shape, np.float32)
        if not inside.any():
            return out
        source = np.maximum.accumulate(self._image_landmarks(image, inside))
        source = source + np.arange(source.size) * 1e-6  # strictly increasing for interpolation
        x = image[inside].astype(np.float64)
        y = np.interp(x, source, self.landmarks_)
        # np.interp clamps; extend the first and last segments linearly instead.
        lo_slope = (self.landmarks_[1] - self.landmarks_[0]) / (source[1] - source[0])
        hi_slope = (self.landmarks_[-1] - self.landmarks_[-2]) / (source[-1] - source[-2])
        y = np.where(x < source[0], self.landmarks_[0] + (x - source[0]) * lo_slope, y)
        y = np.where(x > source[-1], self.landmarks_[-1] + (x - source[-1]) * hi_slope, y)
        out[inside] = y
        return out

    def to_dict(self) -> dict[str, object]:
        """JSON-ready parameters and fitted landmarks."""
        if self.landmarks_ is None:
            raise InputError(None, "Nyul standardiser is not fitted")
        return {"method": "nyul", "percentiles": list(self.percentiles), "scale": list(self.scale), "landmarks": self.landmarks_.tolist()}

    def save(self, path: str | Path) -> Path:
        """Write the landmarks as JSON (atomically)."""
        from mslesion.io.atomic import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict, source: Path | None = None) -> NyulStandardiser:
        """Landmarks from `to_dict`'s mapping (a JSON file or a model card), or InputError naming `source`."""
        try:
            out = cls(tuple(data["percentiles"]), tuple(data["scale"]))
            landmarks = np.asarray(data["landmarks"], dtype=float)
        except (ValueError, KeyError, TypeError, IndexError, OverflowError) as exc:
            raise InputError(source, f"not Nyul landmarks ({type(exc).__name__})") from None
        percentiles = np.asarray(out.percentiles)
        if (
            len(percentiles) < 2
            or not np.all(np.isfinite(percentiles))
            or np.any(np.diff(percentiles) <= 0)
            or percentiles[0] < 0
            or percentiles[-1] > 100
        ):
            raise InputError(source, "Nyul percentiles must be at least two increasing numbers in [0, 100]")
        if len(data["scale"]) != 2 or not np.all(np.isfinite(out.scale)):
            raise InputError(source, "Nyul scale must be two finite numbers")
        if landmarks.shape != (len(out.percentiles),) or not np.all(np.isfinite(landmarks)) or np.any(np.diff(landmarks) < 0):
            raise InputError(source, "Nyul landmarks must be one finite, increasing value per percentile")
        out.landmarks_ = landmarks
        return out

    @classmethod
    def load(cls, path: str | Path) -> NyulStandardiser:
        """Read landmarks written by `save`, or raise InputError for a missing or malformed file."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(path, "Nyul landmarks file not found") from None
        except (OSError, ValueError) as exc:
            raise InputError(path, f"not a Nyul landmarks JSON file ({type(exc).__name__})") from None
        return cls.from_dict(data if isinstance(data, dict) else {}, path)
