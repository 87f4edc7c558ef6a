"""Every segmentation loss the toolkit's methods train with, selectable by name (`make_loss`).

Conventions shared by all losses:
  - `logits`: raw network outputs, shape (N, C, *spatial) with C >= 1 (usually (N, 1, D, H, W)).
    Each channel is its own binary foreground (lesion) map: probabilities are
    `sigmoid(logits)` computed inside the loss, never softmax.
  - `target`: same shape, values in {0, 1} (any dtype; converted to float).
  - the result is a scalar tensor. Region losses (Dice, Tversky, Jaccard, sensitivity-
    specificity) sum over the batch and the spatial axes per channel by default
    (`batch=True`: an empty patch is then only a problem when the whole batch is empty),
    then average over channels; `batch=False` computes one value per sample and averages.

Empty patches (no lesion) are common in MS training batches; every loss stays finite
there and still has a gradient (see each docstring for what it optimises then).

MONAI is used where its loss is exactly the documented formula (imported lazily: it
takes seconds to import); the others are written by hand with the reason next to them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

try:
    import torch
    from torch import nn
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ImportError("mslesion.losses needs PyTorch: pip install 'mslesion[torch]'") from error


class LossName(StrEnum):
    """Names accepted by `make_loss` (stored in training configs and model cards)."""

    DICE = "dice"
    DICE_CE = "dice_ce"
    FOCAL = "focal"
    TVERSKY = "tversky"
    GENERALIZED_JACCARD = "generalized_jaccard"
    SENSITIVITY_SPECIFICITY = "sensitivity_specificity"
    COMBINED = "combined"
    BLOB = "blob"


class ClassWeight(StrEnum):
    """Per-class weight of the generalized Jaccard loss, from the class volume V_c = sum(t_c)."""

    SQUARE = "square"  # 1 / V_c^2 (Sudre et al. 2017, generalised Dice)
    SIMPLE = "simple"  # 1 / V_c
    UNIFORM = "uniform"  # 1


def _monai_losses() -> Any:
    """The `monai.losses` module, imported on first use (it pulls thousands of modules)."""
    try:
        import monai.losses
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("this loss uses MONAI: pip install 'mslesion[torch]'") from error
    return monai.losses


def _checked_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`target` as float on the logits' device, after checking both have one (N, C, *spatial) shape."""
    if logits.ndim < 3:
        raise ValueError(f"logits must be (N, C, *spatial), got shape {tuple(logits.shape)}")
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} differs from logits shape {tuple(logits.shape)}")
    return target.to(device=logits.device, dtype=torch.float32)


def _reduce_dims(ndim: int, batch: bool) -> list[int]:
    """Axes summed by region losses: spatial axes, plus the batch axis when `batch`."""
    return ([0] if batch else []) + list(range(2, ndim))


def _check_range(name: str, value: float, low: float, high: float = math.inf, *, open_low: bool = False, open_high: bool = False) -> None:
    """ValueError unless `value` lies in the interval from `low` to `high` (ends open as told)."""
    below = value <= low if open_low else value < low
    above = value >= high if open_high else value > high
    if below or above or math.isnan(value):
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value}")


class SoftDiceLoss(nn.Module):
    """Soft Dice loss (Milletari et al. 2016, V-Net, 3DV) on sigmoid probabilities.

    L = 1 - (2 sum(p t) + eps) / (sum(p) + sum(t) + eps), p = sigmoid(logits).
    Sums run over the whole batch by default (`batch=True`); `batch=False` averages the
    per-sample losses. This is MONAI's `DiceLoss(sigmoid=True, smooth_nr=eps,
    smooth_dr=eps)`, used as is. On an all-background batch L = 1 - eps/(sum(p) + eps):
    close to 1 whatever the prediction, with a weak push of p towards 0; pair it with
    cross-entropy (`dice_ce`) when many patches are empty.
    """

    def __init__(self, eps: float = 1e-5, batch: bool = True) -> None:
        super().__init__()
        _check_range("eps", eps, 0.0, open_low=True)
        self.dice = _monai_losses().DiceLoss(sigmoid=True, batch=batch, smooth_nr=eps, smooth_dr=eps)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits.float(), _checked_target(logits, target))


