"""FiLMed U-Net: a 3D U-Net whose features are modulated by the acquisition metadata of the case.

Vincent, Gros, Cohen-Adad et al., "Automatic segmentation of spinal multiple sclerosis
lesions: How to generalize across MRI contrasts?", arXiv:2003.04377, 2020 (ivadomed's
FiLMedUnet), after Perez et al., "FiLM: visual reasoning with a general conditioning
layer", AAAI 2018. Every conv block (encoder, bottleneck, decoder) is followed by a FiLM
layer y = gamma * x + beta, one (gamma, beta) per channel, produced by an MLP from a
metadata vector: which contrasts are present, the site, the field strength, the voxel size.
The network can then adapt its features to the acquisition instead of averaging over it.

Metadata (`MetadataSpec.encode`): every field may be missing. A missing field sets its
"unknown" slot of the encoding; that slot's column in the first MLP layer is a learned
"unknown" embedding (the same as an `nn.Embedding` with an extra unknown index), so the
network learns what to do when it is not told. `metadata=None` means everything unknown.

The FiLM heads start at the identity (zero weights, gamma bias 1, beta bias 0): before
training, the network is a plain U-Net whatever the metadata, and metadata only changes
the output as far as training finds it useful.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mslesion.io.case import CONTRASTS, canonical_contrast

FIELD_STRENGTHS_T: tuple[float, ...] = (1.5, 3.0, 7.0)
FIELD_STRENGTH_TOLERANCE_T = 0.25  # 2.89 T (Siemens "3 T") is 3 T; 1.0 T is unknown


@dataclass(frozen=True)
class MetadataSpec:
    """How a metadata dict becomes a vector; `sites` is the site vocabulary fixed at build time.

    Layout (length `size`):
      contrasts    one flag per `CONTRASTS` name present (FLAIR, T1, T2, PD, T1POST) + unknown
      site         one-hot over `sites` + unknown (missing, or a site not in the vocabulary)
      field        one-hot over 1.5 / 3 / 7 T (within 0.25 T) + unknown
      voxel size   3 floats in mm (0 when unknown) + a known flag
    Keys of the metadata dict: "contrasts" (names, any spelling `canonical_contrast` knows;
    other names are ignored), "site" (str), "field_strength" (tesla), "voxel_size" (3 mm values).
    A key that is absent or None is unknown.
    """

    sites: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.sites, str):
            raise ValueError(f"sites must be a sequence of site names, got the string {self.sites!r}")
        sites = tuple(str(s) for s in self.sites)
        if len(set(sites)) != len(sites):
            raise ValueError(f"site vocabulary has duplicates: {sites}")
        object.__setattr__(self, "sites", sites)

    @property
    def size(self) -> int:
        """Length of an encoded metadata vector."""
        return (len(CONTRASTS) + 1) + (len(self.sites) + 1) + (len(FIELD_STRENGTHS_T) + 1) + 4

    def encode(self, meta: Mapping[str, Any] | None) -> torch.Tensor:
        """One case's metadata as a float32 vector of length `size` (see the class docstring)."""
        meta = meta or {}
        return torch.tensor(
            self._contrasts(meta.get("contrasts"))
            + self._site(meta.get("site"))
            + self._field(meta.get("field_strength"))
            + self._voxel_size(meta.get("voxel_size")),
            dtype=torch.float32,
        )

    def encode_batch(self, metas: Sequence[Mapping[str, Any] | None]) -> torch.Tensor:
        """(N, size) tensor of N cases' metadata."""
        return torch.stack([self.encode(m) for m in metas]) if metas else torch.zeros(0, self.size)

    @staticmethod
    def _contrasts(value: Any) -> list[float]:
        if value is None:
            return [0.0] * len(CONTRASTS) + [1.0]
        if isinstance(value, str):
            raise ValueError(f"metadata 'contrasts' must be a list of names, got the string {value!r}")
        present = {canonical_contrast(str(name)) for name in value}
        return [float(c in present) for c in CONTRASTS] + [0.0]

    def _site(self, value: Any) -> list[float]:
        one_hot = [0.0] * (len(self.sites) + 1)
        site = None if value is None else str(value)
        one_hot[self.sites.index(site) if site in self.sites else len(self.sites)] = 1.0
        return one_hot

    @staticmethod
    def _field(value: Any) -> list[float]:
        one_hot = [0.0] * (len(FIELD_STRENGTHS_T) + 1)
        slot = len(FIELD_STRENGTHS_T)
        if value is not None:
            tesla = float(value)
            for index, known in enumerate(FIELD_STRENGTHS_T):
                if abs(tesla - known) <= FIELD_STRENGTH_TOLERANCE_T:
                    slot = index
        one_hot[slot] = 1.0
        return one_hot

    @staticmethod
    def _voxel_size(value: Any) -> list[float]:
        if value is None:
            return [0.0, 0.0, 0.0, 0.0]
        sizes = [float(v) for v in value]
        if len(sizes) != 3 or not all(math.isfinite(v) and v > 0 for v in sizes):
            raise ValueError(f"metadata 'voxel_size' must be 3 positive mm values, got {value!r}")
        return sizes + [1.0]


def encode_metadata(meta: Mapping[str, Any] | None, sites: Sequence[str] = ()) -> torch.Tensor:
    """`MetadataSpec(sites).encode(meta)`: one case's metadata vector (missing fields -> unknown)."""
    return MetadataSpec(tuple(sites)).encode(meta)


