"""Malformed BIDS metadata (sidecars, participants.tsv): one InputError naming the file, never a traceback.

Found by tests/badinput/test_fuzz_readers.py; a cohort turns these into its session's row in failures.csv.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from mslesion.errors import InputError
from mslesion.io.bids import list_sessions, read_bids, session_meta


def _dataset(root: Path, sidecar: bytes | None = None, participants: bytes | None = None) -> Path:
    """One subject with a 4^3 FLAIR, its sidecar and a participants table as given."""
    anat = root / "sub-01" / "anat"
    anat.mkdir(parents=True)
    (anat / "sub-01_FLAIR.nii.gz").write_bytes(gzip.compress(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)).to_bytes()))
    if sidecar is not None:
        (anat / "sub-01_FLAIR.json").write_bytes(sidecar)
    if participants is not None:
        (root / "participants.tsv").write_bytes(participants)
    return root


def _meta(root: Path):
    return session_meta(root, list_sessions(root)[0])


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        (b'{"MagneticFieldStrength": "3T"}', "MagneticFieldStrength '3T' is not a field strength in tesla (a number in (0, 20])"),
        (b'{"MagneticFieldStrength": NaN}', "MagneticFieldStrength nan is not a field strength"),
        (b'{"MagneticFieldStrength": true}', "MagneticFieldStrength True is not a field strength"),
        (b'{"MagneticFieldStrength": [3]}', "MagneticFieldStrength [3] is not a field strength"),
        (b'{"InstitutionName": ["A", "B"]}', "InstitutionName must be text, not a list"),
        (b"[1, 2]", "JSON sidecar is not an object (a list)"),
        (b'{"Site": "\xff"}', "unreadable JSON sidecar"),
        (b"[" * 100000, "unreadable JSON sidecar"),
    ],
    ids=["3T", "nan", "bool", "list", "site_list", "array", "not_utf8", "nested"],
)
def test_malformed_sidecar_is_one_line_naming_it(sidecar: bytes, message: str, tmp_path: Path) -> None:
    root = _dataset(tmp_path / "bids", sidecar=sidecar)
    with pytest.raises(InputError) as err:
        _meta(root)
    assert str(err.value).startswith(f"{root / 'sub-01' / 'anat' / 'sub-01_FLAIR.json'}: ") and message in str(err.value)
    with pytest.raises(InputError):
        read_bids(root)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (b"participant_id\tfield_strength\nsub-01\t3T\n", "field_strength of sub-01 '3T' is not a field strength in tesla"),
        (b"participant_id\tsite\nsub-01\t\xff\n", "unreadable participants table (UnicodeDecodeError)"),
    ],
    ids=["3T", "not_utf8"],
)
def test_malformed_participants_table_is_one_line_naming_it(table: bytes, message: str, tmp_path: Path) -> None:
    root = _dataset(tmp_path / "bids", participants=table)
    with pytest.raises(InputError) as err:
        read_bids(root)
    assert str(err.value).startswith(f"{root / 'participants.tsv'}: ") and message in str(err.value)


def test_sidecar_numbers_as_text_and_n_a_are_read(tmp_path: Path) -> None:
    sidecar = json.dumps({"MagneticFieldStrength": " 1.5 ", "InstitutionName": 5, "ManufacturersModelName": "n/a"}).encode()
    meta = _meta(_dataset(tmp_path / "bids", sidecar=sidecar, participants=b"participant_id\tfield_strength\nsub-01\tn/a\n"))
    assert (meta.field_strength, meta.site, meta.scanner) == (1.5, "5", None)
