"""Bad model folders: a card out of range or weights that are not finite are one line naming the file."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mslesion.errors import InputError


def _with_card(model: Path, dest: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """A copy of `model` whose model.json is `change(card)` (or the card changed in place when it returns None)."""
    shutil.copytree(model, dest)
    card = json.loads((model / "model.json").read_text())
    changed = change(card)
    (dest / "model.json").write_text(json.dumps(card if changed is None else changed))
    return dest


BAD_CARDS: dict[str, tuple[Callable[[dict[str, Any]], Any], str]] = {
    "unknown_architecture": (lambda c: c.update(architecture="transformer-xl"), "unknown architecture"),
    "patch_size_text": (lambda c: c.update(patch_size="abc"), "patch_size"),
    "patch_size_zero": (lambda c: c.update(patch_size=[0, 16, 16]), "patch_size"),
    "patch_size_fractional": (lambda c: c.update(patch_size=[16.5, 16, 16]), "patch_size"),
    "threshold_text": (lambda c: c.update(threshold="high"), "threshold"),
    "threshold_above_one": (lambda c: c.update(threshold=1.5), "threshold"),
    "threshold_nan": (lambda c: c.update(threshold=float("nan")), "threshold"),
    "threshold_bool": (lambda c: c.update(threshold=True), "threshold"),
    "min_lesion_negative": (lambda c: c.update(min_lesion_mm3=-3), "min_lesion_mm3"),
    "min_lesion_text": (lambda c: c.update(min_lesion_mm3="3 mm3"), "min_lesion_mm3"),
    "spacing_zero": (lambda c: c.update(spacing_mm=[0, 1, 1]), "spacing_mm"),
    "contrasts_empty": (lambda c: c.update(contrasts=[]), "contrasts"),
    "normalisation_unknown": (lambda c: c.update(normalisation="minmax"), "normalisation"),
    "normalisation_list": (lambda c: c.update(normalisation=["zscore_brain"]), "normalisation"),
    "contrasts_not_names": (lambda c: c.update(contrasts=[1, {"a": 2}]), "contrasts"),
    "params_unknown": (lambda c: c["params"].update(widths=[1, 2]), "params"),
    "unknown_field": (lambda c: c.update(colour="blue"), "invalid model card"),
    "test_time_flips_three": (lambda c: c.update(test_time_flips=3), "test_time_flips must be 1, 2 or 4, not 3"),
    "test_time_flips_bool": (lambda c: c.update(test_time_flips=True), "test_time_flips must be 1, 2 or 4, not True"),
    "test_time_flips_text": (lambda c: c.update(test_time_flips="4"), "test_time_flips must be 1, 2 or 4, not '4'"),
    "test_time_flips_float": (lambda c: c.update(test_time_flips=2.0), "test_time_flips must be 1, 2 or 4, not 2.0"),
    "not_an_object": (lambda c: [c], "not a JSON object"),
    # Found by tests/badinput/test_fuzz_readers.py:
    "threshold_400_digits": (lambda c: c.update(threshold=10**400), "threshold must be a number in (0.0, 1.0), not a 401-digit integer"),
    "field_name_with_newline": (lambda c: c.update({"a\nb": 1}), "unknown field(s) ['a\\nb']"),
    "architecture_missing": (lambda c: c.pop("architecture") and None, "missing field(s) ['architecture']"),
    "nyul_nan_landmarks": (
        lambda c: c.update(nyul={"FLAIR": {"percentiles": [1, 50, 99], "scale": [0, 100], "landmarks": [0, float("nan"), 100]}}),
        "Nyul landmarks must be one finite, increasing value per percentile",
    ),
    "nyul_one_number_scale": (
        lambda c: c.update(nyul={"FLAIR": {"percentiles": [1, 50, 99], "scale": [0], "landmarks": [0, 50, 100]}}),
        "not Nyul landmarks (IndexError)",
    ),
    "nyul_percentile_above_100": (
        lambda c: c.update(nyul={"FLAIR": {"percentiles": [1, 50, 199], "scale": [0, 100], "landmarks": [0, 50, 100]}}),
        "Nyul percentiles must be",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_CARDS))
def test_bad_model_card_is_one_line_naming_the_card(kind: str, tmp_path: Path, tiny_model: Path, ready_scan: Path, refused) -> None:
    change, message = BAD_CARDS[kind]
    model = _with_card(tiny_model, tmp_path / "model", change)
    out = tmp_path / "out"
    refused(["segment", "--flair", ready_scan, "--out", out, "--model", model], model / "model.json", message=message)
    assert not out.exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_weights_that_are_not_finite_are_refused(value: float, tmp_path: Path, tiny_model: Path, ready_scan: Path, refused) -> None:
    from safetensors.torch import load_file, save_file

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    state = load_file(str(model / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    state[name].view(-1)[0] = value
    save_file(state, str(model / "model.safetensors"), metadata={"format": "pt"})
    out = tmp_path / "out"
    refused(["segment", "--flair", ready_scan, "--out", out, "--model", model], model / "model.safetensors", message="not finite")
    assert not out.exists()


def test_the_shipped_cards_pass_the_checks() -> None:
    from mslesion.models.store import ModelCard, resolve_model

    for name in ("default", "new-lesions"):
        path = resolve_model(name) / "model.json"
        card = ModelCard.from_dict(json.loads(path.read_text()), path)
        assert 0 < card.threshold < 1 and len(card.patch_size) == 3


def test_card_errors_are_input_errors_in_the_api(tmp_path: Path) -> None:
    from mslesion.models.store import ModelCard

    with pytest.raises(InputError, match=r"threshold must be a number in \(0.0, 1.0\)"):
        ModelCard.from_dict({"architecture": "unet", "contrasts": ["FLAIR"], "threshold": 0}, tmp_path / "model.json")


@pytest.mark.parametrize("text", ["1" * 5000, "[" * 100000 + "]" * 100000], ids=["5000_digits", "nested_100000_deep"])
def test_json_python_cannot_parse_is_one_line(text: str, tmp_path: Path, tiny_model: Path, ready_scan: Path, refused) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    (model / "model.json").write_text(text)
    refused(["segment", "--flair", ready_scan, "--out", tmp_path / "out", "--model", model], model / "model.json", message="invalid JSON")


def test_card_claiming_a_huge_network_is_refused_without_building_it(tmp_path: Path, tiny_model: Path) -> None:
    import time

    from mslesion.models.store import load_model

    model = _with_card(tiny_model, tmp_path / "model", lambda c: c.update(params={"features": [100000] * 6}))
    started = time.perf_counter()
    with pytest.raises(InputError, match="weights do not fit architecture 'unet'") as err:
        load_model(model)
    assert str(model / "model.safetensors") in str(err.value) and time.perf_counter() - started < 5
