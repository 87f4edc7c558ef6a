"""A case: one subject at one time point, with its named contrasts, masks and metadata."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mslesion.errors import InputError
from mslesion.io.volume import Volume

# Canonical contrast names. The set is open: any other name is kept, upper-cased.
CONTRASTS = ("FLAIR", "T1", "T2", "PD", "T1POST")

_ALIASES = {
    "T1W": "T1",
    "T1WI": "T1",
    "MPRAGE": "T1",
    "T2W": "T2",
    "T2WI": "T2",
    "PDW": "PD",
    "T1CE": "T1POST",
    "T1C": "T1POST",
    "T1GD": "T1POST",
    "T1POSTGD": "T1POST",
    "T2FLAIR": "FLAIR",
}


# Prefixes naming the visit of a longitudinal pair's images: `baseline_FLAIR`, `followup_T1`.
TIMEPOINTS = ("baseline", "followup")


def names_case(name: str, case_ids: Sequence[str]) -> bool:
    """Whether a file or donor name (e.g. `patient07_lesion.nii.gz`) is one of `case_ids`': the id
    itself or the id followed by `_` or `.`, so that `patient1` does not claim `patient10`'s mask."""
    return any(name == c or name.startswith((f"{c}_", f"{c}.")) for c in case_ids)


def required_contrasts(contrasts: Sequence[str]) -> tuple[str, ...]:
    """The inputs a model of these contrasts cannot do without: FLAIR, or both visits' FLAIR for a pair model."""
    if any(name.partition("_")[0] in TIMEPOINTS for name in contrasts):
        return ("baseline_FLAIR", "followup_FLAIR")
    return ("FLAIR",)


def canonical_contrast(name: str) -> str:
    """Map spellings such as 'T1w', 'flair' or 'T1Gd' to the canonical contrast name.

    A visit prefix is kept: 'followup_t1w' -> 'followup_T1'.
    """
    head, sep, rest = name.strip().partition("_")
    if sep and head.lower() in TIMEPOINTS:
        return f"{head.lower()}_{canonical_contrast(rest)}"
    key = name.strip().upper().replace("-", "").replace("_", "")
    return _ALIASES.get(key, key)


@dataclass
class CaseMeta:
    """What is known about where and how a case was acquired (all optional)."""

    subject: str | None = None
    session: str | None = None
    site: str | None = None
    scanner: str | None = None
    field_strength: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Case:
    """Named contrasts of one subject/time point, with optional lesion and brain masks."""

    case_id: str
    images: dict[str, Volume]
    lesion: Volume | None = None
    brain: Volume | None = None
    meta: CaseMeta = field(default_factory=CaseMeta)
    extra_masks: dict[str, Volume] = field(default_factory=dict)  # e.g. baseline_lesion of a pair

    @property
    def contrasts(self) -> list[str]:
        """The contrast names present, in the canonical order first."""
        known = [c for c in CONTRASTS if c in self.images]
        return known + sorted(c for c in self.images if c not in CONTRASTS)

    def reference(self) -> Volume:
        """The volume whose grid defines the case: FLAIR (a pair's follow-up FLAIR) when present, else the first contrast."""
        for name in ("FLAIR", "followup_FLAIR"):
            if name in self.images:
                return self.images[name]
        if self.images:
            return self.images[self.contrasts[0]]
        if self.lesion is not None:
            return self.lesion
        raise InputError(None, f"case {self.case_id!r} has no image")

    def check_same_grid(self) -> None:
        """Raise InputError naming the first file whose grid differs from the reference grid."""
        ref = self.reference()
        masks = [v for v in (self.lesion, self.brain) if v is not None] + list(self.extra_masks.values())
        others = list(self.images.values()) + masks
        for vol in others:
            if not vol.same_grid(ref):
                raise InputError(
                    vol.path,
                    f"grid {vol.shape} differs from {ref.path or 'the reference'} {ref.shape} "
                    "(shape or affine); co-register the contrasts or run `mslesion preprocess`",
                )
