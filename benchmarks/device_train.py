"""Train a real-data recipe's leave-one-out folds and its shipped model on a lent GPU, in one device call.

Issue 13: when a task is lent a GPU (the `device` tool; 15 minutes a task, at most 10 a command),
the recipe's three trainings (train p19 -> test p07, train p07 -> test p19, and both cases for
shipping) run there in one command, and their weights come back. Evaluation stays here, on the CPU
that users have: `benchmarks/real_accuracy.py RECIPE [--ship RECIPE]` finds the runs done
(`done.json`) and only scores them; the model card records the GPU that trained them.

Three steps:
1. here:   `.venv/bin/python benchmarks/device_train.py pack configs/real/RECIPE.yaml`
   copies the recipe's real cases (its contrasts and masks only) and lesion-mask folder from
   MSLESION_SHARED_DATA to build/device/data, and the Python 3.12 wheels the GPU machine lacks
   (nibabel, nilearn, monai; pure Python) to build/device/wheels. It prints the device command.
2. device: `run(command=<printed>, carry=["build/device"], timeout_s=600)`: installs the wheels,
   trains the three runs within `--minutes` in all (each a share, as train.time_budget_minutes), and writes one
   RUN.tar.gz per run to $OUT.
3. here:   `.venv/bin/python benchmarks/device_train.py unpack configs/real/RECIPE.yaml FILES_AT`
   puts each run under runs/real/RECIPE/ with its done.json, as real_accuracy.py's own runs.

The working tree travels too (64 MiB in all): the shared data are never committed, only carried
from the ignored build/device.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import yaml
from real_accuracy import FOLDS, ROOT, RUNS  # this script's folder is on sys.path when it runs

DEVICE = ROOT / "build" / "device"
WHEELS = ("nibabel", "nilearn", "monai")  # what mslesion's training imports that the GPU image lacks
# real_accuracy's leave-one-out folds and its shipped model: run name -> held-out case ids.
TRAININGS = {**{fold: [case] for fold, case in FOLDS.items()}, "ship": []}


def pack(recipe: Path, shared: Path) -> None:
    """Copy the recipe's data and the missing wheels into build/device; print the device command."""
    from mslesion.train.config import load_config

    os.environ["MSLESION_SHARED_DATA"] = str(shared)
    cfg = load_config(recipe)  # the recipe's paths resolved as training resolves them
    if DEVICE.exists():
        shutil.rmtree(DEVICE)
    data = DEVICE / "data"
    for source in map(Path, cfg.data.datasets):
        for case in sorted(p for p in source.iterdir() if p.is_dir()):
            target = data / source.name / case.name
            target.mkdir(parents=True)
            for name in [*cfg.data.contrasts, "lesion"]:
                shutil.copy2(case / f"{name}.nii.gz", target / f"{name}.nii.gz")
    if cfg.data.lesion_locations is not None:
        masks = Path(cfg.data.lesion_locations)
        shutil.copytree(masks, data / masks.name)
    from importlib.metadata import version

    pins = [f"{name}=={version(name)}" for name in WHEELS]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
         "--implementation", "cp", "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64",
         "-d", str(DEVICE / "wheels"), *pins],
        check=True,
    )  # fmt: skip
    size = sum(p.stat().st_size for p in DEVICE.rglob("*") if p.is_file()) / 2**20
    print(f"build/device: {size:.1f} MiB (the working tree travels with it: 64 MiB in all)")
    print(f"device command: bash benchmarks/device_train.sh {recipe.relative_to(ROOT)} 8")


def remote(recipe: Path, out: Path, minutes: float, device: str = "cuda") -> None:
    """On the GPU machine: train each of TRAININGS within `minutes` in all; write out/RUN.tar.gz.

    Each run's time budget is its share of what is left (data preparation and the last epoch,
    which the budget does not stop, eat into it). `device` cuda (the default) fails at once
    rather than train on the CPU by mistake."""
    import logging
    import time

    from mslesion.train.run import run_training

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg = yaml.safe_load(recipe.read_text())
    cfg["train"]["device"] = device
    deadline = time.monotonic() + 60 * minutes
    for left, (name, exclude) in zip(range(len(TRAININGS), 0, -1), TRAININGS.items()):
        budget = max((deadline - time.monotonic()) / 60 / left - 0.5, 0.5)  # 0.5 min for preparing the cases
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / name
            cfg["data"]["exclude"] = exclude
            config = Path(tmp) / f"{name}.yaml"
            config.write_text(yaml.safe_dump(cfg, sort_keys=False))
            summary = run_training(config, run, time_budget_minutes=budget)
            print(name, summary, flush=True)
            with tarfile.open(out / f"{name}.tar.gz", "w:gz") as archive:
                for item in ("model", "log.csv", "config.yaml", "splits.json", "curves.png"):
                    if (run / item).exists():
                        archive.add(run / item, arcname=item)


def unpack(recipe: Path, files: Path) -> None:
    """Each RUN.tar.gz of `files` into runs/real/RECIPE/RUN with the done.json real_accuracy.py reads."""
    from mslesion.io.atomic import write_json_atomic

    for name in TRAININGS:  # all or nothing
        if not (files / f"{name}.tar.gz").is_file():
            raise SystemExit(f"{files / f'{name}.tar.gz'}: missing (did the device run finish every training?)")
        if (RUNS / recipe.stem / name).exists():
            raise SystemExit(f"{RUNS / recipe.stem / name}: already holds a run; move it away first")
    for name, exclude in TRAININGS.items():
        archive, run = files / f"{name}.tar.gz", RUNS / recipe.stem / name
        run.mkdir(parents=True)
        with tarfile.open(archive) as handle:
            handle.extractall(run, filter="data")  # our own archive, but never trust paths in one
        write_json_atomic(run / "done.json", {"recipe": str(recipe.relative_to(ROOT)), "exclude": exclude, "trained_on": "device"})
        print(f"{run.relative_to(ROOT)}: unpacked")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["pack", "remote", "unpack"])
    parser.add_argument("recipe", type=Path)
    parser.add_argument("files", type=Path, nargs="?", help="unpack: the folder the device run's files came back to (files_at)")
    parser.add_argument("--out", type=Path, help="remote: where the archives go ($OUT)")
    parser.add_argument("--minutes", type=float, default=8.0, help="remote: minutes for all three runs (one device command: at most 10)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="remote: cpu only to try the flow here")
    args = parser.parse_args()
    recipe = args.recipe.resolve()
    if args.step == "pack":
        pack(recipe, Path(os.environ.get("MSLESION_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve())
    elif args.step == "remote":
        if args.out is None:
            parser.error("remote needs --out")
        remote(recipe, args.out, args.minutes, args.device)
    else:
        if args.files is None:
            parser.error("unpack needs the folder the files came back to")
        unpack(recipe, args.files)


if __name__ == "__main__":
    main()
