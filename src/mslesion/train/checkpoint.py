"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

`state.safetensors` holds the network and the optimizer's tensors; `state.json` the step,
epoch, best score, early-stopping counter, log history and the optimizer's scalar settings.
Both are written atomically; the JSON last, so a checkpoint is complete when it names a step.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import torch

from mslesion.errors import InputError
from mslesion.io.atomic import write_json_atomic

TENSORS = "state.safetensors"
META = "state.json"


def _flatten_optimizer(opt_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for idx, slots in opt_state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": opt_state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict[str, Any]) -> None:
    """Write the network, optimizer and loop state into `folder`."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors.update(opt_tensors)
    tmp = folder / f".{TENSORS}.{uuid.uuid4().hex[:8]}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / TENSORS)
    write_json_atomic(folder / META, {**meta, "optimizer": opt_meta})


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Restore network and optimizer in place; return the loop state written with them."""
    from safetensors.torch import load_file

    if not (folder / META).is_file() or not (folder / TENSORS).is_file():
        raise InputError(folder, "no checkpoint to resume from")
    meta = json.loads((folder / META).read_text())
    tensors = load_file(str(folder / TENSORS))
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")})
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta.pop("optimizer")))
    return meta
