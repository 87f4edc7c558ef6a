"""`write_new_lesion_report`: report.html (self-contained) and report.json for a baseline/follow-up pair.

The page leads with the answer ("No new lesions", or how many and how much), then the
warnings, the counts per location, the lesion table and, for each new lesion, the
baseline and follow-up side by side around it with its outline, so a reader can check
each one. Like the single-visit report (`mslesion.report.write`) it holds only what the
toolkit computed and the case id the caller chose; inputs are named by file name.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.report.html import data_uri, page, table, warnings_block
from mslesion.report.viewer import Panel, layers_for, lesion_mm, viewer_scripts, viewer_section
from mslesion.report.write import DISCLAIMER, LESION_COLUMNS, display_row, flatten_qc, location_rows, qc_warnings

logger = logging.getLogger(__name__)

MAX_FIGURES = 24
FIELD_OF_VIEW_MM = 40.0
FIGURE_VIEWS = ("axial", "coronal")
NUMERIC_COLUMNS = {
    "lesion_id",
    "volume_ml",
    "voxels",
    "centroid_x_mm",
    "centroid_y_mm",
    "centroid_z_mm",
    "flair_baseline",
    "flair_followup",
    "baseline_volume_ml",
    "followup_volume_ml",
}
# Each row: the change class (new, enlarging, shrinking, resolved), the lesion's volume and FLAIR at both visits.
VISIT_COLUMNS = (
    LESION_COLUMNS[:4]
    + [
        ("change", "Change"),
        ("baseline_volume_ml", "Lesion mL baseline"),
        ("followup_volume_ml", "Lesion mL follow-up"),
        ("flair_baseline", "FLAIR baseline"),
        ("flair_followup", "FLAIR follow-up"),
    ]
    + LESION_COLUMNS[4:]
)
BANNER_STYLE = {
    "none": "background:#dcfce7;color:#14532d;border-left:10px solid #16a34a",
    "found": "background:#fee2e2;color:#7f1d1d;border-left:10px solid #dc2626",
}


def _file_name(path: Any) -> str:
    return Path(str(path)).name if path else "(in memory)"


def new_lesion_data(*, case_id: str, lesion_rows: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable report (report.json); paths reduced to file names."""
    from mslesion import __version__

    model = dict(summary.get("model", {}))
    if "path" in model:
        path = model.pop("path")
        model = {"name": model.pop("name", _file_name(path)), **model}
    inputs = [
        {
            "input": name,
            "file": _file_name(info.get("path")),
            "shape": [int(n) for n in info.get("shape", [])],
            "spacing_mm": [round(float(s), 3) for s in info.get("spacing_mm", [])],
        }
        for name, info in summary.get("inputs", {}).items()
    ]
    qc = dict(summary.get("qc") or {})
    return {
        "case_id": case_id,
        "task": "new_lesions",
        "created_utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "mslesion_version": summary.get("mslesion_version", __version__),
        "model": model,
        "inputs": inputs,
        "lesion_count": int(summary.get("lesion_count", len(lesion_rows))),
        "change_counts": summary.get("change_counts"),
        "total_volume_ml": float(summary.get("total_volume_ml") or 0.0),
        "locations": summary.get("locations", {}),
        "lesions": lesion_rows,
        "qc": qc,
        "warnings": list(summary.get("warnings", [])) + qc_warnings(qc),
    }


