"""Batched TV-L1 optical flow in PyTorch: OpenCV's ``DualTVL1OpticalFlow`` scheme on many frame pairs at once.

The scheme is Zach, Pock and Bischof's primal-dual TV-L1 with Wedel et al.'s refinements, as
OpenCV implements it (``modules/optflow/src/tvl1flow.cpp``, itself after Sánchez Pérez et al.,
IPOL 2013), step by step:

- pyramid: each level is the previous one resized by ``scale_step`` with OpenCV's INTER_LINEAR
  (no presmoothing, as OpenCV; sizes rounded as ``cv::resize`` rounds them), stopping before a
  side falls under 16 pixels; the flow starts at zero on the coarsest level and is carried to
  the next finer one by INTER_LINEAR resizing, divided by ``scale_step``;
- per level and warp: I1 and its centred gradient (replicated border) are sampled at x + u with
  bicubic interpolation (a = -0.75), positions rounded to 1/32 pixel and zeros outside the frame,
  as ``cv::remap(..., INTER_CUBIC)`` does;
- per outer iteration: a 5×5 median of the flow (replicated border, as ``cv::medianBlur``);
- per inner iteration: the thresholding step, the primal update with the divergence of the dual
  variable (backward differences), the dual update with forward differences;
- stopping: a pair leaves the current warp once the squared change of its flow summed over the
  frame falls to epsilon² · H · W, as OpenCV does; pairs are frozen one by one, so a batch gives
  each pair the flow it would get alone.

Tensors are (N, C, H, W) float32, N frame pairs; nothing loops over pixels in Python.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .params import TVL1Params

__all__ = ["tvl1_pairs", "pyramid_sizes"]

# OpenCV's thresholding treats |grad I|^2 at or under float epsilon as zero.
_FLT_EPSILON = float(torch.finfo(torch.float32).eps)
# cv::remap quantises sampling positions to 1/INTER_TAB_SIZE of a pixel.
_REMAP_STEPS = 32.0


def pyramid_sizes(height: int, width: int, params: TVL1Params) -> list[tuple[int, int]]:
    """(H, W) of every pyramid level, finest first, as OpenCV builds them."""
    sizes = [(height, width)]
    for _ in range(1, params.nscales):
        h, w = sizes[-1]
        # cv::resize with fx = fy: dsize = saturate_cast<int>(side * f), i.e. rounded half to even.
        h, w = round(h * params.scale_step), round(w * params.scale_step)
        if h < 16 or w < 16:
            break
        sizes.append((h, w))
    return sizes


@lru_cache(maxsize=64)
def _linear_matrix_cpu(n_in: int, n_out: int, scale: float) -> torch.Tensor:
    """(n_out, n_in) matrix of cv::resize INTER_LINEAR along one axis: src = (dst + 0.5) * scale - 0.5."""
    dst = torch.arange(n_out, dtype=torch.float64)
    src = ((dst + 0.5) * scale - 0.5).float().double()  # OpenCV computes the position in float
    left = torch.floor(src)
    frac = src - left
    frac = torch.where(left < 0, torch.zeros_like(frac), frac)
    left = left.clamp(min=0)
    frac = torch.where(left >= n_in - 1, torch.zeros_like(frac), frac)
    left = left.clamp(max=n_in - 1).long()
    right = (left + 1).clamp(max=n_in - 1)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    matrix.index_put_((rows, left), 1.0 - frac, accumulate=True)
    matrix.index_put_((rows, right), frac, accumulate=True)
    return matrix.float()


def _resize(x: torch.Tensor, size: tuple[int, int], scale: Optional[tuple[float, float]] = None) -> torch.Tensor:
    """cv::resize(INTER_LINEAR) of (N, C, H, W) to ``size``; ``scale`` (y, x) is the src/dst ratio OpenCV uses."""
    h_in, w_in = x.shape[-2:]
    h_out, w_out = size
    sy, sx = scale if scale is not None else (h_in / h_out, w_in / w_out)
    my = _linear_matrix_cpu(h_in, h_out, sy).to(x.device)
    mx = _linear_matrix_cpu(w_in, w_out, sx).to(x.device)
    return torch.matmul(torch.matmul(my, x), mx.t())


def _centred_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences / 2 with a replicated border (OpenCV's centeredGradient)."""
    padded = F.pad(image, (1, 1, 1, 1), mode="replicate")
    dx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    dy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return dx, dy


