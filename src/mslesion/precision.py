"""bfloat16 or float32: the arithmetic networks run in, chosen by what the processor computes natively.

On CPUs with AMX or AVX512-BF16 (and most GPUs) bfloat16 runs the project's networks 2-4x faster
than float32 with the same masks (benchmarks/results/speed.md: the lesion model's Dice changes by
at most 0.0009 on the real cases; HD-BET's brain mask by at most 0.0001); elsewhere bfloat16 is
emulated and slower than float32, so AUTO keeps float32 there. Used by the lesion model's inference
(`infer`) and by HD-BET's brain extraction (`preprocess.hdbet`), hence this bottom-layer module.
"""

from __future__ import annotations

from enum import StrEnum

import torch


class Precision(StrEnum):
    """The arithmetic of inference.

    AUTO: bfloat16 where the device computes it natively, else float32 (emulated bfloat16
    would be slower than float32 on an older CPU). FLOAT32 and BFLOAT16 force one.
    """

    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"


def native_bfloat16(device: torch.device) -> bool:
    """Whether `device` runs bfloat16 convolutions natively (oneDNN's check on CPU)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def use_bfloat16(precision: Precision | str, device: torch.device) -> bool:
    """Whether inference on `device` runs in bfloat16 under `precision`."""
    precision = Precision(precision)
    if precision is Precision.AUTO:
        return native_bfloat16(device)
    return precision is Precision.BFLOAT16
