"""The optimiser's schedule and the start-weight loading, against formulas written out independently."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from inflate.core.errors import InvalidInputError, ShapeMismatchError
from inflate.train.config import TrainConfig, default_lr
from inflate.train.loop import lr_factor, make_optimizer, make_scheduler
from inflate.train.model import load_start_weights


def _cfg(**kwargs: object) -> TrainConfig:
    return TrainConfig(model="resnet18", data=".", out=".", **kwargs)  # type: ignore[arg-type]


def test_default_lr_scales_with_the_batch() -> None:
    assert default_lr("sgd", 384) == pytest.approx(0.1)  # the paper: 0.1 for 6 × 64 clips
    assert default_lr("sgd", 8) == pytest.approx(0.1 * 8 / 384)
    assert default_lr("adamw", 64) == pytest.approx(1e-3 * math.sqrt(64 / 256))
    assert _cfg(batch=4, accum=2).resolved_lr(world_size=3) == pytest.approx(0.1 * 24 / 384)
    assert _cfg(lr=0.5).resolved_lr(world_size=8) == 0.5


def test_step_schedule_divides_by_ten_at_the_milestones() -> None:
    cfg = _cfg(epochs=10, schedule="step", milestones=(0.4, 0.8))
    factors = [lr_factor(step, 100, cfg, 10) for step in range(100)]
    assert factors[:40] == [1.0] * 40
    assert factors[40:80] == pytest.approx([0.1] * 40)
    assert factors[80:] == pytest.approx([0.01] * 20)


def test_cosine_schedule_with_warmup() -> None:
    cfg = _cfg(epochs=4, schedule="cosine", warmup_epochs=1)
    total, per_epoch = 40, 10
    for step in range(10):
        assert lr_factor(step, total, cfg, per_epoch) == pytest.approx((step + 1) / 10)
    for step in range(10, 40):
        expected = 0.5 * (1 + math.cos(math.pi * (step - 10) / 30))
        assert lr_factor(step, total, cfg, per_epoch) == pytest.approx(expected)


def test_scheduler_steps_the_optimiser_rate() -> None:
    model = torch.nn.Linear(3, 2)
    cfg = _cfg(epochs=2, schedule="step", milestones=(0.5,))
    optimizer = make_optimizer(model, cfg, lr=0.2)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=3)
    rates = []
    for _ in range(6):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.2, 0.2, 0.2, 0.02, 0.02, 0.02])
    # no weight decay on the bias (1-D), as timm
    assert [g["weight_decay"] for g in optimizer.param_groups] == [cfg.weight_decay, 0.0]
    assert optimizer.param_groups[1]["params"][0] is model.bias


def test_start_weights_reset_the_classifier_and_adapt_the_stem() -> None:
    source = timm.create_model("test_resnet", num_classes=10).eval()
    target = timm.create_model("test_resnet", num_classes=4, in_chans=2).eval()
    state = source.state_dict()
    notes = load_start_weights(target, state, "source")
    loaded = target.state_dict()
    stem = target.pretrained_cfg["first_conv"] + ".weight"
    expected = state[stem].mean(dim=1, keepdim=True).repeat(1, 2, 1, 1) * 3 / 2
    torch.testing.assert_close(loaded[stem], expected)
    for key, value in state.items():
        if key != stem and not key.startswith(target.pretrained_cfg["classifier"] + "."):
            torch.testing.assert_close(loaded[key], value)
    assert loaded["fc.weight"].shape == (4, source.fc.in_features)
    assert any("re-initialised" in n for n in notes) and any("adapted" in n for n in notes)
    # a constant image gives the same stem response as the RGB kernel on a 3-channel constant image
    x2, x3 = torch.full((1, 2, 8, 8), 0.7), torch.full((1, 3, 8, 8), 0.7)
    torch.testing.assert_close(torch.nn.functional.conv2d(x2, loaded[stem]), torch.nn.functional.conv2d(x3, state[stem]))


def test_start_weights_of_another_architecture_are_refused() -> None:
    target = timm.create_model("test_resnet", num_classes=4)
    other = timm.create_model("test_convnext", num_classes=4).state_dict()
    with pytest.raises((InvalidInputError, ShapeMismatchError)) as error:
        load_start_weights(target, other, "other.safetensors")
    assert "other.safetensors" in str(error.value)


def test_config_round_trips_and_refuses_bad_values() -> None:
    cfg = _cfg(milestones=(0.3, 0.6), scale_jitter=(256, 320))
    assert TrainConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(InvalidInputError, match="--frames"):
        _cfg(frames=0).validate()
    with pytest.raises(InvalidInputError, match="--stream"):
        _cfg(stream="depth").validate()
    with pytest.raises(InvalidInputError, match="unknown settings"):
        TrainConfig.from_json('{"model": "x", "data": ".", "out": ".", "bogus": 1}')
