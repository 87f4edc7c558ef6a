"""DeepLesionBrain (Kamraoui et al. 2022, "DeepLesionBrain: towards a broader deep-learning
generalization for multiple sclerosis lesion segmentation", Medical Image Analysis 76:102312).

The brain in MNI space is cut into overlapping sub-volumes (regions); each region has its
own compact 3D U-Net, first trained as one generic network on all regions and then copied
and fine-tuned per region (hierarchical specialisation). Symmetric training lets a
left-hemisphere network also serve its right-hemisphere twin, whose data are flipped
left-right, so about 3/5 of the networks are needed. At inference every region's network
predicts its sub-volume and overlapping binary predictions are fused by majority vote.
(The image-quality augmentation of the paper is `mslesion.train.augment`'s.)

Grid conventions: volumes are (C, D, H, W) arrays on the FSL MNI152 1 mm grid (182, 218,
182), array axis 0 being x with x_mm = 90 - i. Mirroring is the flip of array axis 0
(i -> 181 - i), i.e. about x = -0.5 mm, half a voxel off the MNI midline: the only flip
that maps the grid onto itself voxel for voxel.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np
import torch
from torch import nn

from mslesion.models.scanner_invariant import Activation, DropoutAt, Norm, UNet3D
from mslesion.space.grid import FSL_MNI_SHAPE

REGION_SIZE: tuple[int, int, int] = (96, 96, 96)
# The issue quotes the paper as "96^3 sub-volumes with stride 76, 76, 67, i.e. 125 regions".
# On the FSL grid those strides give 27 regions; 5 evenly spread starts per axis give the
# 125 regions (75 networks) the paper reports, so the count is the default and the stride
# stays selectable (`regions(stride=REGION_STRIDE)`).
REGION_STRIDE: tuple[int, int, int] = (76, 76, 67)
REGION_COUNTS: tuple[int, int, int] = (5, 5, 5)

Members = Sequence[tuple[int, bool]]


def build_compact_unet(in_channels: int = 2, features: Sequence[int] = (16, 32, 64, 128), dropout: float = 0.5, groups: int = 8) -> UNet3D:
    """DeepLesionBrain's compact 3D U-Net: 3 down/3 up stages, group norm (8 groups), ReLU,
    dropout 0.5 right after each max-pooling.

    Group norm because the regional networks train on small batches of 96^3 sub-volumes;
    widths smaller than `groups` (tiny test networks) use gcd(groups, channels) groups.
    Inputs: T1 and FLAIR (2 channels) by default; output: one lesion logit channel.
    """
    return UNet3D(
        in_channels,
        features,
        norm=Norm.GROUP,
        groups=groups,
        act=Activation.RELU,
        dropout=dropout,
        dropout_at=DropoutAt.POOL,
    )


@dataclass(frozen=True)
class Region:
    """A sub-volume of the grid: voxels [start, start + size) per axis, and its mirror's index."""

    index: int
    start: tuple[int, int, int]
    size: tuple[int, int, int]
    mirror: int

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, a + n) for a, n in zip(self.start, self.size, strict=True))  # type: ignore[return-value]  # 3 axes; mypy cannot count a generator's items

    @property
    def centre(self) -> tuple[float, float, float]:
        """Centre in voxel index coordinates (a region from 0 to 95 has centre 47.5)."""
        return tuple(a + (n - 1) / 2 for a, n in zip(self.start, self.size, strict=True))  # type: ignore[return-value]  # 3 axes; mypy cannot count a generator's items


