"""The report as one self-contained HTML page: inline CSS, images as base64 PNG, inline scripts only, no links."""

from __future__ import annotations

import base64
from collections.abc import Set as AbstractSet
from html import escape
from typing import Any

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:1180px;margin:0 auto;padding:18px 24px 40px}
header{background:#1d3557;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:22px} header p{margin:4px 0 0;font-size:13px;opacity:.85}
section{background:#fff;border-radius:6px;padding:12px 18px;margin:14px 0;box-shadow:0 1px 2px rgba(0,0,0,.08)}
h2{font-size:17px;margin:4px 0 10px;color:#1d3557}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{flex:1;min-width:150px;border:1px solid #d8dde6;border-radius:6px;padding:8px 12px}
.card .v{font-size:24px;font-weight:600} .card .k{font-size:12px;color:#5a6475}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{border-bottom:1px solid #e3e6ec;padding:4px 8px;text-align:left} th{background:#eef1f6}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.alert{background:#fde8e8;border-left:6px solid #dc2626;color:#7f1d1d;padding:10px 12px;margin:6px 0;font-weight:600}
.warn{background:#fff4e5;border-left:4px solid #f59e0b;padding:6px 10px;margin:4px 0;font-size:13px}
.ok{color:#15803d;font-size:13px}
img{max-width:100%;border-radius:4px;display:block}
.note{font-size:12px;color:#5a6475}
img.wide{width:100%}
"""


def data_uri(png: bytes) -> str:
    """A PNG as a data: URI (the page needs no other file)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    if isinstance(value, (list, tuple)):
        joiner = " x " if all(isinstance(v, (int, float)) for v in value) else ", "
        return escape(joiner.join(_cell(v) for v in value))
    return escape(str(value))


def table(
    rows: list[dict[str, Any]],
    columns: list[tuple[str, str]],
    numeric: AbstractSet[str] = frozenset(),
    row_mm: list[str | None] | None = None,
    links: dict[str, str] | None = None,
) -> str:
    """An HTML table of dict rows; `columns` are (key, heading) pairs.

    `row_mm`, one "x,y,z" (or None) per row, makes those rows clickable lesion rows for the viewer;
    `links` maps a column to the text of a link whose target (a relative URL) is the cell's value.
    """
    head = "".join(f'<th class="{"n" if k in numeric else ""}">{escape(h)}</th>' for k, h in columns)
    marks = row_mm or [None] * len(rows)

    def cell(row: dict[str, Any], key: str) -> str:
        value = row.get(key, "")
        if links and key in links and value:
            return f'<a href="{escape(str(value))}">{escape(links[key])}</a>'
        return _cell(value)

    body = "".join(
        ("<tr>" if mm is None else f'<tr class="lesion-row" data-mm="{escape(mm)}" tabindex="0" title="Show in the viewer">')
        + "".join(f'<td class="{"n" if k in numeric else ""}">{cell(row, k)}</td>' for k, _ in columns)
        + "</tr>"
        for row, mm in zip(rows, marks)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def qc_alert(flags: list[str], brain_png: bytes | None) -> str:
    """A red notice, with the brain-mask overlay, when preprocessing QC flagged the brain mask or registration."""
    if not flags:
        return ""
    figure = f'<img alt="Brain mask overlay" src="{data_uri(brain_png)}">' if brain_png else ""
    return (
        f'<div class="alert">Do not trust this result before checking the brain mask below: '
        f"preprocessing QC flagged {escape(', '.join(flags))} (see the warnings).</div>{figure}"
    )


def warnings_block(warnings: list[str]) -> str:
    """Warnings as amber boxes, or a green line when there are none."""
    if not warnings:
        return '<p class="ok">No warnings.</p>'
    return "".join(f'<div class="warn">{escape(w)}</div>' for w in warnings)


def page(title: str, subtitle: str, sections: list[tuple[str, str]], scripts: str = "") -> str:
    """The whole document: a header, (heading, inner HTML) sections and, last in the body, inline `scripts` (ASCII)."""
    body = "".join(f"<section><h2>{escape(h)}</h2>{inner}</section>" for h, inner in sections)
    # Pure ASCII (non-ASCII as character references): the page reads the same whatever encoding writes it.
    return _ascii(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)}</p></header><main>{body}</main>{scripts}</body></html>\n"
    )


def _ascii(text: str) -> str:
    return text.encode("ascii", "xmlcharrefreplace").decode("ascii")
