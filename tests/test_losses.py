"""Losses against hand-computed values on tiny tensors, limits, gradients and the registry.

Most cases use 4 voxels (shape 1x1x2x2x1) with logits = log(p / (1 - p)), so that
sigmoid(logits) = p = [0.8, 0.2, 0.5, 0.9] exactly (up to float rounding). Expected
values are literals worked out by hand in the comments, not computed with the code.
"""

from __future__ import annotations

import math

import pytest
import torch

from mslesion.losses import LOSSES, LossName, class_weights, make_loss

P = [0.8, 0.2, 0.5, 0.9]
SHAPE = (1, 1, 2, 2, 1)


def logits_for(probs: list[float], shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    """Logits whose sigmoid is `probs` (flattened in C order into `shape`)."""
    return torch.tensor([math.log(q / (1.0 - q)) for q in probs], dtype=torch.float32).reshape(shape)


def mask(values: list[int], shape: tuple[int, ...] = SHAPE) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32).reshape(shape)


def loss_value(name: str, probs: list[float], target: list[int], shape: tuple[int, ...] = SHAPE, **params) -> float:
    return float(make_loss(name, **params)(logits_for(probs, shape), mask(target, shape)))


# --- dice -----------------------------------------------------------------------------


def test_dice_hand_value() -> None:
    # t = [1, 0, 1, 0]: sum(p t) = 0.8 + 0.5 = 1.3, sum(p) = 2.4, sum(t) = 2
    # 1 - 2 * 1.3 / (2.4 + 2) = 1 - 2.6 / 4.4 = 0.4090909 (eps = 1e-5 is negligible)
    assert loss_value("dice", P, [1, 0, 1, 0]) == pytest.approx(0.4090909, abs=1e-5)


def test_dice_batch_sums_over_samples_and_per_sample_averages() -> None:
    shape = (2, 1, 2, 2, 1)
    probs, target = P + P, [1, 0, 1, 0] + [0, 0, 0, 1]
    # sample A: 1 - 2.6 / 4.4 = 0.4090909; sample B: sum(p t) = 0.9, sum(p) = 2.4, sum(t) = 1,
    # 1 - 1.8 / 3.4 = 0.4705882; per-sample mean = (0.4090909 + 0.4705882) / 2 = 0.4398396
    assert loss_value("dice", probs, target, shape, batch=False) == pytest.approx(0.4398396, abs=1e-5)
    # whole batch: sum(p t) = 1.3 + 0.9 = 2.2, sum(p) = 4.8, sum(t) = 3: 1 - 4.4 / 7.8 = 0.4358974
    assert loss_value("dice", probs, target, shape) == pytest.approx(0.4358974, abs=1e-5)


# --- dice_ce --------------------------------------------------------------------------


def test_dice_ce_hand_value() -> None:
    # t = [1, 0, 1, 0]: BCE per voxel = -ln 0.8, -ln 0.8, -ln 0.5, -ln 0.1
    # = 0.2231436, 0.2231436, 0.6931472, 2.3025851; mean = 3.4420195 / 4 = 0.8605049
    # dice = 0.4090909 (above); sum = 1.2695958
    assert loss_value("dice_ce", P, [1, 0, 1, 0]) == pytest.approx(1.2695958, abs=1e-5)
    # weights: 0.5 * 0.4090909 + 2 * 0.8605049 = 0.2045455 + 1.7210097 = 1.9255551
    value = loss_value("dice_ce", P, [1, 0, 1, 0], dice_weight=0.5, ce_weight=2.0)
    assert value == pytest.approx(1.9255551, abs=1e-5)


# --- focal ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        # t = [1, 0, 1, 0]: p_t = 0.8, 0.8, 0.5, 0.1; (1 - p_t)^2 = 0.04, 0.04, 0.25, 0.81;
        # -ln p_t = 0.2231436, 0.2231436, 0.6931472, 2.3025851; alpha_t = 0.25, 0.75, 0.25, 0.75
        # terms: 0.0022314, 0.0066943, 0.0433217, 1.3988204; mean = 1.4510679 / 4 = 0.3627670
        (0.25, 0.3627670),
        # no alpha: 0.0089257, 0.0089257, 0.1732868, 1.8650939; mean = 2.0562322 / 4 = 0.5140581
        (None, 0.5140581),
    ],
)
def test_focal_hand_value(alpha: float | None, expected: float) -> None:
    assert loss_value("focal", P, [1, 0, 1, 0], alpha=alpha) == pytest.approx(expected, abs=1e-5)


