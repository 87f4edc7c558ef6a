"""Train/validation splits: hold-out, k-fold, leave-one-site-out. Deterministic from a seed."""

from __future__ import annotations

import numpy as np

from mslesion.io.case import Case


def holdout(cases: list[Case], val_fraction: float, seed: int) -> tuple[list[Case], list[Case]]:
    """A random `val_fraction` of cases (at least one when there are two or more) for validation."""
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = 0 if len(cases) < 2 else max(1, int(round(val_fraction * len(cases))))
    val_idx = set(order[:n_val].tolist())
    return [c for i, c in enumerate(cases) if i not in val_idx], [c for i, c in enumerate(cases) if i in val_idx]


def kfold(cases: list[Case], n_folds: int, fold: int, seed: int) -> tuple[list[Case], list[Case]]:
    """Fold `fold` of `n_folds` (shuffled once with `seed`) is validation; the rest trains."""
    if not 0 <= fold < n_folds or n_folds < 2:
        raise ValueError(f"fold {fold} is not in 0..{n_folds - 1} (n_folds must be >= 2)")
    order = np.random.default_rng(seed).permutation(len(cases))
    val_idx = set(np.array_split(order, n_folds)[fold].tolist())
    return [c for i, c in enumerate(cases) if i not in val_idx], [c for i, c in enumerate(cases) if i in val_idx]


def leave_site_out(cases: list[Case], site: str) -> tuple[list[Case], list[Case]]:
    """Every case of `site` is held out; the others train."""
    sites = sorted({c.meta.site or "" for c in cases})
    if site not in sites:
        raise ValueError(f"site {site!r} not in the data (sites: {', '.join(sites)})")
    return [c for c in cases if c.meta.site != site], [c for c in cases if c.meta.site == site]


def split_cases(
    cases: list[Case], kind: str, *, val_fraction: float = 0.2, n_folds: int = 5, fold: int = 0, site: str | None = None, seed: int = 0
) -> tuple[list[Case], list[Case]]:
    """Dispatch on the split kind named in the config."""
    if kind == "none":
        return list(cases), []
    if kind == "holdout":
        return holdout(cases, val_fraction, seed)
    if kind == "kfold":
        return kfold(cases, n_folds, fold, seed)
    if kind == "leave_site_out":
        if site is None:
            raise ValueError("leave_site_out needs data.val_site")
        return leave_site_out(cases, site)
    raise ValueError(f"unknown split {kind!r}")
