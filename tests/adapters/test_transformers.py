"""Vision transformers inflated with tubelet embedding and space-time attention.

Each time slot keeps its own prefix tokens (class, distillation, registers), which keeps
joint attention exact on boring clips. Frame order is checked after the zero-initialised
temporal parameters (temporal embedding, divided attention's temporal_fc) get values, as
training would give them: at their zero start every policy is the image model per tubelet.
"""

from pathlib import Path

import pytest
import timm
import torch

from inflate import ShapeMismatchError, check_boring_video, check_order_sensitivity, inflate_model
from inflate.checks import boring_clip
from inflate.testing import randomize_weights, randomize_zero_parameters

MODELS = {  # name: clip length (t=4 where memory or time needs it)
    "vit_tiny_patch16_224": 8,
    "deit_tiny_distilled_patch16_224": 8,  # two prefix tokens
    "vit_small_patch16_224": 8,
    "vit_base_patch16_224": 4,
    "vit_small_patch14_reg4_dinov2": 4,  # register tokens, 518² input
}
DEFAULT = {"vit_tiny_patch16_224", "deit_tiny_distilled_patch16_224"}
PARAMS = [pytest.param(name, mode, marks=() if name in DEFAULT else pytest.mark.zoo, id=f"{name}-{mode}")
          for name in MODELS for mode in ("joint", "divided", "frames")]


@pytest.fixture(scope="module")
def models_2d() -> dict:
    return {}


def model_2d(cache: dict, name: str) -> torch.nn.Module:
    if name not in cache:
        cache[name] = randomize_weights(timm.create_model(name, pretrained=False).eval())
    return cache[name]


@pytest.mark.parametrize("name,mode", PARAMS)
def test_boring_video_and_frame_order(models_2d, name: str, mode: str) -> None:
    t = MODELS[name]
    model2d = model_2d(models_2d, name)
    model3d, report = inflate_model(model2d, t=t, attention=mode, return_report=True)
    assert report.frame_wise == ()
    assert any(r.op3d == f"SpaceTimeAttention({mode})" for r in report.layers)
    boring = check_boring_video(model2d, model3d, t=t)
    print(f"\n{name} [{mode}]: {boring}")
    assert boring.passed, str(boring)
    if mode != "frames":
        trained = randomize_zero_parameters(model3d)
        assert "patch_embed.time_embed" in trained
        order = check_order_sensitivity(model3d, t=t)
        print(f"{name} [{mode}]: {order}")
        assert order.passed, str(order)


@pytest.mark.parametrize("mode", ["joint", "divided", "frames"])
def test_single_frame_through_one_frame_tubelets_is_the_2d_model(mode: str) -> None:
    model2d = randomize_weights(timm.create_model("deit_tiny_distilled_patch16_224").eval())
    model3d = inflate_model(model2d, t=1, tubelet=1, attention=mode).eval()
    image = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model3d(image.unsqueeze(2)), model2d(image), rtol=1e-5, atol=1e-5)


def test_tubelet_embedding_weights_and_layout() -> None:
    model2d = timm.create_model("vit_tiny_patch16_224").eval()
    model3d = inflate_model(model2d, t=8)
    proj = model3d.patch_embed.proj
    assert proj.kernel_size == (2, 16, 16) and proj.stride == (2, 16, 16)
    torch.testing.assert_close(proj.weight.sum(2), model2d.patch_embed.proj.weight)
    centred = inflate_model(model2d, t=8, init="center", tubelet=3).patch_embed.proj
    assert centred.kernel_size == (3, 16, 16)
    torch.testing.assert_close(centred.weight[:, :, 1], model2d.patch_embed.proj.weight)
    assert not centred.weight[:, :, [0, 2]].any()


def test_clip_size_not_divisible_names_the_sizes() -> None:
    model3d = inflate_model(timm.create_model("vit_tiny_patch16_224").eval(), t=8)
    with pytest.raises(ShapeMismatchError, match=r"\(7, 224, 224\).*multiple of the tubelet size 2"):
        model3d(torch.zeros(1, 3, 7, 224, 224))


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    from inflate.export import load_inflated, save_safetensors

    model3d = inflate_model(timm.create_model("vit_tiny_patch16_224", num_classes=5).eval(), t=4, attention="divided")
    randomize_zero_parameters(model3d)
    save_safetensors(model3d, tmp_path / "vit.safetensors")
    loaded = load_inflated(tmp_path / "vit.safetensors")
    clip = torch.randn(1, 3, 4, 224, 224)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model3d.eval()(clip))


# Attention modules other than timm's Attention (relative position bias, rotary embeddings,
# gated positional attention) and windowed attention blocks (Swin, MaxViT: the "frames"
# policy; 3D windows are not implemented) attend within each frame; time mixes in the
# tubelets and the temporal embedding.
PER_FRAME_ATTENTION = ["beit_base_patch16_224", "eva02_tiny_patch14_224", "pit_ti_224", "coatnet_0_rw_224",
                       "convit_tiny", "twins_svt_small", "swin_tiny_patch4_window7_224", "maxvit_tiny_tf_224"]


@pytest.mark.zoo
@pytest.mark.parametrize("name", PER_FRAME_ATTENTION)
def test_other_transformers_with_per_frame_attention(name: str) -> None:
    model2d = randomize_weights(timm.create_model(name, pretrained=False).eval())
    with pytest.warns(UserWarning, match="attend within each frame") if name not in ("pit_ti_224",) else _nothing():
        model3d = inflate_model(model2d, t=4, attention="joint")
    boring = check_boring_video(model2d, model3d, t=4)
    print(f"\n{name}: {boring}")
    assert boring.passed, str(boring)
    if name == "pit_ti_224":
        # PiT embeds patches with a plain 16×16 stride-8 conv, which the conv rule makes 16 frames deep:
        # over a 4-frame clip it is nearly symmetric in time. A known gap, not checked here.
        return
    randomize_zero_parameters(model3d)
    order = check_order_sensitivity(model3d, t=4)
    print(f"{name}: {order}")
    assert order.passed, str(order)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_position_table_resampled_for_another_frame_size() -> None:
    model2d = randomize_weights(timm.create_model("vit_tiny_patch16_224").eval())
    model3d = inflate_model(model2d, t=4)
    assert model2d.dynamic_img_size is False and model2d.patch_embed.flatten  # the user's model is left as it was
    # independent reference: timm's own dynamic-size model with the same weights, on one 160×192 frame
    reference = timm.create_model("vit_tiny_patch16_224", dynamic_img_size=True).eval()
    reference.load_state_dict(model2d.state_dict())
    image = torch.randn(2, 3, 160, 192)
    with torch.no_grad():
        torch.testing.assert_close(model3d(boring_clip(image, 4)), reference(image), rtol=1e-4, atol=1e-5)
