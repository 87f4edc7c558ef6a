"""nnU-Net v2 beside mslesion: one timed nnU-Net inference of the scan mslesion segments (issue 16).

What it gives `benchmarks/speed.py` (which runs under the project's .venv, where nnunetv2 is NOT installed):
- `ensure_venv(root)`: a separate virtual environment, `root/build/nnunet-venv`, with nnU-Net v2 on the local
  CPU build of torch 2.13.0. Built once; a complete one (its stamp file written) is reused.
- `prepare(root, work, cases)`: an nnU-Net raw dataset (Dataset501, channels FLAIR + T1, label lesion) of two
  shared Lesjak cases (symlinks under `work`, a build folder, never the repo), nnU-Net's own
  `nnUNetv2_plan_and_preprocess -c 3d_fullres`, and an UNTRAINED fold-0 checkpoint built from those plans with
  nnU-Net's own code (the trainer's `build_network_architecture`, as the predictor does). Cached.
- `predict_once(root, work, case_dir, out_dir)`: one nnU-Net prediction as a user would run it (nnU-Net's own
  preprocessing, sliding-window prediction and export), timed from outside: wall, CPU (user+sys of the child
  and its workers) and peak memory.
- `network_facts(root, work)`: parameters, patch size, sliding windows for this case, FLOPs per window.

The weights are random (seed 0): this is for timing only, the segmentation it writes means nothing. nnU-Net's
inference cost does not depend on the weights (no early exits, fixed number of windows).

Install: torch, torchvision and the pinning (what was done, and why)
- `pip install torch==2.13.0` first: pip takes the CPU build that lies on this disk.
- nnunetv2 2.8.1 asks for `torch>=2.1.2,!=2.9.*`; with 2.13.0 installed and a constraints file pinning
  `torch==2.13.0`, pip keeps it (otherwise it would fetch a newer torch with several GB of CUDA libraries).
- torchvision: nnunetv2 does not ask for it, but dynamic-network-architectures 0.4.4 (nnU-Net's network zoo)
  asks for `timm`, and timm for torchvision. PyPI's torchvision fails to import beside the local torch 2.13.0+cpu
  ("operator torchvision::nms does not exist": checked, the resolver picks torchvision 0.28.0 and
  `import torchvision` raises). Neither nnU-Net's planning, preprocessing, training-side network builder nor
  its predictor imports timm or torchvision: only dynamic-network-architectures' transformer models (Primus,
  EVA) do, and the default 3d_fullres plan is a PlainConvUNet. So nnunetv2 and dynamic-network-architectures
  are installed with `--no-deps`, and their declared requirements (read from their own metadata) are then
  installed normally, minus `timm`. The environment is smaller (no timm, torchvision, huggingface_hub) and
  nothing in it fails to import; `pip check` will name the missing timm, on purpose. The check step
  (`_venv-check`) imports nnU-Net's predictor and network and fails the install if torchvision got in.
- /etc/xdg/pip on this machine caps pip at torch<=2.14.1 and torchvision<=0.29.1 (releases that lie on disk);
  it does not get in the way here: 2.13.0 is below the cap, and our own constraint pins it exactly.

Run by hand: `/work/main/.venv/bin/python benchmarks/nnunet_side.py` (everything once, one JSON line on stdout).
Internal subcommands (`_venv-...`) run this same file under the nnU-Net venv's python; they import nnU-Net lazily,
so the module itself needs nothing beyond the standard library.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEFAULT_CASES: dict[str, Path] = {
    "patient07": SHARED_DATA / "lesjak-mni" / "patient07",
    "patient19": SHARED_DATA / "lesjak-mni" / "patient19",
}
TARGET_CASE = DEFAULT_CASES["patient07"]  # the scan mslesion's speed benchmark segments

TORCH_VERSION = "2.13.0"
NNUNET_VERSION = "2.8.1"
DNA_VERSION = "0.4.4"  # dynamic-network-architectures, within nnunetv2 2.8.1's '<0.5,>=0.4.4'
SKIPPED_REQUIREMENTS = {"timm"}  # only for Primus/EVA models; pulls a torchvision that cannot import here

DATASET_ID = 501
DATASET_NAME = f"Dataset{DATASET_ID}_MSLesionSide"
CONFIGURATION = "3d_fullres"
TRAINER = "nnUNetTrainer"
PLANS = "nnUNetPlans"
FOLD = 0
CHECKPOINT = "checkpoint_final.pth"
CHANNEL_FILES = ("FLAIR.nii.gz", "T1.nii.gz")  # nnU-Net channels 0000, 0001
LABEL_FILE = "lesion.nii.gz"
STEP_SIZE = 0.5  # nnU-Net's default tile step
SEED = 0

VENV_STAMP = ".mslesion-nnunet-complete.json"
PREPARED_STAMP = "mslesion_prepared.json"


class NnunetSideError(RuntimeError):
    """A step of the nnU-Net side failed; the message is one line and names the full log."""


# ---------------------------------------------------------------- helpers (any python)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"


def _run(cmd: Sequence[str | os.PathLike[str]], what: str, log: Path, env: Mapping[str, str] | None = None) -> str:
    """Run a command, keep its output in `log`, return its stdout; raise a one-line NnunetSideError on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=None if env is None else dict(env))
    log.write_text(f"$ {' '.join(str(c) for c in cmd)}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    if proc.returncode != 0:
        raise NnunetSideError(f"{what} failed (exit {proc.returncode}): {_last_line(proc.stderr or proc.stdout)} [log: {log}]")
    return proc.stdout


def _dir_mb(path: Path) -> float:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return round(total / 2**20, 1)


def _nifti_shape(path: Path) -> list[int]:
    """Image dimensions from a NIfTI-1 header (stdlib only, so the caller's python needs no nibabel)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        hdr = f.read(348)
    endian = "<" if struct.unpack("<i", hdr[:4])[0] == 348 else ">"
    dims = struct.unpack(endian + "8h", hdr[40:56])
    return list(dims[1 : 1 + dims[0]])


def venv_dir(root: Path) -> Path:
    return root / "build" / "nnunet-venv"


def _venv_python(root: Path) -> Path:
    return venv_dir(root) / "bin" / "python"


def _model_dir(work: Path) -> Path:
    return work / "nnUNet_results" / DATASET_NAME / f"{TRAINER}__{PLANS}__{CONFIGURATION}"


def _child_env(work: Path, threads: int) -> dict[str, str]:
    """nnU-Net's three folders, and every thread pool held to `threads` (torch, OpenMP, MKL, ITK, nnU-Net's own)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "nnUNet_compile")}
    env.update(
        nnUNet_raw=str(work / "nnUNet_raw"),
        nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
        nnUNet_results=str(work / "nnUNet_results"),
        nnUNet_def_n_proc=str(threads),
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=str(threads),
    )
    return env