def _ras_index(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """4x4 matrix: original voxel index -> index in the `to_ras` array."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(affine)
    return np.linalg.inv(nib.orientations.inv_ornt_aff(ornt, shape))


def _crop(volume: np.ndarray, centre: np.ndarray, half: np.ndarray, fill: float) -> np.ndarray:
    """The box `centre` +- `half` voxels, padded with `fill` where it leaves the grid (the lesion stays centred)."""
    lo, hi = centre - half, centre + half + 1
    inner = tuple(slice(max(int(a), 0), min(int(b), n)) for a, b, n in zip(lo, hi, volume.shape))
    pad = [(max(-int(a), 0), max(int(b) - n, 0)) for a, b, n in zip(lo, hi, volume.shape)]
    return np.pad(volume[inner], pad, constant_values=fill)


def _lesion_centre(labels: np.ndarray, lesion_id: int, fallback: np.ndarray) -> np.ndarray:
    """RAS-array voxel at the lesion's centroid, moved onto a lesion voxel's slices when the centroid misses it."""
    voxels = np.argwhere(labels == lesion_id)
    if voxels.size == 0:
        return np.rint(fallback).astype(int)
    centre = np.rint(voxels.mean(axis=0)).astype(int)
    if labels[tuple(centre)] != lesion_id:  # a curved lesion: show its voxel nearest the centroid
        centre = voxels[np.argmin(((voxels - voxels.mean(axis=0)) ** 2).sum(axis=1))]
    return centre


def lesion_pair_png(
    baseline: np.ndarray,
    followup: np.ndarray,
    mask: np.ndarray,
    brain: np.ndarray,
    spacing: tuple[float, float, float],
    centre: np.ndarray,
    dpi: int = 80,
) -> bytes:
    """Baseline and follow-up crops around `centre` (RAS-array arrays from `to_ras`), per view, side by side.

    Both crops of a view share one grey-level window (percentiles of both inside the brain);
    the lesion outline is solid on the follow-up and dashed at the same place on the baseline.
    """
    from matplotlib.figure import Figure

    from mslesion.report.figures import LESION_COLOUR, display_window, draw_slice, figure_png, view_plane

    half = np.array([max(1, math.ceil(FIELD_OF_VIEW_MM / 2 / s)) for s in spacing])
    boxes = {name: _crop(a.astype(np.float32), centre, half, np.nan) for name, a in (("Baseline", baseline), ("Follow-up", followup))}
    box_mask, box_brain = _crop(mask, centre, half, False), _crop(brain, centre, half, False)
    fig = Figure(figsize=(1.8 * 2 * len(FIGURE_VIEWS), 2.0), dpi=dpi, facecolor="black")
    fig.subplots_adjust(left=0.005, right=0.995, top=0.995, bottom=0.005, wspace=0.03)
    for v, view in enumerate(FIGURE_VIEWS):
        k = int(half[{"sagittal": 0, "coronal": 1, "axial": 2}[view]])
        planes = {name: view_plane(box, view, k) for name, box in boxes.items()}
        outline, inside = view_plane(box_mask, view, k), view_plane(box_brain, view, k)
        both = np.concatenate([planes["Baseline"], planes["Follow-up"]])
        finite = np.isfinite(both)
        window = display_window(np.nan_to_num(both), np.concatenate([inside, inside]) & finite) if finite.any() else (0.0, 1.0)
        for c, (name, plane) in enumerate(planes.items()):
            ax = fig.add_subplot(1, 2 * len(FIGURE_VIEWS), 2 * v + c + 1)
            ax.set_facecolor("black")
            follow = name == "Follow-up"
            draw_slice(ax, plane, outline if follow else np.zeros_like(outline), view, spacing, window, LESION_COLOUR, f"{name} {view}")
            if not follow and outline.any():
                ax.contour(outline.astype(float), levels=[0.5], colors=LESION_COLOUR, linewidths=0.8, linestyles="dashed", origin="lower")
    return figure_png(fig)


def _lesion_figures(
    baseline: np.ndarray,
    followup: np.ndarray,
    affine: np.ndarray,
    labels: np.ndarray,
    brain: np.ndarray,
    rows: list[dict[str, Any]],
) -> list[tuple[dict[str, Any], bytes]]:
    """(row, PNG) for each row, in the order given; `labels` number the lesions as the rows do."""
    from mslesion.report.figures import to_ras

    affine = np.asarray(affine, dtype=float)
    labels_ras, spacing = to_ras(labels, affine)
    base_ras, _ = to_ras(np.asarray(baseline, dtype=np.float32), affine)
    follow_ras, _ = to_ras(np.asarray(followup, dtype=np.float32), affine)
    mask_ras, brain_ras = labels_ras > 0, to_ras(np.asarray(brain) > 0, affine)[0]
    to_ras_index = _ras_index(affine, labels.shape)
    figures = []
    for row in rows:
        ijk = np.array([float(row.get(f"centroid_{a}", 0.0)) for a in "ijk"] + [1.0])
        centre = _lesion_centre(labels_ras, int(row["lesion_id"]), (to_ras_index @ ijk)[:3])
        figures.append((row, lesion_pair_png(base_ras, follow_ras, mask_ras, brain_ras, spacing, centre)))
    return figures


def visit_contrast(labels: np.ndarray, baseline: np.ndarray, followup: np.ndarray, brain: np.ndarray) -> dict[int, tuple[float, float]]:
    """Per lesion id: its mean FLAIR over the brain's median FLAIR, at baseline and at follow-up.

    A ratio, so the two visits compare whatever their scanners' units: a new lesion is about 1
    (normal-appearing) at baseline and clearly above 1 at follow-up.
    """
    inside = np.asarray(brain) > 0
    n = int(labels.max()) if labels.size else 0
    out: dict[int, list[float]] = {i: [] for i in range(1, n + 1)}
    for image in (baseline, followup):
        image = np.asarray(image, dtype=np.float64)
        reference = float(np.median(image[inside])) if inside.any() else 0.0
        sums = np.bincount(labels.ravel(), weights=image.ravel(), minlength=n + 1)
        counts = np.bincount(labels.ravel(), minlength=n + 1)
        for i in range(1, n + 1):
            out[i].append(float(sums[i] / counts[i] / reference) if counts[i] and reference > 0 else float("nan"))
    return {i: (v[0], v[1]) for i, v in out.items()}


def _with_visits(rows: list[dict[str, Any]], contrast: dict[int, tuple[float, float]]) -> list[dict[str, Any]]:
    """Lesion rows with the change class and the two visits' FLAIR ratios (3 decimals; NaN as None)."""

    def ratio(value: float) -> float | None:
        return None if np.isnan(value) else round(value, 3)

    return [
        {
            **row,
            "change": row.get("change", "new"),
            "flair_baseline": ratio(contrast.get(int(row["lesion_id"]), (np.nan, np.nan))[0]),
            "flair_followup": ratio(contrast.get(int(row["lesion_id"]), (np.nan, np.nan))[1]),
        }
        for row in rows
    ]


def _banner(count: int, volume_ml: float, kinds: dict[str, int] | None = None) -> str:
    """The result in one line: how many changed lesions and their volume, by kind when more than new ones are reported."""
    if count == 0:
        text, style = "No new lesions", BANNER_STYLE["none"]
    else:
        volume = f"{volume_ml:.2f}" if volume_ml >= 1 else f"{volume_ml:.3f}"  # new lesions are often a few hundredths of a mL
        if kinds and any(n for kind, n in kinds.items() if kind != "new"):
            by_kind = ", ".join(f"{n} {kind}" for kind, n in kinds.items() if n)
            text = f"{count} changed lesion{'s' if count != 1 else ''} ({by_kind}), {volume} mL"
        else:
            text = f"{count} new lesion{'s' if count != 1 else ''}, {volume} mL"
        style = BANNER_STYLE["found"]
    return f'<div class="banner" style="{style};font-size:30px;font-weight:700;padding:18px 22px;border-radius:6px">{escape(text)}</div>'


def _figure_html(row: dict[str, Any], png: bytes) -> str:
    shown = display_row(row)
    caption = (
        f"Lesion {row['lesion_id']}: {shown['volume_ml']} mL, {shown['location_name'] or 'location not given'}; "
        f"centroid ({shown.get('centroid_x_mm', '?')}, {shown.get('centroid_y_mm', '?')}, {shown.get('centroid_z_mm', '?')}) mm. "
        "Baseline, follow-up; axial, coronal; radiological convention (patient's right on the left)."
    )
    return (
        f'<figure style="margin:10px 0"><img class="wide" alt="Lesion {escape(str(row["lesion_id"]))}: baseline and follow-up" '
        f'src="{data_uri(png)}"><figcaption class="note">{escape(caption)}</figcaption></figure>'
    )


def render_new_lesion_html(data: dict[str, Any], figures: list[tuple[dict[str, Any], bytes]], viewer: list[Panel] | None = None) -> str:
    """The report page from `new_lesion_data`, the per-lesion figures and, when given, the viewer's panels (one per visit)."""
    count, rows = data["lesion_count"], data["lesions"]
    locations = (
        table(
            location_rows(data["locations"]),
            [("location", "Location"), ("count", "New lesions"), ("volume_ml", "Volume (mL)")],
            {"count", "volume_ml"},
        )
        if data["locations"]
        else '<p class="note">No location summary.</p>'
    )
    row_mm = [lesion_mm(r) for r in rows] if viewer else None
    lesion_table = table([display_row(r) for r in rows], VISIT_COLUMNS, NUMERIC_COLUMNS, row_mm) if rows else "<p>No new lesions found.</p>"
    sections = [
        ("Result", _banner(count, data["total_volume_ml"], data.get("change_counts"))),
        ("Warnings", warnings_block(data["warnings"])),
        ("New lesions by location (McDonald 2017)", locations),
        (
            f"New lesions ({len(rows)})",
            f'{lesion_table}<p class="note">New lesions are 26-connected components of the new-lesion mask, '
            "numbered by decreasing volume; centroids in the follow-up's world coordinates (RAS mm). FLAIR baseline / follow-up: "
            "the lesion's mean FLAIR over the brain's median FLAIR at each visit (about 1 where the tissue looks normal).</p>",
        ),
    ]
    if viewer:
        sections.append(
            (
                "Viewer: baseline and follow-up",
                viewer_section(viewer) + '<p class="note">Both visits on the follow-up\'s grid, '
                "crosshair, zoom and view synchronised; red: the new-lesion mask, drawn on both visits.</p>",
            )
        )
    if figures:
        more = f"Showing the {len(figures)} largest of {len(rows)} new lesions. " if len(rows) > len(figures) else ""
        note = (
            f'<p class="note">{more}Each row: baseline then follow-up, axial then coronal, {FIELD_OF_VIEW_MM:.0f} mm field of view '
            "centred on the lesion, both visits on the follow-up's grid with the same grey-level window per view. "
            "Radiological convention (patient's right on the left). Red: the new lesion's outline on the follow-up, "
            "dashed at the same place on the baseline.</p>"
        )
        sections.append(("Each new lesion", note + "".join(_figure_html(row, png) for row, png in figures)))
    qc_rows = flatten_qc(data["qc"])
    if qc_rows:
        sections.append(("Preprocessing quality control", table(qc_rows, [("name", "Check"), ("value", "Value")])))
    sections.append(
        ("Inputs", table(data["inputs"], [("input", "Input"), ("file", "File"), ("shape", "Voxels"), ("spacing_mm", "Voxel size (mm)")]))
    )
    model_rows = [{"name": k.replace("_", " "), "value": v} for k, v in data["model"].items()]
    model_rows.append({"name": "mslesion version", "value": data["mslesion_version"]})
    sections.append(("Model", table(model_rows, [("name", "Item"), ("value", "Value")])))
    subtitle = f"Case {data['case_id']} · created {data['created_utc']} · {DISCLAIMER}"
    return page(f"New lesions — {data['case_id']}", subtitle, sections, viewer_scripts() if viewer else "")


def write_new_lesion_report(
    out: Path,
    *,
    case_id: str,
    baseline: np.ndarray,
    followup: np.ndarray,
    affine: np.ndarray,
    mask: np.ndarray,
    brain: np.ndarray,
    lesion_rows: list[dict],
    summary: dict,
    viewer: bool = True,
    labels: np.ndarray | None = None,
) -> None:
    """Write report.html and report.json into the folder `out` (atomically).

    `baseline` and `followup` are on one grid (the follow-up's, `affine`), with the
    new-lesion `mask` and the `brain` mask there; `lesion_rows` are
    `postprocess.lesions.lesion_rows` rows with a `location`; `summary` holds
    lesion_count, total_volume_ml, warnings, locations, inputs, model and optionally qc.
    The `MAX_FIGURES` largest lesions get a baseline/follow-up figure; `viewer` embeds
    both visits side by side in the interactive NiiVue viewer. `labels`: the lesions of `mask`
    numbered as `lesion_rows` (`postprocess.lesions.lesion_labels`); labelled here when not given.
    """
    start = time.perf_counter()
    shapes = {np.shape(a) for a in (baseline, followup, mask, brain)}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise ValueError(f"baseline, followup, mask and brain must be 3D arrays on one grid, got shapes {sorted(shapes)}")
    out = Path(out)
    if lesion_rows:
        if labels is None:
            from mslesion.postprocess.lesions import ranked_labels

            labels, _ = ranked_labels(np.asarray(mask) > 0)  # numbered as `lesion_table` numbers lesion_rows
        lesion_rows = _with_visits(lesion_rows, visit_contrast(labels, baseline, followup, brain))
    data = new_lesion_data(case_id=case_id, lesion_rows=lesion_rows, summary=summary)
    largest = sorted(lesion_rows, key=lambda r: (-float(r.get("volume_ml", 0.0)), int(r["lesion_id"])))[:MAX_FIGURES]
    figures = _lesion_figures(baseline, followup, affine, labels, brain, largest) if largest and labels is not None else []
    panels = (
        [
            Panel(title, layers_for({"FLAIR": (image, affine)}, mask, affine))
            for title, image in (("Baseline", baseline), ("Follow-up", followup))
        ]
        if viewer
        else None
    )
    write_json_atomic(out / "report.json", data)
    write_text_atomic(out / "report.html", render_new_lesion_html(data, figures, panels))
    logger.debug("new-lesion report written in %.1f s", time.perf_counter() - start)