def test_focal_gamma_zero_without_alpha_is_bce() -> None:
    # mean BCE for t = [1, 0, 1, 0] is 0.8605049 (see dice_ce)
    assert loss_value("focal", P, [1, 0, 1, 0], gamma=0.0, alpha=None) == pytest.approx(0.8605049, abs=1e-5)


# --- tversky --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alpha", "beta", "expected"),
    [
        # t = [1, 0, 1, 0]: TP = 0.8 + 0.5 = 1.3, FP = 0.2 + 0.9 = 1.1, FN = 0.2 + 0.5 = 0.7
        # default alpha (FP) = 0.3, beta (FN) = 0.7: 1 - 1.3 / (1.3 + 0.33 + 0.49) = 1 - 1.3 / 2.12
        (0.3, 0.7, 0.3867925),
        # swapped: 1 - 1.3 / (1.3 + 0.77 + 0.21) = 1 - 1.3 / 2.28
        (0.7, 0.3, 0.4298246),
        # alpha = beta = 0.5 is Dice: 1 - 1.3 / (1.3 + 0.55 + 0.35) = 1 - 1.3 / 2.2 = 0.4090909
        (0.5, 0.5, 0.4090909),
    ],
)
def test_tversky_hand_value(alpha: float, beta: float, expected: float) -> None:
    assert loss_value("tversky", P, [1, 0, 1, 0], alpha=alpha, beta=beta) == pytest.approx(expected, abs=1e-5)


def test_tversky_defaults_favour_sensitivity() -> None:
    assert loss_value("tversky", P, [1, 0, 1, 0]) == pytest.approx(0.3867925, abs=1e-5)


# --- generalized jaccard --------------------------------------------------------------
# t = [1, 0, 0, 0], p = [0.8, 0.2, 0.5, 0.9]
# lesion:     V = 1, I = sum(p t) = 0.8, U = sum(p) + sum(t) - I = 2.4 + 1 - 0.8 = 2.6
# background: p0 = [0.2, 0.8, 0.5, 0.1], t0 = [0, 1, 1, 1]: V = 3, I = 0.8 + 0.5 + 0.1 = 1.4,
#             U = 1.6 + 3 - 1.4 = 3.2


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # square: w = 1/1, 1/9 -> normalised 0.9, 0.1; num = 0.9*0.8 + 0.1*1.4 = 0.86,
        # den = 0.9*2.6 + 0.1*3.2 = 2.66; smooth 1: 1 - 1.86 / 3.66 = 0.4918033
        ({}, 0.4918033),
        # smooth 0: 1 - 0.86 / 2.66 = 0.6766917 (= unnormalised 1 - (0.8 + 1.4/9) / (2.6 + 3.2/9))
        ({"smooth": 0.0}, 0.6766917),
        # simple: w = 1, 1/3 -> 0.75, 0.25; num = 0.6 + 0.35 = 0.95, den = 1.95 + 0.8 = 2.75
        ({"weight": "simple", "smooth": 0.0}, 0.6545455),
        # uniform: 0.5, 0.5; num = 0.4 + 0.7 = 1.1, den = 1.3 + 1.6 = 2.9; 1 - 1.1 / 2.9
        ({"weight": "uniform", "smooth": 0.0}, 0.6206897),
    ],
)
def test_generalized_jaccard_hand_value(params: dict, expected: float) -> None:
    assert loss_value("generalized_jaccard", P, [1, 0, 0, 0], **params) == pytest.approx(expected, abs=1e-5)