class DiceBCELoss(nn.Module):
    """Soft Dice + binary cross-entropy, as in nnU-Net (Isensee et al. 2021, Nature Methods).

    L = dice_weight * SoftDice + ce_weight * mean(BCE(sigmoid(logits), t)).
    Dice handles the lesion/background imbalance; cross-entropy gives every voxel a
    gradient, also in empty patches. `pos_weight` (optional) multiplies the BCE term of
    lesion voxels (torch's `BCEWithLogitsLoss(pos_weight=...)`).

    Written as MONAI `DiceLoss` + torch `BCEWithLogitsLoss` rather than MONAI
    `DiceCELoss`: the latter uses BCE only for a single channel and switches to softmax
    cross-entropy for C > 1 (inconsistent with sigmoid Dice), and its `weight` means both
    BCE `pos_weight` and Dice class weights.
    """

    def __init__(
        self,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        eps: float = 1e-5,
        batch: bool = True,
        pos_weight: float | None = None,
    ) -> None:
        super().__init__()
        _check_range("dice_weight", dice_weight, 0.0)
        _check_range("ce_weight", ce_weight, 0.0)
        if pos_weight is not None:
            _check_range("pos_weight", pos_weight, 0.0, open_low=True)
        self.dice_weight = dice_weight
        self.ce_weight = ce_weight
        self.dice = SoftDiceLoss(eps=eps, batch=batch)
        self.bce = nn.BCEWithLogitsLoss(pos_weight=None if pos_weight is None else torch.tensor(pos_weight))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = _checked_target(logits, target)
        return self.dice_weight * self.dice(logits, target) + self.ce_weight * self.bce(logits.float(), target)


def _sums_per_label(values: torch.Tensor, ids: torch.Tensor, count: int) -> torch.Tensor:
    """(count + 1,) sums of `values` over the voxels of each label in `ids` (flat): background 0, lesions 1..count."""
    return torch.zeros(count + 1, device=values.device, dtype=values.dtype).index_add_(0, ids, values.reshape(-1))


class BlobLoss(nn.Module):
    """Blob loss (Kofler et al. 2023, "blob loss: instance imbalance aware loss functions for
    semantic segmentation", IPMI; MS lesions among its tasks): Dice + BCE on the whole patch plus
    the same loss once per lesion, so that every lesion weighs alike whatever its size.

    L = main_weight * DiceBCE(logits, t) + blob_weight * mean over (sample, channel) pairs holding
    lesions of the mean over their lesions k of DiceBCE on the voxels of the background and of
    lesion k only: the other lesions' voxels are left out of lesion k's Dice and BCE (the reference
    code multiplies the output by the mask instead, which leaves them in BCE's denominator). A small
    or missed lesion, which a global Dice hardly sees, costs as much as a large one: the paper's aim
    is lesion-wise F1, the MSSEG-2 metric. Lesions are the target's connected components, full connectivity (26
    in 3D), as `evaluate.lesion` counts them by default; patches without lesion add no blob term.

    Written by hand: MONAI has no blob loss and the reference code (github.com/neuronflow/blob_loss)
    is an example, not a package. Each lesion's terms are sums over the background (shared by all
    lesions) plus sums over the lesion, so one `index_add_` per map gives every lesion's loss
    instead of one masked copy of the patch per lesion.
    """

    def __init__(self, main_weight: float = 2.0, blob_weight: float = 1.0, eps: float = 1e-5) -> None:
        super().__init__()
        _check_range("main_weight", main_weight, 0.0)
        _check_range("blob_weight", blob_weight, 0.0)
        _check_range("eps", eps, 0.0, open_low=True)
        self.main_weight, self.blob_weight, self.eps = main_weight, blob_weight, eps
        self.main = DiceBCELoss(eps=eps)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        from scipy import ndimage

        target = _checked_target(logits, target)
        logits = logits.float()
        loss = self.main_weight * self.main(logits, target)
        probability = torch.sigmoid(logits)
        cross_entropy = nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
        lesion_terms = []
        for sample in range(target.shape[0]):
            for channel in range(target.shape[1]):
                mask = target[sample, channel].detach().cpu().numpy() > 0.5
                labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, mask.ndim))
                if count == 0:
                    continue
                ids = torch.from_numpy(labels.reshape(-1)).to(logits.device, torch.long)
                p = _sums_per_label(probability[sample, channel], ids, count)
                ce = _sums_per_label(cross_entropy[sample, channel], ids, count)
                size = torch.bincount(ids, minlength=count + 1).to(p.dtype)
                dice = 1 - (2 * p[1:] + self.eps) / (p[0] + p[1:] + size[1:] + self.eps)
                bce = (ce[0] + ce[1:]) / (size[0] + size[1:])
                lesion_terms.append((dice + bce).mean())
        if lesion_terms:
            loss = loss + self.blob_weight * torch.stack(lesion_terms).mean()
        return loss


