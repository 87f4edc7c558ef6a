"""report.html's NiiVue viewer in a real browser (headless Chromium): it draws offline, and the lesion table drives it.

Skipped, with the reason, only where no Chromium/chromedriver/selenium is installed;
MSLESION_REQUIRE_BROWSER=1 (set by .ci/run once it has installed them) turns that skip into
a failure. MSLESION_SCREENSHOT_DIR=docs keeps a screenshot of each report kind there.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from mslesion.io.volume import Volume
from mslesion.postprocess.lesions import lesion_rows, lesion_table
from mslesion.report.browser import (
    canvas_pixels,
    chromium,
    crosshair_mm,
    find_browser,
    network_requests,
    open_report,
)
from mslesion.report.new_lesions import write_new_lesion_report
from mslesion.report.write import write_report

FOUND = find_browser()
if isinstance(FOUND, str):
    if os.environ.get("MSLESION_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"MSLESION_REQUIRE_BROWSER=1 but {FOUND}")
    pytestmark = pytest.mark.skip(reason=f"browser test skipped: {FOUND}")


def _summary(rows: list[dict]) -> dict:
    return {
        "lesion_count": len(rows),
        "total_volume_ml": round(sum(r["volume_ml"] for r in rows), 4),
        "locations": {},
        "model": {},
        "warnings": [],
        "mslesion_version": "0.1.0",
    }


def _rows(mask: np.ndarray, affine: np.ndarray) -> list[dict]:
    rows = lesion_rows(lesion_table(mask, affine))
    for row in rows:
        row["location"] = "deep_white_matter"
    return rows


def _drawn(pixels: np.ndarray) -> None:
    """The canvas shows an image: enough non-black pixels, with grey-level structure, and some red (the lesion overlay)."""
    grey = pixels.mean(axis=-1)
    assert (grey > 20).mean() > 0.05 and grey.std() > 10, "the viewer's canvas is blank"
    red = (pixels[..., 0] > 150) & (pixels[..., 1] < 120) & (pixels[..., 2] < 120)
    assert red.sum() > 10, "no lesion overlay on the canvas"


def _click_row(driver, index: int) -> None:
    from selenium.webdriver.common.by import By

    row = driver.find_elements(By.CSS_SELECTOR, "tr.lesion-row")[index]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.click()


def _keep(driver, name: str) -> None:
    folder = os.environ.get("MSLESION_SCREENSHOT_DIR")
    if folder:
        from selenium.webdriver.common.by import By

        driver.execute_script("document.getElementById('viewer').scrollIntoView({block: 'start'})")
        driver.find_element(By.ID, "viewer").screenshot(str(Path(folder) / name))


def test_segment_report_viewer_draws_and_follows_the_lesion_table(tmp_path: Path, small_scan) -> None:
    from selenium.webdriver.common.by import By

    flair_array, lesion, affine = small_scan  # slightly oblique (sheared) 1 x 1 x 1.2 mm grid
    flair = Volume.from_array(flair_array, affine)
    rows = _rows(lesion, affine)
    t1 = Volume.from_array(flair_array.max() - flair_array, affine)
    path = write_report(
        tmp_path,
        case_id="browser",
        inputs={"FLAIR": flair, "T1": t1},
        flair=flair,
        mask=lesion,
        brain=flair_array > 0,
        lesions_rows=rows,
        summary=_summary(rows),
    )
    with chromium() as driver:
        state = open_report(driver, path)
        assert state == {"ready": True, "error": None}
        assert network_requests(driver) == []  # nothing fetched: works offline from a USB stick
        _drawn(canvas_pixels(driver))
        before = crosshair_mm(driver)
        _click_row(driver, 1)  # the second lesion, away from the volume's centre
        target = np.array([rows[1][f"centroid_{a}_mm"] for a in "xyz"])
        after = crosshair_mm(driver)
        assert np.linalg.norm(after - before) > 3 and np.allclose(after, target, atol=0.6), (before, after, target)
        assert "in a lesion" in driver.find_element(By.ID, "viewer-pos-0").text
        assert f"{target[0]:.1f}" in driver.find_element(By.ID, "viewer-pos-0").text
        assert "picked" in driver.find_elements(By.CSS_SELECTOR, "tr.lesion-row")[1].get_attribute("class")
        _keep(driver, "report_viewer_segment.png")
        driver.find_element(By.CSS_SELECTOR, '[data-slice-type="0"]').click()  # axial only
        assert driver.execute_script("return window.mslesionViewer.viewers[0].opts.sliceType") == 0
        driver.find_element(By.ID, "viewer-mask").click()  # overlay off
        assert driver.execute_script("var v = window.mslesionViewer.viewers[0]; return v.volumes[v.volumes.length - 1].opacity") == 0
        assert canvas_pixels(driver).mean(axis=-1).std() > 10  # still an image without the overlay
        assert driver.execute_script("return window.mslesionViewer.viewers[0].volumes.length") == 3  # FLAIR, T1, lesions
        from selenium.webdriver.support.ui import Select

        Select(driver.find_element(By.ID, "viewer-contrast")).select_by_visible_text("T1")  # T1 as the background
        assert driver.execute_script("return window.mslesionViewer.viewers[0].volumes[0].mslesionLabel") == "T1"
        window = "var v = window.mslesionViewer.viewers[0].volumes[0]; return [v.cal_min, v.cal_max, v.robust_min, v.robust_max]"
        driver.execute_script(
            "var nv = window.mslesionViewer.viewers[0]; nv.volumes[0].cal_max = nv.volumes[0].cal_min + 1; nv.updateGLVolume()"
        )
        driver.find_element(By.ID, "viewer-window-reset").click()
        cal_min, cal_max, robust_min, robust_max = driver.execute_script(window)
        assert (cal_min, cal_max) == (robust_min, robust_max) and cal_max > cal_min + 1


def test_new_lesion_report_shows_both_visits_synchronised(tmp_path: Path) -> None:
    shape, affine = (40, 48, 30), np.diag([1.0, 1.0, 1.5, 1.0])
    rng = np.random.default_rng(3)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    brain = np.linalg.norm((grid - [20, 24, 15]) / [17, 21, 13], axis=-1) < 1
    mask = ((np.linalg.norm(grid - [12, 20, 15], axis=-1) <= 3) | (np.linalg.norm(grid - [28, 30, 11], axis=-1) <= 2)).astype(np.uint8)
    baseline = ((rng.normal(100, 6, shape)) * brain).astype(np.float32)
    followup = ((rng.normal(100, 6, shape) + 80 * mask) * brain).astype(np.float32)
    rows = _rows(mask, affine)
    summary = {**_summary(rows), "locations": {"deep_white_matter": {"count": len(rows), "volume_ml": 0.1}}}
    write_new_lesion_report(
        tmp_path,
        case_id="pair",
        baseline=baseline,
        followup=followup,
        affine=affine,
        mask=mask,
        brain=brain,
        lesion_rows=rows,
        summary=summary,
    )
    with chromium() as driver:
        assert open_report(driver, tmp_path / "report.html") == {"ready": True, "error": None}
        assert network_requests(driver) == []
        for viewer in (0, 1):
            _drawn(canvas_pixels(driver, viewer))
        _click_row(driver, 1)
        target = np.array([rows[1][f"centroid_{a}_mm"] for a in "xyz"])
        for viewer in (0, 1):  # both visits at the lesion
            assert np.allclose(crosshair_mm(driver, viewer), target, atol=0.8), (viewer, crosshair_mm(driver, viewer), target)
        _keep(driver, "report_viewer_new_lesions.png")
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        canvas = driver.find_element(By.ID, "viewer-canvas-1")  # a click on the follow-up moves the baseline too
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
        ActionChains(driver).move_to_element_with_offset(canvas, -canvas.size["width"] // 4, -canvas.size["height"] // 4).click().perform()
        follow, base = crosshair_mm(driver, 1), crosshair_mm(driver, 0)
        assert np.linalg.norm(follow - target) > 2 and np.allclose(base, follow, atol=1e-3), (base, follow)
        from selenium.webdriver.common.keys import Keys

        driver.find_elements(By.CSS_SELECTOR, "tr.lesion-row")[0].send_keys(Keys.ENTER)  # rows work from the keyboard too
        first = np.array([rows[0][f"centroid_{a}_mm"] for a in "xyz"])
        assert np.allclose(crosshair_mm(driver, 0), first, atol=0.8) and np.allclose(crosshair_mm(driver, 1), first, atol=0.8)
