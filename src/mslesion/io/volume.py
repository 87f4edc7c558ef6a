"""A 3D image with its geometry: array + affine + header, loaded lazily with nibabel.

Every file the toolkit reads goes through `load_volume`, so bad files fail in one place
with one clear message (`InputError`), and every image it writes goes through
`save_volume`, which writes atomically (temporary file + rename: no partial outputs).
"""

from __future__ import annotations

import logging
import os
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from mslesion.errors import InputError
from mslesion.io.limits import (
    check_contrast_sign,
    check_data_size,
    check_dtype,
    check_qform_sform,
    check_shape,
    check_spacing,
    finite_float32,
)

logger = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti_path(path: str | Path) -> bool:
    """True when the file name ends in .nii or .nii.gz."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def strip_nifti_suffix(name: str) -> str:
    """'case01.nii.gz' -> 'case01'."""
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _read_image(path: Path) -> nib.Nifti1Image:
    """Open the header of a NIfTI file (no voxel data yet) or raise InputError."""
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a NIfTI file (.nii or .nii.gz)")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for unreadable files
        raise InputError(path, f"not a readable NIfTI image ({type(exc).__name__})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(path, f"not a NIfTI image ({type(img).__name__})")
    return img


def _squeeze_to_3d(shape: tuple[int, ...], path: Path | None) -> tuple[int, int, int]:
    """Accept 3D images and 4D/5D ones whose extra axes have length 1; refuse the rest."""
    spatial = tuple(shape[:3])
    extra = tuple(shape[3:])
    if len(shape) < 3:
        raise InputError(path, f"is a {len(shape)}D image of shape {tuple(shape)}; a 3D image is needed")
    if any(n != 1 for n in extra):
        raise InputError(path, f"is a {len(shape)}D image of shape {tuple(shape)}; a 3D image is needed")
    return cast(tuple[int, int, int], spatial)  # three axes: checked above


@dataclass
class Volume:
    """A 3D image: voxel array, 4x4 voxel-to-world (RAS mm) affine, and NIfTI header.

    Built from a file by `load_volume` (voxels read on first access to `.array`) or
    in memory with `Volume.from_array`.
    """

    affine: np.ndarray
    header: nib.Nifti1Header
    shape: tuple[int, int, int]
    path: Path | None = None
    warnings: list[str] = field(default_factory=list)  # QC notes from the door (e.g. unusual voxel size)
    _array: np.ndarray | None = field(default=None, repr=False)
    _image: nib.Nifti1Image | None = field(default=None, repr=False)

    @classmethod
    def from_array(cls, array: np.ndarray, affine: np.ndarray, header: nib.Nifti1Header | None = None) -> Volume:
        """A volume held in memory (no file behind it)."""
        array = np.asarray(array)
        if array.ndim != 3:
            raise InputError(None, f"array of shape {array.shape} is not 3D")
        hdr = header.copy() if header is not None else nib.Nifti1Header()
        return cls(affine=np.asarray(affine, dtype=float), header=hdr, shape=array.shape, _array=array)

    @property
    def array(self) -> np.ndarray:
        """The voxels (float32 for images as stored scaled; masks keep their integer dtype)."""
        if self._array is None:
            self._array = self._load_voxels()
        return self._array

    def _load_voxels(self) -> np.ndarray:
        assert self._image is not None  # only file-backed volumes get here
        try:
            data = np.asanyarray(self._image.dataobj)
        except (EOFError, zlib.error, OSError, ValueError) as exc:
            raise InputError(self.path, f"truncated or corrupt image data ({exc.__class__.__name__})") from None
        data = data.reshape(self.shape)
        if np.issubdtype(data.dtype, np.floating):  # checked after the cast: 1e300 is finite, not in float32
            data = finite_float32(data, self.path)
        self.note(check_contrast_sign(data, self.path))
        return data

    def note(self, warnings: list[str]) -> None:
        """Log QC warnings about this image and keep them in `warnings` (each once)."""
        for message in warnings:
            if message not in self.warnings:
                logger.warning("warning: %s", message)
                self.warnings.append(message)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along the three array axes (from the affine)."""
        return cast(tuple[float, float, float], tuple(float(s) for s in nib.affines.voxel_sizes(self.affine)))

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm^3."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def orientation(self) -> str:
        """Axis codes such as 'RAS' or 'LPS' (where each array axis points)."""
        return "".join(nib.aff2axcodes(self.affine))

    def same_grid(self, other: Volume, atol: float = 1e-3) -> bool:
        """True when both volumes share shape and affine (to `atol` mm)."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol))

    def with_array(self, array: np.ndarray) -> Volume:
        """A new in-memory volume on this grid holding `array`."""
        return Volume.from_array(array, self.affine, self.header)

    def release(self) -> None:
        """Forget the voxels of a file-backed volume (they are re-read on the next access)."""
        if self._image is not None:
            self._array = None

    def validate(self) -> Volume:
        """Read the voxels now, so errors surface here rather than later."""
        _ = self.array
        return self


def load_volume(path: str | Path) -> Volume:
    """Open a 3D NIfTI file lazily (or a DICOM series folder, read now), checking what can be checked.

    Shape, voxel type and voxel size are checked from the header (`io.limits`), before any
    voxel is read; an unusual voxel size is logged and kept in `Volume.warnings`.
    """
    path = Path(path)
    if path.is_dir():
        from mslesion.io.dicom import read_dicom_series

        array, affine, warnings = read_dicom_series(path)
        volume = Volume.from_array(array, affine)
        volume.path, volume.warnings = path, warnings
        volume.note(check_contrast_sign(array, path))
        return volume
    if not is_nifti_path(path):
        raise InputError(path, "not a NIfTI file name (expected .nii or .nii.gz)")
    img = _read_image(path)
    shape = _squeeze_to_3d(tuple(int(n) for n in img.shape), path)
    dtype = img.get_data_dtype()
    check_dtype(dtype, path)
    check_shape(shape, dtype.itemsize, path)
    check_data_size(path, int(img.dataobj.offset) + int(np.prod(shape)) * dtype.itemsize)  # type: ignore[attr-defined]  # nibabel types dataobj as ArrayLike; a NIfTI file's is an ArrayProxy, with the data offset
    affine = np.asarray(img.affine, dtype=float)
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-9:
        raise InputError(path, "has an invalid (singular or non-finite) affine")
    warnings = check_spacing(tuple(nib.affines.voxel_sizes(affine)), path) + check_qform_sform(img.header, shape, path)
    for message in warnings:
        logger.warning("warning: %s", message)
    return Volume(affine=affine, header=img.header.copy(), shape=shape, path=path, warnings=warnings, _image=img)


def _temporary_sibling(path: Path) -> Path:
    """A hidden temporary name in the same folder, with the same NIfTI suffix."""
    suffix = ".nii.gz" if str(path).lower().endswith(".nii.gz") else ".nii"
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{suffix}")


def save_volume(
    array: np.ndarray,
    affine: np.ndarray,
    path: str | Path,
    header: nib.Nifti1Header | None = None,
    dtype: np.dtype | type | None = None,
) -> Path:
    """Write a 3D array as NIfTI atomically, keeping the given header's qform/sform codes.

    With `header` from a source image, the output carries the source's geometry fields
    exactly (qform and sform with their codes), as nnU-Net's exporter does.
    """
    path = Path(path)
    if not is_nifti_path(path):
        raise InputError(path, "output name must end in .nii or .nii.gz")
    data = np.asarray(array)
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    elif data.dtype == bool:
        data = data.astype(np.uint8)
    elif data.dtype == np.float64:
        data = data.astype(np.float32)
    img = nib.Nifti1Image(data, affine, header=header.copy() if header is not None else None)
    img.set_data_dtype(data.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    qcode = int(header["qform_code"]) if header is not None else 1
    scode = int(header["sform_code"]) if header is not None else 1
    if qcode == 0 and scode == 0:
        qcode = 1  # never write an image whose geometry readers must guess
    img.set_qform(affine, code=qcode)
    img.set_sform(affine, code=scode)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(path.parent, f"cannot create output folder ({exc.strerror})") from None
    tmp = _temporary_sibling(path)
    try:
        nib.save(img, str(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(path, f"cannot write ({exc.strerror})") from None
    return path


def save_like(array: np.ndarray, like: Volume, path: str | Path, dtype: np.dtype | type | None = None) -> Path:
    """Write `array` on the grid of `like`, with its affine and header."""
    if tuple(array.shape) != tuple(like.shape):
        raise InputError(path, f"array shape {array.shape} differs from the reference grid {like.shape}")
    return save_volume(array, like.affine, path, header=like.header, dtype=dtype)