class SigmoidFocalLoss(nn.Module):
    """Sigmoid focal loss (Lin et al. 2017, "Focal loss for dense object detection", ICCV).

    L = mean over voxels of -alpha_t (1 - p_t)^gamma log(p_t), with p_t = p for lesion
    voxels and 1 - p otherwise, alpha_t = alpha for lesion voxels and 1 - alpha otherwise
    (no alpha factor when alpha is None). gamma = 0 and alpha = None give plain BCE.
    This is MONAI's `FocalLoss(use_softmax=False)` (its `sigmoid_focal_loss` is this
    formula, computed from log-sigmoids for stability), used as is.
    """

    def __init__(self, gamma: float = 2.0, alpha: float | None = 0.25) -> None:
        super().__init__()
        _check_range("gamma", gamma, 0.0)
        if alpha is not None:
            _check_range("alpha", alpha, 0.0, 1.0)
        self.focal = _monai_losses().FocalLoss(use_softmax=False, gamma=gamma, alpha=alpha, reduction="mean")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.focal(logits.float(), _checked_target(logits, target))


class TverskyLoss(nn.Module):
    """Tversky loss (Salehi et al. 2017, "Tversky loss function for image segmentation
    using 3D fully convolutional deep networks", MLMI, on MS lesions).

    L = 1 - (TP + eps) / (TP + alpha FP + beta FN + eps), with TP = sum(p t),
    FP = sum(p (1 - t)), FN = sum((1 - p) t), p = sigmoid(logits). alpha weighs false
    positives, beta false negatives; the paper's best trade-off for MS lesions is
    alpha = 0.3, beta = 0.7 (favouring sensitivity); alpha = beta = 0.5 is soft Dice.
    This is MONAI's `TverskyLoss(sigmoid=True)`, used as is (same `batch` meaning as Dice).
    """

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, eps: float = 1e-5, batch: bool = True) -> None:
        super().__init__()
        _check_range("alpha", alpha, 0.0)
        _check_range("beta", beta, 0.0)
        _check_range("eps", eps, 0.0, open_low=True)
        self.tversky = _monai_losses().TverskyLoss(sigmoid=True, alpha=alpha, beta=beta, smooth_nr=eps, smooth_dr=eps, batch=batch)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.tversky(logits.float(), _checked_target(logits, target))


