"""Aslani et al. 2020's scanner-invariant U-Net: shapes, inference without the head, the
three auxiliary losses (hand-computed values, and that they push site predictions to chance)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from mslesion.models.scanner_invariant import (
    ScannerInvariantUNet,
    build_scanner_invariant_unet,
    build_unet_bdm,
    build_unet_bm,
    pearson_site_loss,
    random_site_loss,
    uniform_site_loss,
)

TINY = (4, 8, 8, 8, 8)
N_SITES = 3

# Site probabilities chosen by hand: two samples, two sites, true sites 0 and 1.
PROBS = torch.tensor([[0.8, 0.2], [0.4, 0.6]])
LABELS = torch.tensor([0, 1])
# Pearson r of p = (.8, .2, .4, .6) and y = (1, 0, 0, 1): means .5 and .5,
# cov = .3*.5 + .3*.5 + .1*.5 + .1*.5 = .4, sum dp^2 = .2, sum dy^2 = 1 -> r = .4 / sqrt(.2).
PEARSON_R = 0.8944271909999159
# Cross-entropy to uniform: -(ln .8 + ln .2 + ln .4 + ln .6) / 4.
UNIFORM_CE = 0.8149244473
# Cross-entropy to each possible random labelling (label of sample 0, label of sample 1).
RANDOM_CE = {
    (0, 0): (-math.log(0.8) - math.log(0.4)) / 2,
    (0, 1): (-math.log(0.8) - math.log(0.6)) / 2,
    (1, 0): (-math.log(0.2) - math.log(0.4)) / 2,
    (1, 1): (-math.log(0.2) - math.log(0.6)) / 2,
}


def _tiny_model(aux: str = "pearson", **params) -> ScannerInvariantUNet:
    params = {"groups": 2, "head_hidden": (16, 8), **params}
    return ScannerInvariantUNet(1, N_SITES, features=TINY, aux=aux, **params)


@pytest.mark.parametrize("shape", [(16, 16, 16), (18, 20, 17)])
def test_output_shapes(shape: tuple[int, int, int]) -> None:
    x = torch.randn(2, 1, *shape)
    for net in (build_unet_bm(1, TINY, groups=2), build_unet_bdm(1, TINY, groups=2), _tiny_model()):
        assert net(x).shape == (2, 1, *shape)
    model = _tiny_model()
    model.train()
    model(x)
    assert model.last_site_logits is not None and model.last_site_logits.shape == (2, N_SITES)


def test_default_widths_and_dropout_placement() -> None:
    bm, bdm = build_unet_bm(2), build_unet_bdm(2)
    assert bm.features == (16, 32, 64, 128, 256) and len(bm.up) == 4
    assert not any(isinstance(m, nn.Dropout) for m in bm.modules())
    assert isinstance(bdm.drop, nn.Dropout) and bdm.drop.p == 0.5 and bdm.dropout_at == "block"


def test_segmentation_identical_with_and_without_regulariser() -> None:
    torch.manual_seed(0)
    plain = build_unet_bm(1, TINY, groups=2)
    torch.manual_seed(0)
    model = _tiny_model()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), model.unet.state_dict().values()))
    x = torch.randn(2, 1, 16, 16, 16)
    plain.eval()
    model.eval()
    with torch.no_grad():
        assert torch.equal(plain(x), model(x))
    assert model.last_site_logits is None  # the head is not run at inference
    model.train()
    model.regularise = False
    model(x)
    assert model.last_site_logits is None
    with pytest.raises(RuntimeError):
        model.auxiliary_loss(LABELS)


def test_pearson_hand_computed() -> None:
    logits = PROBS.log()
    assert pearson_site_loss(logits, LABELS).item() == pytest.approx(PEARSON_R, abs=1e-6)
    # Anti-correlated prediction: same |r| (absolute value is minimised, not r).
    assert pearson_site_loss(PROBS.flip(1).log(), LABELS).item() == pytest.approx(PEARSON_R, abs=1e-6)
    # Confident and right: r = 1.
    assert pearson_site_loss(torch.tensor([[9.0, -9.0], [-9.0, 9.0]]), LABELS).item() == pytest.approx(1.0, abs=1e-6)
    # Constant prediction: r = 0 and a finite gradient.
    constant = torch.zeros(2, 2, requires_grad=True)
    loss = pearson_site_loss(constant, LABELS)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and torch.isfinite(constant.grad).all()


def test_uniform_hand_computed() -> None:
    assert uniform_site_loss(PROBS.log()).item() == pytest.approx(UNIFORM_CE, abs=1e-6)
    assert uniform_site_loss(torch.zeros(4, 3)).item() == pytest.approx(math.log(3), abs=1e-6)


def test_random_labels_hand_computed() -> None:
    generator = torch.Generator().manual_seed(0)
    values = [random_site_loss(PROBS.log(), LABELS, generator).item() for _ in range(2000)]
    for value in values:
        assert min(abs(value - v) for v in RANDOM_CE.values()) < 1e-6
    assert len({round(v, 6) for v in values}) == 4  # every labelling occurs: drawn anew each call
    # Labels uniform over sites: the expectation is the cross-entropy to the uniform distribution.
    assert sum(values) / len(values) == pytest.approx(UNIFORM_CE, abs=0.02)


@pytest.mark.parametrize(("aux", "lam"), [("pearson", 0.2), ("random", 0.1), ("uniform", 0.3)])
def test_lambda_defaults_and_total_loss(aux: str, lam: float) -> None:
    assert _tiny_model(aux).lam == lam
    assert build_scanner_invariant_unet(1, N_SITES, features=TINY, aux=aux, groups=2).lam == lam
    model = _tiny_model(aux, lam=0.7)
    assert model.lam == 0.7
    model.train()
    model.last_site_logits = torch.log(torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3]]))
    labels = torch.tensor([0, 2])
    seg = torch.tensor(1.5)
    expected = model.auxiliary_loss(labels, torch.Generator().manual_seed(3))
    total = model.total_loss(seg, labels, torch.Generator().manual_seed(3))
    assert total.item() == pytest.approx(1.5 + 0.7 * expected.item(), abs=1e-6)


def _site_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 16^3 volumes per site; sites differ in texture: white noise, smooth noise, stripes."""
    noise = torch.randn(6, 1, 16, 16, 16, generator=generator)
    smooth = F.avg_pool3d(noise[2:4], 5, stride=1, padding=2)
    smooth = smooth / smooth.std()
    stripes = 2.0 * torch.sin(torch.arange(16.0) * 2.0).view(1, 1, 16, 1, 1) + 0.3 * noise[4:6]
    x = torch.cat([noise[0:2], smooth, stripes])
    return x, torch.tensor([0, 0, 1, 1, 2, 2])


