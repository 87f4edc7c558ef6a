"""Property-based fuzzing of the readers at the door: NIfTI files, model cards and BIDS trees (hypothesis).

Whatever is generated, each reader returns a valid result or raises InputError (one line naming a
path), never another exception; the NIfTI reader never allocates more than its tiny inputs need,
whatever their headers claim. The default suite runs a few hundred derandomised examples (CI sees
the same ones every time); the slow tests run 10,000 random ones in all.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from mslesion.errors import InputError
from mslesion.io.limits import MIN_SLICES, SPACING_REFUSE_MM

QUICK = settings(deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def fast(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The default suite's run of a fuzz target: `examples` derandomised examples (the same in every CI run)."""
    return settings(QUICK, max_examples=examples)


def slow(examples: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """The long run of a fuzz target: `examples` random examples, marked slow (`pytest -m slow`)."""

    def mark(test: Callable[..., None]) -> Callable[..., None]:
        return pytest.mark.slow(settings(QUICK, max_examples=examples, derandomize=False)(test))

    return mark


def _refusal(exc: InputError) -> None:
    """An InputError as the CLI shows it: one line, naming a path (its kind is counted in --hypothesis-show-statistics)."""
    assert exc.path is not None and str(exc.path) in str(exc) and "\n" not in str(exc), repr(str(exc))
    event("refused: " + re.sub(r"'[^']*'|-?\d[\d.]*(e[+-]?\d+)?", "#", exc.problem)[:50])


# --- NIfTI ------------------------------------------------------------------------------------------------------

RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])
DTYPES = [
    np.uint8,
    np.int8,
    np.int16,
    np.uint16,
    np.int32,
    np.uint32,
    np.int64,
    np.uint64,
    np.float32,
    np.float64,
    np.complex64,
    np.complex128,
    RGB24,
]
DATATYPE_CODES = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2304, 3, 9999]
ODD_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, 12.0, 0.07, 1e-3, 1e-12, 30.0, 1e30, 1e37, -1e37, 1e-38, np.nan, np.inf, -np.inf]
DIMS_1 = [0, 1, 2, 3, 4, 5, 8, 64, 1024, 1025, 4096, 32767, -1]
DIMS_2 = DIMS_1 + [2**31, 2**40, 2**62]
NIFTI_MEMORY_LIMIT = 32 * 2**20  # the inputs hold at most a few hundred kB of voxels


def _voxels(dtype: np.dtype, shape: tuple[int, ...], kind: str, seed: int) -> np.ndarray:
    """Random bits (NaN, inf and denormals included), or normal noise at an odd scale with a NaN or inf put in."""
    rng = np.random.default_rng(seed)
    count = int(np.prod(shape))
    if kind == "bits" or dtype.fields is not None:
        return rng.integers(0, 256, count * dtype.itemsize, dtype=np.uint8).view(dtype).reshape(shape)
    scale = {"unit": 1.0, "huge": 1e300, "tiny": 1e-300, "nan": 1.0, "inf": 1.0}[kind]
    values = rng.normal(0, 1, shape) * scale
    if kind in ("nan", "inf"):
        values.flat[rng.integers(count)] = np.nan if kind == "nan" else np.inf
    with np.errstate(all="ignore"):
        return values.astype(dtype) if dtype.kind in "fc" else np.clip(np.nan_to_num(values), -1e18, 1e18).astype(dtype)