def _in_venv(root: Path, sub: str, *args: str | os.PathLike[str]) -> list[str]:
    """Command line that runs one of this file's `_venv-*` subcommands under the nnU-Net venv (isolated mode:
    no script folder on sys.path, no PYTHON* variables, no user site)."""
    return [str(_venv_python(root)), "-I", str(Path(__file__).resolve()), sub, *[str(a) for a in args]]


# ---------------------------------------------------------------- 1. the venv


def ensure_venv(root: Path) -> Path:
    """Create `root/build/nnunet-venv` with nnU-Net v2 on torch 2.13.0+cpu (once) and return its python.

    A venv counts as complete when its stamp (written last, after an import check) is there; an incomplete
    one is removed and rebuilt. See the module docstring for why nnunetv2 goes in with --no-deps.
    """
    venv = venv_dir(root)
    py = _venv_python(root)
    stamp = venv / VENV_STAMP
    if stamp.is_file() and py.is_file():
        return py
    if venv.exists():
        shutil.rmtree(venv)
    logs = root / "build" / "nnunet-logs"
    t0 = time.perf_counter()
    _run([sys.executable, "-m", "venv", venv], "creating the nnU-Net venv", logs / "venv.log")
    constraints = venv / "constraints.txt"
    constraints.write_text(f"torch=={TORCH_VERSION}\n")
    pip = [py, "-m", "pip", "install", "--disable-pip-version-check", "-c", constraints]
    _run([*pip, f"torch=={TORCH_VERSION}"], f"pip install torch=={TORCH_VERSION}", logs / "pip-torch.log")
    _run([*pip, "--no-deps", f"nnunetv2=={NNUNET_VERSION}", f"dynamic-network-architectures=={DNA_VERSION}"],
         "pip install nnunetv2 (--no-deps)", logs / "pip-nnunetv2.log")
    declared = json.loads(_run(_in_venv(root, "_venv-requires"), "reading nnunetv2's requirements", logs / "requires.log"))
    ours = {"nnunetv2", "dynamic-network-architectures"} | SKIPPED_REQUIREMENTS
    needed = sorted({r for r in declared if _req_name(r) not in ours})
    _run([*pip, *needed], "pip install nnunetv2's requirements (less timm)", logs / "pip-requirements.log")
    versions = json.loads(_run(_in_venv(root, "_venv-check"), "checking the nnU-Net venv", logs / "check.log"))
    info = {
        "versions": versions,
        "requirements_installed": needed,
        "requirements_skipped": sorted(SKIPPED_REQUIREMENTS),
        "install_s": round(time.perf_counter() - t0, 1),
        "size_mb": _dir_mb(venv),
    }
    stamp.write_text(json.dumps(info, indent=1) + "\n")
    return py