def test_generalized_jaccard_absent_lesion_takes_background_weight() -> None:
    # t = 0: lesion V = 0 -> w = inf, replaced by background's 1/16 -> normalised 0.5, 0.5
    # lesion I = 0, U = 2.4; background I = sum(1 - p) = 1.6, U = 1.6 + 4 - 1.6 = 4
    # num = 0.5 * 1.6 = 0.8, den = 0.5 * 2.4 + 0.5 * 4 = 3.2; 1 - 1.8 / 4.2 = 0.5714286
    assert loss_value("generalized_jaccard", P, [0, 0, 0, 0]) == pytest.approx(0.5714286, abs=1e-5)


def test_generalized_jaccard_batch_and_per_sample() -> None:
    shape = (2, 1, 2, 2, 1)
    probs, target = P + P, [1, 0, 0, 0] + [0, 0, 0, 0]
    # per sample: (0.4918033 + 0.5714286) / 2 = 0.5316159
    value = loss_value("generalized_jaccard", probs, target, shape, batch=False)
    assert value == pytest.approx(0.5316159, abs=1e-5)
    # whole batch: lesion V = 1, background V = 7 -> w = 1, 1/49 -> 0.98, 0.02
    # lesion I = 0.8, U = 4.8 + 1 - 0.8 = 5.0; background I = 1.4 + 1.6 = 3.0, U = 3.2 + 4 = 7.2
    # num = 0.784 + 0.06 = 0.844, den = 4.9 + 0.144 = 5.044; 1 - 1.844 / 6.044 = 0.6949040
    assert loss_value("generalized_jaccard", probs, target, shape) == pytest.approx(0.6949040, abs=1e-5)


def test_class_weights_replace_inf_by_largest_finite_weight() -> None:
    # volumes (background, lesion) = (16, 0): 1/256 and inf -> 1/256 both -> 0.5, 0.5
    weights = class_weights(torch.tensor([[16.0], [0.0]]))
    assert weights.flatten().tolist() == pytest.approx([0.5, 0.5])


# --- sensitivity-specificity ----------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "expected"),
    [
        # t = [1, 0, 1, 0]: lesion errors (1-0.8)^2 + (1-0.5)^2 = 0.04 + 0.25 = 0.29, / 2 = 0.145
        # background errors 0.2^2 + 0.9^2 = 0.04 + 0.81 = 0.85, / 2 = 0.425
        # r = 0.05: 0.05 * 0.145 + 0.95 * 0.425 = 0.00725 + 0.40375 = 0.411
        (0.05, 0.411),
        # r = 0.5: 0.0725 + 0.2125 = 0.285
        (0.5, 0.285),
    ],
)
def test_sensitivity_specificity_hand_value(r: float, expected: float) -> None:
    assert loss_value("sensitivity_specificity", P, [1, 0, 1, 0], r=r) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("r", [0.01, 0.05, 0.1])
def test_sensitivity_specificity_false_negatives_only(r: float) -> None:
    # t = [1, 1, 0, 0], p = [0.8, 0.5, ~0, ~0] (logits -20): only missed lesion voxels;
    # mean squared error on lesion voxels = (0.04 + 0.25) / 2 = 0.145, so E = r * 0.145
    probs = [0.8, 0.5, 1 / (1 + math.exp(20)), 1 / (1 + math.exp(20))]
    value = loss_value("sensitivity_specificity", probs, [1, 1, 0, 0], r=r)
    assert value == pytest.approx(r * 0.145, abs=1e-6)


def test_sensitivity_specificity_false_positives_only() -> None:
    # t = [1, 1, 0, 0], p = [~1, ~1, 0.2, 0.9]: background MSE = (0.04 + 0.81) / 2 = 0.425
    # E = (1 - 0.05) * 0.425 = 0.40375
    probs = [1 / (1 + math.exp(-20)), 1 / (1 + math.exp(-20)), 0.2, 0.9]
    value = loss_value("sensitivity_specificity", probs, [1, 1, 0, 0])
    assert value == pytest.approx(0.40375, abs=1e-6)