@st.composite
def nifti_files(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, file bytes): a small NIfTI-1 or -2 image whose header fields are set to odd values, then bytes mutated."""

    def odd() -> bool:  # each oddity in about one example of five (hypothesis favours 0 and the ends): some valid, most oddities alone
        return draw(st.integers(0, 4)) == 3

    nifti2 = draw(st.booleans())
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    ndim = draw(st.sampled_from([1, 2, 4, 5])) if odd() else 3
    shape = tuple(draw(st.lists(st.integers(1 if odd() else MIN_SLICES, 6), min_size=ndim, max_size=ndim)))
    data = _voxels(dtype, shape, draw(st.sampled_from(["unit", "huge", "tiny", "nan", "inf", "bits"])), draw(st.integers(0, 2**32 - 1)))
    endian = draw(st.sampled_from(["<", ">"]))
    header = (nib.Nifti2Header if nifti2 else nib.Nifti1Header)(endianness=endian)
    header.set_data_dtype(dtype)
    header.set_data_shape(shape)
    offset = 544 if nifti2 else 352
    header["vox_offset"] = offset
    header.set_qform(np.eye(4), code=1)
    header.set_sform(np.eye(4), code=draw(st.sampled_from([0, 2])))  # odd quaternions then disagree with it, or cannot be read
    floats = st.sampled_from(ODD_FLOATS)
    with np.errstate(all="ignore"):  # values beyond a float32 field's range become inf, as a broken writer's would
        if odd():
            dims = draw(st.lists(st.sampled_from(DIMS_2 if nifti2 else DIMS_1), min_size=7, max_size=7))
            header["dim"] = [draw(st.integers(-1, 9))] + dims
        if odd():
            header["datatype"] = draw(st.sampled_from(DATATYPE_CODES))
        if odd():
            header["pixdim"] = draw(st.lists(floats, min_size=8, max_size=8))
        if odd():
            header["scl_slope"], header["scl_inter"] = draw(floats), draw(floats)
        if odd():
            header["qform_code"], header["sform_code"] = draw(st.integers(-1, 5)), draw(st.integers(-1, 5))
        if odd():
            for name in ("quatern_b", "quatern_c", "quatern_d", "qoffset_x", "qoffset_y", "qoffset_z"):
                header[name] = draw(st.sampled_from(ODD_FLOATS + [0.7, -0.7, 0.9]))
        for name in ("srow_x", "srow_y", "srow_z"):
            if odd():
                header[name] = draw(st.lists(floats, min_size=4, max_size=4))
        if odd():
            header["vox_offset"] = draw(st.sampled_from([0, 1, offset + 1, offset + 64, 10**9, -1] + ([] if nifti2 else [np.nan])))
        if odd():
            header["magic"] = draw(st.sampled_from([b"ni1", b"n+2" if not nifti2 else b"n+1", b"xyz"]))
    raw = bytearray(
        header.binaryblock + b"\0" * (offset - len(header.binaryblock)) + data.astype(data.dtype.newbyteorder(endian)).tobytes(order="F")
    )
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)), max_size=4)) if odd() else []:
        raw[position] = value
    if odd():  # cut in the voxels, or anywhere
        raw = raw[: draw(st.integers(0 if odd() else min(offset, len(raw)), len(raw)))]
    return draw(st.sampled_from(["image.nii", "image.nii.gz"])), bytes(raw)


def _valid_volume(volume: Any) -> None:
    """What every Volume the reader returns must be: 3D of at least MIN_SLICES, scalar, finite float32, a sane grid."""
    array = volume.array
    assert len(volume.shape) == 3 and min(volume.shape) >= MIN_SLICES and array.shape == volume.shape
    assert array.dtype.kind in "biuf", array.dtype
    if array.dtype.kind == "f":
        assert array.dtype == np.float32 and np.isfinite(array).all()
    assert np.isfinite(volume.affine).all() and abs(np.linalg.det(volume.affine[:3, :3])) > 0
    lo, hi = SPACING_REFUSE_MM
    assert lo <= min(volume.spacing) and max(volume.spacing) <= hi
    assert all(isinstance(w, str) and "\n" not in w for w in volume.warnings)


def _check_nifti(case: tuple[str, bytes], folder: Path) -> None:
    from mslesion.io import load_volume

    name, raw = case
    path = folder / name
    path.write_bytes(gzip.compress(raw, compresslevel=1) if name.endswith(".gz") else raw)
    tracemalloc.start()
    try:
        volume = load_volume(path).validate()
    except InputError as exc:
        _refusal(exc)
        return
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < NIFTI_MEMORY_LIMIT, f"{peak / 2**20:.0f} MiB allocated for a {len(raw)}-byte file"
    _valid_volume(volume)
    event(f"valid volume, {len(volume.warnings)} warning(s)")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@fast(150)
@given(case=nifti_files())
def test_nifti_reader_returns_a_valid_volume_or_input_error(case: tuple[str, bytes], scratch: Path) -> None:
    _check_nifti(case, scratch)


@slow(5000)
@given(case=nifti_files())
def test_nifti_reader_fuzz_long(case: tuple[str, bytes], scratch: Path) -> None:
    _check_nifti(case, scratch)


# --- model cards ------------------------------------------------------------------------------------------------

TINY = {"features": [4, 4, 8, 8, 16, 4]}
# No subnormal floats: `mslesion train` (run in-process by other tests) turns on flush-to-zero, and hypothesis then refuses them.
JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.sampled_from([10**400, -(10**30), 2**63]),
    st.floats(allow_subnormal=False),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=10
)
ODD_NUMBERS = st.sampled_from(
    [
        0,
        1,
        -1,
        0.5,
        -0.0,
        1.0000001,
        1e-320,
        16,
        32,
        33.5,
        1024,
        1025,
        1e6,
        1e308,
        float("nan"),
        float("inf"),
        10**400,
        True,
        "0.5",
        "32",
        None,
    ]
)
CHANNELS = st.sampled_from([0, 1, 4, 8, 16, -4, 100000, 2**40, 4.5, "8", True])
NYUL = st.fixed_dictionaries(
    {
        "percentiles": st.lists(ODD_NUMBERS, max_size=4),
        "scale": st.lists(ODD_NUMBERS, max_size=3),
        "landmarks": st.lists(ODD_NUMBERS, max_size=4),
    }
)
GOOD_NYUL = {"percentiles": [1.0, 50.0, 99.0], "scale": [0.0, 100.0], "landmarks": [0.0, 40.0, 100.0]}
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "architecture": st.sampled_from(["unet", "cen", "dlb", "ensemble", "film-unet", "transformer", "", "UNET"]) | JSON_VALUES,
    "contrasts": st.lists(st.sampled_from(["FLAIR", "T1", "", "flair", 3, None]), max_size=3) | JSON_VALUES,
    "params": st.fixed_dictionaries({"features": st.lists(CHANNELS, max_size=8)}) | st.just(TINY) | JSON_VALUES,
    "normalisation": st.sampled_from(["zscore_brain", "nyul", "minmax", ""]) | JSON_VALUES,
    "patch_size": st.lists(ODD_NUMBERS, max_size=4) | JSON_VALUES,
    "threshold": ODD_NUMBERS | JSON_VALUES,
    "min_lesion_mm3": ODD_NUMBERS,
    "min_mean_probability": ODD_NUMBERS,
    "spacing_mm": st.lists(ODD_NUMBERS, max_size=4),
    "modality_dropout": st.booleans() | JSON_VALUES,
    "training": JSON_VALUES,
    "nyul": st.dictionaries(st.sampled_from(["FLAIR", "T1"]), NYUL | st.just(GOOD_NYUL) | JSON_VALUES, max_size=2) | JSON_VALUES,
    "version": JSON_VALUES,
}
RAW_CARDS = (
    st.sampled_from(
        [
            "",
            "{",
            "null",
            "[]",
            "1" * 5000,
            "[" * 100000 + "]" * 100000,
            '{"a": ' * 50000 + "1" + "}" * 50000,
            "\ufeff{}",
            '{"architecture": NaN}',
        ]
    )
    | st.text(max_size=40)
    | st.binary(max_size=40)
)


@st.composite
def model_cards(draw: st.DrawFn) -> str | bytes:
    """The text of a model.json: the tiny model's card with fields deleted, replaced or added, or raw text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(RAW_CARDS)
    card = {"architecture": "unet", "contrasts": ["FLAIR"], "params": TINY, "patch_size": [32, 32, 32]}
    for _ in range(draw(st.integers(1, 4))):
        field = draw(st.sampled_from(sorted(FIELD_VALUES) + ["colour"]))
        action = draw(st.sampled_from(["set", "set", "delete"]))
        if action == "delete":
            card.pop(field, None)
        else:
            card[field] = draw(FIELD_VALUES.get(field, JSON_VALUES))
    return json.dumps(card)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the tiny U-Net's weights; each example writes its own model.json beside them."""
    import torch

    from mslesion.models.registry import build_network
    from mslesion.models.store import ModelCard, save_model

    torch.manual_seed(0)
    card = ModelCard(architecture="unet", contrasts=["FLAIR"], params=TINY, patch_size=(32, 32, 32))
    return save_model(build_network("unet", 1, TINY).state_dict(), card, tmp_path_factory.mktemp("card") / "model")


