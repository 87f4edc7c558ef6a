"""DeepLesionBrain: compact U-Net, MNI region grid and its mirror symmetry, network groups,
hierarchical specialisation, and majority-vote fusion of the regional predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mslesion.models.dlb import (
    RegionalEnsemble,
    axis_starts,
    build_compact_unet,
    build_dlb,
    crop_regions,
    network_groups,
    region_starts,
    regions,
    regions_from_starts,
    specialise,
)
from mslesion.space.grid import FSL_MNI_AFFINE, FSL_MNI_SHAPE

TINY = (4, 8, 8, 16)
SMALL = {"shape": (40, 44, 40), "size": (24, 24, 24), "stride": (16, 20, 16)}
PAPER_LAYOUT = {"stride": (22, 31, 22)}  # 5 x 5 x 5 = 125 regions on the FSL grid, as the default counts
QUOTED_STRIDE = {"stride": (76, 76, 67)}  # the quoted strides: 3 x 3 x 3 = 27 regions
ODD = {"shape": (41, 30, 33), "size": (24, 24, 24), "stride": (10, 9, 8)}  # odd x span: no centred region


class ConstantNet(nn.Module):
    """Predicts the same logit everywhere."""

    def __init__(self, logit: float) -> None:
        super().__init__()
        self.logit = logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 1, *x.shape[2:]), self.logit)


class EchoNet(nn.Module):
    """Logits +-10 from the first channel thresholded at 0.5; records what it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return 20.0 * (x[:, :1] - 0.5)


def _covered(rs, shape) -> np.ndarray:
    covered = np.zeros(shape, bool)
    for r in rs:
        covered[r.slices] = True
    return covered


def test_compact_unet_shape_norm_and_dropout() -> None:
    net = build_compact_unet(2, TINY)
    assert net(torch.randn(1, 2, 16, 16, 16)).shape == (1, 1, 16, 16, 16)
    assert net(torch.randn(2, 2, 20, 18, 17)).shape == (2, 1, 20, 18, 17)
    norms = [m for m in net.modules() if isinstance(m, nn.GroupNorm)]
    assert norms and not any(isinstance(m, nn.BatchNorm3d | nn.InstanceNorm3d) for m in net.modules())
    assert any(isinstance(m, nn.ReLU) for m in net.modules())
    assert isinstance(net.drop, nn.Dropout) and net.drop.p == 0.5 and net.dropout_at == "pool"
    default = build_compact_unet()
    assert default.features == (16, 32, 64, 128) and default.encoder[0][0].in_channels == 2
    assert {m.num_groups for m in default.modules() if isinstance(m, nn.GroupNorm)} == {8}


def test_axis_starts_symmetric_and_bounded() -> None:
    assert axis_starts(182, 96, 76, exact_centre=True) == [0, 43, 86]
    assert axis_starts(218, 96, 76) == [0, 61, 122]
    assert axis_starts(182, 96, 22, exact_centre=True) == [0, 21, 43, 65, 86]
    assert axis_starts(96, 96, 76) == [0]
    # An odd span cannot hold an exactly centred middle window: an even count is used.
    starts = axis_starts(41, 24, 16, exact_centre=True)
    assert len(starts) % 2 == 0 and starts == [17 - a for a in reversed(starts)]
    for length, size, stride in [(182, 96, 76), (217, 96, 30), (50, 7, 3)]:
        starts = axis_starts(length, size, stride)
        assert starts[0] == 0 and starts[-1] == length - size and max(np.diff(starts)) <= stride


@pytest.mark.parametrize("layout", [{}, QUOTED_STRIDE, SMALL, ODD])
def test_regions_cover_the_grid(layout: dict) -> None:
    shape = layout.get("shape", FSL_MNI_SHAPE)
    rs = regions(**layout)
    assert _covered(rs, shape).all()
    assert all(r.start[a] + r.size[a] <= shape[a] for r in rs for a in range(3))


def test_region_counts_on_the_fsl_grid() -> None:
    quoted = regions(**QUOTED_STRIDE)
    assert len(quoted) == 27 and all(r.size == (96, 96, 96) for r in quoted)
    assert len(network_groups(quoted)) == 18
    default = regions()  # the paper's 125 regions, 75 networks
    assert len(default) == 125 and len(network_groups(default)) == 75
    assert region_starts(default) == region_starts(regions(**PAPER_LAYOUT))
    assert region_starts(default) == [[0, 21, 43, 65, 86], [0, 30, 61, 92, 122], [0, 21, 43, 65, 86]]


