"""Report sizes with the embedded viewer, and one screenshot of each report kind for docs/.

Run: .venv/bin/python benchmarks/report_viewer.py [--docs docs] [--out build/report_viewer]
Reports are written from ground-truth masks (no inference): a synthetic subject (FLAIR + T1)
and a synthetic longitudinal pair (new lesions) for the screenshots; with the shared data,
real 1 mm MNI scans (lesjak-mni patient07, and patient07/patient19 as a stand-in pair) for
sizes. Writes benchmarks/results/report_viewer.json; screenshots need Chromium (`make browser`).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from mslesion.io.atomic import write_json_atomic
from mslesion.io.volume import Volume, load_volume
from mslesion.postprocess.lesions import describe_lesions, lesion_rows, ranked_labels
from mslesion.postprocess.locations import annotate_locations
from mslesion.report.new_lesions import write_new_lesion_report
from mslesion.report.viewer import BUNDLE, NIIVUE_VERSION
from mslesion.report.write import write_report

RESULTS = Path(__file__).resolve().parent / "results" / "report_viewer.json"
SHARED = Path(os.environ.get("MSLESION_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def _rows_and_summary(mask: np.ndarray, brain: np.ndarray, affine: np.ndarray) -> tuple[list[dict], dict]:
    labels, n = ranked_labels(mask)
    rows = lesion_rows(describe_lesions(labels, n, affine))
    locations, _, warnings = annotate_locations(rows, labels, brain, affine)
    summary = {"lesion_count": len(rows), "total_volume_ml": round(sum(r["volume_ml"] for r in rows), 4), "locations": locations,
               "model": {"name": "ground truth (no model)"}, "warnings": warnings, "mslesion_version": "0.1.0"}
    return rows, summary


def segment_report(out: Path, images: dict[str, Volume], mask: np.ndarray, brain: np.ndarray) -> Path:
    """report.html of a single visit, the given mask standing in for a segmentation."""
    flair = images["FLAIR"]
    rows, summary = _rows_and_summary(mask, brain, flair.affine)
    return write_report(out, case_id=out.name, inputs=images, flair=flair, mask=mask, brain=brain, lesions_rows=rows, summary=summary)


def new_lesion_report(out: Path, baseline: np.ndarray, followup: np.ndarray, affine: np.ndarray, mask: np.ndarray, brain: np.ndarray) -> Path:
    """report.html of a pair, the given new-lesion mask standing in for the model's."""
    rows, summary = _rows_and_summary(mask, brain, affine)
    write_new_lesion_report(out, case_id=out.name, baseline=baseline, followup=followup, affine=affine, mask=mask, brain=brain,
                            lesion_rows=rows, summary=summary)
    return out / "report.html"


def synthetic_reports(out: Path) -> dict[str, Path]:
    """The two report kinds from synthetic data (shippable screenshots)."""
    from mslesion.synth import make_longitudinal_pair, make_subject

    subject = make_subject(7, contrasts=("FLAIR", "T1"))
    images = {name: Volume.from_array(subject.images[name], subject.affine) for name in ("FLAIR", "T1")}
    pair = make_longitudinal_pair(11, n_new=3)
    return {
        "segment": segment_report(out / "synthetic-segment", images, subject.lesion, subject.brain),
        "new_lesions": new_lesion_report(out / "synthetic-new-lesions", pair.baseline.images["FLAIR"], pair.followup.images["FLAIR"],
                                         pair.affine, pair.new_lesion, pair.brain),
    }


def real_reports(out: Path) -> dict[str, Path]:
    """Report sizes on real 1 mm scans, when the shared data is there."""
    case, other = SHARED / "lesjak-mni" / "patient07", SHARED / "lesjak-mni" / "patient19"
    if not case.is_dir() or not other.is_dir():
        return {}
    images = {name: load_volume(case / f"{name}.nii.gz") for name in ("FLAIR", "T1")}
    mask = load_volume(case / "lesion.nii.gz").array > 0
    brain = images["FLAIR"].array > 0
    follow = load_volume(other / "FLAIR.nii.gz").array
    return {
        "segment_lesjak_patient07": segment_report(out / "real-segment", images, mask, brain),
        "new_lesions_lesjak_patient19_vs_07": new_lesion_report(out / "real-pair", follow, images["FLAIR"].array, images["FLAIR"].affine, mask, brain),
    }


def screenshot(report: Path, target: Path) -> dict[str, object]:
    """Open `report` in headless Chromium, jump to its largest lesion, save the viewer; what the page did."""
    from selenium.webdriver.common.by import By

    from mslesion.report.browser import (
        chromium,
        crosshair_mm,
        network_requests,
        open_report,
    )

    with chromium(width=1280, height=1100) as driver:
        t0 = time.perf_counter()
        state = open_report(driver, report)
        seconds = time.perf_counter() - t0
        rows = driver.find_elements(By.CSS_SELECTOR, "tr.lesion-row")
        if rows:
            driver.execute_script("arguments[0].click()", rows[0])
            time.sleep(0.5)
        driver.execute_script("document.getElementById('viewer').scrollIntoView({block: 'start'})")
        time.sleep(0.3)
        driver.find_element(By.ID, "viewer").screenshot(str(target))
        return {"state": state, "open_s": round(seconds, 1), "requests": network_requests(driver),
                "crosshair_mm": [round(float(v), 1) for v in crosshair_mm(driver)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("build/report_viewer"))
    parser.add_argument("--docs", type=Path, default=None, help="save report_viewer_{segment,new_lesions}.png here")
    args = parser.parse_args()
    reports = {**synthetic_reports(args.out), **real_reports(args.out)}
    result: dict[str, object] = {"niivue_version": NIIVUE_VERSION, "bundle_bytes": BUNDLE.stat().st_size,
                                 "report_bytes": {name: path.stat().st_size for name, path in reports.items()}}
    if args.docs is not None:
        args.docs.mkdir(parents=True, exist_ok=True)
        result["screenshots"] = {kind: {"path": str(args.docs / f"report_viewer_{kind}.png"),
                                        **screenshot(reports[kind], args.docs / f"report_viewer_{kind}.png")}
                                 for kind in ("segment", "new_lesions")}
    write_json_atomic(RESULTS, result)
    print(result)


if __name__ == "__main__":
    main()
