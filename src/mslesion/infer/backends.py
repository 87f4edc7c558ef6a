"""Which library runs the network's windows: PyTorch, OpenVINO or ONNX Runtime.

Measured on 2 cores (benchmarks/results/speed.md), the shipped U-Net's 64^3 windows run
fastest through OpenVINO in bfloat16 (oneDNN's AMX kernels with fused 3D convolutions),
about 2x faster than PyTorch's own bfloat16 and 5x faster than its float32, with the same
masks. OpenVINO is an optional dependency (`pip install mslesion[fast]`): without it, or
for networks it cannot take (FiLM's metadata input, a GPU), PyTorch runs them.

The network goes to OpenVINO through an in-memory ONNX export (about 1 s, once per
network, window shape and precision); `ov.convert_model` on the module took 4 s.
"""

from __future__ import annotations

import importlib.util
import io
import logging
from collections.abc import Callable
from enum import StrEnum

import torch
from torch import nn

from mslesion.errors import InputError, parse_choice

logger = logging.getLogger(__name__)

WindowPredictor = Callable[[torch.Tensor], torch.Tensor]


class Backend(StrEnum):
    """The library that runs the network's windows.

    AUTO: OpenVINO when it is installed and the network runs on the CPU without extra
    inputs, else PyTorch. TORCH, OPENVINO, ONNXRUNTIME: that one (ONNX Runtime runs float32
    only: its CPU provider has no bfloat16 convolutions).
    """

    AUTO = "auto"
    TORCH = "torch"
    OPENVINO = "openvino"
    ONNXRUNTIME = "onnxruntime"

    @classmethod
    def parse(cls, value: str | Backend) -> Backend:
        """The enum member, or a one-line InputError naming the choices."""
        return parse_choice(cls, value, "backend")


def installed(backend: Backend) -> bool:
    """Whether the backend's library can be imported here."""
    module = {Backend.OPENVINO: "openvino", Backend.ONNXRUNTIME: "onnxruntime"}.get(backend)
    return module is None or importlib.util.find_spec(module) is not None


def resolve_backend(backend: Backend | str, device: torch.device, extra_inputs: bool) -> Backend:
    """The backend that will run: AUTO decided, an explicit choice checked against what it can run."""
    backend = Backend.parse(backend)
    exported = backend in (Backend.OPENVINO, Backend.ONNXRUNTIME)
    if exported and (device.type != "cpu" or extra_inputs):
        raise InputError(None, f"backend {backend.value} runs CPU networks with one image input only; use --backend torch")
    if exported and not installed(backend):
        raise InputError(None, f"backend {backend.value} is not installed (pip install {backend.value}, or use --backend torch)")
    if backend is Backend.AUTO:
        return Backend.OPENVINO if device.type == "cpu" and not extra_inputs and installed(Backend.OPENVINO) else Backend.TORCH
    return backend


def onnx_bytes(net: nn.Module, window_shape: tuple[int, ...]) -> bytes:
    """The network as an ONNX model for a fixed (batch, channels, *patch) input."""
    import warnings

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter warns about instance norm in eval mode, which is what we want
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(window_shape),),
            buffer,  # type: ignore[arg-type]  # torch types f as a path; its TorchScript exporter (dynamo=False) takes a file object too
            input_names=["image"],
            output_names=["logits"],
            opset_version=17,
            dynamo=False,
        )
    return buffer.getvalue()


def _padded(run: Callable[[torch.Tensor], torch.Tensor], batch: int) -> WindowPredictor:
    """`run` compiled for exactly `batch` windows, also taking fewer (the last batch): zero-padded, then cut."""

    def predict(windows: torch.Tensor) -> torch.Tensor:
        n = windows.shape[0]
        if n < batch:
            windows = torch.cat([windows, windows.new_zeros((batch - n, *windows.shape[1:]))])
        return run(windows.contiguous())[:n]

    return predict


def openvino_predictor(net: nn.Module, window_shape: tuple[int, ...], bfloat16: bool) -> WindowPredictor:
    """OpenVINO on the CPU, `torch.get_num_threads()` threads, bfloat16 or float32 arithmetic."""
    import openvino as ov

    core = ov.Core()
    config = {
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        "INFERENCE_PRECISION_HINT": "bf16" if bfloat16 else "f32",
        "PERFORMANCE_HINT": "LATENCY",
    }
    request = core.compile_model(core.read_model(onnx_bytes(net, window_shape), b""), "CPU", config).create_infer_request()
    return _padded(lambda w: torch.from_numpy(request.infer({0: w.numpy()})[0].copy()), window_shape[0])


def onnxruntime_predictor(net: nn.Module, window_shape: tuple[int, ...]) -> WindowPredictor:
    """ONNX Runtime's CPU provider, float32, `torch.get_num_threads()` threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    session = ort.InferenceSession(onnx_bytes(net, window_shape), options, providers=["CPUExecutionProvider"])
    return _padded(lambda w: torch.from_numpy(session.run(None, {"image": w.numpy()})[0]), window_shape[0])


def torch_predictor(predictor: Callable[[torch.Tensor], torch.Tensor], device: torch.device, bfloat16: bool) -> WindowPredictor:
    """PyTorch eager, under bfloat16 autocast when asked; float32 out either way."""

    def predict(windows: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bfloat16):
            return predictor(windows).float()

    return predict


def window_predictor(
    net: nn.Module,
    backend: Backend,
    window_shape: tuple[int, ...],
    device: torch.device,
    bfloat16: bool,
    predictor: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> WindowPredictor:
    """A function from a batch of windows (at most window_shape[0]) to float32 logits.

    Exported backends are compiled once per network, window shape and precision and kept on
    the network, so a cohort worker that segments many scans compiles once.
    """
    if backend is Backend.TORCH:
        return torch_predictor(net if predictor is None else predictor, device, bfloat16)
    # Parameters' version counters grow with every in-place update (an optimiser step), so a
    # network still being trained (the trainer's validation) never reuses a stale compilation.
    key = (backend.value, window_shape, bfloat16, sum(p._version for p in net.parameters()))
    compiled: dict = net.__dict__.setdefault("_mslesion_compiled", {})
    if key not in compiled:
        logger.debug("compiling the network for %s (%s)", backend.value, "bfloat16" if bfloat16 else "float32")
        if backend is Backend.OPENVINO:
            compiled[key] = openvino_predictor(net, window_shape, bfloat16)
        else:
            compiled[key] = onnxruntime_predictor(net, window_shape)
    return compiled[key]