def test_region_counts_and_their_errors() -> None:
    cpu = regions((91, 109, 91), (64, 64, 64), counts=(2, 2, 2))  # 8 regions of 64^3 on the 2 mm grid
    assert len(cpu) == 8 and region_starts(cpu) == [[0, 27], [0, 45], [0, 27]]
    assert _covered(cpu, (91, 109, 91)).all()
    with pytest.raises(ValueError, match="gaps"):
        regions(FSL_MNI_SHAPE, (64, 64, 64), counts=(2, 2, 2))
    with pytest.raises(ValueError, match="odd count"):
        regions((41, 30, 33), (24, 24, 24), counts=(3, 2, 2))
    with pytest.raises(ValueError, match="not both"):
        regions(counts=(5, 5, 5), stride=(22, 31, 22))
    with pytest.raises(ValueError, match="not symmetric"):
        regions_from_starts((8, 8, 8), [[0, 3, 10], [0], [0]])


@pytest.mark.parametrize("layout", [{}, QUOTED_STRIDE, SMALL, ODD])
def test_mirrored_regions_are_voxel_exact(layout: dict) -> None:
    shape = layout.get("shape", FSL_MNI_SHAPE)
    volume = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    flipped = volume[::-1]  # array axis 0 (x): index i -> shape[0] - 1 - i
    rs = regions(**layout)
    for r in rs:
        twin = rs[r.mirror]
        assert twin.mirror == r.index
        np.testing.assert_array_equal(flipped[r.slices][::-1], volume[twin.slices])


@pytest.mark.parametrize("layout", [{}, QUOTED_STRIDE, SMALL, ODD])
def test_network_groups(layout: dict) -> None:
    shape = layout.get("shape", FSL_MNI_SHAPE)
    rs = regions(**layout)
    groups = network_groups(rs, FSL_MNI_AFFINE)
    assert groups == network_groups(rs)
    # One group per region whose centre lies at or left of the grid's centre (world x).
    x_world = lambda i: FSL_MNI_AFFINE[0, 0] * i + FSL_MNI_AFFINE[0, 3]  # noqa: E731
    left = [r.index for r in rs if x_world(r.centre[0]) <= x_world((shape[0] - 1) / 2)]
    assert len(groups) == len(left)
    assert [members[0] for members in groups.values()] == [(i, False) for i in left]
    assert sorted(i for members in groups.values() for i, _ in members) == list(range(len(rs)))
    for members in groups.values():
        (canonical, _), *others = members
        assert others == ([] if rs[canonical].mirror == canonical else [(rs[canonical].mirror, True)])
    # A grid stored with x increasing along the array (RAS) puts left at low indices.
    ras = network_groups(rs, np.diag([1.0, 1.0, 1.0, 1.0]))
    assert len(ras) == len(groups)
    assert {m[0][0] for m in ras.values()} == {rs[i].mirror for i in left}


def test_specialise_gives_independent_copies() -> None:
    generic = build_compact_unet(2, TINY)
    state = generic.state_dict()
    copies = specialise(state, 3)
    assert len(copies) == 3
    for c in copies:
        assert c.keys() == state.keys() and all(torch.equal(c[k], state[k]) for k in state)
    key = next(k for k in state if k.endswith("weight"))
    before = state[key].clone()
    copies[0][key].add_(1.0)
    assert torch.equal(state[key], before) and torch.equal(copies[1][key], before)
    ensemble = RegionalEnsemble.from_generic(generic, regions(**SMALL), network_groups(regions(**SMALL)))
    assert len(ensemble.networks) == 4
    a, b = ensemble.networks[0], ensemble.networks[1]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(a.parameters(), b.parameters()))


def test_majority_vote_and_tie_rule() -> None:
    # Three regions along x: [0, 8), [2, 10), [4, 12), whole grid along y and z.
    rs = regions(shape=(12, 3, 2), size=(8, 3, 2), stride=(2, 3, 2))
    assert [r.start[0] for r in rs] == [0, 2, 4]
    separate = {i: [(i, False)] for i in range(3)}
    ensemble = RegionalEnsemble([ConstantNet(10.0), ConstantNet(10.0), ConstantNet(-10.0)], rs, separate)
    mask, probability = ensemble.predict_volume(torch.zeros(1, 12, 3, 2))
    assert mask.shape == probability.shape == (12, 3, 2) and mask.dtype == torch.bool
    # Votes per x: 1/1, 1/1, 2/2, 2/2, 2/3 (x 4-7), 1/2 (x 8-9: tie -> background), 0/1.
    expected = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.bool)
    assert torch.equal(mask[:, 0, 0], expected) and (mask == mask[:, :1, :1]).all()
    hi, lo = torch.sigmoid(torch.tensor(10.0)).item(), torch.sigmoid(torch.tensor(-10.0)).item()
    want = [
        hi,
        hi,
        hi,
        hi,
        (2 * hi + lo) / 3,
        (2 * hi + lo) / 3,
        (2 * hi + lo) / 3,
        (2 * hi + lo) / 3,
        (hi + lo) / 2,
        (hi + lo) / 2,
        lo,
        lo,
    ]
    np.testing.assert_allclose(probability[:, 1, 1].numpy(), want, rtol=1e-6)


