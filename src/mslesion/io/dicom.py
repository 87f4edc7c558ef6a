"""DICOM series folders as arrays and RAS affines, through SimpleITK's GDCM series reader (`io.volume.load_volume` wraps them in a Volume).

Only the voxels and the geometry are kept: no header field (patient name, IDs, dates)
is copied into the volume, so nothing identifying reaches outputs, reports or logs.
A folder holding several series is refused with the list of series, so the user picks
one folder; the descriptions shown are the series' own (e.g. "AX FLAIR"), never patient data.
A series whose slices are not evenly spaced along the slice normal (a missing or duplicated
file) is refused: ITK would stack it as if it were, and every volume would come out wrong.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mslesion.errors import InputError
from mslesion.io.limits import check_dtype, check_shape, check_spacing, finite_float32

logger = logging.getLogger(__name__)

SERIES_DESCRIPTION = "0008|103e"
IMAGE_POSITION = "0020|0032"  # ImagePositionPatient: the slice's first voxel, LPS mm
IMAGE_ORIENTATION = "0020|0037"  # ImageOrientationPatient: row and column directions
GAP_TOLERANCE = 0.1  # a slice gap may differ from the median gap by this fraction


def _series_description(first_file: str) -> str:
    """The series description of one file (header only), or '' when it has none."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(first_file)
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return ""
    return reader.GetMetaData(SERIES_DESCRIPTION).strip() if reader.HasMetaDataKey(SERIES_DESCRIPTION) else ""


def _header_numbers(reader, key: str, count: int) -> np.ndarray | None:  # reader: a SimpleITK image reader
    """`count` finite numbers from a backslash-separated header field, or None when absent or malformed."""
    if not reader.HasMetaDataKey(key):
        return None
    try:
        values = np.array([float(v) for v in reader.GetMetaData(key).strip().split("\\")])
    except ValueError:
        return None
    return values if values.shape == (count,) and np.all(np.isfinite(values)) else None


def slice_geometry(files: list[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """Each file's position (n, 3) and orientation (n, 6) from its header, or None when a file lacks them."""
    import SimpleITK as sitk

    positions, orientations = [], []
    reader = sitk.ImageFileReader()
    for name in files:
        reader.SetFileName(name)
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            return None  # the series reader reports unreadable files in its own words
        position = _header_numbers(reader, IMAGE_POSITION, 3)
        orientation = _header_numbers(reader, IMAGE_ORIENTATION, 6)
        if position is None or orientation is None:
            return None
        positions.append(position)
        orientations.append(orientation)
    return np.array(positions), np.array(orientations)


def check_slice_spacing(files: list[str], folder: Path) -> None:
    """Refuse a series whose slices are not evenly spaced along the slice normal (missing or duplicated slices).

    Series without position and orientation in every header cannot be checked and are left
    to ITK, as before.
    """
    geometry = slice_geometry(files) if len(files) > 2 else None
    if geometry is None:
        return
    positions, orientations = geometry
    if not np.allclose(orientations, orientations[0], atol=1e-3):
        raise InputError(folder, "DICOM slices have different orientations (a localizer or a second stack in the series?)")
    normal = np.cross(orientations[0, :3], orientations[0, 3:])
    if np.linalg.norm(normal) < 1e-3:
        raise InputError(folder, "DICOM slice orientation (0020,0037) has parallel row and column directions")
    gaps = np.diff(np.sort(positions @ (normal / np.linalg.norm(normal))))
    median = float(np.median(gaps))
    if median <= 1e-3 or np.any(np.abs(gaps - median) > GAP_TOLERANCE * median):
        raise InputError(
            folder,
            f"DICOM slices are not evenly spaced (gaps {gaps.min():.2f} to {gaps.max():.2f} mm "
            "along the slice normal: missing or duplicated slices?)",
        )


def sitk_to_arrays(image, path: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A SimpleITK 3D image as (array (x, y, z), RAS affine, voxel-size warnings), through `mslesion.space.sitkio`."""
    from mslesion.space.sitkio import from_sitk, sitk_affine

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            path, f"is a {image.GetDimension()}D image with {image.GetNumberOfComponentsPerPixel()} components; a 3D scalar image is needed"
        )
    affine = sitk_affine(image)
    check_shape(tuple(int(n) for n in image.GetSize()), 4, path)
    warnings = check_spacing(tuple(float(s) for s in image.GetSpacing()), path)
    array = from_sitk(image)
    check_dtype(array.dtype, path)
    if np.issubdtype(array.dtype, np.floating) or array.dtype.itemsize > 2:
        array = finite_float32(array, path)
    for message in warnings:
        logger.warning("warning: %s", message)
    return np.ascontiguousarray(array), affine, warnings


def read_dicom_series(folder: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read the one DICOM series in `folder` as `sitk_to_arrays` does (InputError when there are none or several)."""
    import SimpleITK as sitk

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "DICOM folder not found")
    series = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not series:
        raise InputError(folder, "is a folder without a DICOM series; expected a NIfTI file (.nii/.nii.gz) or a folder of one DICOM series")
    if len(series) > 1:
        listed = "; ".join(
            f"{_series_description(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)[0]) or 'no description'} ({uid})"
            for uid in series
        )
        raise InputError(folder, f"holds {len(series)} DICOM series: {listed}; put the series to use in a folder of its own")
    files = list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0]))
    check_slice_spacing(files, folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(folder, f"unreadable DICOM series ({first})") from None
    if image.GetDimension() == 3 and image.GetSize()[2] < 2:
        raise InputError(folder, "DICOM series has a single slice; a 3D volume is needed")
    return sitk_to_arrays(image, folder)