def _check_card(text: str | bytes, folder: Path) -> None:
    from mslesion.models.store import check_card, load_model

    card_path = folder / "model.json"
    card_path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    try:
        net, card = load_model(folder)
    except InputError as exc:
        _refusal(exc)
        return
    check_card(card, card_path)
    assert all(isinstance(n, int) for n in card.patch_size) and not net.training
    event("loaded")


@fast(100)
@given(text=model_cards())
def test_model_card_loader_loads_or_raises_input_error(text: str | bytes, model_folder: Path) -> None:
    _check_card(text, model_folder)


@slow(2500)
@given(text=model_cards())
def test_model_card_loader_fuzz_long(text: str | bytes, model_folder: Path) -> None:
    _check_card(text, model_folder)


# --- BIDS trees -------------------------------------------------------------------------------------------------


def _tiny_nifti(shape: tuple[int, ...] = (4, 4, 4)) -> bytes:
    return gzip.compress(nib.Nifti1Image(np.ones(shape, np.float32), np.eye(4)).to_bytes(), compresslevel=1)


IMAGE_BYTES = {"image": _tiny_nifti(), "image_4d": _tiny_nifti((4, 4, 4, 2)), "empty": b"", "garbage": b"\x1f\x8b not gzip"}
ODD_FILES = ["image_4d", "empty", "garbage", "broken_link", "loop_link", "folder", "link_to_image"]
NAME_CHARS = st.text(alphabet=st.sampled_from(list("abcXY019-_. ~+é中")), max_size=6)
ODD_SUBJECT_PREFIXES = st.sampled_from(["sub_", "SUB-", "", "sub-."])
SUFFIXES = st.sampled_from(["FLAIR", "T1w", "T2w", "PD", "PDw"])
ODD_SUFFIXES = st.sampled_from(["bold", "FLAIR.", "", "flair"])
ODD_EXTENSIONS = st.sampled_from([".nii", ".nii.gz.bak", ".json", ".NII.GZ"])
ENTITIES = st.sampled_from(["", "_ce-gd", "_acq-3d", "_run-1", "_ce-", "__"])
SIDECAR_VALUES = (
    st.sampled_from([3, 1.5, "3", "3T", " 1.5 ", "n/a", "", None, [], {}, True, float("nan"), -1, 0, 1e308, 7e4, 10**400]) | JSON_VALUES
)
SIDECARS = (
    st.fixed_dictionaries(
        {}, optional={"MagneticFieldStrength": SIDECAR_VALUES, "InstitutionName": SIDECAR_VALUES, "ManufacturersModelName": SIDECAR_VALUES}
    ).map(json.dumps)
    | st.sampled_from(["[1, 2]", "3", "{", "", '{"MagneticFieldStrength": NaN}', "[" * 100000, '{"a": ' + "1" * 5000 + "}"])
    | st.binary(max_size=20)
)
TSV_CELLS = st.sampled_from(["", "n/a", "3", "3T", "1.5", "siteA", '"', "\x00", "é", "1e999"]) | st.text(max_size=5)