def _req_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement


def venv_info(root: Path) -> dict[str, Any]:
    """What `ensure_venv` recorded: installed versions (torch, nnunetv2, ...), install seconds, venv size."""
    return json.loads((venv_dir(root) / VENV_STAMP).read_text())


# ---------------------------------------------------------------- 2. dataset, plans, untrained checkpoint


def prepare(root: Path, work: Path, cases: Mapping[str, Path]) -> dict[str, Any]:
    """Raw dataset of `cases` (name -> folder with FLAIR, T1, lesion), nnU-Net's 3d_fullres plans, untrained fold 0.

    Everything lives under `work` (a build folder). A second call with the same cases and nnU-Net version
    reuses it all and returns at once (`cached: True`).
    """
    py = ensure_venv(root)
    work = work.resolve()
    model_dir = _model_dir(work)
    wanted = {"cases": {k: str(Path(v).resolve()) for k, v in sorted(cases.items())}, "nnunetv2": NNUNET_VERSION,
              "configuration": CONFIGURATION, "seed": SEED}
    stamp = model_dir / PREPARED_STAMP
    result = {"dataset": DATASET_NAME, "configuration": CONFIGURATION, "model_dir": str(model_dir)}
    if stamp.is_file() and (model_dir / f"fold_{FOLD}" / CHECKPOINT).is_file() and json.loads(stamp.read_text()) == wanted:
        return {**result, "cached": True, "seconds": 0.0}
    if len(cases) < 2:
        raise NnunetSideError("prepare needs at least two cases: nnU-Net's fingerprint and planning want a dataset")
    t0 = time.perf_counter()
    for sub in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        shutil.rmtree(work / sub / DATASET_NAME, ignore_errors=True)
    raw = work / "nnUNet_raw" / DATASET_NAME
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    for name, folder in cases.items():
        folder = Path(folder).resolve()
        for i, fname in enumerate(CHANNEL_FILES):
            src = folder / fname
            if not src.is_file():
                raise NnunetSideError(f"case {name}: {src} is missing")
            (raw / "imagesTr" / f"{name}_{i:04d}.nii.gz").symlink_to(src)
        (raw / "labelsTr" / f"{name}.nii.gz").symlink_to(folder / LABEL_FILE)
    dataset_json = {
        "channel_names": {str(i): f.split(".")[0] for i, f in enumerate(CHANNEL_FILES)},
        "labels": {"background": 0, "lesion": 1},
        "numTraining": len(cases),
        "file_ending": ".nii.gz",
        "name": DATASET_NAME,
        "description": "mslesion issue 16: two shared Lesjak cases, for nnU-Net planning and timing only",
    }
    (raw / "dataset.json").write_text(json.dumps(dataset_json, indent=1) + "\n")
    env = _child_env(work, threads=1)
    logs = work / "logs"
    bindir = py.parent
    _run([bindir / "nnUNetv2_plan_and_preprocess", "-d", str(DATASET_ID), "-c", CONFIGURATION, "-npfp", "1", "-np", "1",
          "--verify_dataset_integrity"], "nnUNetv2_plan_and_preprocess", logs / "plan_and_preprocess.log", env)
    model_dir.mkdir(parents=True)
    shutil.copy(work / "nnUNet_preprocessed" / DATASET_NAME / f"{PLANS}.json", model_dir / "plans.json")
    shutil.copy(raw / "dataset.json", model_dir / "dataset.json")
    _run(_in_venv(root, "_venv-checkpoint", model_dir), "building the untrained checkpoint", logs / "checkpoint.log", env)
    stamp.write_text(json.dumps(wanted, indent=1) + "\n")
    return {**result, "cached": False, "seconds": round(time.perf_counter() - t0, 1)}


