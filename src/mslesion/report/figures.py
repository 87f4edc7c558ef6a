"""Report figures: FLAIR slices with lesion contours, and the brain-mask overlay, as PNG bytes.

Images are shown in radiological convention (patient's right on the left of the screen),
as clinicians read them, after reorienting to the closest RAS axes (nibabel) so oblique
and LPS scans look the same. Figures use matplotlib's object API (no pyplot, no global backend).
"""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np

from mslesion.space.boxes import bounding_box

LESION_COLOUR = "#ff2a2a"
BRAIN_COLOUR = "#22d3ee"
VIEWS = ("axial", "coronal", "sagittal")


def to_ras(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The array on its closest RAS axes (no resampling) and the voxel sizes along them."""
    ornt = nib.orientations.io_orientation(affine)
    ras = nib.orientations.apply_orientation(array, ornt)
    spacing = nib.affines.voxel_sizes(np.asarray(affine, dtype=float))
    order = ornt[:, 0].astype(int)
    sizes = np.empty(3)
    sizes[order] = spacing
    return ras, tuple(float(s) for s in sizes)  # type: ignore[return-value]  # 3 axes; mypy cannot count a generator's items


def display_window(image: np.ndarray, brain: np.ndarray) -> tuple[float, float]:
    """Display range: 1st to 99.5th percentile inside the brain (whole image when empty)."""
    values = image[brain] if brain.any() else image.ravel()
    lo, hi = np.percentile(values, [1.0, 99.5]) if values.size else (0.0, 1.0)
    return float(lo), float(hi if hi > lo else lo + 1.0)


def view_plane(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """A 2D slice oriented for imshow(origin='lower'): rows go up (anterior or superior)."""
    if view == "axial":
        return volume[:, :, index].T
    if view == "coronal":
        return volume[:, index, :].T
    return volume[index, :, :].T


def _aspect(spacing: tuple[float, float, float], view: str) -> float:
    sx, sy, sz = spacing
    return {"axial": sy / sx, "coronal": sz / sx, "sagittal": sz / sy}[view]


def _axis_of(view: str) -> int:
    return {"sagittal": 0, "coronal": 1, "axial": 2}[view]


def pick_slices(brain: np.ndarray, mask: np.ndarray, view: str, n: int) -> list[int]:
    """`n` slices through the brain, evenly spaced, each moved to the nearby slice with most lesion."""
    axis = _axis_of(view)
    other = tuple(a for a in range(3) if a != axis)
    brain_profile = brain.sum(axis=other)
    lesion_profile = mask.sum(axis=other)
    occupied = np.flatnonzero(brain_profile > 0.05 * max(brain_profile.max(), 1))
    if occupied.size == 0:
        occupied = np.arange(brain.shape[axis])
    lo, hi = occupied[0], occupied[-1]
    span = hi - lo
    centres = np.linspace(lo + 0.15 * span, hi - 0.15 * span, n) if span else np.full(n, lo)
    half = max(1, int(span / (2 * n)))
    picks = []
    for c in np.round(centres).astype(int):
        window = np.arange(max(c - half, lo), min(c + half, hi) + 1)
        best = window[np.argmax(lesion_profile[window])] if lesion_profile[window].any() else c
        picks.append(int(best))
    return sorted(set(picks))


def figure_png(fig) -> bytes:
    """A matplotlib Figure as PNG bytes (Agg canvas, black background)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=fig.dpi, facecolor="black")
    return buffer.getvalue()


def draw_slice(ax, image: np.ndarray, overlay: np.ndarray, view: str, spacing, window, colour: str, label: str) -> None:
    """One `view_plane` slice on `ax`: grey image, `overlay` outlined, radiological left-right, a label at the bottom."""
    ax.imshow(image, cmap="gray", origin="lower", vmin=window[0], vmax=window[1], aspect=_aspect(spacing, view), interpolation="nearest")
    if overlay.any():
        ax.contour(overlay.astype(float), levels=[0.5], colors=colour, linewidths=0.9, origin="lower")
    if view != "sagittal":
        ax.invert_xaxis()  # radiological: patient's right on the left
        ax.text(0.02, 0.96, "R", color="yellow", fontsize=8, transform=ax.transAxes, va="top")
        ax.text(0.98, 0.96, "L", color="yellow", fontsize=8, transform=ax.transAxes, va="top", ha="right")
    ax.text(
        0.5,
        0.02,
        label,
        color="white",
        fontsize=7,
        transform=ax.transAxes,
        ha="center",
        bbox={"facecolor": "black", "alpha": 0.7, "pad": 1.0, "edgecolor": "none"},
    )
    ax.set_axis_off()


def slice_montage(
    image: np.ndarray,
    overlay: np.ndarray,
    affine: np.ndarray,
    brain: np.ndarray,
    colour: str = LESION_COLOUR,
    layout: tuple[tuple[str, ...], ...] = (("axial",) * 6, ("coronal",) * 3 + ("sagittal",) * 3),
    dpi: int = 80,
) -> bytes:
    """PNG of slices of `image` (cropped to the brain) with `overlay` contoured; `layout` lists views per row."""
    from matplotlib.figure import Figure

    img, spacing = to_ras(np.asarray(image, dtype=np.float32), affine)
    ovl, _ = to_ras(np.asarray(overlay) > 0, affine)
    brn, _ = to_ras(np.asarray(brain) > 0, affine)
    window = display_window(img, brn)
    box = bounding_box(brn, 3)
    start = [b.start for b in box]
    img, ovl, brn = img[box], ovl[box], brn[box]
    picks = {view: iter(pick_slices(brn, ovl, view, sum(row.count(view) for row in layout))) for view in VIEWS}
    ncols = max(len(row) for row in layout)
    fig = Figure(figsize=(1.9 * ncols, 2.1 * len(layout)), dpi=dpi, facecolor="black")
    fig.subplots_adjust(left=0.005, right=0.995, top=0.995, bottom=0.005, wspace=0.02, hspace=0.02)
    world = np.asarray(affine, dtype=float)
    shape = to_ras(np.zeros(np.asarray(image).shape, bool), affine)[0].shape
    for r, row in enumerate(layout):
        for c, view in enumerate(row):
            k = next(picks[view], None)
            ax = fig.add_subplot(len(layout), ncols, r * ncols + c + 1)
            ax.set_facecolor("black")
            if k is None:
                ax.set_axis_off()
                continue
            mm = _slice_mm(shape, world, view, k + start[_axis_of(view)])
            draw_slice(ax, view_plane(img, view, k), view_plane(ovl, view, k), view, spacing, window, colour, f"{view} {mm}")
    return figure_png(fig)


def _slice_mm(shape: tuple[int, ...], affine: np.ndarray, view: str, k: int) -> str:
    """World coordinate of a RAS-reoriented slice, e.g. 'z=+12 mm' (approximate for oblique scans)."""
    axis = _axis_of(view)
    ornt = nib.orientations.io_orientation(affine)
    centre = np.array(shape, dtype=float) / 2
    centre[axis] = k
    inverse = nib.orientations.inv_ornt_aff(ornt, shape)  # RAS-array index -> original index
    world = affine @ inverse @ np.append(centre, 1.0)
    return f"{'xyz'[axis]}={world[axis]:+.0f} mm"
