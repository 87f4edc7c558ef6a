"""cohort.html: one page over a segmented dataset, one row per session with a link to its report.

Each row holds the lesion count and volume, the preprocessing QC flags and the warning count;
failed sessions are listed with why. A histogram shows the distribution of total lesion
volume, one colour per site (or scanner) when the dataset says which, and a dot plot per
site/scanner beside it. Like the session reports the page is self-contained (inline CSS, PNG
as data: URIs) and carries only what the toolkit computed and the BIDS session names.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from mslesion.io.atomic import write_text_atomic
from mslesion.report.html import data_uri, page, table
from mslesion.report.write import DISCLAIMER

COLUMNS = [
    ("name", "Session"),
    ("site", "Site / scanner"),
    ("lesion_count", "Lesions"),
    ("total_volume_ml", "Volume (mL)"),
    ("flags", "QC flags"),
    ("warnings", "Warnings"),
    ("report", "Report"),
]
PALETTE = ("#1d4ed8", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4b5563")


def session_group(row: dict[str, Any]) -> str | None:
    """The row's site, else its scanner, else None (unknown)."""
    return row.get("site") or row.get("scanner") or None


def volume_plot_png(rows: list[dict[str, Any]], dpi: int = 90) -> bytes | None:
    """Histogram of total lesion volume (stacked by site/scanner when known) and, with groups, a dot plot per group."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    volumes = [(float(r["total_volume_ml"]), session_group(r) or "unknown") for r in rows if r.get("total_volume_ml") is not None]
    if not volumes:
        return None
    groups = sorted({g for _, g in volumes})
    grouped = len(groups) > 1 or groups != ["unknown"]
    fig = Figure(figsize=(10 if grouped else 6, 3.2), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 2 if grouped else 1, 1)
    values = [[v for v, g in volumes if g == group] for group in groups]
    top = max(v for v, _ in volumes)
    bins = np.linspace(0.0, top * 1.05 if top > 0 else 1.0, min(30, max(5, len(volumes))) + 1)
    ax.hist(
        values,
        bins=bins,  # type: ignore[arg-type]  # edges as an array: matplotlib takes it, its stubs say Sequence
        stacked=True,
        color=[PALETTE[i % len(PALETTE)] for i in range(len(groups))],
        label=groups if grouped else None,
    )
    ax.set_xlabel("total lesion volume per session (mL)")
    ax.set_ylabel("sessions")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if grouped:
        ax.legend(fontsize=8, frameon=False)
        dots = fig.add_subplot(1, 2, 2)
        rng = np.random.default_rng(0)  # jitter only spreads the dots; the same page each run
        for i, group_values in enumerate(values):
            dots.scatter(i + rng.uniform(-0.15, 0.15, len(group_values)), group_values, s=14, color=PALETTE[i % len(PALETTE)])
        dots.set_xticks(range(len(groups)), groups, rotation=20, fontsize=8)
        dots.set_ylabel("total lesion volume (mL)")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


def _row_html(row: dict[str, Any]) -> dict[str, Any]:
    link = row.get("report")
    return {
        **row,
        "site": session_group(row) or "",
        "flags": ", ".join(row.get("flags", [])) or "none",
        "total_volume_ml": f"{float(row['total_volume_ml']):.2f}" if row.get("total_volume_ml") is not None else "",
        "report": link or "",
    }


def render_cohort_html(title: str, rows: list[dict[str, Any]], failed: dict[str, str]) -> str:
    """The page: counts, the volume plot, the session table (links to reports) and the failures."""
    shown = [_row_html(r) for r in rows]
    body = table(shown, COLUMNS, {"lesion_count", "total_volume_ml", "warnings"}, links={"report": "report"})
    flagged = sum(1 for r in rows if r.get("flags"))
    volumes = [float(r["total_volume_ml"]) for r in rows if r.get("total_volume_ml") is not None]
    summary = f"<p>{len(rows)} sessions segmented, {len(failed)} failed; {flagged} with QC flags. " + (
        f"Total lesion volume: median {np.median(volumes):.2f} mL, range {min(volumes):.2f}-{max(volumes):.2f} mL.</p>"
        if volumes
        else "</p>"
    )
    plot = volume_plot_png(rows)
    sections = [
        ("Summary", summary + (f'<img alt="Lesion volume per session" src="{data_uri(plot)}">' if plot else "")),
        (
            f"Sessions ({len(rows)})",
            body + '<p class="note">Sessions with QC flags need their brain mask checked '
            "(see the red notice in their report) before their numbers are used.</p>",
        ),
    ]
    if failed:
        sections.append(
            (
                f"Failed ({len(failed)})",
                table([{"name": k, "reason": v} for k, v in failed.items()], [("name", "Session"), ("reason", "Why")]),
            )
        )
    return page(title, DISCLAIMER, sections)


def write_cohort_page(out: Path, rows: list[dict[str, Any]], failed: dict[str, str], title: str = "MS lesion cohort") -> Path:
    """Write `out`/cohort.html (atomically); `rows` carry name, lesion_count, total_volume_ml, flags, warnings, report, site, scanner."""
    return write_text_atomic(Path(out) / "cohort.html", render_cohort_html(title, rows, failed))
