"""One entry point for datasets: detect the layout (manifest, BIDS, nnU-Net) and read it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from mslesion.errors import InputError
from mslesion.io.case import Case


class DatasetFormat(StrEnum):
    """The dataset layouts the toolkit reads."""

    AUTO = "auto"
    MANIFEST = "manifest"
    BIDS = "bids"
    NNUNET = "nnunet"


def detect_format(path: str | Path) -> DatasetFormat:
    """Guess the layout: a .csv/.tsv file or a folder with manifest.csv, BIDS, or nnU-Net."""
    path = Path(path)
    if path.is_file() and path.suffix.lower() in (".csv", ".tsv"):
        return DatasetFormat.MANIFEST
    if not path.is_dir():
        raise InputError(path, "dataset not found (expected a manifest .csv/.tsv or a dataset folder)")
    if (path / "dataset.json").is_file() and (path / "imagesTr").is_dir():
        return DatasetFormat.NNUNET
    if (path / "manifest.csv").is_file() or (path / "manifest.tsv").is_file():
        return DatasetFormat.MANIFEST
    if (path / "dataset_description.json").is_file() or any(path.glob("sub-*")):
        return DatasetFormat.BIDS
    raise InputError(path, "unknown dataset layout (no manifest.csv, dataset.json+imagesTr, or sub-* folders)")


def load_dataset(path: str | Path, fmt: DatasetFormat | str = DatasetFormat.AUTO) -> list[Case]:
    """Read every case of a dataset; images are opened lazily."""
    path = Path(path)
    fmt = DatasetFormat(fmt)
    if fmt is DatasetFormat.AUTO:
        fmt = detect_format(path)
    if fmt is DatasetFormat.MANIFEST:
        from mslesion.io.manifest import read_manifest

        if path.is_dir():
            path = path / "manifest.csv" if (path / "manifest.csv").is_file() else path / "manifest.tsv"
        return read_manifest(path)
    if fmt is DatasetFormat.BIDS:
        from mslesion.io.bids import read_bids

        return read_bids(path)
    from mslesion.io.nnunet import read_nnunet

    return read_nnunet(path)
