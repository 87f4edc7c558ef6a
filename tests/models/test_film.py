"""FiLMed U-Net (Vincent et al. 2020): metadata encoding, identity at start, metadata that learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mslesion.models.film import MetadataSpec, build_film_unet, encode_metadata

SMALL = (4, 8, 8, 8)  # fast features (3 poolings: 16^3 keeps 2^3 voxels at the bottom)
META_A = {"contrasts": ["FLAIR", "T1"], "site": "a", "field_strength": 3.0, "voxel_size": [1.0, 1.0, 1.0]}
META_B = {"contrasts": ["flair", "t2w"], "site": "b", "field_strength": 1.5, "voxel_size": [0.5, 0.5, 3.0]}


# --- metadata encoding --------------------------------------------------------------------


def test_encoding_of_full_metadata() -> None:
    spec = MetadataSpec(sites=("a", "b"))
    # contrasts FLAIR T1 T2 PD T1POST ?, site a b ?, field 1.5 3 7 ?, voxel x y z known
    expected = [1, 1, 0, 0, 0, 0] + [1, 0, 0] + [0, 1, 0, 0] + [1.0, 1.0, 1.0, 1]
    assert spec.size == len(expected) == 17
    assert spec.encode(META_A).tolist() == expected


def test_encoding_of_missing_fields_and_unknown_site() -> None:
    spec = MetadataSpec(sites=("a", "b"))
    all_unknown = [0, 0, 0, 0, 0, 1] + [0, 0, 1] + [0, 0, 0, 1] + [0, 0, 0, 0]
    assert spec.encode(None).tolist() == all_unknown
    assert spec.encode({}).tolist() == all_unknown
    assert spec.encode({"site": None, "voxel_size": None}).tolist() == all_unknown
    encoded = spec.encode({"site": "elsewhere", "field_strength": 1.0, "contrasts": ["T1Gd", "DWI"]})
    # T1Gd is T1POST; DWI is outside the vocabulary and ignored; 1.0 T is unknown
    assert encoded.tolist() == [0, 0, 0, 0, 1, 0] + [0, 0, 1] + [0, 0, 0, 1] + [0, 0, 0, 0]


def test_encoding_helpers_and_errors() -> None:
    assert encode_metadata({"field_strength": 2.89}, sites=("x",))[8:12].tolist() == [0, 1, 0, 0]  # 2.89 T is 3 T
    assert MetadataSpec().encode_batch([META_A, None]).shape == (2, 15)  # 6 + 1 + 4 + 4
    with pytest.raises(ValueError, match="voxel_size"):
        encode_metadata({"voxel_size": [1.0, 1.0]})
    with pytest.raises(ValueError, match="voxel_size"):
        encode_metadata({"voxel_size": [1.0, 0.0, 1.0]})
    with pytest.raises(ValueError, match="list of names"):
        encode_metadata({"contrasts": "FLAIR"})
    with pytest.raises(ValueError, match="duplicates"):
        MetadataSpec(sites=("a", "a"))
    with pytest.raises(ValueError, match="sequence of site names"):
        MetadataSpec(sites="ab")


# --- network ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [32, 48])
def test_default_build_output_shape(size: int) -> None:
    torch.manual_seed(0)
    net = build_film_unet(in_channels=2).eval()
    assert net.needs_metadata is True
    with torch.no_grad():
        out = net(torch.randn(1, 2, size, size, size))
    assert out.shape == (1, 1, size, size, size)


def test_odd_sizes_are_cropped_back() -> None:
    net = build_film_unet(1, features=SMALL).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 1, 17, 20, 19)).shape == (2, 1, 17, 20, 19)


def test_identity_film_at_initialisation() -> None:
    torch.manual_seed(0)
    net = build_film_unet(2, sites=("a", "b")).eval()
    x = torch.randn(2, 2, 32, 32, 32)
    with torch.no_grad():
        out_a = net(x, net.encode_metadata([META_A, META_A]))
        out_b = net(x, net.encode_metadata([META_B, None]))
        out_none = net(x)
        net.film_enabled = False
        out_plain = net(x, net.encode_metadata([META_A, META_B]))
    for other in (out_b, out_none, out_plain):
        assert torch.allclose(out_a, other, atol=1e-6)


def test_metadata_shape_is_checked() -> None:
    net = build_film_unet(1, features=SMALL, sites=("a",))
    with pytest.raises(ValueError, match="metadata must be"):
        net(torch.zeros(2, 1, 16, 16, 16), torch.zeros(2, 3))
    one = net.metadata_spec.encode(META_A)  # a single vector is broadcast over the batch
    assert net.eval()(torch.zeros(2, 1, 16, 16, 16), one).shape == (2, 1, 16, 16, 16)


def _metadata_task(net) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same image twice; a lesion cube for site a, nothing for site b: only metadata tells them apart."""
    torch.manual_seed(0)
    image = torch.randn(1, 1, 16, 16, 16).expand(2, -1, -1, -1, -1).contiguous()
    target = torch.zeros(2, 1, 16, 16, 16)
    target[0, :, 4:12, 4:12, 4:12] = 1.0
    return image, target, net.encode_metadata([META_A, META_B])


def test_gradients_reach_the_film_mlp() -> None:
    torch.manual_seed(0)
    net = build_film_unet(1, features=SMALL, sites=("a", "b"))
    image, target, metadata = _metadata_task(net)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = F.binary_cross_entropy_with_logits
    loss_fn(net(image, metadata), target).backward()
    heads = net.generator.heads
    assert all(head.weight.grad.abs().sum() > 0 and head.bias.grad.abs().sum() > 0 for head in heads)
    # zero head weights block the trunk's gradient at the very start; one step opens it
    optimiser.step()
    optimiser.zero_grad()
    loss_fn(net(image, metadata), target).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.generator.trunk.parameters())


def test_metadata_changes_output_after_one_step() -> None:
    torch.manual_seed(0)
    net = build_film_unet(1, features=SMALL, sites=("a", "b"))
    image, target, metadata = _metadata_task(net)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    F.binary_cross_entropy_with_logits(net(image, metadata), target).backward()
    optimiser.step()
    net.eval()
    with torch.no_grad():
        out_a = net(image[:1], metadata[:1])
        out_b = net(image[:1], metadata[1:])
        out_none = net(image[:1])
    assert (out_a - out_b).abs().max() > 1e-3
    assert (out_a - out_none).abs().max() > 1e-3


def test_film_false_ignores_metadata_even_after_the_heads_moved() -> None:
    """The ablation `film: false` is the same U-Net with FiLM bypassed, whatever its heads hold."""
    torch.manual_seed(0)
    net = build_film_unet(1, features=SMALL, sites=("a", "b"), film=False).eval()
    with torch.no_grad():
        for p in net.generator.parameters():
            p.add_(torch.randn_like(p))  # heads no longer at the identity
        x = torch.randn(2, 1, 16, 16, 16)
        out_a = net(x, net.encode_metadata([META_A, META_A]))
        out_b = net(x, net.encode_metadata([META_B, META_B]))
        assert torch.equal(out_a, out_b)
        net.film_enabled = True
        assert not torch.allclose(net(x, net.encode_metadata([META_A, META_A])), net(x, net.encode_metadata([META_B, META_B])))
