"""Write a `Preprocessed` result to a folder: images, brain mask, transforms and qc.json.

Everything is written into a hidden staging folder inside `out` and moved into place
only when all files are written, so a failure never leaves partial outputs; an older
run in `out` is replaced whole (`io.outdir`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import numpy as np

from mslesion.errors import InputError
from mslesion.io.atomic import write_json_atomic
from mslesion.io.outdir import prepare_out, staged_output
from mslesion.io.volume import save_volume
from mslesion.preprocess.raw import Preprocessed


class Space(StrEnum):
    """Where the written images live: the model's MNI working grid or the native FLAIR grid."""

    MNI = "mni"
    NATIVE = "native"


def _write_transforms(pre: Preprocessed, folder: Path) -> list[str]:
    """ITK transform files (LPS, ITK's fixed->moving resampling direction) plus transforms.json."""
    import SimpleITK as sitk

    from mslesion.space.sitkio import ras_to_transform

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    items = {"MNI_to_FLAIR": pre.mni_to_flair, **{f"FLAIR_to_{k}": v for k, v in pre.flair_to_contrast.items()}}
    for name, matrix in items.items():
        sitk.WriteTransform(ras_to_transform(matrix), str(folder / f"{name}.tfm"))
        written.append(f"transforms/{name}.tfm")
    write_json_atomic(folder / "transforms.json", pre.transforms_json())
    return written + ["transforms/transforms.json"]


def write_preprocessed(pre: Preprocessed, out: Path, space: Space | str = Space.MNI) -> list[str]:
    """Write `<contrast>.nii.gz`, `brain_mask.nii.gz`, `transforms/` and `qc.json` into `out`.

    `space='mni'`: images on the FSL MNI152 1 mm working grid (skull-stripped).
    `space='native'`: N4-corrected images co-registered on the native FLAIR grid (with skull)
    and the brain mask there, saved with the input FLAIR's affine.
    """
    from mslesion import __version__

    space = Space(space)
    prepare_out(out)
    names: list[str] = []
    try:
        with staged_output(out) as staging:
            if space is Space.MNI:
                images, brain, affine = pre.images, pre.brain, pre.working_affine
            else:
                images, brain, affine = pre.native_images(), pre.native_brain, pre.flair_grid.native_affine
            for name, array in images.items():
                save_volume(array.astype(np.float32), affine, staging / f"{name}.nii.gz", dtype=np.float32)
                names.append(f"{name}.nii.gz")
            save_volume(brain.astype(np.uint8), affine, staging / "brain_mask.nii.gz", dtype=np.uint8)
            names.append("brain_mask.nii.gz")
            names += _write_transforms(pre, staging / "transforms")
            qc = {
                **pre.qc,
                "space": space.value,
                "files": names + ["qc.json"],
                "inputs_paths": {k: str(v) for k, v in pre.inputs.items()},
                "mslesion_version": __version__,
            }  # marks the folder as an mslesion run (io.outdir)
            write_json_atomic(staging / "qc.json", qc)
    except OSError as exc:
        raise InputError(out, f"cannot write outputs ({exc.strerror or type(exc).__name__})") from None
    return names