def _remap_cubic(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """images (N, K, H, W) sampled at (x + flow_x, y + flow_y): bicubic, zeros outside, 1/32-pixel positions."""
    n, _, height, width = images.shape
    xs = torch.arange(width, device=images.device, dtype=images.dtype)
    ys = torch.arange(height, device=images.device, dtype=images.dtype)
    x = torch.round((xs + flow[:, 0]) * _REMAP_STEPS) / _REMAP_STEPS
    y = torch.round((ys[:, None] + flow[:, 1]) * _REMAP_STEPS) / _REMAP_STEPS
    grid = torch.stack((x * (2.0 / (width - 1)) - 1.0, y * (2.0 / (height - 1)) - 1.0), dim=-1)
    return F.grid_sample(images, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def _batcher_pairs(lo: int, hi: int) -> list[tuple[int, int]]:
    """Batcher's odd-even merge sort network on wires lo..hi (inclusive; hi - lo + 1 a power of two)."""

    def merge(lo: int, hi: int, r: int) -> list[tuple[int, int]]:
        step = r * 2
        if step < hi - lo:
            return merge(lo, hi, step) + merge(lo + r, hi, step) + [(i, i + r) for i in range(lo + r, hi - r, step)]
        return [(lo, lo + r)]

    if hi - lo < 1:
        return []
    mid = lo + (hi - lo) // 2
    return _batcher_pairs(lo, mid) + _batcher_pairs(mid + 1, hi) + merge(lo, hi, 1)


@lru_cache(maxsize=4)
def _median_network(count: int) -> tuple[tuple[int, int, bool, bool], ...]:
    """Compare-exchanges (i, j, keep min on i, keep max on j) that leave the median of ``count`` wires on wire count // 2.

    Batcher's network for the next power of two, with the padding wires taken as +inf (their
    comparators do nothing) and every comparator the median does not depend on pruned away.
    """
    size = 1 << (count - 1).bit_length()
    pairs = [(i, j) for i, j in _batcher_pairs(0, size - 1) if j < count]
    needed, kept = {count // 2}, []
    for i, j in reversed(pairs):
        want_min, want_max = i in needed, j in needed
        if want_min or want_max:
            kept.append((i, j, want_min, want_max))
            needed.update((i, j))
    return tuple(reversed(kept))


def _median(x: torch.Tensor, kernel: int) -> torch.Tensor:
    """k×k median of every channel of (N, C, H, W), replicated border (cv::medianBlur), by a sorting network.

    Elementwise minima and maxima over shifted views: fast on every device and fusable, where
    torch.median over unfolded patches sorts 25 values per pixel.
    """
    r = kernel // 2
    height, width = x.shape[-2:]
    padded = F.pad(x, (r, r, r, r), mode="replicate")
    wires = [padded[..., i:i + height, j:j + width] for i in range(kernel) for j in range(kernel)]
    for i, j, want_min, want_max in _median_network(kernel * kernel):
        a, b = wires[i], wires[j]
        if want_min:
            wires[i] = torch.minimum(a, b)
        if want_max:
            wires[j] = torch.maximum(a, b)
    return wires[kernel * kernel // 2].contiguous()


def _primal_dual_step(u: torch.Tensor, px: torch.Tensor, py: torch.Tensor, a: torch.Tensor, grad: torch.Tensor,
                      rho_c: torch.Tensor, keep: Optional[torch.Tensor], l_t: float, theta: float, taut: float
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One inner iteration on (N, C, H, W) flow ``u`` and duals ``px``, ``py``; returns them and the (N,) change.

    ``a`` holds the coefficients of u in the linearised data term (I1wx, I1wy and, with gamma, gamma).
    ``keep`` (N, 1, 1, 1) bool, if given, marks the pairs still iterating; the others come back unchanged.
    """
    rho = rho_c + (a * u).sum(dim=1, keepdim=True)
    bound = l_t * grad
    # The thresholding step, branch for branch as OpenCV's estimateV.
    step = torch.where(rho < -bound, l_t,
                       torch.where(rho > bound, -l_t,
                                   torch.where(grad > _FLT_EPSILON, -rho / grad.clamp(min=_FLT_EPSILON), 0.0)))
    v = u + step * a
    # Divergence with backward differences; zero dual outside the frame on the left and top.
    div = px - F.pad(px[..., :-1], (1, 0)) + py - F.pad(py[..., :-1, :], (0, 0, 1, 0))
    u_new = v + theta * div
    change = (u_new - u).square().sum(dim=(1, 2, 3))
    # Forward differences, zero on the last column and row.
    ux = F.pad(u_new[..., 1:] - u_new[..., :-1], (0, 1))
    uy = F.pad(u_new[..., 1:, :] - u_new[..., :-1, :], (0, 0, 0, 1))
    norm = 1.0 + taut * torch.sqrt(ux * ux + uy * uy)
    px_new, py_new = (px + taut * ux) / norm, (py + taut * uy) / norm
    if keep is not None:
        u_new, px_new, py_new = torch.where(keep, u_new, u), torch.where(keep, px_new, px), torch.where(keep, py_new, py)
    return u_new, px_new, py_new, change


class _MaybeCompiled:
    """``fn`` through torch.compile, falling back to ``fn`` itself (same numbers) if compiling fails."""

    def __init__(self, fn: Callable[..., object]) -> None:
        self.fn = fn
        self.compiled: Optional[Callable[..., object]]
        try:
            self.compiled = torch.compile(fn, dynamic=True)
        except Exception:  # torch.compile unsupported on this platform or build
            self.compiled = None

    def __call__(self, *args: object) -> object:
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except Exception as error:  # no working compiler (e.g. no C++ toolchain or Triton)
                warnings.warn(f"torch.compile of the TV-L1 {self.fn.__name__} failed ({type(error).__name__}: "
                              f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}); running eagerly")
                self.compiled = None
        return self.fn(*args)


@lru_cache(maxsize=2)
def _compiled(name: str) -> _MaybeCompiled:
    return _MaybeCompiled({"step": _primal_dual_step, "median": _median}[name])


def _functions(device: torch.device, compile: Optional[bool]) -> tuple[Callable[..., object], Callable[..., object]]:
    """(step, median): compiled by torch.compile where asked for (default: on CUDA), else eager."""
    if compile is None:
        compile = device.type == "cuda" and os.environ.get("INFLATE_FLOW_COMPILE", "1") != "0"
    if not compile:
        return _primal_dual_step, _median
    return _compiled("step"), _compiled("median")


def _one_scale(i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, params: TVL1Params,
               step_fn: Callable[..., object], median_fn: Callable[..., object], check_every: int) -> torch.Tensor:
    """procOneScale: ``warps`` warps of outer/inner iterations on one pyramid level; returns the new flow."""
    n, channels, height, width = u.shape
    i1x, i1y = _centred_gradient(i1)
    stack = torch.cat((i1, i1x, i1y), dim=1)
    px = torch.zeros_like(u)
    py = torch.zeros_like(u)
    l_t = params.lambda_ * params.theta
    taut = params.tau / params.theta
    theta = params.theta
    # float(epsilon**2 * area), compared with each pair's float32 sum as OpenCV compares them.
    scaled_epsilon = float(torch.tensor(params.epsilon ** 2 * height * width, dtype=torch.float32))
    median = params.median_filtering if params.median_filtering > 1 else 0
    gamma = params.gamma

    for _ in range(params.warps):
        warped = _remap_cubic(stack, u[:, :2])
        i1w, i1wx, i1wy = warped[:, 0:1], warped[:, 1:2], warped[:, 2:3]
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u[:, 0:1] - i1wy * u[:, 1:2] - i0
        coefficients = [i1wx, i1wy] + ([torch.full_like(i1wx, gamma)] if channels == 3 else [])
        a = torch.cat(coefficients, dim=1)

        active = torch.ones(n, dtype=torch.bool, device=u.device)
        # Whether every pair is known to be still iterating: then no masking is needed. Known only
        # where the host checks after every iteration (the CPU); elsewhere the mask is always applied.
        all_active, iteration, finished = check_every == 1, 0, False
        for _outer in range(params.outer_iterations):
            if median:
                filtered = median_fn(u[:, :2], median)
                if not all_active:
                    filtered = torch.where(active[:, None, None, None], filtered, u[:, :2])
                u = torch.cat((filtered, u[:, 2:]), dim=1) if channels == 3 else filtered
            for _inner in range(params.inner_iterations):
                keep = None if all_active else active[:, None, None, None]
                u, px, py, change = step_fn(u, px, py, a, grad, rho_c, keep, l_t, theta, taut)
                active = active & (change > scaled_epsilon)
                iteration += 1
                if iteration % check_every == 0:
                    remaining = int(active.sum())
                    if remaining == 0:
                        finished = True
                        break
                    all_active = check_every == 1 and remaining == n
            if finished:
                break
    return u


@torch.no_grad()
def tvl1_pairs(i0: torch.Tensor, i1: torch.Tensor, params: TVL1Params = TVL1Params(),
               compile: Optional[bool] = None) -> torch.Tensor:
    """TV-L1 flow from ``i0`` to ``i1``: (N, 1, H, W) float32 gray in [0, 255] → (N, 2, H, W) flow in pixels.

    Channel 0 is x, channel 1 is y, with OpenCV's convention I0(x) ≈ I1(x + u(x)). Runs where the
    inputs are (CPU or CUDA). ``compile`` (default: on CUDA) fuses the inner iteration with
    torch.compile; without a working compiler the eager step runs and gives the same numbers.
    Frames must be at least 16 × 16 pixels.
    """
    if i0.shape != i1.shape or i0.dim() != 4 or i0.shape[1] != 1:
        raise ValueError(f"expected two (N, 1, H, W) tensors of one shape, got {tuple(i0.shape)} and {tuple(i1.shape)}")
    n, _, height, width = i0.shape
    sizes = pyramid_sizes(height, width, params)
    i0s, i1s = [i0.float()], [i1.float()]
    scale = 1.0 / params.scale_step
    for size in sizes[1:]:
        i0s.append(_resize(i0s[-1], size, (scale, scale)))
        i1s.append(_resize(i1s[-1], size, (scale, scale)))
    channels = 3 if params.gamma else 2
    step_fn, median_fn = _functions(i0.device, compile)
    # A host sync per check: free on the CPU, a stall on CUDA, so CUDA checks every few iterations.
    check_every = 1 if i0.device.type == "cpu" else 10
    h, w = sizes[-1]
    u = torch.zeros(n, channels, h, w, device=i0.device, dtype=torch.float32)
    for level in range(len(sizes) - 1, -1, -1):
        u = _one_scale(i0s[level], i1s[level], u, params, step_fn, median_fn, check_every)
        if level == 0:
            break
        u = _resize(u, sizes[level - 1])
        u = torch.cat((u[:, :2] * (1.0 / params.scale_step), u[:, 2:]), dim=1)
    return u[:, :2].contiguous()
