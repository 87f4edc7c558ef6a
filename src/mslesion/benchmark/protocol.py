"""Folds of a benchmark: which cases train and which are tested, identical for every method.

k-fold and leave-one-site-out re-use `train.splits` (the fold's "validation" part is the
test set here); cross-dataset folds name whole datasets. The training run of a fold gets
its test cases through `data.exclude`, so `run_training` never sees them; the training
config's own hold-out split then picks validation cases among the rest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mslesion.benchmark.config import Protocol, ProtocolSpec
from mslesion.errors import InputError
from mslesion.io.case import Case

CaseKey = tuple[str, str]  # (dataset name, case id): unique across the benchmark


@dataclass
class Fold:
    """One (train, test) split. `exclude` are case ids kept out of training."""

    name: str
    train_datasets: list[str]
    test: list[CaseKey]
    exclude: list[str] = field(default_factory=list)
    consistency: list[CaseKey] = field(default_factory=list)  # also segmented, not in the main tables
    held_out_site: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "test": [list(k) for k in self.test], "consistency": [list(k) for k in self.consistency]}


def prediction_path(fold_dir: Path, key: CaseKey) -> Path:
    """Where the fold's lesion mask of a case lies."""
    return fold_dir / "pred" / key[0] / key[1] / "lesion_mask.nii.gz"


def usable(cases: list[Case]) -> list[Case]:
    """Cases a benchmark can train and score on: a FLAIR and a lesion mask (as `train.run.load_cases`)."""
    return [c for c in cases if c.lesion is not None and "FLAIR" in c.images]


def _pooled(spec: ProtocolSpec, cases: dict[str, list[Case]]) -> tuple[list[Case], dict[str, str]]:
    """All cases of the protocol's datasets, in order, and each case id's dataset (ids must be unique)."""
    pooled: list[Case] = []
    owner: dict[str, str] = {}
    for name in spec.datasets:
        for case in cases[name]:
            if case.case_id in owner:
                raise InputError(
                    None,
                    f"case id {case.case_id!r} is in both {owner[case.case_id]} and {name}; "
                    "ids must be unique across the datasets of one fold",
                )
            owner[case.case_id] = name
            pooled.append(case)
    if len(pooled) < 2:
        raise InputError(None, f"{spec.kind.value} needs at least 2 usable cases, found {len(pooled)}")
    return pooled, owner


def _kfold(spec: ProtocolSpec, cases: dict[str, list[Case]]) -> list[Fold]:
    from mslesion.train.splits import kfold

    pooled, owner = _pooled(spec, cases)
    if spec.k > len(pooled):
        raise InputError(None, f"protocol.k = {spec.k} is more than the {len(pooled)} usable cases")
    folds = []
    for i in range(spec.k):
        _, test = kfold(pooled, spec.k, i, spec.seed)
        ids = [c.case_id for c in test]
        folds.append(Fold(f"fold-{i}", list(spec.datasets), [(owner[c], c) for c in ids], exclude=ids))
    return folds


def _leave_site_out(spec: ProtocolSpec, cases: dict[str, list[Case]]) -> list[Fold]:
    from mslesion.train.splits import leave_site_out

    pooled, owner = _pooled(spec, cases)
    unlabelled = [c.case_id for c in pooled if not c.meta.site]
    if unlabelled:
        raise InputError(None, f"leave-site-out needs a site for every case; none for {', '.join(unlabelled[:5])}")
    present = sorted({c.meta.site for c in pooled if c.meta.site})
    sites = spec.sites or present
    missing = [s for s in sites if s not in present]
    if missing or len(present) < 2:
        raise InputError(
            None, f"leave-site-out: sites {', '.join(missing) or '(fewer than 2)'} not usable; the data has {', '.join(present)}"
        )
    folds = []
    for site in sites:
        _, test = leave_site_out(pooled, site)
        ids = [c.case_id for c in test]
        folds.append(Fold(f"site-{site}", list(spec.datasets), [(owner[c], c) for c in ids], exclude=ids, held_out_site=site))
    return folds


def _cross_dataset(spec: ProtocolSpec, cases: dict[str, list[Case]]) -> list[Fold]:
    folds = []
    for entry in spec.folds:
        name = entry.name or "+".join(entry.train)
        test = [(d, c.case_id) for d in entry.test for c in cases[d]]
        if not test:
            raise InputError(None, f"cross-dataset fold {name}: no usable case in {', '.join(entry.test)}")
        folds.append(Fold(name, list(entry.train), test))
    names = [f.name for f in folds]
    if len(set(names)) != len(names):
        raise InputError(None, f"cross-dataset fold names repeat ({', '.join(names)}); give each fold a name")
    return folds


def build_folds(spec: ProtocolSpec, cases: dict[str, list[Case]]) -> list[Fold]:
    """The folds of the protocol over `cases` (dataset name -> usable cases)."""
    builders = {Protocol.KFOLD: _kfold, Protocol.LEAVE_SITE_OUT: _leave_site_out, Protocol.CROSS_DATASET: _cross_dataset}
    folds = builders[spec.kind](spec, cases)
    extra = [(d, c.case_id) for d in spec.consistency for c in cases[d]]
    for fold in folds:
        fold.consistency = [k for k in extra if k not in fold.test]
    return folds