class FiLMGenerator(nn.Module):
    """MLP from metadata to one (gamma, beta) pair per FiLM layer: shared trunk, one linear head each.

    The trunk is ivadomed's (two layers of `hidden` units with sigmoids); the heads start at
    zero weights, gamma bias 1 and beta bias 0, i.e. the identity modulation for any metadata.
    """

    def __init__(self, metadata_size: int, channels: Sequence[int], hidden: int = 64) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(metadata_size, hidden), nn.Sigmoid(), nn.Linear(hidden, hidden), nn.Sigmoid())
        heads = [nn.Linear(hidden, 2 * c) for c in channels]
        self.heads = nn.ModuleList(heads)
        for head, c in zip(heads, channels, strict=True):
            nn.init.zeros_(head.weight)
            with torch.no_grad():
                head.bias.copy_(torch.cat([torch.ones(c), torch.zeros(c)]))

    def forward(self, metadata: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        hidden = self.trunk(metadata)
        return [tuple(head(hidden).chunk(2, dim=1)) for head in self.heads]


def film(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Feature-wise linear modulation: gamma * x + beta, with (N, C) gamma/beta over (N, C, *spatial) x."""
    shape = gamma.shape + (1,) * (x.ndim - 2)
    return gamma.reshape(shape) * x + beta.reshape(shape)


class ConvBlock(nn.Sequential):
    """Two 3x3x3 convolutions, each with instance norm (affine) and LeakyReLU (nnU-Net defaults)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for c_in in (in_channels, out_channels):
            layers += [
                nn.Conv3d(c_in, out_channels, kernel_size=3, padding=1),
                nn.InstanceNorm3d(out_channels, affine=True),
                nn.LeakyReLU(0.01, inplace=True),
            ]
        if dropout > 0:
            layers.append(nn.Dropout3d(dropout))
        super().__init__(*layers)


class FiLMUNet(nn.Module):
    """3D U-Net with a FiLM layer after every conv block; forward(x, metadata) -> (N, 1, D, H, W) logits.

    `features`: channels of the encoder levels, the last one the bottleneck (len(features) - 1
    max-poolings). Any spatial size works; other sizes than multiples of 2^(len(features) - 1)
    are pooled with ceil mode and cropped back in the decoder. `film_enabled = False` bypasses the FiLM layers (a plain
    U-Net with the same weights).
    """

    needs_metadata = True

    def __init__(
        self,
        in_channels: int,
        features: Sequence[int] = (8, 16, 32, 64, 128),
        sites: Sequence[str] = (),
        hidden: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        features = tuple(int(f) for f in features)
        if len(features) < 2 or min(features) < 1 or in_channels < 1:
            raise ValueError(f"need in_channels >= 1 and at least 2 positive features, got {in_channels}, {features}")
        self.metadata_spec = MetadataSpec(tuple(sites))
        self.film_enabled = True
        inputs = (in_channels,) + features[:-1]
        self.encoders = nn.ModuleList(ConvBlock(c_in, c_out, dropout) for c_in, c_out in zip(inputs, features))
        skips = features[-2::-1]
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose3d(c_in, c_out, kernel_size=2, stride=2) for c_in, c_out in zip(features[:0:-1], skips)
        )
        self.decoders = nn.ModuleList(ConvBlock(2 * c, c, dropout) for c in skips)
        self.head = nn.Conv3d(features[0], 1, kernel_size=1)
        self.generator = FiLMGenerator(self.metadata_spec.size, features + skips, hidden)

    def encode_metadata(self, metas: Sequence[Mapping[str, Any] | None]) -> torch.Tensor:
        """(N, size) metadata tensor for this network's site vocabulary."""
        return self.metadata_spec.encode_batch(metas)

    def _film_parameters(self, x: torch.Tensor, metadata: torch.Tensor | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(gamma, beta) of every FiLM layer, from (N, size) or (size,) metadata; None is all unknown."""
        n = x.shape[0]
        if metadata is None:
            metadata = self.metadata_spec.encode(None).expand(n, -1)
        metadata = metadata.to(device=x.device, dtype=x.dtype)
        if metadata.ndim == 1:
            metadata = metadata.expand(n, -1)
        if metadata.shape != (n, self.metadata_spec.size):
            raise ValueError(f"metadata must be ({n}, {self.metadata_spec.size}) for {n} inputs, got {tuple(metadata.shape)}")
        return self.generator(metadata)

    def forward(self, x: torch.Tensor, metadata: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"input must be (N, C, D, H, W), got shape {tuple(x.shape)}")
        params = iter(self._film_parameters(x, metadata) if self.film_enabled else ())

        def modulate(h: torch.Tensor) -> torch.Tensor:
            return film(h, *next(params)) if self.film_enabled else h

        skips: list[torch.Tensor] = []
        for level, encoder in enumerate(self.encoders):
            if level > 0:
                skips.append(x)
                x = F.max_pool3d(x, kernel_size=2, ceil_mode=True)
            x = modulate(encoder(x))
        for upsample, decoder in zip(self.upsamples, self.decoders, strict=True):
            skip = skips.pop()
            x = upsample(x)
            x = x[..., : skip.shape[2], : skip.shape[3], : skip.shape[4]]  # ceil-mode pooling overshoot
            x = modulate(decoder(torch.cat([skip, x], dim=1)))
        return self.head(x)


def build_film_unet(
    in_channels: int,
    features: Sequence[int] = (8, 16, 32, 64, 128),
    sites: Sequence[str] = (),
    hidden: int = 64,
    dropout: float = 0.0,
    film: bool = True,
) -> FiLMUNet:
    """Vincent et al. 2020's FiLMed U-Net in 3D (4 poolings by default), identity FiLM at start.

    `sites` is the site vocabulary of the metadata encoding (store it in the model card:
    the heads' input size depends on it). `film=False` is the same U-Net with its FiLM
    layers bypassed: the ablation that isolates what the metadata adds.
    """
    net = FiLMUNet(in_channels, features=features, sites=sites, hidden=hidden, dropout=dropout)
    net.film_enabled = bool(film)
    return net
