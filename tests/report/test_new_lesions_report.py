"""The new-lesion report: an explicit answer first, then one baseline/follow-up figure per new lesion."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from mslesion.postprocess.lesions import lesion_rows, lesion_table
from mslesion.report.new_lesions import write_new_lesion_report

SHAPE = (40, 48, 30)
RAS_1MM = np.diag([1.0, 1.0, 1.0, 1.0])
# LPS-like axes, 1x1x3 mm, voxel axes permuted (i runs along z): anisotropic and not RAS.
OBLIQUE_3MM = np.array([[0.0, -1.0, 0.0, 30.0], [0.0, 0.0, -1.0, 40.0], [3.0, 0.0, 0.0, -50.0], [0.0, 0.0, 0.0, 1.0]])


def _pair(new_lesions: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    grid = np.indices(SHAPE).transpose(1, 2, 3, 0)
    brain = np.linalg.norm((grid - [20, 24, 15]) / [17, 21, 13], axis=-1) < 1
    mask = np.zeros(SHAPE, np.uint8)
    for centre, radius in [((13, 20, 15), 3.0), ((27, 30, 12), 2.0)][:new_lesions]:
        mask |= (np.linalg.norm(grid - centre, axis=-1) <= radius).astype(np.uint8)
    baseline = (rng.normal(0, 0.3, SHAPE) * brain).astype(np.float32)
    followup = (rng.normal(0, 0.3, SHAPE) * brain + 3.0 * mask).astype(np.float32)
    return {"baseline": baseline, "followup": followup, "mask": mask, "brain": brain}


def _write(out: Path, pair: dict[str, np.ndarray], affine: np.ndarray) -> tuple[str, dict, list[dict]]:
    rows = lesion_rows(lesion_table(pair["mask"], affine))
    for row in rows:
        row["location"] = "deep_white_matter"
    volume = round(sum(float(r["volume_ml"]) for r in rows), 4)
    spacing = [float(s) for s in np.sqrt((affine[:3, :3] ** 2).sum(axis=0))]
    summary = {
        "lesion_count": len(rows),
        "total_volume_ml": volume,
        "warnings": ["registration looked poor"],
        "locations": {"deep_white_matter": {"count": len(rows), "volume_ml": volume}, "periventricular": {"count": 0, "volume_ml": 0.0}},
        "inputs": {
            "baseline": {"path": "/private/site/baseline_flair.nii.gz", "shape": list(SHAPE), "spacing_mm": spacing},
            "followup": {"path": "/private/site/followup_flair.nii.gz", "shape": list(SHAPE), "spacing_mm": spacing},
        },
        "model": {"path": "/models/subtraction", "threshold": 0.5},
        "qc": {"registration": {"ncc": 0.91, "warnings": ["follow-up moved 6 mm"]}},
    }
    write_new_lesion_report(
        out,
        case_id="pair-3",
        affine=affine,
        lesion_rows=rows,
        summary=summary,
        **{k: pair[k] for k in ("baseline", "followup", "mask", "brain")},
    )
    text = (out / "report.html").read_text()
    assert not re.search(r"<script[^>]*\bsrc=", text)  # scripts inline only (the viewer)
    return _markup(text), json.loads((out / "report.json").read_text()), rows


def _markup(text: str) -> str:
    """The page without its inline scripts (the NiiVue bundle spells URLs and data: images of its own)."""
    return re.sub(r"<script[^>]*>.*?</script>", "", text, flags=re.S)


def test_no_new_lesions_says_so(tmp_path: Path) -> None:
    text, data, rows = _write(tmp_path / "none", _pair(0), RAS_1MM)
    assert rows == [] and data["lesion_count"] == 0 and data["lesions"] == []
    assert 'class="banner"' in text and re.search(r'class="banner"[^>]*>No new lesions<', text)
    assert "data:image/png" not in text and "<figure" not in text
    assert "registration looked poor" in text and "follow-up moved 6 mm" in text


@pytest.mark.parametrize("affine", [RAS_1MM, OBLIQUE_3MM], ids=["ras-1mm", "permuted-lps-1x1x3mm"])
def test_two_new_lesions_get_two_side_by_side_figures(tmp_path: Path, affine: np.ndarray) -> None:
    out = tmp_path / "two"
    text, data, rows = _write(out, _pair(2), affine)
    assert len(rows) == 2 and "No new lesions" not in text
    banner = re.search(r'class="banner"[^>]*>([^<]*)<', text).group(1)
    assert banner.startswith("2 new lesions, ") and banner.endswith(" mL")
    assert text.count("<figure") == 2 and text.count('src="data:image/png;base64,') == 2
    assert 'alt="Lesion 1: baseline and follow-up"' in text and 'alt="Lesion 2: baseline and follow-up"' in text
    assert "Radiological convention" in text and "Deep white matter" in text
    assert not re.search(r"(href|src)=\"(?!data:)", text) and "/private/site" not in text
    assert "followup_flair.nii.gz" in text and text.count("<tr>") >= 2 + 2 + 2  # lesion rows, location rows, inputs
    assert data["lesion_count"] == len(data["lesions"]) == 2
    assert data["locations"]["deep_white_matter"]["count"] == 2 and data["model"] == {"name": "subtraction", "threshold": 0.5}
    assert data["total_volume_ml"] == pytest.approx(sum(r["volume_ml"] for r in rows))
    assert "follow-up moved 6 mm" in data["warnings"] and "registration looked poor" in data["warnings"]
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]  # atomic writes leave no temp file


def test_many_lesions_show_the_largest(tmp_path: Path, monkeypatch) -> None:
    import mslesion.report.new_lesions as module

    monkeypatch.setattr(module, "MAX_FIGURES", 1)
    text, _, _ = _write(tmp_path, _pair(2), RAS_1MM)
    assert text.count("<figure") == 1 and "Showing the 1 largest of 2 new lesions" in text
    assert 'alt="Lesion 1: baseline and follow-up"' in text


def test_lesion_figure_is_centred_on_the_lesion_on_a_non_ras_grid() -> None:
    from mslesion.postprocess.lesions import ranked_labels
    from mslesion.report.figures import to_ras
    from mslesion.report.new_lesions import _lesion_centre, _ras_index

    pair = _pair(2)
    rows = lesion_rows(lesion_table(pair["mask"], OBLIQUE_3MM))
    labels_ras, _ = to_ras(ranked_labels(pair["mask"])[0], OBLIQUE_3MM)
    for row in rows:
        centroid = _ras_index(OBLIQUE_3MM, SHAPE) @ [row["centroid_i"], row["centroid_j"], row["centroid_k"], 1.0]
        centre = _lesion_centre(labels_ras, row["lesion_id"], centroid[:3])
        assert labels_ras[tuple(centre)] == row["lesion_id"]
        np.testing.assert_allclose(centre, centroid[:3], atol=0.51)


def test_rejects_arrays_on_different_grids(tmp_path: Path) -> None:
    pair = _pair(1)
    with pytest.raises(ValueError, match="one grid"):
        write_new_lesion_report(
            tmp_path,
            case_id="x",
            baseline=pair["baseline"][:-1],
            followup=pair["followup"],
            affine=RAS_1MM,
            mask=pair["mask"],
            brain=pair["brain"],
            lesion_rows=[],
            summary={},
        )


def test_each_new_lesion_row_shows_both_visits() -> None:
    from mslesion.postprocess.lesions import ranked_labels
    from mslesion.report.new_lesions import visit_contrast

    pair = _pair(2)
    brain = pair["brain"]
    baseline, followup = 100.0 * brain + pair["baseline"], 100.0 * brain + 60.0 * pair["mask"] + pair["followup"]
    contrast = visit_contrast(ranked_labels(pair["mask"] > 0)[0], baseline, followup, brain)
    assert sorted(contrast) == [1, 2]
    for before, after in contrast.values():
        assert before == pytest.approx(1.0, abs=0.02) and after > 1.5


def test_lesion_table_has_change_and_visit_columns(tmp_path: Path) -> None:
    text, data, _ = _write(tmp_path, _pair(2), RAS_1MM)
    assert '<th class="">Change</th>' in text and "FLAIR baseline" in text and "FLAIR follow-up" in text
    assert [r["change"] for r in data["lesions"]] == ["new", "new"] and all("flair_followup" in r for r in data["lesions"])
