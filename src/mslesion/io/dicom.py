"""DICOM series folders as arrays and RAS affines, through SimpleITK's GDCM series reader (`io.volume.load_volume` wraps them in a Volume).

Only the voxels and the geometry are kept: no header field (patient name, IDs, dates)
is copied into the volume, so nothing identifying reaches outputs, reports or logs.
A folder holding several series is refused with the list of series, so the user picks
one folder; the descriptions shown are the series' own (e.g. "AX FLAIR"), never patient data.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mslesion.errors import InputError
from mslesion.io.limits import check_dtype, check_shape, check_spacing, finite_float32

logger = logging.getLogger(__name__)

SERIES_DESCRIPTION = "0008|103e"


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


def sitk_to_arrays(image, path: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:  # noqa: ANN001 - SimpleITK image
    """A SimpleITK 3D image as (array (x, y, z), RAS affine, voxel-size warnings), through `mslesion.space.sitkio`."""
    from mslesion.space.sitkio import from_sitk, sitk_affine

    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"is a {image.GetDimension()}D image with {image.GetNumberOfComponentsPerPixel()} components; a 3D scalar image is needed")
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
    files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series[0])
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
