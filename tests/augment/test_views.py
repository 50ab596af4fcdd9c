"""View generators: every recipe on 1- and 3-channel batches, independence, seeding, validation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from encoder_audit.augment import VIEWS, ViewConfig, ViewGenerator, create_views
from encoder_audit.registry import UnknownNameError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", VIEWS.names())
@pytest.mark.parametrize("channels", [1, 3])
def test_every_recipe_runs_on_one_and_three_channels(name: str, channels: int) -> None:
    x = torch.rand(8, channels, 28, 28, generator=gen(1))
    views = create_views(name)
    y = views(x, gen())
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1 and torch.isfinite(y).all()
    assert torch.equal(y, views(x, gen()))  # same seed, same views
    resized = create_views(name, size=16)(x, gen())
    assert resized.shape == (8, channels, 16, 16)
    if name != "none":
        assert not torch.allclose(y, x, atol=1e-3)


def test_none_recipe_is_identity() -> None:
    x = torch.rand(4, 3, 28, 28)
    assert torch.equal(create_views("none")(x, gen()), x)


@pytest.mark.parametrize("name", ["simclr", "moco-v2", "encodermi"])
def test_views_are_independent_per_sample_and_per_call(name: str) -> None:
    one = torch.rand(1, 3, 28, 28, generator=gen(2))
    batch = one.expand(16, -1, -1, -1).contiguous()  # the same image 16 times
    views = create_views(name)
    g = gen()
    v1, v2 = views(batch, g), views(batch, g)
    per_sample = v1.flatten(1)
    distinct = torch.cdist(per_sample, per_sample) > 1e-3
    assert distinct.sum() == 16 * 15  # every pair of samples got its own draw
    assert bool(((v1 - v2).abs().amax(dim=(1, 2, 3)) > 1e-3).all())  # two calls: two different views
    w1, w2 = views.views(batch, 2, gen())
    assert torch.equal(w1, v1) and torch.equal(w2, v2)  # views() is two calls on one generator
    assert not torch.equal(views(batch, gen(1)), v1)  # another seed, other views


def test_stolenencoder_recipe_never_crops() -> None:
    # "no crop": only flips and colour; a flipped-back grayscale-free image keeps its geometry
    x = torch.rand(256, 1, 28, 28, generator=gen(3))
    views = ViewGenerator(dataclasses.replace(VIEWS.create("stolenencoder"), jitter_p=0.0, gray_p=0.0))
    y = views(x, gen())
    same = (y - x).abs().amax(dim=(1, 2, 3)) < 1e-5
    mirrored = (y - x.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert bool((same | mirrored).all())
    assert 0.35 < same.float().mean() < 0.65


@pytest.mark.parametrize(
    "bad",
    [
        {"crop_scale": (0.0, 1.0)},
        {"crop_scale": (0.5, 0.2)},
        {"crop_scale": (0.5, 1.5)},
        {"crop_ratio": (2.0, 1.0)},
        {"crop_ratio": (0.0, 1.0)},
        {"flip_p": 1.5},
        {"jitter_p": -0.1},
        {"gray_p": 2.0},
        {"blur_p": -1.0},
        {"solarize_p": 1.01},
        {"jitter": (0.4, -0.1, 0.4, 0.1)},
        {"jitter": (0.4, 0.4, 0.4, 0.6)},
        {"blur_sigma": (0.0, 1.0)},
        {"blur_sigma": (2.0, 1.0)},
    ],
)
def test_view_config_validation(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        ViewConfig(**bad)
    with pytest.raises(ValueError):
        create_views("simclr", **bad)


def test_unknown_recipe_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match="simclr"):
        create_views("simclr-v9")


def test_overrides_are_coerced_and_checked() -> None:
    views = create_views("simclr", crop_scale=[0.2, "1"], blur_p="0.5")  # as they come from YAML / --set
    assert views.config.crop_scale == (0.2, 1.0) and views.config.blur_p == 0.5
    with pytest.raises(ValueError, match="unknown option"):
        create_views("simclr", crop_sclae=(0.2, 1.0))


def test_overrides_apply() -> None:
    views = create_views("simclr", size=20, flip_p=0.0, gray_p=1.0)
    assert views.config.flip_p == 0.0 and views.config.gray_p == 1.0 and views.size == 20
    y = views(torch.rand(4, 3, 28, 28), gen())
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 5),
    channels=st.sampled_from([1, 3]),
    height=st.integers(8, 40),
    width=st.integers(8, 40),
    size=st.integers(4, 36),
    recipe=st.sampled_from(["simclr", "moco-v1", "moco-v2", "rda-prototype", "stolenencoder"]),
    seed=st.integers(0, 2**31),
)
def test_any_shape_gives_requested_shape_in_range(
    n: int, channels: int, height: int, width: int, size: int, recipe: str, seed: int
) -> None:
    x = torch.rand(n, channels, height, width, generator=gen(seed))
    y = create_views(recipe, size=size)(x, gen(seed))
    assert y.shape == (n, channels, size, size)
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
