"""MS lesions: how many, how big, where, what shape, and how they change between visits.

A lesion is first a `LesionSpec` (a description: kind, centre, ellipsoid blobs, boundary
roughness, or a real component), then a raster: a partial-volume probability in a small
box around it. Probabilities fall linearly from 1 to 0 across one voxel at the lesion
boundary, so the ground truth (probability >= 0.5) is the shape itself and the image
sees partial volume at the edges. All per-lesion work happens in these small boxes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from mslesion.space.boxes import box_around
from mslesion.synth.anatomy import Anatomy, LesionKind, classify_location
from mslesion.synth.grid import downsample_box
from mslesion.synth.library import LesionLibrary, RealComponent

log = logging.getLogger(__name__)

Box = tuple[slice, slice, slice]
KIND_ORDER: tuple[LesionKind, ...] = tuple(LesionKind)


@dataclass(frozen=True)
class LesionModel:
    """Distributions lesions are drawn from (defaults follow MS lesion-load statistics).

    Counts are negative binomial (heavy-tailed: mostly tens, sometimes over 100, rarely
    zero); volumes lognormal (median ~20 mm^3, from 3 mm^3 to several mL), with a few
    large confluent periventricular lesions.
    """

    mean_count: float = 35.0
    count_dispersion: float = 0.9
    max_count: int = 300
    median_volume_mm3: float = 20.0
    volume_sigma: float = 1.5
    min_volume_mm3: float = 3.0
    max_volume_mm3: float = 20000.0
    confluent_rate: float = 0.7
    confluent_median_mm3: float = 1500.0
    kind_weights: tuple[float, float, float, float] = (0.40, 0.20, 0.30, 0.10)
    kind_volume_factor: tuple[float, float, float, float] = (2.0, 0.6, 1.0, 0.8)
    roughness: tuple[float, float] = (0.08, 0.25)
    intensity_jitter: float = 0.06
    # Longitudinal change between two visits.
    mean_new: float = 2.0
    new_dispersion: float = 1.0
    p_enlarge: float = 0.12
    p_shrink: float = 0.10


@dataclass(frozen=True)
class Blob:
    """One ellipsoid of a lesion: offset from the lesion centre (mm), semi-axes (mm), rotation (columns = axes)."""

    offset_mm: np.ndarray
    axes_mm: np.ndarray
    rotation: np.ndarray


@dataclass(frozen=True)
class LesionSpec:
    """A lesion before rasterisation. `centre` is in crop voxel coordinates of the working grid.

    Synthetic lesions are unions of `blobs` with a rough boundary (`waves`: rows of
    kx, ky, kz, phase, amplitude in the blob's normalised frame, scaled by `roughness`);
    `scale` grows or shrinks them. Real lesions carry `real` (a component of a real mask,
    pasted at its own position plus `shift` 1 mm voxels) and `grow_voxels`.
    """

    id: int
    kind: LesionKind
    centre: np.ndarray
    severity: float
    jitter: float = 0.0
    blobs: tuple[Blob, ...] = ()
    waves: np.ndarray | None = None
    roughness: float = 0.0
    scale: float = 1.0
    real: RealComponent | None = None
    shift: tuple[int, int, int] = (0, 0, 0)
    grow_voxels: int = 0
    change: str = "none"

    @property
    def source(self) -> str:
        """'synthetic' or 'real:<donor>#<component>'."""
        return "synthetic" if self.real is None else f"real:{self.real.donor}#{self.real.label}"


@dataclass(frozen=True)
class Raster:
    """A rasterised lesion: its box in crop coordinates and partial-volume probabilities there."""

    spec: LesionSpec
    box: Box
    prob: np.ndarray = field(repr=False)

    @property
    def voxels(self) -> int:
        """Ground-truth voxel count (probability >= 0.5)."""
        return int(np.count_nonzero(self.prob >= 0.5))


# ---------------------------------------------------------------- drawing specs


def draw_count(rng: np.random.Generator, mean: float, dispersion: float, max_count: int) -> int:
    """Negative binomial count with the given mean and shape (smaller shape = heavier tail)."""
    if mean <= 0:
        return 0
    p = dispersion / (dispersion + mean)
    return int(min(rng.negative_binomial(dispersion, p), max_count))


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _frame(rng: np.random.Generator, first: np.ndarray | None) -> np.ndarray:
    """Rotation whose first column is `first` (random when None); other columns random."""
    v = _random_unit(rng) if first is None or np.linalg.norm(first) < 1e-6 else first / np.linalg.norm(first)
    w = _random_unit(rng)
    e2 = w - (w @ v) * v
    if np.linalg.norm(e2) < 1e-6:
        e2 = np.cross(v, [1.0, 0.0, 0.0]) if abs(v[0]) < 0.9 else np.cross(v, [0.0, 1.0, 0.0])
    e2 /= np.linalg.norm(e2)
    return np.stack([v, e2, np.cross(v, e2)], axis=1)


def _axes_for(volume_mm3: float, elongation: float, rng: np.random.Generator) -> np.ndarray:
    """Semi-axes (long, mid, short) of an ellipsoid of the given volume and long/short ratio."""
    r0 = (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    t = math.exp(rng.normal(0.0, 0.12))
    return np.array([r0 * elongation ** (2 / 3), r0 * elongation ** (-1 / 3) * t, r0 * elongation ** (-1 / 3) / t])


def _gradient_at(field_: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Central-difference gradient of a crop array at the voxel nearest `centre`."""
    c = np.clip(np.round(centre).astype(int), 1, np.asarray(field_.shape) - 2)
    g = np.zeros(3)
    for a in range(3):
        hi, lo = c.copy(), c.copy()
        hi[a] += 1
        lo[a] -= 1
        g[a] = float(field_[tuple(hi)]) - float(field_[tuple(lo)])
    return g


def _blobs(rng: np.random.Generator, volume: float, rotation: np.ndarray, elongation: float, spread_plane: bool) -> tuple[Blob, ...]:
    """One ellipsoid for small lesions; a union of 2-4 overlapping ones for large lesions."""
    n = 1 if volume < 150.0 else int(rng.integers(2, 5))
    if n == 1:
        return (Blob(np.zeros(3), _axes_for(volume, elongation, rng), rotation),)
    blobs = []
    for i in range(n):
        vol = volume / n * 1.3
        axes = _axes_for(vol, elongation * float(rng.uniform(0.8, 1.2)), rng)
        rot = rotation if i == 0 else _frame(rng, rotation[:, 0] + 0.3 * rng.standard_normal(3))
        if i == 0:
            offset = np.zeros(3)
        else:
            d = rng.standard_normal(3)
            if spread_plane:  # confluent periventricular lesions spread along the ventricle wall
                d -= 0.8 * (d @ rotation[:, 0]) * rotation[:, 0]
            offset = d / np.linalg.norm(d) * axes[1] * float(rng.uniform(0.6, 1.2))
        blobs.append(Blob(offset, axes, rot))
    return tuple(blobs)


def draw_synthetic(
    rng: np.random.Generator,
    anatomy: Anatomy,
    model: LesionModel,
    lesion_id: int,
    kind: LesionKind | None = None,
    volume_mm3: float | None = None,
) -> LesionSpec | None:
    """A synthetic lesion of `kind` (drawn from the model when None); None when no site is available."""
    if kind is None:
        w = np.asarray(model.kind_weights, dtype=float)
        kind = KIND_ORDER[int(rng.choice(len(KIND_ORDER), p=w / w.sum()))]
    candidates = anatomy.candidates[kind]
    if len(candidates) == 0:
        candidates = anatomy.candidates[LesionKind.DEEP_WHITE_MATTER]
        if len(candidates) == 0:
            return None
    centre = candidates[int(rng.integers(len(candidates)))] + rng.uniform(-0.5, 0.5, 3)
    if volume_mm3 is None:
        factor = model.kind_volume_factor[KIND_ORDER.index(kind)]
        volume_mm3 = float(np.exp(rng.normal(math.log(model.median_volume_mm3 * factor), model.volume_sigma)))
    volume_mm3 = float(np.clip(volume_mm3, model.min_volume_mm3, model.max_volume_mm3))
    if kind == LesionKind.PERIVENTRICULAR:
        # Ovoid, long axis perpendicular to the ventricle wall (along the medullary veins).
        rotation = _frame(rng, _gradient_at(anatomy.vent_dist, centre))
        elongation = float(rng.uniform(1.5, 3.0))
    else:
        rotation = _frame(rng, None)
        elongation = float(rng.uniform(1.0, 1.8))
    n_waves = 6
    directions = np.stack([_random_unit(rng) for _ in range(n_waves)])
    waves = np.column_stack(
        [
            directions * rng.uniform(1.5, 4.0, (n_waves, 1)),
            rng.uniform(0, 2 * math.pi, n_waves),
            np.full(n_waves, math.sqrt(2.0 / n_waves)),
        ]
    )
    return LesionSpec(
        id=lesion_id,
        kind=kind,
        centre=centre,
        severity=float(rng.beta(2.0, 2.0)),
        jitter=float(rng.normal(0.0, model.intensity_jitter)),
        blobs=_blobs(rng, volume_mm3, rotation, elongation, kind == LesionKind.PERIVENTRICULAR),
        waves=waves,
        roughness=float(rng.uniform(*model.roughness)),
    )


def draw_real(
    rng: np.random.Generator,
    anatomy: Anatomy,
    library: LesionLibrary,
    model: LesionModel,
    lesion_id: int,
    jitter_mm: float = 0.0,
) -> LesionSpec:
    """A real component pasted at its own position (plus up to `jitter_mm` of random shift)."""
    comp = library.sample(rng)
    j = int(round(jitter_mm))
    shift = tuple(int(v) for v in rng.integers(-j, j + 1, 3)) if j > 0 else (0, 0, 0)
    centre_1mm = np.asarray(comp.start) + np.asarray(shift) + (np.asarray(comp.mask.shape) - 1) / 2.0
    r = anatomy.resolution_mm
    centre = (centre_1mm - (r - 1.0) / 2.0) / r - anatomy.crop_start
    return LesionSpec(
        id=lesion_id,
        kind=LesionKind.DEEP_WHITE_MATTER,  # replaced by the location class once rasterised
        centre=centre,
        severity=float(rng.beta(2.0, 2.0)),
        jitter=float(rng.normal(0.0, model.intensity_jitter)),
        real=comp,
        shift=shift,  # type: ignore[arg-type]  # 3 axes; mypy cannot count a generator's items
    )


# ---------------------------------------------------------------- rasterising


def _allowed(anatomy: Anatomy, kind: LesionKind) -> np.ndarray:
    """Where a lesion of `kind` may extend: WM plus a voxel, or any parenchyma for cortex-touching and real ones."""
    if kind in (LesionKind.PERIVENTRICULAR, LesionKind.DEEP_WHITE_MATTER):
        return anatomy.allowed_wm
    return anatomy.allowed_parenchyma


def _signed_distance(blob: Blob, rel: list[np.ndarray], scale: float, waves: np.ndarray | None, roughness: float) -> np.ndarray:
    """Approximate signed distance (mm, negative inside) to a rough ellipsoid boundary."""
    rot, axes = blob.rotation, blob.axes_mm * scale
    d = [rel[i] - blob.offset_mm[i] * scale for i in range(3)]
    un = [(rot[0, j] * d[0] + rot[1, j] * d[1] + rot[2, j] * d[2]) / axes[j] for j in range(3)]
    q = un[0] ** 2 + un[1] ** 2 + un[2] ** 2
    dist = np.sqrt(q)
    grad = np.sqrt((un[0] / axes[0]) ** 2 + (un[1] / axes[1]) ** 2 + (un[2] / axes[2]) ** 2) / np.maximum(dist, 1e-6)
    grad = np.maximum(grad, 1.0 / axes.max())
    if waves is not None and roughness > 0:
        noise = np.zeros_like(dist)
        for kx, ky, kz, phase, amp in waves:
            noise += amp * np.cos(kx * un[0] + ky * un[1] + kz * un[2] + phase)
        dist = dist * np.exp(roughness * np.clip(noise, -2.0, 2.0))
    return (dist - 1.0) / grad


def _rasterize_synthetic(spec: LesionSpec, anatomy: Anatomy) -> tuple[Box, np.ndarray] | None:
    r = anatomy.resolution_mm
    reach = max(np.linalg.norm(b.offset_mm) + b.axes_mm.max() * math.exp(2.0 * spec.roughness) for b in spec.blobs)
    half = int(math.ceil(reach * spec.scale / r)) + 2
    box = box_around(spec.centre, half, anatomy.crop_shape)
    if box is None:
        return None
    assert len(box) == 3  # one slice per axis of the 3D crop
    rel = [
        ((np.arange(s.start, s.stop, dtype=np.float32) - spec.centre[a]) * r).reshape([-1 if b == a else 1 for b in range(3)])
        for a, s in enumerate(box)
    ]
    sd = np.full(tuple(s.stop - s.start for s in box), np.inf, dtype=np.float32)
    for blob in spec.blobs:
        sd = np.minimum(sd, _signed_distance(blob, rel, spec.scale, spec.waves, spec.roughness))
    prob = np.clip(0.5 - sd / r, 0.0, 1.0).astype(np.float32)
    return box, prob


def _real_probability_1mm(mask: np.ndarray, grow: int) -> tuple[np.ndarray, int]:
    """Partial-volume probability of a real component at 1 mm (>= 0.5 exactly on the mask), and its padding."""
    from scipy import ndimage as ndi

    pad = abs(grow) + 2
    m = np.pad(mask, pad)
    if grow > 0:
        m = ndi.binary_dilation(m, iterations=grow)
    elif grow < 0:
        m = ndi.binary_erosion(m, iterations=-grow)
    mf = m.astype(np.float32)
    return 0.5 * mf + 0.5 * ndi.gaussian_filter(mf, 0.6, output=np.float32), pad


def _rasterize_real(spec: LesionSpec, anatomy: Anatomy) -> tuple[Box, np.ndarray] | None:
    assert spec.real is not None
    prob_1mm, pad = _real_probability_1mm(spec.real.mask, spec.grow_voxels)
    start_1mm = tuple(int(s + d - pad) for s, d in zip(spec.real.start, spec.shift))
    prob, start = downsample_box(prob_1mm, start_1mm, anatomy.resolution_mm)  # type: ignore[arg-type]  # 3 axes; mypy cannot count a generator's items
    lo = np.asarray(start) - anatomy.crop_start
    hi = lo + np.asarray(prob.shape)
    clo, chi = np.maximum(lo, 0), np.minimum(hi, anatomy.crop_shape)
    if np.any(chi <= clo):
        return None
    box = tuple(slice(int(a), int(b)) for a, b in zip(clo, chi))
    inner = tuple(slice(int(a - o), int(b - o)) for a, b, o in zip(clo, chi, lo, strict=True))
    return box, np.ascontiguousarray(prob[inner])  # type: ignore[return-value]  # 3 axes; mypy cannot count a generator's items


def rasterize(spec: LesionSpec, anatomy: Anatomy) -> Raster | None:
    """Partial-volume raster of a lesion, confined to where its kind may extend; None when it has no voxel."""
    if spec.real is not None:
        out = _rasterize_real(spec, anatomy)
    else:
        out = _rasterize_synthetic(spec, anatomy)
    if out is None:
        return None
    box, prob = out
    allowed = anatomy.allowed_parenchyma if spec.real is not None else _allowed(anatomy, spec.kind)
    prob *= allowed[box]
    inside = prob >= 0.5
    if not inside.any():
        return None
    if spec.real is not None:
        voxels = np.argwhere(inside) + [s.start for s in box]
        spec = dataclasses.replace(spec, kind=classify_location(voxels, anatomy))
    return Raster(spec=spec, box=box, prob=prob)


# ---------------------------------------------------------------- placing


def _touches(raster: Raster, avoid: np.ndarray | None) -> bool:
    """True when the lesion's ground truth overlaps `avoid`."""
    return avoid is not None and bool(np.any(avoid[raster.box] & (raster.prob >= 0.5)))


def place_lesions(
    draw: Callable[[int], LesionSpec | None],
    anatomy: Anatomy,
    n: int,
    first_id: int = 1,
    avoid: np.ndarray | None = None,
    max_tries_per_lesion: int = 5,
) -> list[Raster]:
    """Draw and rasterise lesions until `n` have voxels (and miss `avoid`), or the tries run out."""
    rasters: list[Raster] = []
    tries = 0
    while len(rasters) < n and tries < max_tries_per_lesion * n:
        tries += 1
        spec = draw(first_id + len(rasters))
        raster = None if spec is None else rasterize(spec, anatomy)
        if raster is None or _touches(raster, avoid):
            continue
        rasters.append(raster)
    if len(rasters) < n:
        log.debug("placed %d of %d lesions at %.3g mm", len(rasters), n, anatomy.resolution_mm)
    return rasters


def synthetic_volumes(rng: np.random.Generator, model: LesionModel, n: int) -> Iterator[float | None]:
    """Volume plan for `n` lesions: a few large confluent ones first (Poisson), then model draws (None)."""
    n_confluent = min(int(rng.poisson(model.confluent_rate)), n) if n > 0 else 0
    for _ in range(n_confluent):
        yield float(np.exp(rng.normal(math.log(model.confluent_median_mm3), 0.9)))
    while True:
        yield None


def sample_lesions(
    rng: np.random.Generator,
    anatomy: Anatomy,
    model: LesionModel,
    n: int,
    library: LesionLibrary | None = None,
    jitter_mm: float = 0.0,
    first_id: int = 1,
    avoid: np.ndarray | None = None,
    confluent: bool = True,
) -> list[Raster]:
    """`n` lesions: synthetic ones in MS locations, or real components when a library is given.

    `confluent` allows the model's few large confluent lesions (off for new lesions at follow-up).
    """
    if library is not None:
        return place_lesions(lambda i: draw_real(rng, anatomy, library, model, i, jitter_mm), anatomy, n, first_id, avoid)
    plan = synthetic_volumes(rng, model, n if confluent else 0)

    def draw(i: int) -> LesionSpec | None:
        volume = next(plan)
        kind = LesionKind.PERIVENTRICULAR if volume is not None else None
        return draw_synthetic(rng, anatomy, model, i, kind=kind, volume_mm3=volume)

    return place_lesions(draw, anatomy, n, first_id, avoid)


def paint(rasters: list[Raster], shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Lesion probability and lesion-id maps on the crop: where lesions overlap, the most probable wins."""
    prob = np.zeros(shape, dtype=np.float32)
    ids = np.zeros(shape, dtype=np.int32)
    for raster in rasters:
        p_view, id_view = prob[raster.box], ids[raster.box]
        win = raster.prob > p_view
        p_view[win] = raster.prob[win]
        id_view[win] = raster.spec.id
    return prob, ids


# ---------------------------------------------------------------- evolving


def evolve(spec: LesionSpec, rng: np.random.Generator, model: LesionModel) -> LesionSpec:
    """The lesion at a later visit: stable, enlarging (grows by 20-60% in size) or shrinking."""
    u = rng.random()
    if u < model.p_enlarge:
        if spec.real is not None:
            return dataclasses.replace(spec, grow_voxels=spec.grow_voxels + int(rng.integers(1, 3)), change="enlarging")
        return dataclasses.replace(spec, scale=spec.scale * float(rng.uniform(1.2, 1.6)), change="enlarging")
    if u < model.p_enlarge + model.p_shrink:
        severity = min(1.0, spec.severity + 0.2)  # chronic lesions turn darker on T1
        if spec.real is not None:
            return dataclasses.replace(spec, grow_voxels=spec.grow_voxels - 1, severity=severity, change="shrinking")
        return dataclasses.replace(spec, scale=spec.scale * float(rng.uniform(0.55, 0.85)), severity=severity, change="shrinking")
    return dataclasses.replace(spec, change="stable")