# ---------------------------------------------------------------- 3. one timed prediction


def _tree_pss_kb(pid: int) -> int:
    """Proportional set size of a process and all its descendants (shared library pages counted once in total)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack.extend(int(c) for c in f.read().split())
            with open(f"/proc/{p}/smaps_rollup") as f:
                total += next(int(ln.split()[1]) for ln in f if ln.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            continue  # it ended between two reads
    return total


def _measured(cmd: Sequence[str], env: Mapping[str, str], log: Path) -> dict[str, float]:
    """Run `cmd` and measure it from outside: wall seconds; user+sys CPU seconds of it and of every worker it
    waited for (wait4's rusage); peak RSS of its largest process (ru_maxrss); peak PSS of the whole process tree,
    sampled every 0.2 s (nnU-Net runs preprocessing and export in worker processes)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(env))
        peak_pss = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            peak_pss = max(peak_pss, _tree_pss_kb(proc.pid))
            time.sleep(0.2)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise NnunetSideError(f"nnU-Net prediction failed (exit {proc.returncode}): {_last_line(log.read_text())} [log: {log}]")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "user_s": round(usage.ru_utime, 2),
        "sys_s": round(usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "peak_tree_pss_mb": round(peak_pss / 1024, 1),
    }


def predict_once(root: Path, work: Path, case_dir: Path, out_dir: Path, threads: int = 2) -> dict[str, Any]:
    """One nnU-Net prediction of `case_dir` (FLAIR + T1): fold 0, no test-time mirroring, CPU, `threads` torch
    threads, 1 preprocessing and 1 export process (as `nnUNetv2_predict -f 0 --disable_tta -device cpu -npp 1
    -nps 1`). Returns the outside measurements (see `_measured`), the driver's own split (import, model load,
    predict_from_files) and the written segmentation's path and shape, checked against the scan's."""
    py = ensure_venv(root)
    work = work.resolve()
    model_dir = _model_dir(work)
    if not (model_dir / f"fold_{FOLD}" / CHECKPOINT).is_file():
        raise NnunetSideError(f"no nnU-Net model under {model_dir}: call prepare() first")
    case_dir = Path(case_dir).resolve()
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / f"{case_dir.name}.nii.gz"
    out_file.unlink(missing_ok=True)
    split = out_dir / f"{case_dir.name}_timings.json"
    cmd = _in_venv(root, "_venv-predict", model_dir, out_dir / case_dir.name, split, str(threads),
                   *[case_dir / f for f in CHANNEL_FILES])
    measured = _measured(cmd, _child_env(work, threads), work / "logs" / f"predict_{case_dir.name}.log")
    if not out_file.is_file():
        raise NnunetSideError(f"nnU-Net wrote no {out_file}")
    shape, scan_shape = _nifti_shape(out_file), _nifti_shape(case_dir / CHANNEL_FILES[0])
    if shape != scan_shape:
        raise NnunetSideError(f"nnU-Net's segmentation has shape {shape}, the scan {scan_shape}")
    return {**measured, **json.loads(split.read_text()), "threads": threads, "output": str(out_file), "shape": shape,
            "python": str(py)}


# ---------------------------------------------------------------- 4. network facts