def class_weights(volumes: torch.Tensor, kind: ClassWeight | str = ClassWeight.SQUARE) -> torch.Tensor:
    """Generalized-overlap class weights from class volumes (classes on axis 0), summing to 1.

    An absent class (volume 0, weight inf) gets the largest finite weight among the
    others, as MONAI's `GeneralizedDiceLoss` does, so it neither dominates nor vanishes.
    """
    kind = ClassWeight(kind)
    volumes = volumes.detach().float()
    if kind is ClassWeight.UNIFORM:
        weights = torch.ones_like(volumes)
    elif kind is ClassWeight.SIMPLE:
        weights = 1.0 / volumes
    else:
        weights = 1.0 / volumes.square()
    infinite = torch.isinf(weights)
    largest_finite = torch.where(infinite, torch.zeros_like(weights), weights).amax(dim=0, keepdim=True)
    weights = torch.where(infinite, largest_finite, weights)
    return weights / weights.sum(dim=0, keepdim=True)


def generalized_jaccard_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: ClassWeight | str = ClassWeight.SQUARE,
    smooth: float = 1.0,
    batch: bool = True,
) -> torch.Tensor:
    """Smooth generalized Jaccard loss; see `GeneralizedJaccardLoss` for the formula."""
    target = _checked_target(logits, target)
    p_lesion = torch.sigmoid(logits.float())
    dims = _reduce_dims(logits.ndim, batch)
    probs = (1.0 - p_lesion, p_lesion)  # classes: background, lesion
    truths = (1.0 - target, target)
    volumes = torch.stack([t.sum(dims) for t in truths])
    intersections = torch.stack([(p * t).sum(dims) for p, t in zip(probs, truths, strict=True)])
    unions = torch.stack([(p + t - p * t).sum(dims) for p, t in zip(probs, truths, strict=True)])
    w = class_weights(volumes, weight)
    score = ((w * intersections).sum(dim=0) + smooth) / ((w * unions).sum(dim=0) + smooth)
    return (1.0 - score).mean()


class GeneralizedJaccardLoss(nn.Module):
    """Smooth generalized Jaccard loss of DeepLesionBrain (Kamraoui et al. 2022, "DeepLesionBrain:
    towards a broader deep-learning generalization for multiple sclerosis lesion
    segmentation", Medical Image Analysis 76:102312).

    Formula implemented, per channel, over classes c in {lesion, background} with
    p_lesion = sigmoid(logits), p_background = 1 - p_lesion, t_background = 1 - t:

        w_c   = 1 / V_c^2, V_c = sum(t_c)         (generalised Dice weights, Sudre et al. 2017)
        w^_c  = w_c / (w_lesion + w_background)   (normalised to sum 1)
        L     = 1 - (sum_c w^_c sum(p_c t_c) + smooth) / (sum_c w^_c sum(p_c + t_c - p_c t_c) + smooth)

    `smooth` is the paper's smoothing constant (default 1.0, the value in the authors'
    released Keras code): it keeps the ratio defined and its gradient bounded when a patch
    is empty. Normalising the weights leaves the ratio unchanged when smooth = 0; it
    keeps `smooth` on the scale of about one voxel of the rarer class. Without it the
    weighted sums are about 1/V (1e-3 for a 1000-voxel lesion) and a smooth of 1 would
    swamp them, giving a near-constant loss with vanishing gradients.
    An absent class (e.g. no lesion in the batch) takes the other class's weight instead
    of inf (MONAI `GeneralizedDiceLoss` rule). `weight="simple"` uses 1/V_c, close to the
    authors' code (1/(V_c + 1)); `"uniform"` gives equal class weights.

    Written by hand: MONAI has generalised Dice and a plain soft Jaccard (`DiceLoss(jaccard=True)`)
    but no class-weighted Jaccard over foreground and background.
    """

    def __init__(self, weight: ClassWeight | str = ClassWeight.SQUARE, smooth: float = 1.0, batch: bool = True) -> None:
        super().__init__()
        _check_range("smooth", smooth, 0.0)
        self.weight = ClassWeight(weight)
        self.smooth = smooth
        self.batch = batch

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return generalized_jaccard_loss(logits, target, self.weight, self.smooth, self.batch)


