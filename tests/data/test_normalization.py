"""Input normalisation: [-1, 1] for the I3D presets, the timm model's own mean/std otherwise."""

from __future__ import annotations

import pytest
import timm

from inflate import InvalidInputError
from inflate.data import input_normalization


def test_i3d_presets_take_minus_one_to_one():
    mean, std = input_normalization("i3d_rgb")
    # (x - 0.5) / 0.5 maps 0 → -1 and 1 → 1.
    assert [(0 - m) / s for m, s in zip(mean, std)] == [-1.0] * 3
    assert [(1 - m) / s for m, s in zip(mean, std)] == [1.0] * 3
    assert input_normalization("i3d_flow") == (mean, std)


@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224", "resnet18.a1_in1k"])
def test_timm_models_take_their_pretrained_config(name):
    # timm's own resolution on an instance (built without weights) is the independent reference.
    config = timm.data.resolve_data_config({}, model=timm.create_model(name, pretrained=False))
    assert input_normalization(name) == (tuple(config["mean"]), tuple(config["std"]))


def test_unknown_model_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="unknown model 'no_such_net'"):
        input_normalization("no_such_net")