def test_sensitivity_specificity_empty_target_has_no_lesion_term() -> None:
    # t = 0: lesion term 0 / (0 + eps) = 0; background MSE = (0.64 + 0.04 + 0.25 + 0.81) / 4
    # = 1.74 / 4 = 0.435; E = 0.95 * 0.435 = 0.41325
    assert loss_value("sensitivity_specificity", P, [0, 0, 0, 0]) == pytest.approx(0.41325, abs=1e-5)


# --- channels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # channel 0: t = [1, 0, 0, 0] -> 0.4918033; channel 1: t = 0 -> 0.5714286; mean 0.5316159
        ("generalized_jaccard", 0.5316159),
        # channel 0: t = [1, 0, 0, 0]: lesion 0.04, background (0.04 + 0.25 + 0.81) / 3 = 0.3666667
        # -> 0.05 * 0.04 + 0.95 * 0.3666667 = 0.3503333; channel 1: 0.41325; mean 0.3817917
        ("sensitivity_specificity", 0.3817917),
    ],
)
def test_channels_are_separate_binary_problems_averaged(name: str, expected: float) -> None:
    shape = (1, 2, 2, 2, 1)
    assert loss_value(name, P + P, [1, 0, 0, 0] + [0, 0, 0, 0], shape) == pytest.approx(expected, abs=1e-5)


# --- combined -------------------------------------------------------------------------


def test_combined_is_the_weighted_sum() -> None:
    # dice 0.4090909 + 2 * focal 0.3627670 = 1.1346249
    value = loss_value("combined", P, [1, 0, 1, 0], weights={"dice": 1.0, "focal": 2.0})
    assert value == pytest.approx(1.1346249, abs=1e-5)
    # per-loss params: focal with gamma = 0, alpha = None is BCE (0.8605049): 0.4090909 + 0.8605049
    weights = {"dice": 1.0, "focal": 1.0}
    value = loss_value("combined", P, [1, 0, 1, 0], weights=weights, params={"focal": {"gamma": 0.0, "alpha": None}})
    assert value == pytest.approx(1.2695958, abs=1e-5)


def test_combined_refuses_nesting_and_stray_params() -> None:
    with pytest.raises(ValueError, match="combined"):
        make_loss("combined", weights={"combined": 1.0})
    with pytest.raises(ValueError, match="tversky"):
        make_loss("combined", weights={"dice": 1.0}, params={"tversky": {}})


# --- blob loss ---