def network_facts(root: Path, work: Path, case_dir: Path = TARGET_CASE, threads: int = 2) -> dict[str, Any]:
    """Parameters, patch size, sliding windows for `case_dir` (step 0.5, after nnU-Net's own crop and resample)
    and FLOPs per window (torch.utils.flop_counter.FlopCounterMode; multiply-add = 2 FLOPs), computed in the venv."""
    ensure_venv(root)
    work = work.resolve()
    model_dir = _model_dir(work)
    if not (model_dir / f"fold_{FOLD}" / CHECKPOINT).is_file():
        raise NnunetSideError(f"no nnU-Net model under {model_dir}: call prepare() first")
    case_dir = Path(case_dir).resolve()
    out = _run(_in_venv(root, "_venv-facts", model_dir, str(threads), *[case_dir / f for f in CHANNEL_FILES]),
               "nnU-Net network facts", work / "logs" / "facts.log", _child_env(work, threads))
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------- venv side (run under the nnU-Net venv)


def _venv_requires() -> None:
    """Print the declared (non-extra) requirements of nnunetv2 and dynamic-network-architectures as JSON."""
    from importlib import metadata

    reqs = [r for dist in ("nnunetv2", "dynamic-network-architectures") for r in (metadata.requires(dist) or [])
            if "extra ==" not in r]
    print(json.dumps(reqs))


def _venv_check() -> None:
    """Import what nnU-Net inference needs, refuse a torchvision, print the installed versions as JSON."""
    import importlib.util
    from importlib import metadata

    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet  # noqa: F401
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor  # noqa: F401
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer  # noqa: F401

    if not torch.__version__.startswith(TORCH_VERSION):
        raise SystemExit(f"torch {torch.__version__} installed, {TORCH_VERSION} wanted")
    if importlib.util.find_spec("torchvision") is not None:
        raise SystemExit("torchvision got installed; it cannot import beside the local torch build")
    names = ("torch", "nnunetv2", "dynamic-network-architectures", "acvl-utils", "batchgenerators", "batchgeneratorsv2",
             "numpy", "scipy", "SimpleITK", "nibabel", "blosc2")
    print(json.dumps({"python": sys.version.split()[0], **{n: metadata.version(n) for n in names}}))


def _venv_checkpoint(model_dir: str) -> None:
    """Save an untrained fold-0 checkpoint that nnUNetPredictor.initialize_from_trained_model_folder accepts.

    The network is built exactly as the predictor rebuilds it (the trainer's build_network_architecture from the
    plans, deep supervision off), with seed 0; the checkpoint carries the fields the predictor reads."""
    import torch
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.label_handling.label_handling import determine_num_input_channels
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    folder = Path(model_dir)
    plans = json.loads((folder / "plans.json").read_text())
    dataset_json = json.loads((folder / "dataset.json").read_text())
    plans_manager = PlansManager(plans)
    cm = plans_manager.get_configuration(CONFIGURATION)
    n_in = determine_num_input_channels(plans_manager, cm, dataset_json)
    n_out = plans_manager.get_label_manager(dataset_json).num_segmentation_heads
    torch.manual_seed(SEED)
    network = nnUNetTrainer.build_network_architecture(plans_manager, cm, n_in, n_out, enable_deep_supervision=False)
    checkpoint = {
        "network_weights": network.state_dict(),
        "trainer_name": TRAINER,
        "init_args": {"plans": plans, "configuration": CONFIGURATION, "fold": FOLD, "dataset_json": dataset_json},
        "inference_allowed_mirroring_axes": (0, 1, 2),
        "current_epoch": 0,
        "mslesion_note": f"UNTRAINED: random initialisation (seed {SEED}), for timing only",
    }
    (folder / f"fold_{FOLD}").mkdir(exist_ok=True)
    torch.save(checkpoint, folder / f"fold_{FOLD}" / CHECKPOINT)