def test_flipped_regions_see_mirrored_data_and_map_back() -> None:
    rs = regions(**SMALL)
    groups = network_groups(rs)
    nets = [EchoNet() for _ in groups]
    ensemble = RegionalEnsemble(nets, rs, groups)
    image = (torch.rand(2, *SMALL["shape"], generator=torch.Generator().manual_seed(0)) > 0.7).float()
    mask, probability = ensemble.predict_volume(image)
    assert torch.equal(mask, image[0].bool())  # each region's answer lands back where it came from
    assert torch.allclose(probability, torch.sigmoid(20.0 * (image[0] - 0.5)))
    whole_flipped = image.flip(1)
    for g, members in groups.items():
        (seen,) = nets[g].seen
        for (index, flipped), crop in zip(members, seen):
            canonical = members[0][0]
            if flipped:  # the right-hemisphere crop, flipped, is the left twin's view of the flipped brain
                assert torch.equal(crop, whole_flipped[(slice(None), *rs[canonical].slices)])
            assert torch.equal(crop, crop_regions(image, rs, [(index, flipped)])[0])


def test_predict_volume_with_compact_unets() -> None:
    rs = regions(**SMALL)
    ensemble = RegionalEnsemble.from_generic(build_compact_unet(2, TINY), rs, network_groups(rs))
    ensemble.train()
    image = torch.randn(2, *SMALL["shape"], generator=torch.Generator().manual_seed(0))
    mask, probability = ensemble.predict_volume(image)
    assert mask.shape == SMALL["shape"] and ((probability >= 0) & (probability <= 1)).all()
    assert ensemble.training  # mode restored after inference in eval mode
    assert torch.equal(ensemble.predict_volume(image)[1], probability)  # dropout was off
    with pytest.raises(ValueError):
        ensemble.predict_volume(torch.randn(2, 40, 44, 41))


def test_build_dlb_rebuilds_the_layout_and_votes_over_thresholds() -> None:
    rs = regions(**SMALL)
    groups = network_groups(rs)
    members = [groups[g] for g in range(len(groups))]
    model = build_dlb(2, SMALL["shape"], SMALL["size"], region_starts(rs), members, np.eye(4), features=TINY)
    assert model.regional and model.grid_shape == SMALL["shape"] and len(model.networks) == len(groups)
    assert [r.start for r in model.regions] == [r.start for r in rs] and model.groups == {g: tuple(m) for g, m in groups.items()}
    with pytest.raises(ValueError, match="tile"):
        build_dlb(2, (50, 44, 40), SMALL["size"], region_starts(rs), members, features=TINY)
    image = torch.randn(2, *SMALL["shape"], generator=torch.Generator().manual_seed(1))
    votes, cover, probability = model.vote(image, [0.3, 0.5, 0.7])
    mask, same_probability = model.predict_volume(image, 0.5)
    assert votes.shape == (3, *SMALL["shape"]) and (votes[0] >= votes[1]).all() and (votes[1] >= votes[2]).all()
    assert torch.equal(mask, 2 * votes[1].int() > cover.int()) and torch.equal(probability, same_probability)


def test_left_right_flip_tta_joins_the_vote() -> None:
    """flips=2: the mirrored image's region votes, mirrored back, double the electorate of every voxel."""
    # Regions along x as in the tie test; region 0 says lesion, 1 and 2 say background.
    rs = regions(shape=(12, 3, 2), size=(8, 3, 2), stride=(2, 3, 2))
    separate = {i: [(i, False)] for i in range(3)}
    ensemble = RegionalEnsemble([ConstantNet(10.0), ConstantNet(-10.0), ConstantNet(-10.0)], rs, separate)
    image = torch.zeros(1, 12, 3, 2)
    plain, _ = ensemble.predict_volume(image)
    assert plain[:, 0, 0].tolist() == [True, True] + [False] * 10  # x 0-1: 1 of 1; x 2-7: at most 1 of 2 or 3
    mask, probability = ensemble.predict_volume(image, flips=2)
    votes, cover, p = ensemble.vote(image, [0.5])
    m_votes, m_cover, m_p = ensemble.vote(image.flip(1), [0.5])
    assert torch.equal(mask, 2 * (votes[0] + m_votes[0].flip(0)).int() > (cover + m_cover.flip(0)).int())
    assert torch.allclose(probability, 0.5 * (p + m_p.flip(0)))
    # Mirrored, region 0's "lesion" lands on x 4-11; x 0-1 keeps 1 of 1 + 0 of 1: a tie, background now.
    assert mask[:, 0, 0].tolist()[:2] == [False, False]