def _blob_by_masking(logits: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """The blob term as the paper writes it: per lesion, Dice + BCE on a copy restricted to the
    background and that lesion (one sample, one channel, lesions labelled by hand in `target`)."""
    terms = []
    for k in range(1, int(target.max()) + 1):
        keep = (target == 0) | (target == k)
        p, t, x = torch.sigmoid(logits[keep]), (target[keep] == k).float(), logits[keep]
        dice = 1 - (2 * (p * t).sum() + eps) / (p.sum() + t.sum() + eps)
        terms.append(dice + torch.nn.functional.binary_cross_entropy_with_logits(x, t))
    return torch.stack(terms).mean()


def test_blob_loss_is_the_main_loss_plus_the_mean_over_lesions_of_each_lesions_loss() -> None:
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(1, 1, 10, 10, 10, generator=generator)
    lesions = torch.zeros(10, 10, 10)
    lesions[1:4, 1:4, 1:4] = 1  # 27 voxels
    lesions[7, 7, 6:8] = 2  # 2 voxels, not touching the first
    target = (lesions > 0).float()[None, None]
    expected = 2.0 * make_loss("dice_ce")(logits, target) + _blob_by_masking(logits[0, 0], lesions)
    assert float(make_loss("blob")(logits, target)) == pytest.approx(float(expected), rel=1e-5)
    # a sample without lesions adds no blob term: the same value with an empty sample beside it
    both = make_loss("blob", main_weight=0.0)(torch.cat([logits, logits]), torch.cat([target, torch.zeros_like(target)]))
    assert float(both) == pytest.approx(float(_blob_by_masking(logits[0, 0], lesions)), rel=1e-5)


def test_blob_loss_weighs_a_missed_small_lesion_like_a_large_one(cube: torch.Tensor) -> None:
    """A perfect 8^3 lesion and a missed single voxel: the global Dice hardly sees the miss, the blob term does."""
    target = cube.clone()
    target[..., 14, 14, 14] = 1
    logits = (cube * 2 - 1) * 20.0  # the small lesion predicted as background
    assert float(make_loss("dice_ce")(logits, target)) < 0.01
    assert float(make_loss("blob", main_weight=0.0)(logits, target)) > 0.45  # its lesion's Dice is about 1, halved over two lesions


# --- limits ---------------------------------------------------------------------------


@pytest.fixture
def cube() -> torch.Tensor:
    """A 16^3 patch with an 8^3 lesion."""
    target = torch.zeros(1, 1, 16, 16, 16)
    target[..., 4:12, 4:12, 4:12] = 1
    return target


@pytest.mark.parametrize("name", ["dice", "generalized_jaccard", "tversky", "sensitivity_specificity"])
def test_perfect_prediction_near_zero_reversed_near_max(name: str, cube: torch.Tensor) -> None:
    loss = make_loss(name)
    perfect = (cube * 2 - 1) * 20.0
    assert float(loss(perfect, cube)) == pytest.approx(0.0, abs=1e-4)
    # max is 1 for all four (Jaccard with smooth 1: 1 - 1 / (4096 + 1) = 0.99976)
    assert float(loss(-perfect, cube)) > 0.99


@pytest.mark.parametrize("name", ["dice_ce", "focal", "blob"])
def test_perfect_prediction_small_reversed_large(name: str, cube: torch.Tensor) -> None:
    loss = make_loss(name)
    perfect = (cube * 2 - 1) * 20.0
    assert float(loss(perfect, cube)) == pytest.approx(0.0, abs=1e-4)
    assert float(loss(-perfect, cube)) > 1.0  # about 20 per voxel of cross-entropy, times alpha_t


# --- gradients ------------------------------------------------------------------------

GRADIENT_CASES = [(name, {}) for name in LOSSES if name != LossName.COMBINED] + [
    ("combined", {"weights": {"generalized_jaccard": 1.0, "focal": 1.0}})
]


@pytest.mark.parametrize("lesion", [True, False], ids=["lesion", "all_background"])
@pytest.mark.parametrize(("name", "params"), GRADIENT_CASES, ids=[case[0] for case in GRADIENT_CASES])
def test_gradients_flow_and_stay_finite(name: str, params: dict, lesion: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 1, 6, 6, 6, generator=generator).requires_grad_()
    target = torch.zeros(2, 1, 6, 6, 6)
    if lesion:
        target[0, 0, 2:4, 2:4, 2:4] = 1
    loss = make_loss(name, **params)(logits, target)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0


# --- registry and validation ----------------------------------------------------------


def test_registry_names() -> None:
    assert set(LOSSES) == {"dice", "dice_ce", "focal", "tversky", "generalized_jaccard", "sensitivity_specificity", "combined", "blob"}
    assert isinstance(make_loss(LossName.TVERSKY), torch.nn.Module)


def test_make_loss_unknown_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="unknown loss 'jacard'") as info:
        make_loss("jacard")
    for name in LOSSES:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("sensitivity_specificity", {"r": 0.0}),
        ("sensitivity_specificity", {"r": 1.0}),
        ("focal", {"alpha": 1.5}),
        ("tversky", {"alpha": -0.1}),
        ("generalized_jaccard", {"smooth": -1.0}),
        ("dice", {"eps": 0.0}),
    ],
)
def test_invalid_parameters_raise(name: str, params: dict) -> None:
    with pytest.raises(ValueError):
        make_loss(name, **params)


def test_generalized_jaccard_unknown_weight_raises() -> None:
    with pytest.raises(ValueError):
        make_loss("generalized_jaccard", weight="cubic")


@pytest.mark.parametrize("name", [name for name in LOSSES if name != LossName.COMBINED])
def test_shape_mismatch_raises(name: str) -> None:
    with pytest.raises(ValueError, match="shape"):
        make_loss(name)(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
