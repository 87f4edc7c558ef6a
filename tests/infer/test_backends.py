"""Backends that run the network's windows (`infer.backends`): same logits as PyTorch float32, one-line errors,
no stale compilation of a network being trained; and `segment`'s seconds per stage (`mslesion.timing`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mslesion import timing
from mslesion.errors import InputError
from mslesion.infer.backends import Backend, installed, resolve_backend, window_predictor
from mslesion.infer.sliding import predict_probability
from mslesion.models.registry import build_network

EXPORTED = [b for b in (Backend.OPENVINO, Backend.ONNXRUNTIME) if installed(b)]


@pytest.fixture
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("unet", 2, {"features": [4, 4, 8, 8, 16, 4]}).eval()


def test_parse_names_the_choices() -> None:
    assert Backend.parse("openvino") is Backend.OPENVINO
    with pytest.raises(InputError, match="backend must be one of auto, torch, openvino, onnxruntime"):
        Backend.parse("tensorrt")


def test_auto_takes_torch_for_networks_with_extra_inputs_or_off_the_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu, extra_inputs=True) is Backend.TORCH
    assert resolve_backend("auto", torch.device("meta"), extra_inputs=False) is Backend.TORCH
    expected = Backend.OPENVINO if installed(Backend.OPENVINO) else Backend.TORCH
    assert resolve_backend("auto", cpu, extra_inputs=False) is expected
    with pytest.raises(InputError, match="one image input only"):
        resolve_backend("onnxruntime", cpu, extra_inputs=True)


def test_both_exported_backends_are_installed_in_ci() -> None:
    """CI installs `.[test,fast]`: the fast path must be tested there, not skipped."""
    assert EXPORTED == [Backend.OPENVINO, Backend.ONNXRUNTIME]


@pytest.mark.parametrize("backend", EXPORTED)
def test_exported_backend_gives_torch_float32_logits(net: torch.nn.Module, backend: Backend) -> None:
    windows = torch.randn(3, 2, 32, 32, 32)  # 3 windows through a predictor compiled for batches of 4: padded, then cut
    predict = window_predictor(net, backend, (4, 2, 32, 32, 32), torch.device("cpu"), bfloat16=False)
    with torch.no_grad():
        expected = net(windows)
    got = predict(windows)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=2e-3)


@pytest.mark.parametrize("backend", [Backend.TORCH, *EXPORTED])
def test_bfloat16_probabilities_stay_close(net: torch.nn.Module, backend: Backend) -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(2, 40, 40, 40)).astype(np.float32)
    brain = np.zeros((40, 40, 40), bool)
    brain[4:36, 4:36, 4:36] = True
    exact = predict_probability(net, image, brain, (32, 32, 32), overlap=0.25, precision="float32", backend="torch")
    fast = predict_probability(net, image, brain, (32, 32, 32), overlap=0.25, precision="bfloat16", backend=backend)
    assert fast.dtype == np.float32 and np.abs(fast - exact).max() < 0.05


@pytest.mark.parametrize("backend", EXPORTED)
def test_a_network_changed_in_place_is_compiled_again(net: torch.nn.Module, backend: Backend) -> None:
    """The trainer validates a network between optimiser steps: a cached compilation must not outlive a step."""
    windows = torch.randn(2, 2, 32, 32, 32)
    before = window_predictor(net, backend, (2, 2, 32, 32, 32), torch.device("cpu"), bfloat16=False)(windows)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05)  # what an optimiser step does
        expected = net(windows)
    after = window_predictor(net, backend, (2, 2, 32, 32, 32), torch.device("cpu"), bfloat16=False)(windows)
    assert not torch.allclose(before, after, atol=1e-3)
    assert torch.allclose(after, expected, atol=2e-3)


def test_stages_add_up_and_only_inside_a_timed_run() -> None:
    with timing.stage("outside"):
        pass  # no run open: nothing recorded, nothing fails
    with timing.timed_run() as times:
        with timing.stage("a"):
            pass
        timing.record("a", 1.0)
        timing.record("b", 0.5)
    seconds = times.as_dict()
    assert list(seconds) == ["a", "b", "other", "total"] and seconds["a"] >= 1.0 and "outside" not in seconds


def test_segment_reports_seconds_per_stage(tmp_path: Path, nifti_writer) -> None:
    from mslesion.models.store import ModelCard, save_model
    from mslesion.pipeline import segment

    torch.manual_seed(0)
    model = save_model(
        build_network("unet", 1, {"features": [4, 4, 8, 8, 16, 4]}).state_dict(),
        ModelCard(
            architecture="unet",
            contrasts=["FLAIR"],
            params={"features": [4, 4, 8, 8, 16, 4]},
            patch_size=(32, 32, 32),
            threshold=0.5,
            min_lesion_mm3=3.0,
        ),
        tmp_path / "model",
    )
    flair = np.zeros((40, 40, 40), np.float32)
    flair[5:35, 5:35, 5:35] = np.random.default_rng(1).normal(100, 5, (30, 30, 30))
    segment({"FLAIR": nifti_writer(tmp_path / "flair.nii.gz", flair, np.eye(4))}, tmp_path / "out", model=model)
    stages = json.loads((tmp_path / "out" / "summary.json").read_text())["seconds_per_stage"]
    for name in ("load images", "normalise", "inference", "lesions", "locations", "report", "total"):
        assert name in stages
    assert stages["total"] >= sum(v for k, v in stages.items() if k not in ("total", "other")) - 1e-3