@st.composite
def bids_trees(draw: st.DrawFn) -> list[tuple[str, str, Any]]:
    """A small BIDS tree as (relative path, kind, content) entries; kinds: image kinds, 'sidecar', 'text', 'bytes', 'root_link'.

    Each oddity (a name, a file, a sidecar, a table) in about one draw of six, so some trees read whole.
    """

    def odd() -> bool:
        return draw(st.integers(0, 5)) == 4

    def name(prefix: str) -> str:
        found = (draw(ODD_SUBJECT_PREFIXES) if odd() else prefix) + (draw(NAME_CHARS) if odd() else draw(st.sampled_from("0123456789ab")))
        return found if found not in ("", ".", "..") else prefix + "x"

    entries: list[tuple[str, str, Any]] = []
    subjects = list(dict.fromkeys(name("sub-") for _ in range(draw(st.integers(1, 3)))))
    for sub in subjects:
        if odd() and odd():
            entries.append((sub, draw(st.sampled_from(["root_link", "loop_link", "broken_link", "image"])), None))
            continue
        sessions = list(dict.fromkeys(name("ses-") for _ in range(draw(st.integers(1, 2))))) if draw(st.booleans()) else []
        for rel in [f"{sub}/{ses}/anat" for ses in sessions] or [f"{sub}/anat"]:
            for _ in range(draw(st.integers(1, 3))):
                level = rel.split("/")[1] + "_" if sessions else ""
                entity = draw(ENTITIES) if odd() else ""
                stem = f"{sub}_{level}{draw(NAME_CHARS) + '_' if odd() else ''}{entity.lstrip('_') + '_' if entity else ''}{draw(ODD_SUFFIXES if odd() else SUFFIXES)}"
                entries.append(
                    (
                        f"{rel}/{stem}{draw(ODD_EXTENSIONS) if odd() else '.nii.gz'}",
                        draw(st.sampled_from(ODD_FILES)) if odd() else "image",
                        None,
                    )
                )
                if draw(st.booleans()):
                    entries.append((f"{rel}/{stem}.json", "sidecar", draw(SIDECARS) if odd() else json.dumps({"MagneticFieldStrength": 3})))
                if odd():
                    mask = f"derivatives/{draw(NAME_CHARS) or 'p'}/{rel}/{stem}_label-lesion_mask.nii.gz"
                    entries.append((mask, draw(st.sampled_from(ODD_FILES)) if odd() else "image", None))
    if draw(st.booleans()):
        rows = [["participant_id", *draw(st.permutations(["site", "field_strength", "scanner"]))]]
        rows += [
            [draw(st.sampled_from(subjects)), *(draw(st.lists(TSV_CELLS, max_size=4)) if odd() else ["A", "3", "X"])]
            for _ in range(draw(st.integers(0, 3)))
        ]
        entries.append(("participants.tsv", "text", "\n".join("\t".join(r) for r in rows) + "\n"))
    if odd() and odd():
        entries.append(("participants.tsv", "bytes", draw(st.binary(max_size=30))))
    if odd() and odd():
        entries.append(("derivatives", "text", "not a folder"))
    return entries


