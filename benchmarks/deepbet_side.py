"""deepbet on one T1 NIfTI: writes its brain mask (uint8, the input's grid and header) and prints the seconds.

Runs in its own venv (build/deepbet-venv), not in the product's: deepbet's wheel declares a GUI
dependency (customtkinter) and ships its weights as TorchScript archives (`torch.jit.load`, a
pickle inside), which the product itself must never load. This script does not import mslesion.
Used by `benchmarks/brain_extraction.py --methods deepbet`; set up as that script's docstring says.

    build/deepbet-venv/bin/python benchmarks/deepbet_side.py T1.nii.gz mask.nii.gz [--threads 2]

Prints one JSON line: {"load_seconds": model loading, "seconds": loading + the mask (deepbet's own
reorientation, normalisation, both networks, post-processing), "shape": [...], "brain_ml": ...}.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("t1")
    parser.add_argument("mask")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import nibabel as nib
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from deepbet import BrainExtraction  # deepbet.ui (the GUI and customtkinter) is never imported

    start = time.perf_counter()
    bet = BrainExtraction(no_gpu=True)  # the two TorchScript models inside the wheel: nothing is downloaded
    load_seconds = time.perf_counter() - start
    image = nib.load(args.t1)
    _, mask, _ = bet.run(image)  # threshold 0.5, no dilation: deepbet's defaults
    seconds = time.perf_counter() - start
    array = np.asarray(mask.dataobj) > 0
    if array.shape != image.shape[:3]:
        raise SystemExit(f"deepbet's mask {array.shape} is not on the input grid {image.shape}")
    out = nib.Nifti1Image(array.astype(np.uint8), image.affine, image.header)  # the input's qform and sform, untouched
    out.set_data_dtype(np.uint8)
    out.header["scl_slope"], out.header["scl_inter"] = 1, 0
    nib.save(out, args.mask)
    brain_ml = float(array.sum() * np.prod(image.header.get_zooms()[:3])) / 1000
    print(json.dumps({"load_seconds": round(load_seconds, 2), "seconds": round(seconds, 2), "shape": list(array.shape),
                      "brain_ml": round(brain_ml, 1), "torch": torch.__version__, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
