"""`write_report`: report.html (self-contained), report.json and, on request, report.pdf.

The report holds only what the toolkit computed and the case id the caller chose: no
DICOM header field (names, IDs, dates) ever reaches it. Inputs are named by file name.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.io.atomic import write_json_atomic, write_text_atomic
from mslesion.io.volume import Volume
from mslesion.report import html
from mslesion.report.viewer import Layer, Panel, layers_for, lesion_mm, viewer_scripts, viewer_section

logger = logging.getLogger(__name__)

LOCATION_NAMES = {
    "periventricular": "Periventricular",
    "juxtacortical": "Juxtacortical / cortical",
    "infratentorial": "Infratentorial",
    "deep_white_matter": "Deep white matter",
    "unknown": "Unknown (not in MNI space)",
}
LESION_COLUMNS = [
    ("lesion_id", "Lesion"),
    ("volume_ml", "Volume (mL)"),
    ("voxels", "Voxels"),
    ("location_name", "Location"),
    ("centroid_x_mm", "x (mm)"),
    ("centroid_y_mm", "y (mm)"),
    ("centroid_z_mm", "z (mm)"),
]
DISCLAIMER = "Research software: not a medical device. Results must be checked by a qualified reader."


def _input_rows(inputs: dict[str, Volume]) -> list[dict[str, Any]]:
    return [
        {
            "contrast": name,
            "file": v.path.name if v.path is not None else "(in memory)",
            "shape": list(v.shape),
            "spacing_mm": [round(s, 3) for s in v.spacing],
            "orientation": v.orientation,
        }
        for name, v in inputs.items()
    ]


def flatten_qc(data: dict[str, Any], prefix: str = "") -> list[dict[str, Any]]:
    """Nested QC numbers as (name, value) rows; lists of numbers kept as one value."""
    rows = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += flatten_qc(value, f"{name} / ")
        elif key != "warnings":
            rows.append({"name": name.replace("_", " "), "value": value})
    return rows


def qc_entries(qc: dict[str, Any], key: str) -> list[str]:
    """Every `key` list ("warnings", "flags") in the (nested) QC dict, in order (e.g. a pair's two visits)."""
    found = list(qc.get(key, []))
    for value in qc.values():
        if isinstance(value, dict):
            found += qc_entries(value, key)
    return found


def qc_warnings(qc: dict[str, Any]) -> list[str]:
    """Every `warnings` list in the (nested) QC dict, in order."""
    return qc_entries(qc, "warnings")


def report_data(
    *, case_id: str, inputs: dict[str, Volume], lesions_rows: list[dict[str, Any]], summary: dict[str, Any], qc: dict[str, Any]
) -> dict[str, Any]:
    """The machine-readable report (report.json)."""
    model = dict(summary.get("model", {}))
    if "path" in model:
        model["name"] = Path(str(model.pop("path"))).name
    return {
        "case_id": case_id,
        "created_utc": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
        "mslesion_version": summary.get("mslesion_version"),
        "model": model,
        "inputs": _input_rows(inputs),
        "lesion_count": summary.get("lesion_count", len(lesions_rows)),
        "total_volume_ml": summary.get("total_volume_ml"),
        "locations": summary.get("locations", {}),
        "lesions": lesions_rows,
        "qc": qc,
        "warnings": list(summary.get("warnings", [])) + qc_warnings(qc),
    }


def location_rows(locations: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-class counts and volumes (`location_summary`) as table rows with readable class names."""
    return [{"location": LOCATION_NAMES.get(k, k), "count": v["count"], "volume_ml": v["volume_ml"]} for k, v in locations.items()]


def display_row(row: dict[str, Any]) -> dict[str, Any]:
    """A lesion row formatted for reading: mL to 3 decimals, mm to 1, location in words."""
    out = dict(row, location_name=LOCATION_NAMES.get(str(row.get("location")), row.get("location", "")))
    out["volume_ml"] = f"{float(row.get('volume_ml', 0.0)):.3f}"
    for axis in "xyz":
        key = f"centroid_{axis}_mm"
        if key in row:
            out[key] = f"{float(row[key]):.1f}"
    return out


def render_html(data: dict[str, Any], montage_png: bytes, brain_png: bytes | None, viewer: list[Panel] | None = None) -> str:
    """The report page from `report_data`, the two figures and, when given, the interactive viewer's panels."""
    cards = [("Lesions", str(data["lesion_count"])), ("Total lesion volume", f"{data['total_volume_ml'] or 0:.2f} mL")]
    for key in ("periventricular", "juxtacortical", "infratentorial", "deep_white_matter"):
        if key in data["locations"]:
            cards.append((LOCATION_NAMES[key], str(data["locations"][key]["count"])))
    card_html = (
        '<div class="cards">'
        + "".join(f'<div class="card"><div class="v">{html.escape(v)}</div><div class="k">{html.escape(k)}</div></div>' for k, v in cards)
        + "</div>"
    )
    locations = html.table(
        location_rows(data["locations"]),
        [("location", "Location"), ("count", "Lesions"), ("volume_ml", "Volume (mL)")],
        {"count", "volume_ml"},
    )
    rows = [display_row(r) for r in data["lesions"]]
    row_mm = [lesion_mm(r) for r in data["lesions"]] if viewer else None
    lesion_table = (
        html.table(rows, LESION_COLUMNS, {"lesion_id", "volume_ml", "voxels", "centroid_x_mm", "centroid_y_mm", "centroid_z_mm"}, row_mm)
        if rows
        else "<p>No lesions found.</p>"
    )
    images = (
        f'<img class="wide" alt="FLAIR slices with lesion contours" src="{html.data_uri(montage_png)}">'
        '<p class="note">FLAIR, radiological convention (patient right on the left); red: lesion outlines. '
        "Coordinates are those of the input image.</p>"
    )
    qc_rows = flatten_qc(data["qc"])
    qc_html = (
        f'<img alt="Brain mask overlay" src="{html.data_uri(brain_png)}"><p class="note">Cyan: brain mask outline.</p>' if brain_png else ""
    )
    qc_html += (
        html.table(qc_rows, [("name", "Check"), ("value", "Value")])
        if qc_rows
        else '<p class="note">No preprocessing QC numbers for this run.</p>'
    )
    inputs = html.table(
        data["inputs"],
        [
            ("contrast", "Contrast"),
            ("file", "File"),
            ("shape", "Voxels"),
            ("spacing_mm", "Voxel size (mm)"),
            ("orientation", "Orientation"),
        ],
    )
    model = data["model"]
    model_rows = [{"name": k.replace("_", " "), "value": v} for k, v in model.items()]
    model_rows.append({"name": "mslesion version", "value": data["mslesion_version"]})
    sections = [
        (
            "Summary",
            html.qc_alert(qc_entries(data["qc"], "flags"), brain_png)
            + card_html
            + "<h2>Lesions by location (McDonald 2017)</h2>"
            + locations
            + html.warnings_block(data["warnings"]),
        ),
        ("Images", images),
        *([("Viewer", viewer_section(viewer))] if viewer else []),
        (
            f"Lesions ({len(rows)})",
            f'{lesion_table}<p class="note">Lesions are 26-connected components, numbered by decreasing volume; '
            "centroids in the input's world coordinates (RAS mm). Locations come from MNI152 template regions (docs/locations.md).</p>",
        ),
        ("Inputs", inputs),
        ("Preprocessing quality control", qc_html),
        ("Model", html.table(model_rows, [("name", "Item"), ("value", "Value")])),
    ]
    subtitle = f"Case {data['case_id']} · created {data['created_utc']} · {DISCLAIMER}"
    return html.page(f"MS lesion report — {data['case_id']}", subtitle, sections, viewer_scripts() if viewer else "")


def _write_pdf(path: Path, data: dict[str, Any], montage_png: bytes) -> None:
    """A two-page PDF: summary with the montage, then the lesion table (matplotlib PdfPages)."""
    import io

    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    tmp = path.with_name(f".{path.name}.tmp")
    with PdfPages(tmp) as pdf:
        fig = Figure(figsize=(8.27, 11.69))
        fig.text(0.05, 0.96, f"MS lesion report — {data['case_id']}", fontsize=15, weight="bold")
        lines = [f"Lesions: {data['lesion_count']}   total volume: {data['total_volume_ml'] or 0:.2f} mL"]
        lines += [f"{LOCATION_NAMES.get(k, k)}: {v['count']} ({v['volume_ml']:.2f} mL)" for k, v in data["locations"].items()]
        lines += [f"Warning: {w}" for w in data["warnings"]] + [DISCLAIMER]
        fig.text(0.05, 0.93, "\n".join(lines), fontsize=9, va="top")
        ax = fig.add_axes((0.03, 0.05, 0.94, 0.6))
        ax.imshow(imread(io.BytesIO(montage_png), format="png"))
        ax.set_axis_off()
        pdf.savefig(fig)
        rows = data["lesions"]
        for start in range(0, max(len(rows), 1), 50):
            fig = Figure(figsize=(8.27, 11.69))
            text = ["lesion  volume_mL  location             x_mm    y_mm    z_mm"]
            text += [
                f"{r['lesion_id']:>6}  {r['volume_ml']:>9.4f}  {str(r.get('location', '')):<18} {r['centroid_x_mm']:>7.1f} {r['centroid_y_mm']:>7.1f} {r['centroid_z_mm']:>7.1f}"
                for r in rows[start : start + 50]
            ]
            fig.text(0.05, 0.96, "\n".join(text), fontsize=8, family="monospace", va="top")
            pdf.savefig(fig)
    tmp.replace(path)


def _viewer_layers(inputs: dict[str, Volume], flair: Volume, mask: np.ndarray) -> tuple[Layer, ...]:
    """The viewer's layers: FLAIR, then T1 when it was given (on its own grid), then the lesion mask."""
    images = {"FLAIR": (flair.array, flair.affine)}
    if "T1" in inputs:
        images["T1"] = (inputs["T1"].array, inputs["T1"].affine)
    return layers_for(images, mask, flair.affine)


def write_report(
    out_dir: Path,
    *,
    case_id: str,
    inputs: dict[str, Volume],
    flair: Volume,
    mask: np.ndarray,
    brain: np.ndarray | None,
    lesions_rows: list[dict[str, Any]],
    summary: dict[str, Any],
    qc: dict[str, Any] | None = None,
    pdf: bool = False,
    viewer: bool = True,
) -> Path:
    """Write report.html and report.json (and report.pdf) into `out_dir`; returns the HTML path.

    `viewer`: embed the interactive NiiVue viewer (FLAIR, T1 when in `inputs`, the lesion mask).
    """
    from mslesion.report.figures import BRAIN_COLOUR, slice_montage

    start = time.perf_counter()
    out_dir = Path(out_dir)
    brain_mask = np.asarray(brain) > 0 if brain is not None else np.asarray(flair.array) != 0
    data = report_data(case_id=case_id, inputs=inputs, lesions_rows=lesions_rows, summary=summary, qc=qc or {})
    montage = slice_montage(flair.array, mask, flair.affine, brain_mask)
    brain_png = None
    if brain is not None:
        layout = (("axial",) * 4 + ("coronal", "sagittal"),)
        brain_png = slice_montage(flair.array, brain_mask, flair.affine, brain_mask, colour=BRAIN_COLOUR, layout=layout, dpi=60)
    panels = [Panel("FLAIR", _viewer_layers(inputs, flair, mask))] if viewer else None
    write_json_atomic(out_dir / "report.json", data)
    path = write_text_atomic(out_dir / "report.html", render_html(data, montage, brain_png, panels))
    if pdf:
        _write_pdf(out_dir / "report.pdf", data, montage)
    logger.debug("report written in %.1f s", time.perf_counter() - start)
    return path
