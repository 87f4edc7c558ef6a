"""Sane limits on the images the toolkit reads, checked at the door (`load_volume`, DICOM).

Shape, voxel type and voxel size come from the header, so a hostile or broken header
(a 100-byte file claiming 1200^3 voxels, RGB or complex data, 100 mm voxels) is refused
before any voxel is read; values that do not fit the working type (float32) are refused
after the cast, so they can never turn into a NaN probability map.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mslesion.errors import InputError

if TYPE_CHECKING:
    from nibabel.nifti1 import Nifti1Header

MAX_AXIS = 1024  # voxels along any axis (a 0.25 mm whole head is ~800)
MAX_VOXELS = 2**28  # 268M voxels (e.g. 512 x 512 x 1024): 1 GiB as float32
MAX_DATA_BYTES = 2 * 1024**3  # decompressed voxel data a header may claim
MIN_SLICES = 3  # fewer along any axis is not a 3D volume the pipeline can use
SPACING_REFUSE_MM = (0.05, 20.0)  # voxel sizes outside: refused
SPACING_WARN_MM = (0.1, 10.0)  # voxel sizes outside (but inside the refuse range): a warning
SCALAR_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def check_shape(shape: tuple[int, ...], itemsize: int, path: str | Path | None) -> None:
    """Refuse a 3D grid that is too small or too large, from the header alone."""
    if any(n < MIN_SLICES for n in shape):
        raise InputError(
            path,
            f"has only {min(shape)} slice(s) along an axis (shape {tuple(shape)}); a 3D volume of at least {MIN_SLICES} slices per axis is needed",
        )
    voxels = int(np.prod([int(n) for n in shape], dtype=object))
    if max(shape) > MAX_AXIS or voxels > MAX_VOXELS:
        raise InputError(
            path, f"image of shape {tuple(shape)} is too large (limit {MAX_AXIS} voxels per axis and {MAX_VOXELS // 2**20}M voxels in all)"
        )
    if voxels * itemsize > MAX_DATA_BYTES:
        raise InputError(path, f"voxel data of {voxels * itemsize / 2**30:.1f} GiB is too large (limit {MAX_DATA_BYTES / 2**30:.0f} GiB)")


def check_data_size(path: Path, needed: int) -> None:
    """Refuse a file too short for the voxel data its header claims, without allocating that much.

    Plain files: their size. Gzip files: the trailer's uncompressed size, and when that is
    short (or the file is multi-member), a streaming count in 1 MiB chunks.
    """
    if not path.name.lower().endswith(".gz"):
        held = path.stat().st_size
    else:
        with path.open("rb") as fh:
            fh.seek(max(path.stat().st_size - 4, 0))
            if int.from_bytes(fh.read(4), "little") >= needed:  # needed < 4 GiB: no wrap-around
                return
        held = 0
        try:
            with gzip.open(path, "rb") as gz:
                while held < needed and (chunk := gz.read(min(2**20, needed - held))):
                    held += len(chunk)
        except (OSError, EOFError, zlib.error):
            pass  # a broken stream: `held` is what could be read
    if held < needed:
        raise InputError(path, f"truncated or corrupt image data (the header claims {needed} bytes, the file holds {held})")


def check_dtype(dtype: np.dtype, path: str | Path | None) -> None:
    """Refuse voxel types that are not one grey level per voxel (RGB, vectors, complex, text)."""
    dtype = np.dtype(dtype)
    if dtype.fields is not None or dtype.subdtype is not None:
        raise InputError(path, "holds RGB or vector voxels; a scalar (grey-level) image is needed")
    if dtype.kind == "c":
        raise InputError(path, f"holds complex voxels ({dtype}); a real-valued (magnitude) image is needed")
    if dtype.kind not in SCALAR_KINDS:
        raise InputError(path, f"has an unsupported voxel type ({dtype}); a scalar numeric image is needed")


def check_spacing(spacing: tuple[float, ...], path: str | Path | None) -> list[str]:
    """Refuse voxel sizes outside 0.05-20 mm; return a warning for sizes outside 0.1-10 mm."""
    lo, hi = SPACING_REFUSE_MM
    shown = tuple(round(float(s), 4) for s in spacing)
    if not all(np.isfinite(spacing)) or min(spacing) < lo or max(spacing) > hi:
        raise InputError(path, f"voxel size {shown} mm is outside {lo}-{hi} mm; check the header's pixdim/affine")
    lo, hi = SPACING_WARN_MM
    if min(spacing) < lo or max(spacing) > hi:
        return [f"{path}: voxel size {shown} mm is unusual for brain MRI (outside {lo}-{hi} mm); check the result"]
    return []


def check_contrast_sign(data: np.ndarray, path: str | Path | None) -> list[str]:
    """A warning when an image's signal is mostly negative: an MR magnitude image is bright where the
    tissue is, so its brightest voxels are positive. A negated or inverted export (or a negative
    scl_slope) turns the brain dark, and a model would read its lesions as dark holes.

    Flagged when the 1st percentile of the values is further below zero than the 99th lies above
    it (on every 2nd voxel along each axis: the decision does not need them all). Lesjak's ready
    scans, whose N4 correction leaves some negative voxels, are far from this.
    """
    if data.dtype.kind not in "if" or data.size == 0:
        return []
    sample = np.asarray(data[::2, ::2, ::2] if data.ndim == 3 else data, dtype=np.float64)
    low, high = (float(v) + 0.0 for v in np.percentile(sample, [1, 99]))  # + 0.0: no '-0' in the message
    if low < 0 and -low > high:
        return [
            f"{path}: the image looks negated (1st percentile {low:.4g} lies further below zero than the 99th, {high:.4g}, above it): "
            "the brain is darker than the background; check the export or the scl_slope; the result is unreliable"
        ]
    return []


# How far apart a file's qform and sform may place the image's corners before it is worth a warning.
QFORM_SFORM_TOLERANCE_MM = 1.0


def check_qform_sform(header: Nifti1Header, shape: tuple[int, ...], path: object) -> list[str]:
    """A warning when the file's qform and sform are both set and place the image differently.

    nibabel (so mslesion) uses the sform; ITK-based tools may use the qform, so a mask made by one
    would sit elsewhere in the other: a disagreement worth knowing before trusting overlays.
    """
    if int(header["qform_code"]) <= 0 or int(header["sform_code"]) <= 0:
        return []
    from nibabel.spatialimages import HeaderDataError

    invalid = [
        f"{path}: the header's qform is invalid (quaternion, offsets or voxel sizes); mslesion uses the sform, "
        "tools that read the qform will fail on this image or place it elsewhere"
    ]
    try:
        qform = header.get_qform()
    except (ValueError, HeaderDataError):  # |b, c, d| > 1, negative pixdim, qfac not +-1
        return invalid
    if not np.all(np.isfinite(qform)):
        return invalid
    sform = header.get_sform()
    corners = np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])
    apart = float(np.max(np.linalg.norm((corners @ (qform - sform).T)[:, :3], axis=1)))
    if not np.isfinite(apart) or apart <= QFORM_SFORM_TOLERANCE_MM:
        return []
    return [
        f"{path}: the header's qform and sform disagree (the image's corners {apart:.1f} mm apart); "
        "mslesion uses the sform, tools that read the qform will place this image elsewhere"
    ]


def finite_float32(data: np.ndarray, path: str | Path | None) -> np.ndarray:
    """Floating-point voxels as float32, refusing NaN and values beyond float32 (checked after the cast)."""
    with np.errstate(over="ignore", invalid="ignore"):
        cast = data.astype(np.float32, copy=False)
    bad = int(cast.size - np.count_nonzero(np.isfinite(cast)))
    if bad:
        if cast is not data and np.all(np.isfinite(data)):  # only the error path pays for this second look
            raise InputError(path, f"has {bad} voxels beyond the float32 range (|value| > 3.4e38: corrupt data or scl_slope?)")
        raise InputError(path, f"contains {bad} NaN or infinite voxels")
    return cast
