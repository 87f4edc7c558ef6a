"""Scanner-invariant U-Net (Aslani et al. 2020, "Scanner invariant multiple sclerosis lesion
segmentation from MRI", ISBI 2020, pp. 781-785).

A 3D U-Net of 4 down and 4 up stages segments lesions; during training a small
regularisation network reads the globally average-pooled bottleneck features and predicts
the scanning site, and an auxiliary loss pushes that prediction towards chance. The encoder
is thereby trained to keep site (scanner) information out of the features the decoder uses,
so that it generalises better to unseen sites. Three auxiliary losses:

- `pearson`: |Pearson correlation| between the softmax site prediction and the one-hot site;
- `random`: cross-entropy to a site label drawn at random at every call;
- `uniform`: cross-entropy to the uniform distribution over sites.

Total loss: seg_loss + lam * aux, with default lam = 0.2 (pearson), 0.1 (random), 0.3
(uniform); tune it on validation data for other site mixes. The regulariser exists only
for training: in eval mode (or with `regularise=False`) the forward pass never runs it,
and `model.unet` is a plain U-Net whose weights load into `build_unet_bm` (same features
and norm) for inference.

`UNet3D` (the configurable U-Net used here and by `mslesion.models.dlb`) lives in this module
because both methods need a U-Net that exposes its bottleneck and places dropout precisely,
which MONAI's `BasicUNet` does not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from enum import StrEnum

import torch
from torch import nn
from torch.nn import functional as F

ASLANI_FEATURES = (16, 32, 64, 128, 256)


class Norm(StrEnum):
    """Normalisation layer of a `UNet3D` block."""

    GROUP = "group"
    INSTANCE = "instance"
    BATCH = "batch"


class Activation(StrEnum):
    """Non-linearity of a `UNet3D` block."""

    LEAKY_RELU = "leaky_relu"
    RELU = "relu"


class DropoutAt(StrEnum):
    """Where `UNet3D` applies dropout in the encoder (never in the decoder)."""

    BLOCK = "block"  # on the output of each down-sampled encoder block (bottleneck included)
    POOL = "pool"  # right after each max-pooling, before the block


class SiteAux(StrEnum):
    """Auxiliary (site-confusion) losses of Aslani et al. 2020."""

    PEARSON = "pearson"
    RANDOM = "random"
    UNIFORM = "uniform"


DEFAULT_LAMBDA: dict[SiteAux, float] = {SiteAux.PEARSON: 0.2, SiteAux.RANDOM: 0.1, SiteAux.UNIFORM: 0.3}
PEARSON_EPS = 1e-12


def _norm_layer(kind: Norm, channels: int, groups: int) -> nn.Module:
    """A normalisation layer; group norm uses gcd(groups, channels) groups so tiny widths work."""
    if kind is Norm.GROUP:
        return nn.GroupNorm(math.gcd(groups, channels), channels)
    if kind is Norm.INSTANCE:
        return nn.InstanceNorm3d(channels, affine=True)
    return nn.BatchNorm3d(channels)


def _conv_block(in_channels: int, out_channels: int, norm: Norm, groups: int, act: Activation) -> nn.Sequential:
    """Two 3x3x3 convolutions, each followed by normalisation and the activation."""
    layers: list[nn.Module] = []
    for c_in in (in_channels, out_channels):
        layers += [
            nn.Conv3d(c_in, out_channels, kernel_size=3, padding=1),
            _norm_layer(norm, out_channels, groups),
            nn.LeakyReLU(0.01, inplace=True) if act is Activation.LEAKY_RELU else nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class UNet3D(nn.Module):
    """A 3D U-Net (Cicek et al. 2016) with len(features) - 1 down and as many up stages.

    Encoder level k is a double-convolution block of features[k] channels, after a 2x2x2
    max-pooling for k > 0; the decoder up-samples with 2x2x2 transposed convolutions,
    concatenates the skip connection and applies a double-convolution block; a 1x1x1
    convolution gives one logit channel. Any input size works: an up-sampled map one voxel
    short of its skip (odd sizes) is padded by replication. `encode` returns every level's
    features (the bottleneck last) so a method can read the bottleneck.
    """

    def __init__(
        self,
        in_channels: int,
        features: Sequence[int],
        *,
        norm: Norm | str = Norm.GROUP,
        groups: int = 8,
        act: Activation | str = Activation.LEAKY_RELU,
        dropout: float = 0.0,
        dropout_at: DropoutAt | str = DropoutAt.BLOCK,
    ) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        if len(features) < 2 or min(features) < 1:
            raise ValueError(f"features needs at least 2 positive widths, got {features}")
        if in_channels < 1 or groups < 1:
            raise ValueError(f"in_channels and groups must be positive, got {in_channels}, {groups}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        norm, act, self.dropout_at = Norm(norm), Activation(act), DropoutAt(dropout_at)
        self.features = features
        widths = (in_channels, *features)
        self.encoder = nn.ModuleList(_conv_block(widths[k], widths[k + 1], norm, groups, act) for k in range(len(features)))
        self.pool = nn.MaxPool3d(2)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        deep_to_shallow = range(len(features) - 1, 0, -1)
        self.up = nn.ModuleList(nn.ConvTranspose3d(features[k], features[k - 1], kernel_size=2, stride=2) for k in deep_to_shallow)
        self.decoder = nn.ModuleList(_conv_block(2 * features[k - 1], features[k - 1], norm, groups, act) for k in deep_to_shallow)
        self.head = nn.Conv3d(features[0], 1, kernel_size=1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Features of every encoder level, full resolution first, bottleneck last."""
        levels = []
        for k, block in enumerate(self.encoder):
            if k > 0:
                x = self.pool(x)
                if self.dropout_at is DropoutAt.POOL:
                    x = self.drop(x)
            x = block(x)
            if k > 0 and self.dropout_at is DropoutAt.BLOCK:
                x = self.drop(x)
            levels.append(x)
        return levels

    def decode(self, levels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Segmentation logits (N, 1, D, H, W) from the encoder's levels."""
        x = levels[-1]
        for up, block, skip in zip(self.up, self.decoder, reversed(levels[:-1]), strict=True):
            x = up(x)
            short = [s - u for s, u in zip(skip.shape[2:], x.shape[2:], strict=True)]
            if any(short):
                x = F.pad(x, (0, short[2], 0, short[1], 0, short[0]), mode="replicate")
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def build_unet_bm(in_channels: int, features: Sequence[int] = ASLANI_FEATURES, norm: Norm | str = Norm.GROUP, groups: int = 8) -> UNet3D:
    """Aslani et al. 2020's baseline model (BM): the 4-down/4-up 3D U-Net, no dropout.

    Group norm (8 groups) and LeakyReLU. Group norm rather than batch norm: it is computed
    per sample, so batches of 2 patches and unseen sites at test time meet the same
    statistics as in training; rather than instance norm: it keeps the channels' relative
    means within a group, which is what the global average pool hands the site head
    (instance norm sets each channel's mean to its bias before the activation).
    """
    return UNet3D(in_channels, features, norm=norm, groups=groups)


def build_unet_bdm(
    in_channels: int,
    features: Sequence[int] = ASLANI_FEATURES,
    dropout: float = 0.5,
    norm: Norm | str = Norm.GROUP,
    groups: int = 8,
) -> UNet3D:
    """Aslani et al. 2020's baseline with dropout (BDM): BM plus dropout (p = 0.5).

    Dropout acts on the output of each of the 4 down-sampled encoder blocks, the bottleneck
    included (so the skip connections of levels 1-3 and the bottleneck are regularised);
    the full-resolution block and the decoder stay deterministic: dropout at the shallowest
    level would randomly remove the fine detail small lesions depend on, and Bayesian SegNet
    (Kendall et al. 2017, BMVC) found dropout at every layer too strong a regulariser and the
    deeper units the best place for it.
    """
    return UNet3D(in_channels, features, norm=norm, groups=groups, dropout=dropout, dropout_at=DropoutAt.BLOCK)


class SiteHead(nn.Module):
    """Aslani et al.'s regularisation network: 3 dense layers on the pooled bottleneck -> site logits.

    Softmax is applied by the auxiliary losses, so the head returns logits.
    """

    def __init__(self, in_features: int, n_sites: int, hidden: Sequence[int] = (128, 64)) -> None:
        super().__init__()
        h1, h2 = (int(h) for h in hidden)
        self.layers = nn.Sequential(
            nn.Linear(in_features, h1),
            nn.ReLU(inplace=True),
            nn.Linear(h1, h2),
            nn.ReLU(inplace=True),
            nn.Linear(h2, n_sites),
        )

    def forward(self, bottleneck: torch.Tensor) -> torch.Tensor:
        return self.layers(bottleneck.mean(dim=(2, 3, 4)))


def pearson_site_loss(site_logits: torch.Tensor, site_labels: torch.Tensor, eps: float = PEARSON_EPS) -> torch.Tensor:
    """|Pearson r| between softmax(site_logits) and one-hot(site_labels), both flattened over the batch.

    The absolute value, not r itself: the goal is a prediction that carries no site
    information, and r = -1 (confidently predicting a wrong site, always the same way) is
    as informative as r = +1; minimising r would reward it. |r| is minimal (0) when the
    predictions are uncorrelated with the sites, e.g. constant; unlike the cross-entropy
    losses it does not ask for uncertain predictions (confident but site-uncorrelated ones
    also reach 0). `eps` inside the square
    root keeps r (and its gradient) finite when all predictions are equal.
    """
    n_sites = site_logits.shape[1]
    p = torch.softmax(site_logits.float(), dim=1).flatten()
    y = F.one_hot(site_labels.long(), n_sites).to(p).flatten()
    dp, dy = p - p.mean(), y - y.mean()
    r = (dp * dy).sum() / torch.sqrt(dp.square().sum() * dy.square().sum() + eps)
    return r.abs()


def random_site_loss(site_logits: torch.Tensor, site_labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Cross-entropy to site labels drawn uniformly over all sites, afresh at every call.

    Drawn uniformly rather than by permuting the batch's true labels: with batches of
    2-4 patches a permutation gives a patch its own site with probability >= 1/N, so the
    target would still correlate with the true site. `site_labels` only gives the batch size.
    """
    n, n_sites = site_logits.shape[0], site_logits.shape[1]
    if site_labels.shape[0] != n:
        raise ValueError(f"{site_labels.shape[0]} site labels for a batch of {n}")
    device = generator.device if generator is not None else torch.device("cpu")
    random_labels = torch.randint(n_sites, (n,), generator=generator, device=device).to(site_logits.device)
    return F.cross_entropy(site_logits.float(), random_labels)


def uniform_site_loss(site_logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy to the uniform distribution over sites: mean of -1/S sum_s log p_s.

    Its minimum is log(S), reached by a uniform prediction (the gradient equals KL's).
    """
    return -torch.log_softmax(site_logits.float(), dim=1).mean(dim=1).mean()


class ScannerInvariantUNet(nn.Module):
    """Aslani et al. 2020's U-Net with a site-confusion regulariser on its bottleneck.

    `forward(x)` returns segmentation logits (N, 1, D, H, W). In training mode with
    `regularise` True it also runs the site head and keeps its logits in
    `last_site_logits` (with their graph) for `auxiliary_loss` / `total_loss`; otherwise the
    head is not run and `last_site_logits` is None. The head's gradient flows into the
    encoder (no gradient reversal): encoder and head minimise the auxiliary loss together.
    """

    def __init__(
        self,
        in_channels: int,
        n_sites: int,
        features: Sequence[int] = ASLANI_FEATURES,
        aux: SiteAux | str = SiteAux.PEARSON,
        lam: float | None = None,
        dropout: float = 0.0,
        norm: Norm | str = Norm.GROUP,
        groups: int = 8,
        head_hidden: Sequence[int] = (128, 64),
    ) -> None:
        super().__init__()
        if n_sites < 2:
            raise ValueError(f"site confusion needs at least 2 sites, got {n_sites}")
        self.aux = SiteAux(aux)
        self.lam = DEFAULT_LAMBDA[self.aux] if lam is None else float(lam)
        if self.lam < 0 or not math.isfinite(self.lam):
            raise ValueError(f"lam must be a finite value >= 0, got {lam}")
        self.n_sites = n_sites
        # The U-Net is built first so that, from one seed, its weights equal build_unet_bm/bdm's.
        self.unet = UNet3D(in_channels, features, norm=norm, groups=groups, dropout=dropout)
        self.site_head = SiteHead(self.unet.features[-1], n_sites, head_hidden)
        self.regularise = True
        self.last_site_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        levels = self.unet.encode(x)
        run_head = self.training and self.regularise
        self.last_site_logits = self.site_head(levels[-1]) if run_head else None
        return self.unet.decode(levels)

    def auxiliary_loss(self, site_labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The auxiliary loss (`aux`) of the site logits of the last training forward pass."""
        logits = self.last_site_logits
        if logits is None:
            raise RuntimeError("no site prediction: run forward in training mode with regularise=True first")
        if self.aux is SiteAux.PEARSON:
            return pearson_site_loss(logits, site_labels)
        if self.aux is SiteAux.RANDOM:
            return random_site_loss(logits, site_labels, generator)
        return uniform_site_loss(logits)

    def total_loss(self, seg_loss: torch.Tensor, site_labels: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """seg_loss + lam * auxiliary_loss(site_labels)."""
        return seg_loss + self.lam * self.auxiliary_loss(site_labels, generator)


def build_scanner_invariant_unet(in_channels: int, n_sites: int, **params: object) -> ScannerInvariantUNet:
    """Registry builder for `ScannerInvariantUNet` (params: features, aux, lam, dropout, norm, ...)."""
    return ScannerInvariantUNet(in_channels, n_sites, **params)  # type: ignore[arg-type]  # a card's untyped params: a bad one raises here