def _venv_predictor(model_dir: str, threads: int) -> Any:
    import torch
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.set_num_threads(threads)
    predictor = nnUNetPredictor(tile_step_size=STEP_SIZE, use_gaussian=True, use_mirroring=False,
                                perform_everything_on_device=True, device=torch.device("cpu"), verbose=False,
                                verbose_preprocessing=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(model_dir, use_folds=(FOLD,), checkpoint_name=CHECKPOINT)
    return predictor


def _venv_predict(model_dir: str, out_truncated: str, timings: str, threads: str, *images: str) -> None:
    """What nnUNetv2_predict does for one case, with our thread and process counts; writes its own time split."""
    t0 = time.perf_counter()
    import nnunetv2.inference.predict_from_raw_data  # noqa: F401  (the import is part of what a user waits for)

    t1 = time.perf_counter()
    predictor = _venv_predictor(model_dir, int(threads))
    t2 = time.perf_counter()
    predictor.predict_from_files([list(images)], [out_truncated], save_probabilities=False, overwrite=True,
                                 num_processes_preprocessing=1, num_processes_segmentation_export=1)
    t3 = time.perf_counter()
    Path(timings).write_text(json.dumps({"import_s": round(t1 - t0, 2), "load_model_s": round(t2 - t1, 2),
                                         "predict_from_files_s": round(t3 - t2, 2)}))


def _venv_facts(model_dir: str, threads: str, *images: str) -> None:
    """Print network facts as JSON (last line): windows come from nnU-Net's own preprocessing, padding and
    sliding-window slicers; FLOPs are counted on the meta device (shapes only), or on the CPU if meta fails."""
    import copy

    import numpy as np
    import torch
    from acvl_utils.cropping_and_padding.padding import pad_nd_image
    from torch.utils.flop_counter import FlopCounterMode

    predictor = _venv_predictor(model_dir, int(threads))
    cm, network = predictor.configuration_manager, predictor.network.eval()
    patch = [int(p) for p in cm.patch_size]
    data, _seg, props = cm.preprocessor_class(verbose=False).run_case(
        list(images), None, predictor.plans_manager, cm, predictor.dataset_json)
    padded, _ = pad_nd_image(torch.from_numpy(np.ascontiguousarray(data)), cm.patch_size, "constant", {"value": 0}, True, None)
    windows = len(predictor._internal_get_sliding_window_slicers(padded.shape[1:]))

    def count(device: str) -> int:
        net = copy.deepcopy(network).to(device)
        x = torch.zeros((1, data.shape[0], *patch), device=device)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
        return int(counter.get_total_flops())

    try:
        flops, counted_on = count("meta"), "meta"
    except Exception:  # an op without a meta kernel: count on real tensors instead
        flops, counted_on = count("cpu"), "cpu"
    arch = cm.network_arch_init_kwargs
    print(json.dumps({
        "network": cm.network_arch_class_name.rsplit(".", 1)[-1],
        "params": int(sum(p.numel() for p in network.parameters())),
        "features_per_stage": list(arch.get("features_per_stage", [])),
        "patch_size": patch,
        "spacing_mm": [float(s) for s in cm.spacing],
        "scan_shape": [int(s) for s in props["shape_before_cropping"]],
        "preprocessed_shape": [int(s) for s in data.shape[1:]],
        "padded_shape": [int(s) for s in padded.shape[1:]],
        "step_size": STEP_SIZE,
        "windows": windows,
        "gflop_per_window": round(flops / 1e9, 1),
        "gflop_per_brain": round(windows * flops / 1e9, 1),
        "flops_counted_on": counted_on,
    }))


_VENV_COMMANDS = {
    "_venv-requires": _venv_requires,
    "_venv-check": _venv_check,
    "_venv-checkpoint": _venv_checkpoint,
    "_venv-predict": _venv_predict,
    "_venv-facts": _venv_facts,
}


# ---------------------------------------------------------------- by hand


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in _VENV_COMMANDS:
        _VENV_COMMANDS[argv[0]](*argv[1:])
        return 0
    parser = argparse.ArgumentParser(description="Prepare nnU-Net v2 (untrained, own 3d_fullres plan), time one "
                                                 "prediction of Lesjak patient07 and print one JSON line.")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "nnunet-work", help="build folder for nnU-Net")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    try:
        ensure_venv(ROOT)
        prepared = prepare(ROOT, args.work, DEFAULT_CASES)
        facts = network_facts(ROOT, args.work, TARGET_CASE, args.threads)
        pred = predict_once(ROOT, args.work, TARGET_CASE, args.work / "predictions", args.threads)
    except NnunetSideError as err:
        print(f"nnunet_side: {err}", file=sys.stderr)
        return 1
    print(json.dumps({"venv": venv_info(ROOT), "prepare": prepared, "network": facts, "predict": pred}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