def _build(root: Path, entries: list[tuple[str, str, Any]]) -> None:
    """Lay the tree's entries out under `root` (an entry whose parent is no folder is left out)."""
    for rel, kind, content in entries:
        path = root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or path.is_symlink():
                continue
            if kind in IMAGE_BYTES:
                path.write_bytes(IMAGE_BYTES[kind])
            elif kind == "folder":
                path.mkdir()
            elif kind == "broken_link":
                path.symlink_to(root / "nowhere.nii.gz")
            elif kind == "loop_link":
                path.symlink_to(path.name)
            elif kind == "link_to_image":
                (root / "outside.nii.gz").write_bytes(IMAGE_BYTES["image"])
                path.symlink_to(root / "outside.nii.gz")
            elif kind == "root_link":
                path.symlink_to(root, target_is_directory=True)
            elif kind == "sidecar" and isinstance(content, bytes) or kind == "bytes":
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", errors="surrogatepass")
        except (NotADirectoryError, FileExistsError, FileNotFoundError):
            continue  # e.g. a file already stands where this entry's folder would go


def _check_bids(entries: list[tuple[str, str, Any]], base: Path) -> None:
    from mslesion.io.bids import list_sessions, read_bids, session_meta

    root = Path(tempfile.mkdtemp(dir=base))
    try:
        _build(root, entries)
        try:
            sessions = list_sessions(root)
        except InputError as exc:
            _refusal(exc)
            return
        for found in sessions:
            assert found.images and found.subject.startswith("sub-")
            try:
                meta = session_meta(root, found)
            except InputError as exc:
                _refusal(exc)
            else:
                assert meta.field_strength is None or 0 < meta.field_strength <= 20
                assert all(v is None or isinstance(v, str) for v in (meta.site, meta.scanner))
        try:
            cases = read_bids(root)
            for case in cases:
                for volume in [*case.images.values(), case.lesion, case.brain]:
                    if volume is not None:
                        _valid_volume(volume.validate())
            event(f"read {min(len(cases), 2)}{'+' if len(cases) > 2 else ''} case(s)")
        except InputError as exc:
            _refusal(exc)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@fast(100)
@given(entries=bids_trees())
def test_bids_reader_lists_and_reads_or_raises_input_error(entries: list[tuple[str, str, Any]], scratch: Path) -> None:
    _check_bids(entries, scratch)


@slow(2500)
@given(entries=bids_trees())
def test_bids_reader_fuzz_long(entries: list[tuple[str, str, Any]], scratch: Path) -> None:
    _check_bids(entries, scratch)


# --- DICOM series -----------------------------------------------------------------------------------------------

DICOM_UID = "1.2.826.0.1.3680043.2.1125.77"
GOOD_ORIENTATION = "1\\0\\0\\0\\0.6\\-0.8"  # oblique, unit length exactly (GDCM checks it when writing)
ODD_TEXT = [
    "",
    "abc",
    "nan\\nan\\nan",
    "inf\\0\\0",
    "1\\2",
    "1e300\\0\\0",
    "0\\0\\0\\0\\0\\0",
    "-0\\1\\0\\1\\0\\0",
    "1\\0\\0\\1\\0\\0",
    "0.5\\0.5",
    "0\\0",
    "-1\\2",
    "1e-9\\1e-9",
    "99999\\99999",
    "3.0",
    "\\\\\\",
]


