"""Sliding-window inference over a whole volume, with optional flip test-time augmentation.

MONAI's `sliding_window_inference` does the windowing and the Gaussian or mean blending;
this module adds what it lacks: cropping to the brain's bounding box first (a third of
the MNI grid is background, so this saves that much time), flip TTA, the sigmoid, and
the choice of backend and precision that runs the windows (`infer.backends`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mslesion.infer.backends import Backend, WindowPredictor, resolve_backend, window_predictor
from mslesion.precision import Precision, use_bfloat16
from mslesion.space.boxes import brain_bbox
from mslesion.timing import interactive

# Flip TTA: the identity plus mirroring along each axis (left-right first: brains are
# nearly symmetric left-right, so that flip is the most informative one).
FLIP_AXES: tuple[tuple[int, ...], ...] = ((), (0,), (1,), (2,))


def _device(net: nn.Module) -> torch.device:
    """Where the network is (a GPU when a cohort worker moved it there); the CPU for a network without parameters."""
    return next((p.device for p in net.parameters()), torch.device("cpu"))


def _window_logits(
    net: nn.Module,
    channels: int,
    patch_size: Sequence[int],
    batch_size: int,
    precision: Precision | str,
    backend: Backend | str,
    metadata: torch.Tensor | None = None,
) -> WindowPredictor:
    """The function that turns a batch of windows into float32 logits (so MONAI blends in float32)."""
    device = _device(net)
    predictor = net if metadata is None else functools.partial(net, metadata=metadata.to(device))
    chosen = resolve_backend(backend, device, extra_inputs=metadata is not None)
    window_shape = (batch_size, channels, *(int(p) for p in patch_size))
    return window_predictor(net, chosen, window_shape, device, use_bfloat16(precision, device), predictor)


@torch.no_grad()
def prepare_windows(
    net: nn.Module,
    channels: int,
    patch_size: Sequence[int],
    batch_size: int = 2,
    precision: Precision | str = Precision.AUTO,
    backend: Backend | str = Backend.AUTO,
) -> None:
    """Compile `net` for the windows `predict_probability` will give it (same arguments), ahead of time.

    `segment` runs this in a background thread while the images load, so an exported
    backend's one-off export and compilation (about 1 s) overlaps the loading.
    """
    _window_logits(net, channels, patch_size, batch_size, precision, backend)


@torch.no_grad()
def predict_probability(
    net: nn.Module,
    image: np.ndarray,
    brain: np.ndarray,
    patch_size: Sequence[int],
    overlap: float = 0.5,
    blend: str = "gaussian",
    flips: int = 1,
    batch_size: int = 2,
    metadata: torch.Tensor | None = None,
    precision: Precision | str = Precision.AUTO,
    backend: Backend | str = Backend.AUTO,
) -> np.ndarray:
    """Lesion probability (D, H, W) for a (C, D, H, W) normalised image; 0 outside the brain box.

    `flips` = how many of FLIP_AXES to average (1 = no TTA, 2 = + left-right, 4 = all axes).
    `metadata`: the case's encoded metadata vector, for networks conditioned on it (FiLM).
    `precision`: see `Precision`; `backend`: the library that runs the windows (`infer.backends`).
    The blending and the returned probabilities are float32 whatever the two.
    """
    from monai.inferers import sliding_window_inference

    if blend not in ("gaussian", "constant"):
        raise ValueError(f"blend must be 'gaussian' or 'constant', not {blend!r}")
    box = brain_bbox(brain, margin=4, patch_size=patch_size)
    crop = torch.from_numpy(np.ascontiguousarray(image[(slice(None), *box)], dtype=np.float32))[None]
    window_logits = _window_logits(net, crop.shape[1], patch_size, batch_size, precision, backend, metadata)
    # Patches run where the network is; stitching stays on the CPU.
    total = torch.zeros(crop.shape[2:])
    for axes in FLIP_AXES[: max(1, min(flips, len(FLIP_AXES)))]:
        dims = [a + 2 for a in axes]
        x = torch.flip(crop, dims) if dims else crop
        logits = sliding_window_inference(
            x,
            roi_size=tuple(patch_size),
            sw_batch_size=batch_size,
            predictor=window_logits,
            overlap=overlap,
            mode=blend,
            sw_device=_device(net),
            device=torch.device("cpu"),
            progress=interactive(),
        )
        assert isinstance(logits, torch.Tensor)  # one tensor per window in, one tensor out (MONAI stitches tuples and dicts too)
        prob = torch.sigmoid(logits)
        total += (torch.flip(prob, dims) if dims else prob)[0, 0]
    out = np.zeros(brain.shape, np.float32)
    out[box] = (total / max(1, min(flips, len(FLIP_AXES)))).numpy()
    return out