def _site_stats(model: ScannerInvariantUNet, x: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean probability of the true site, and mean entropy of the site prediction."""
    with torch.no_grad():
        model(x)
        p = torch.softmax(model.last_site_logits, dim=1)
    return p[torch.arange(len(labels)), labels].mean().item(), -(p * p.log()).sum(1).mean().item()


def _site_parameters(model: ScannerInvariantUNet) -> list[nn.Parameter]:
    return [*model.unet.encoder.parameters(), *model.site_head.parameters()]


@pytest.fixture(scope="module")
def confident_site_model() -> tuple[ScannerInvariantUNet, torch.Tensor, torch.Tensor]:
    """A model whose site head predicts the true site confidently (trained with cross-entropy).

    Batch norm here: this tiny network's 1-voxel bottleneck under group norm leaves the
    head too little to learn the sites from in a few steps; the losses do not depend on it.
    """
    torch.manual_seed(0)
    model = _tiny_model(norm="batch")
    model.train()
    x, labels = _site_batch(torch.Generator().manual_seed(1))
    optimiser = torch.optim.Adam(_site_parameters(model), lr=1e-2)
    for _ in range(200):
        model(x)
        loss = F.cross_entropy(model.last_site_logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if _site_stats(model, x, labels)[0] > 0.95:
            break
    return model, x, labels


@pytest.mark.parametrize("aux", ["pearson", "random", "uniform"])
def test_auxiliary_loss_pushes_site_prediction_to_chance(confident_site_model, aux: str) -> None:
    """Encoder + head trained with the auxiliary loss alone, from a confident site classifier.

    Every loss brings the true site's probability to chance. The cross-entropies also make
    the prediction uncertain (entropy up); Pearson only makes it uncorrelated with the site:
    confident predictions of the wrong site satisfy it too, so for it |r| is checked instead.
    """
    start, x, labels = confident_site_model
    model = copy.deepcopy(start)
    model.aux = type(model.aux)(aux)
    p_true_before, entropy_before = _site_stats(model, x, labels)
    assert p_true_before > 0.95 and entropy_before < 0.2
    optimiser = torch.optim.Adam(_site_parameters(model), lr=3e-3)
    generator = torch.Generator().manual_seed(5)
    for _ in range(30):
        model(x)
        loss = model.auxiliary_loss(labels, generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    p_true_after, entropy_after = _site_stats(model, x, labels)
    chance = 1.0 / N_SITES
    assert abs(p_true_after - chance) < 0.6 * abs(p_true_before - chance)
    if aux == "pearson":
        assert pearson_site_loss(model.last_site_logits, labels).item() < 0.1
    else:
        assert entropy_after > 0.5  # from < 0.2; log(3) = 1.1 is chance