@st.composite
def dicom_series(draw: st.DrawFn) -> dict[str, Any]:
    """A small series of one-slice files (SimpleITK/GDCM writes them), with odd headers, slices missing, doubled or out of
    order, files cut short or with bytes changed, and stray files beside them."""
    odd = lambda: draw(st.integers(0, 3)) == 0  # noqa: E731 - most of a case stays valid, so the reader gets past its first check
    slices, rows, cols = (draw(st.integers(1 if odd() else 3, n)) for n in (7, 9, 9))
    step = draw(st.sampled_from([2.5, 1.0, 0.0, -3.0, 1e-6, 40.0])) if odd() else 2.5
    positions = [f"-12\\30\\{5 + step * k:.6g}" for k in range(slices)]
    tags_per_slice: list[dict[str, str]] = []
    for k in range(slices):
        tags = {"0020|0032": positions[k], "0020|0037": GOOD_ORIENTATION, "0028|0030": "0.9\\0.8", "0020|0013": str(k + 1)}
        for _ in range(draw(st.integers(0, 2)) if odd() else 0):
            tags[draw(st.sampled_from(["0020|0032", "0020|0037", "0028|0030", "0018|0050", "0020|0013"]))] = draw(st.sampled_from(ODD_TEXT))
        tags_per_slice.append(tags)
    kind = draw(st.sampled_from(["unit", "bits", "const"]))
    operations = (
        draw(st.lists(st.tuples(st.sampled_from(["delete", "duplicate", "truncate", "flip", "junk"]), st.integers(0, 10**6)), max_size=3))
        if odd()
        else []
    )
    return {"shape": (slices, rows, cols), "tags": tags_per_slice, "kind": kind, "operations": operations}


def _write_dicom_case(case: dict[str, Any], folder: Path) -> None:
    import locale

    import SimpleITK as sitk

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(case["tags"]))
    slices, rows, cols = case["shape"]
    if case["kind"] == "bits":
        array = rng.integers(-32768, 32767, (slices, rows, cols)).astype(np.int16)
    else:
        array = (rng.normal(400, 20, (slices, rows, cols)) if case["kind"] == "unit" else np.full((slices, rows, cols), 7)).astype(np.int16)
    saved = locale.setlocale(locale.LC_ALL)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    files = []
    for k, tags in enumerate(case["tags"]):
        plane = sitk.GetImageFromArray(array[k])
        for tag, value in {
            "0020|000d": DICOM_UID + ".1",
            "0020|000e": DICOM_UID,
            "0008|0060": "MR",
            "0008|0018": f"{DICOM_UID}.2.{k + 1}",
            **tags,
        }.items():
            plane.SetMetaData(tag, value)
        files.append(folder / f"slice_{k:03d}.dcm")
        writer.SetFileName(str(files[-1]))
        try:
            writer.Execute(plane)
        except RuntimeError:  # a header GDCM will not even write (e.g. non-unit direction cosines): not a reader case
            locale.setlocale(locale.LC_ALL, saved)
            reject()
    locale.setlocale(locale.LC_ALL, saved)  # GDCM's writer switches the process to the "C" locale
    for operation, where in case["operations"]:
        target = files[where % len(files)]
        if not target.exists():
            continue
        raw = bytearray(target.read_bytes())
        if operation == "delete":
            target.unlink()
        elif operation == "duplicate":
            shutil.copy(target, folder / f"copy_{where}.dcm")
        elif operation == "truncate":
            target.write_bytes(bytes(raw[: where % len(raw)]))
        elif operation == "flip":
            raw[where % len(raw)] ^= 0xFF
            target.write_bytes(bytes(raw))
        else:
            (folder / f"junk_{where}.dcm").write_bytes(raw[:132] + b"\0" * (where % 300))


def _check_dicom(case: dict[str, Any], folder: Path) -> None:
    from mslesion.io import load_volume

    _write_dicom_case(case, folder)
    try:
        volume = load_volume(folder).validate()
    except InputError as exc:
        _refusal(exc)
        return
    _valid_volume(volume)
    event(f"valid volume, {len(volume.warnings)} warning(s)")


@fast(60)
@given(case=dicom_series())
def test_dicom_reader_returns_a_valid_volume_or_input_error(case: dict[str, Any], scratch: Path) -> None:
    _check_dicom(case, scratch / "dicom")


@slow(2500)
@given(case=dicom_series())
def test_dicom_reader_fuzz_long(case: dict[str, Any], scratch: Path) -> None:
    _check_dicom(case, scratch / "dicom")
