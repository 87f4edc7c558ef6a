"""The shared baseline: a compact 3D U-Net (MONAI's BasicUNet), one logit channel out."""

from __future__ import annotations

from torch import nn


def build_unet(
    in_channels: int,
    features: tuple[int, ...] = (8, 16, 32, 64, 128, 8),
    dropout: float = 0.0,
    norm: str = "instance",
) -> nn.Module:
    """A 3D U-Net of 4 down/4 up stages; `features` as MONAI BasicUNet (last = output block).

    Instance norm with affine parameters, LeakyReLU: the nnU-Net defaults that suit the
    batch sizes of 1-4 that fit a CPU.
    """
    from monai.networks.nets import BasicUNet

    norm_spec = ("instance", {"affine": True}) if norm == "instance" else ("group", {"num_groups": 8})
    return BasicUNet(
        spatial_dims=3,
        in_channels=in_channels,
        out_channels=1,
        features=tuple(features),
        norm=norm_spec,
        dropout=dropout,
    )