def _even_starts(span: int, n: int, exact_centre: bool) -> list[int] | None:
    """n starts from 0 to `span`, nearly evenly spaced and symmetric (a and span - a);
    None when n is odd, `exact_centre` is asked and the middle start span/2 is not whole."""
    if n == 1:
        return [0] if span == 0 else None
    if exact_centre and n % 2 == 1 and span % 2 == 1:
        return None
    first = [k * span // (n - 1) for k in range(n // 2)]
    middle = [span // 2] if n % 2 == 1 else []
    return first + middle + [span - a for a in reversed(first)]


def axis_starts(length: int, size: int, stride: int, exact_centre: bool = False) -> list[int]:
    """Starts of overlapping windows of `size` covering [0, length): the first at 0, the last
    ending at the border, spacing at most `stride`, placed symmetrically about the centre.

    The fewest windows that satisfy this (ceil((length - size) / stride) + 1, or more when
    rounding needs it). With `exact_centre` an odd count needs (length - size) even, so the
    middle window sits exactly on the centre; otherwise one more window is used.
    """
    span = length - size
    n = 1 if span == 0 else math.ceil(span / stride) + 1
    while True:
        starts = _even_starts(span, n, exact_centre)
        if starts is not None and max(np.diff(starts), default=0) <= stride:
            return starts
        n += 1


def count_starts(length: int, size: int, n: int, exact_centre: bool = False) -> list[int]:
    """`n` window starts spread evenly and symmetrically from 0 to length - size.

    ValueError when the windows would leave a gap (spacing > size), when n = 1 does not
    span the axis, or when `exact_centre` asks for an odd n on an odd span (the middle
    window could not sit on the centre, so mirroring would not be voxel-exact).
    """
    span = length - size
    if n < 1 or (span == 0 and n > 1):
        raise ValueError(f"{n} regions of {size} on an axis of {length}: use 1 region when it spans the axis, else at least 1")
    starts = _even_starts(span, n, exact_centre)
    if starts is None:
        why = "one region cannot span the axis" if n == 1 else "an odd count along x needs an even (grid - size)"
        raise ValueError(f"{n} regions of {size} on an axis of {length}: {why}")
    if max(np.diff(starts), default=0) > size:
        raise ValueError(f"{n} regions of {size} leave gaps on an axis of {length}; use more or larger regions")
    return starts


def regions_from_starts(size: Sequence[int], per_axis: Sequence[Sequence[int]]) -> list[Region]:
    """Regions at every combination of per-axis starts, x-major; x starts must be symmetric
    (a and last - a) so that each region's mirror exists."""
    size = tuple(int(v) for v in size)
    per_axis = [sorted(int(a) for a in axis) for axis in per_axis]
    if len(size) != 3 or len(per_axis) != 3 or not all(per_axis):
        raise ValueError(f"need 3 sizes and 3 non-empty start lists, got {size}, {per_axis}")
    xs = per_axis[0]
    if [xs[-1] - a for a in reversed(xs)] != xs:
        raise ValueError(f"x starts {xs} are not symmetric: mirrored regions would not be voxel-exact")
    nx, ny, nz = (len(s) for s in per_axis)
    out = []
    for index, (i, j, k) in enumerate(product(range(nx), range(ny), range(nz))):
        start = (per_axis[0][i], per_axis[1][j], per_axis[2][k])
        mirror = ((nx - 1 - i) * ny + j) * nz + k
        out.append(Region(index, start, size, mirror))
    return out


def regions(
    shape: Sequence[int] = FSL_MNI_SHAPE,
    size: Sequence[int] = REGION_SIZE,
    stride: Sequence[int] | None = None,
    counts: Sequence[int] | None = None,
) -> list[Region]:
    """Overlapping regions covering every voxel of a grid of `shape`, ordered x-major.

    Per axis the regions start at 0 and the last ends at the border. Either `counts`
    regions per axis spread evenly (the default: REGION_COUNTS, 5 x 5 x 5 = 125 regions,
    75 networks on the FSL grid, the paper's layout), or, with `stride`, the fewest
    regions with a spacing of at most `stride` (96^3 with stride 76, 76, 67 gives 3 x 3 x 3
    = 27 regions on the FSL grid: starts x, z: 0, 43, 86; y: 0, 61, 122). Along x the
    starts are symmetric (a and shape - size - a), so flipping axis 0 maps each region
    exactly onto its `mirror`. A size larger than the grid is cut to the grid.
    """
    if stride is not None and counts is not None:
        raise ValueError("give stride or counts, not both")
    shape, size = (tuple(int(v) for v in t) for t in (shape, size))
    spacing = tuple(int(v) for v in (stride if stride is not None else counts if counts is not None else REGION_COUNTS))
    if not len(shape) == len(size) == len(spacing) == 3:
        raise ValueError(f"shape, size and stride/counts need 3 values each, got {shape}, {size}, {spacing}")
    if min(shape + size + spacing) < 1:
        raise ValueError(f"shape, size and stride/counts must be positive, got {shape}, {size}, {spacing}")
    size = tuple(min(n, s) for n, s in zip(size, shape, strict=True))
    if stride is not None:
        per_axis = [axis_starts(shape[a], size[a], spacing[a], exact_centre=a == 0) for a in range(3)]
    else:
        per_axis = [count_starts(shape[a], size[a], spacing[a], exact_centre=a == 0) for a in range(3)]
    return regions_from_starts(size, per_axis)


def region_starts(rs: Sequence[Region]) -> list[list[int]]:
    """The per-axis starts of a region grid (what a model card stores to rebuild it)."""
    return [sorted({r.start[a] for r in rs}) for a in range(3)]


def network_groups(regions: Sequence[Region], affine: np.ndarray | None = None) -> dict[int, list[tuple[int, bool]]]:
    """Regions sharing a network: group id -> [(region index, flipped)].

    Each left-hemisphere region (centre at x_mm <= the grid's centre; the central region
    included) gets a group, in region order; its right-hemisphere mirror joins it with
    flipped = True (its data are flipped along x before the network sees them). Left is
    read from `affine` (x_mm decreasing with the index when affine[0, 0] < 0); None means
    the FSL grid, where left is the high-index half.
    """
    left_is_high = affine is None or float(np.asarray(affine)[0, 0]) < 0
    groups: dict[int, list[tuple[int, bool]]] = {}
    for region in regions:
        twin = regions[region.mirror]
        offset = region.start[0] - twin.start[0]
        if (offset >= 0) if left_is_high else (offset <= 0):
            members = [(region.index, False)] + ([(twin.index, True)] if twin.index != region.index else [])
            groups[len(groups)] = members
    return groups


def specialise(generic_state_dict: Mapping[str, torch.Tensor], n_networks: int) -> list[dict[str, torch.Tensor]]:
    """Hierarchical specialisation's start: `n_networks` independent copies of the generic
    network's weights, one per regional network, which is then fine-tuned on its region."""
    if n_networks < 1:
        raise ValueError(f"n_networks must be positive, got {n_networks}")
    return [{k: v.detach().clone() for k, v in generic_state_dict.items()} for _ in range(n_networks)]


def crop_regions(volume: torch.Tensor, regions: Sequence[Region], members: Members) -> torch.Tensor:
    """Crops (M, C, *size) of a (C, D, H, W) volume for a group's members, flipped along x where told.

    The same call crops images and labels for training a regional network.
    """
    crops = []
    for index, flipped in members:
        crop = volume[(slice(None), *regions[index].slices)]
        crops.append(crop.flip(1) if flipped else crop)
    return torch.stack(crops)


class RegionalEnsemble(nn.Module):
    """DeepLesionBrain's regional networks (`networks[g]` serves group g) and their fusion.

    `grid_affine` (optional) is the voxel-to-world matrix of the grid the regions live on
    (the FSL MNI152 1 mm grid for models trained on MNI data); `segment` refuses input on
    any other grid.
    """

    regional = True  # the pipeline's cue to run the ensemble instead of a sliding window

    def __init__(
        self,
        networks: Sequence[nn.Module],
        regions: Sequence[Region],
        groups: Mapping[int, Members],
        grid_affine: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        if sorted(groups) != list(range(len(groups))) or len(networks) != len(groups):
            raise ValueError(f"need one network per group id 0..{len(groups) - 1}, got {len(networks)} networks")
        seen = sorted(i for members in groups.values() for i, _ in members)
        if seen != list(range(len(regions))):
            raise ValueError("every region must belong to exactly one group")
        for g, members in groups.items():
            if len({regions[i].size for i, _ in members}) != 1:
                raise ValueError(f"group {g} mixes region sizes")
        self.networks = nn.ModuleList(networks)
        self.regions = tuple(regions)
        self.groups = {int(g): tuple((int(i), bool(f)) for i, f in members) for g, members in groups.items()}
        self.grid_shape = tuple(max(r.start[a] + r.size[a] for r in self.regions) for a in range(3))
        self.grid_affine = None if grid_affine is None else np.asarray(grid_affine, dtype=float).reshape(4, 4)

    @classmethod
    def from_generic(
        cls,
        generic: nn.Module,
        regions: Sequence[Region],
        groups: Mapping[int, Members],
        grid_affine: np.ndarray | None = None,
    ) -> RegionalEnsemble:
        """One copy of the trained generic network per group (then fine-tuned per region)."""
        networks = []
        for state in specialise(generic.state_dict(), len(groups)):
            network = copy.deepcopy(generic)
            network.load_state_dict(state)
            networks.append(network)
        return cls(networks, regions, groups, grid_affine)

    @torch.no_grad()
    def vote(self, image: torch.Tensor, thresholds: Sequence[float]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(votes (T, D, H, W) per threshold, cover (D, H, W), mean probability (D, H, W)).

        votes[t] counts the regions whose probability > thresholds[t] at each voxel; cover
        counts the regions covering it. The networks run once whatever the number of
        thresholds, in eval mode (dropout off); their mode is restored afterwards.
        """
        if image.ndim != 4 or tuple(image.shape[1:]) != self.grid_shape:
            raise ValueError(f"image must be (C, *{self.grid_shape}), got {tuple(image.shape)}")
        parameter = next(self.parameters(), None)
        device = parameter.device if parameter is not None else image.device
        image = image.to(device=device, dtype=torch.float32)
        levels = torch.as_tensor(list(thresholds), dtype=torch.float32, device=device).view(-1, 1, 1, 1)
        votes = torch.zeros((len(levels), *self.grid_shape), dtype=torch.int16, device=device)
        cover = torch.zeros(self.grid_shape, dtype=torch.int16, device=device)
        prob_sum = torch.zeros(self.grid_shape, dtype=torch.float32, device=device)
        was_training = self.training
        self.eval()
        try:
            for g, members in self.groups.items():
                probs = torch.sigmoid(self.networks[g](crop_regions(image, self.regions, members)).float())
                for (index, flipped), p in zip(members, probs[:, 0], strict=True):
                    p = p.flip(0) if flipped else p
                    box = self.regions[index].slices
                    prob_sum[box] += p
                    votes[(slice(None), *box)] += (p[None] > levels).short()
                    cover[box] += 1
        finally:
            self.train(was_training)
        return votes, cover, prob_sum / cover.clamp(min=1)

    @torch.no_grad()
    def predict_volume(self, image: torch.Tensor, threshold: float = 0.5, flips: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Lesion mask (D, H, W, bool) by majority vote, and the mean probability map (float32).

        Each region's network predicts its sub-volume (flipped along x in, and back out, for
        flipped members); a region votes lesion where its probability > `threshold`. A voxel
        is lesion when more than half of the regions covering it vote lesion: a tie (e.g.
        1 of 2) is background, the conservative reading of the paper's majority vote. The
        mean probability is the average over the covering regions.
        `flips` >= 2 adds the left-right mirrored image as test-time augmentation: its votes
        (mirrored back) join the vote, so each voxel is decided by twice the regions. Only
        the left-right flip: the regional networks are tied to positions in MNI space, and
        only that flip maps the brain onto itself (to one voxel on the FSL grid).
        """
        votes, cover, probability = self.vote(image, [threshold])
        if flips >= 2:
            mirrored_votes, mirrored_cover, mirrored_probability = self.vote(image.flip(1), [threshold])
            votes = votes + mirrored_votes.flip(1)
            cover = cover + mirrored_cover.flip(0)
            probability = 0.5 * (probability + mirrored_probability.flip(0))
        return majority(votes[0], cover), probability


def majority(votes: torch.Tensor, cover: torch.Tensor) -> torch.Tensor:
    """Strict majority: more than half of the covering regions vote lesion (ties are background)."""
    return 2 * votes.int() > cover.int()


def build_dlb(
    in_channels: int = 2,
    grid_shape: Sequence[int] = FSL_MNI_SHAPE,
    region_size: Sequence[int] = REGION_SIZE,
    starts: Sequence[Sequence[int]] | None = None,
    group_members: Sequence[Members] | None = None,
    grid_affine: Sequence[Sequence[float]] | None = None,
    features: Sequence[int] = (16, 32, 64, 128),
    dropout: float = 0.5,
    groups: int = 8,
) -> RegionalEnsemble:
    """The whole DeepLesionBrain model: one compact U-Net per network group, fused by vote.

    A model card stores the layout (`starts` per axis, `group_members`, the grid) so the
    model is rebuilt exactly; without them the paper's default layout on `grid_shape` is used.
    `features`, `dropout` and `groups` (group-norm groups) are each regional net's, as in
    `build_compact_unet`, so `model.params` mean the same for `dlb` and `dlb-unet`.
    """
    rs = regions_from_starts(region_size, starts) if starts is not None else regions(grid_shape, region_size)
    if tuple(max(r.start[a] + r.size[a] for r in rs) for a in range(3)) != tuple(int(v) for v in grid_shape):
        raise ValueError(f"regions {region_starts(rs)} of {tuple(region_size)} do not tile the grid {tuple(grid_shape)}")
    affine = None if grid_affine is None else np.asarray(grid_affine, dtype=float)
    if group_members is None:
        members = network_groups(rs, affine)
    else:
        members = {g: [(int(i), bool(f)) for i, f in m] for g, m in enumerate(group_members)}
    networks = [build_compact_unet(in_channels, features, dropout, groups) for _ in members]
    return RegionalEnsemble(networks, rs, members, affine)
