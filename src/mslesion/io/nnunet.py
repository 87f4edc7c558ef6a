"""nnU-Net raw dataset folders: `dataset.json`, `imagesTr/CASE_XXXX.nii.gz`, `labelsTr/CASE.nii.gz`.

Reads the nnU-Net v2 layout (`channel_names`, `file_ending`) and the v1 key `modality`.
Channel names become contrast names (e.g. "FLAIR", "T1"); labels > 0 count as lesion.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mslesion.errors import InputError
from mslesion.io.case import Case, CaseMeta, canonical_contrast
from mslesion.io.volume import Volume, load_volume

_CHANNEL_FILE = re.compile(r"(?P<case>.+)_(?P<channel>\d{4})$")


def _read_dataset_json(root: Path) -> dict:
    path = root / "dataset.json"
    if not path.is_file():
        raise InputError(root, "not an nnU-Net dataset folder (no dataset.json)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"invalid JSON ({exc.msg} at line {exc.lineno})") from None


def _channels(spec: dict, path: Path) -> dict[int, str]:
    names = spec.get("channel_names") or spec.get("modality")
    if not isinstance(names, dict) or not names:
        raise InputError(path, "dataset.json has no 'channel_names' (or 'modality')")
    return {int(k): canonical_contrast(str(v)) for k, v in names.items()}


def read_nnunet(root: str | Path, split: str = "Tr") -> list[Case]:
    """Cases of `imagesTr` (split='Tr') or `imagesTs` (split='Ts'), labels when present."""
    root = Path(root)
    spec = _read_dataset_json(root)
    channels = _channels(spec, root / "dataset.json")
    ending = spec.get("file_ending", ".nii.gz")
    image_dir, label_dir = root / f"images{split}", root / f"labels{split}"
    if not image_dir.is_dir():
        raise InputError(image_dir, "folder not found")
    grouped: dict[str, dict[str, Volume]] = {}
    for path in sorted(image_dir.glob(f"*{ending}")):
        match = _CHANNEL_FILE.fullmatch(path.name[: -len(ending)])
        if match is None:
            raise InputError(path, "name does not end in _XXXX (the channel index)")
        channel = int(match["channel"])
        if channel not in channels:
            raise InputError(path, f"channel {channel} is not in dataset.json channel_names")
        grouped.setdefault(match["case"], {})[channels[channel]] = load_volume(path)
    cases = []
    for case_id, images in grouped.items():
        missing = set(channels.values()) - set(images)
        if missing:
            raise InputError(image_dir, f"case {case_id} lacks channel(s) {sorted(missing)}")
        label = label_dir / f"{case_id}{ending}"
        cases.append(Case(case_id=case_id, images=images, lesion=load_volume(label) if label.is_file() else None, meta=CaseMeta()))
    if not cases:
        raise InputError(image_dir, f"no *{ending} images found")
    return cases
