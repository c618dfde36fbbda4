"""An inflated model is a real object: torch.save / torch.load(weights_only=False) in this
and in a fresh process, and copy.deepcopy, give a model with identical outputs; its class
stays the 2D class's subclass, and timm's methods keep working."""

from __future__ import annotations

import copy
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timm
import torch

from inflate import inflate_model
from inflate.adapters.torch import InflatedModel
from inflate.core.errors import InflateError

NAMED = ["resnet50", "vit_small_patch16_224"]  # two of the three (about 10 s each); i3d_rgb is slow below
# Clips as small as each model takes, to keep the three forward passes short: (frames, height/width).
CLIPS = {"resnet50": (2, 64), "resnet18": (4, 64), "vit_small_patch16_224": (2, 112),
         "i3d_rgb": (16, 224)}


def _inflated(name: str) -> torch.nn.Module:
    if name == "i3d_rgb":
        from inflate.models import create_model

        return create_model("i3d_rgb", num_classes=10, t=16).eval()  # random weights of its own
    # random initial weights: identical outputs after a round trip need no trained ones
    return inflate_model(timm.create_model(name, num_classes=10).eval(), t=4).eval()


def _clip(model: torch.nn.Module, name: str) -> torch.Tensor:
    channels, height, width = model.inflation.input_size
    frames, size = CLIPS.get(name, (4, height))
    return torch.randn(1, channels, frames, size, size, generator=torch.Generator().manual_seed(0))


def _round_trips(model3d: torch.nn.Module, path: Path, name: str) -> None:
    clip = _clip(model3d, name)
    with torch.no_grad():
        expected = model3d(clip)
    torch.save(model3d, path)
    loaded = torch.load(path, weights_only=False)
    copied = copy.deepcopy(model3d)
    assert type(loaded) is type(model3d) and type(copied) is type(model3d)
    assert not any(a.data_ptr() == b.data_ptr() for a, b in zip(model3d.parameters(), copied.parameters()))
    with torch.no_grad():
        assert torch.equal(loaded(clip), expected)
        assert torch.equal(copied(clip), expected)
    assert loaded.inflation.t == model3d.inflation.t and loaded.inflation.report == model3d.inflation.report


@pytest.mark.parametrize("name", NAMED)
def test_save_load_and_deepcopy_round_trip(tmp_path: Path, name: str) -> None:
    model3d = _inflated(name)
    base = timm.models.ResNet if name.startswith("resnet") else timm.models.VisionTransformer
    assert isinstance(model3d, InflatedModel) and isinstance(model3d, base)
    _round_trips(model3d, tmp_path / "model.pt", name)


@pytest.mark.slow
def test_i3d_rgb_round_trips(tmp_path: Path) -> None:
    _round_trips(_inflated("i3d_rgb"), tmp_path / "i3d.pt", "i3d_rgb")


def test_loads_in_a_fresh_process(tmp_path: Path) -> None:
    """The class is made again from the 2D class and the stored code where it never existed."""
    model3d = _inflated("resnet18")
    clip = _clip(model3d, "resnet18")
    with torch.no_grad():
        torch.save({"clip": clip, "out": model3d(clip)}, tmp_path / "expected.pt")
    torch.save(model3d, tmp_path / "model.pt")
    code = textwrap.dedent(f"""
        import torch
        model = torch.load({str(tmp_path / 'model.pt')!r}, weights_only=False)
        expected = torch.load({str(tmp_path / 'expected.pt')!r}, weights_only=True)
        with torch.no_grad():
            assert torch.equal(model(expected["clip"]), expected["out"])
        print(type(model).__name__, type(model).__mro__[2].__module__, model.get_classifier().out_features)
        """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["InflatedResNet", "timm.models.resnet", "10"]


def test_models_of_one_class_with_the_same_graph_share_a_class() -> None:
    # the class holds only the generated code; each model's time settings live in its modules
    a, b = _inflated("resnet18"), _inflated("resnet18")
    assert type(a) is type(b) and a.conv1 is not b.conv1


def test_reset_classifier_keeps_the_3d_pool_and_refuses_a_new_kind_of_pool() -> None:
    model3d = _inflated("resnet18")
    pool3d = model3d.global_pool.pool
    model3d.reset_classifier(3)  # rebuilds global_pool and fc; the pool is of the same kind: its 3D form returns
    assert model3d.global_pool.pool is pool3d and model3d.get_classifier().out_features == 3
    with torch.no_grad():
        assert model3d(_clip(model3d, "resnet18")).shape == (1, 3)
    with pytest.raises(InflateError, match="reset_classifier replaced 'global_pool.pool' by a different"):
        model3d.reset_classifier(3, global_pool="max")


def test_forward_features_is_refused() -> None:
    with pytest.raises(InflateError, match="only forward\\(clip\\) was rewritten"):
        _inflated("resnet18").forward_features(torch.randn(1, 3, 4, 64, 64))