def sensitivity_specificity_loss(
    logits: torch.Tensor, target: torch.Tensor, r: float = 0.05, eps: float = 1e-6, batch: bool = True
) -> torch.Tensor:
    """Brosch et al.'s sensitivity-specificity loss; see `SensitivitySpecificityLoss`."""
    target = _checked_target(logits, target)
    squared_error = (target - torch.sigmoid(logits.float())).square()
    dims = _reduce_dims(logits.ndim, batch)
    lesion_error = (squared_error * target).sum(dims) / (target.sum(dims) + eps)
    background_error = (squared_error * (1.0 - target)).sum(dims) / ((1.0 - target).sum(dims) + eps)
    return (r * lesion_error + (1.0 - r) * background_error).mean()


class SensitivitySpecificityLoss(nn.Module):
    """Sensitivity-specificity loss (Brosch et al. 2016, "Deep 3D convolutional encoder networks
    with shortcuts for multiscale feature integration applied to multiple sclerosis lesion
    segmentation", IEEE TMI 35(5):1229-1239).

    E = r sum((t - p)^2 t) / (sum(t) + eps) + (1 - r) sum((t - p)^2 (1 - t)) / (sum(1 - t) + eps),
    p = sigmoid(logits): r times the mean squared error on lesion voxels (missed lesion,
    "sensitivity" term) plus (1 - r) times that on background voxels ("specificity" term).
    The paper uses r in [0.01, 0.1] (default 0.05): background errors are far more
    frequent, so a small r balances the two. Any r in (0, 1) is accepted. `eps` (1e-6)
    only keeps a term at 0 instead of 0/0 when its class is absent (no lesion in the
    batch); otherwise it changes the denominators by less than one part per million.
    Written by hand: MONAI has no such loss.
    """

    def __init__(self, r: float = 0.05, eps: float = 1e-6, batch: bool = True) -> None:
        super().__init__()
        _check_range("r", r, 0.0, 1.0, open_low=True, open_high=True)
        _check_range("eps", eps, 0.0, open_low=True)
        self.r = r
        self.eps = eps
        self.batch = batch

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sensitivity_specificity_loss(logits, target, self.r, self.eps, self.batch)


class CombinedLoss(nn.Module):
    """Weighted sum of named losses, e.g. `CombinedLoss({"dice": 1.0, "focal": 0.5})`.

    `params` gives each named loss its keyword arguments, e.g. `{"focal": {"gamma": 3.0}}`.
    """

    def __init__(self, weights: Mapping[str, float], params: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        super().__init__()
        params = dict(params or {})
        if not weights:
            raise ValueError("combined loss needs at least one named loss in `weights`")
        if LossName.COMBINED in weights:
            raise ValueError("a combined loss cannot contain another combined loss")
        extra = sorted(set(params) - set(weights))
        if extra:
            raise ValueError(f"params given for losses not in weights: {', '.join(extra)}")
        for name, value in weights.items():
            _check_range(f"weight of {name}", value, 0.0)
        self.weights = {str(name): float(value) for name, value in weights.items()}
        self.terms = nn.ModuleDict({name: make_loss(name, **params.get(name, {})) for name in self.weights})

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(
            (weight * self.terms[name](logits, target) for name, weight in self.weights.items()),
            start=torch.zeros((), device=logits.device),
        )


LOSSES: dict[str, Callable[..., nn.Module]] = {
    LossName.DICE: SoftDiceLoss,
    LossName.DICE_CE: DiceBCELoss,
    LossName.FOCAL: SigmoidFocalLoss,
    LossName.TVERSKY: TverskyLoss,
    LossName.GENERALIZED_JACCARD: GeneralizedJaccardLoss,
    LossName.SENSITIVITY_SPECIFICITY: SensitivitySpecificityLoss,
    LossName.COMBINED: CombinedLoss,
    LossName.BLOB: BlobLoss,
}


def make_loss(name: str, **params: Any) -> nn.Module:
    """The loss registered under `name`, built with `params` (its constructor's keywords)."""
    factory = LOSSES.get(name)
    if factory is None:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(sorted(LOSSES))}")
    return factory(**params)
