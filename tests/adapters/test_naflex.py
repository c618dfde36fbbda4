"""NaFlexViT's linear patch embedding becomes a tubelet, and its token pooling pools all time slots."""

import warnings

import pytest
import torch

from inflate import check_boring_video, check_order_sensitivity, inflate_model

timm = pytest.importorskip("timm")
from timm.layers.pool1d import global_pool_nlc  # noqa: E402
from timm.models.naflexvit import NaFlexVit, NaFlexVitCfg, batch_patchify  # noqa: E402

from inflate.adapters.torch.handlers.timm_blocks import _linear_as_conv, pool_tokens_over_slots  # noqa: E402
from inflate.testing import randomize_weights  # noqa: E402


@pytest.mark.parametrize("channels_last", [True, False])
def test_linear_patch_projection_is_a_strided_conv(channels_last: bool) -> None:
    """The conv read from the linear weight equals timm's patchify + linear (its own code path)."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(3 * 4 * 2, 5)
    images = torch.randn(2, 3, 8, 6)
    patches, _ = batch_patchify(images, (4, 2), pad=False, channels_last=channels_last)
    conv = _linear_as_conv(linear, 3, (4, 2), channels_last)
    assert torch.allclose(conv(images).flatten(2).transpose(1, 2), linear(patches), atol=1e-6)


@pytest.mark.parametrize("pool", ["token", "avg", "max", "avgmax"])
@pytest.mark.parametrize("include_prefix", [False, True])
def test_pool_over_slots_is_the_2d_pool_on_repeated_slots(pool: str, include_prefix: bool) -> None:
    tokens = torch.randn(2, 7, 6)  # (B, L, D), 2 prefix tokens
    slots = tokens.unsqueeze(1).expand(-1, 3, -1, -1)
    expected = global_pool_nlc(tokens, pool_type=pool, num_prefix_tokens=2, reduce_include_prefix=include_prefix)
    assert torch.allclose(pool_tokens_over_slots(slots, pool, 2, include_prefix), expected, atol=1e-6)


def _small(pool: str = "avg", pos_embed: str = "factorized", class_token: bool = False) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = NaFlexVitCfg(patch_size=8, embed_dim=32, depth=2, num_heads=2, pos_embed=pos_embed, global_pool=pool,
                       class_token=class_token, reg_tokens=2, fc_norm=pool != "token")
    model = NaFlexVit(cfg, img_size=32, num_classes=5).eval()
    return randomize_weights(model, seed=1)  # timm zeroes the head: every clip would give the same logits


@pytest.mark.parametrize("pool, pos_embed, class_token", [("avg", "factorized", False), ("token", "learned", True)])
def test_naflexvit_inflates_with_a_tubelet(pool: str, pos_embed: str, class_token: bool) -> None:
    model2d = _small(pool, pos_embed, class_token)
    model3d, report = inflate_model(model2d, t=4, strict=True, input_size=(3, 32, 32), return_report=True)
    embed = next(r for r in report.layers if r.path == "embeds")
    assert (embed.op3d, embed.time_kernel, embed.time_stride) == ("NaFlexEmbeds3d", 2, 2)
    assert not [r for r in report.layers if r.how == "frame-wise"]
    assert check_boring_video(model2d, model3d, t=4, image=torch.randn(1, 3, 32, 32)).passed
    # A two-layer random model is nearly linear in the mean token, which pairing frames does not
    # change much: 0.01 here (a frame-wise embedding gives 5e-7; the 12-layer sweep model 0.27).
    assert check_order_sensitivity(model3d, torch.randn(1, 3, 4, 32, 32)).relative_change > 1e-3
    # another frame size: the position embedding is resized per slot as the 2D module resizes it
    assert check_boring_video(model2d, model3d, t=4, image=torch.randn(1, 3, 48, 40)).passed


def test_naflexvit_3d_exports_to_onnx(tmp_path) -> None:
    from inflate.export import export_onnx

    model3d = inflate_model(_small(), t=4, input_size=(3, 32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_onnx(model3d, tmp_path / "naflex.onnx")
    assert report.max_abs_diff <= 1e-4 * max(1.0, report.max_abs_torch)


def test_each_time_slot_embeds_the_mean_of_its_frames() -> None:
    """Tiled over k_t = 2 and divided by 2, the tubelet embeds frames (2s, 2s+1) as the 2D embedding
    of their mean: checked against the 2D module on that mean image."""
    model2d = _small(class_token=True)
    model3d = inflate_model(model2d, t=4, strict=True, input_size=(3, 32, 32))
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        tokens, grid = model3d.embeds(clip)  # (1, 2, 3 + 16, 32)
        for slot in range(2):
            expected, grid2d = model2d.embeds(clip[:, :, 2 * slot:2 * slot + 2].mean(dim=2))
            assert torch.allclose(tokens[:, slot], expected, atol=1e-5)
    assert tuple(grid) == tuple(grid2d) == (4, 4)
