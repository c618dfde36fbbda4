"""An independent numpy forward pass of DeepMind's I3D, written from the paper's layer table and
the checkpoint's own arrays (channels-last, TF SAME padding), sharing no code with the library.
Used only to cross-check the converter's I3D and its weight mapping."""

from __future__ import annotations

import math
import pickle

import numpy as np

class _Arrays(pickle.Unpickler):
    def find_class(self, module, name):
        if name in ("_reconstruct", "ndarray", "dtype") and module.startswith("numpy"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def read(path: str) -> dict:
    with open(path, "rb") as f:
        return _Arrays(f).load()


def same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def pad_same(x: np.ndarray, kernel, stride, value: float) -> np.ndarray:
    """x: (T, H, W, C)."""
    pads = [same_pads(x.shape[i], kernel[i], stride[i]) for i in range(3)] + [(0, 0)]
    return np.pad(x, pads, constant_values=value)


def windows(x: np.ndarray, kernel, stride) -> np.ndarray:
    """(T, H, W, C) → (T', H', W', kt, kh, kw, C) strided windows."""
    v = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(0, 1, 2))  # (T', H', W', C, kt, kh, kw)
    v = v[::stride[0], ::stride[1], ::stride[2]]
    return v.transpose(0, 1, 2, 4, 5, 6, 3)


def conv(x, kernel, stride=(1, 1, 1)):
    """kernel: (kt, kh, kw, in, out), TF SAME, zeros."""
    k = kernel.shape[:3]
    w = windows(pad_same(x, k, stride, 0.0), k, stride)
    return np.tensordot(w, kernel, axes=([3, 4, 5, 6], [0, 1, 2, 3]))


def max_pool(x, kernel, stride):
    return windows(pad_same(x, kernel, stride, -np.inf), kernel, stride).max(axis=(3, 4, 5))


def unit(x, params, stats, scope, stride=(1, 1, 1)):
    # Flax names sub-modules "Branch_1/Conv3d_0b_3x3" inside a Mixed block: one key with a slash.
    head, _, rest = scope.partition("/")
    p, s = params[head], stats[head]
    if rest:
        p, s = p[rest], s[rest]
    y = conv(x, p["Conv_0"]["kernel"].astype(np.float64), stride)
    bn = p["BatchNorm_0"]["bias"].astype(np.float64)
    mean = s["BatchNorm_0"]["mean"].reshape(-1).astype(np.float64)
    var = s["BatchNorm_0"]["var"].reshape(-1).astype(np.float64)
    return np.maximum((y - mean) / np.sqrt(var + 1e-3) + bn, 0.0)


def mixed(x, params, stats, name):
    b0 = unit(x, params, stats, f"{name}/Branch_0/Conv3d_0a_1x1")
    b1 = unit(unit(x, params, stats, f"{name}/Branch_1/Conv3d_0a_1x1"), params, stats, f"{name}/Branch_1/Conv3d_0b_3x3")
    b2 = unit(unit(x, params, stats, f"{name}/Branch_2/Conv3d_0a_1x1"), params, stats, f"{name}/Branch_2/Conv3d_0b_3x3")
    b3 = unit(max_pool(x, (3, 3, 3), (1, 1, 1)), params, stats, f"{name}/Branch_3/Conv3d_0b_1x1")
    return np.concatenate([b0, b1, b2, b3], axis=-1)


def features(clip: np.ndarray, variables: dict) -> np.ndarray:
    """clip (T, H, W, 3) in [-1, 1] → Mixed_5c features (T', H', W', 1024)."""
    P, S = variables["params"], variables["batch_stats"]
    x = unit(clip.astype(np.float64), P, S, "Conv3d_1a_7x7", (2, 2, 2))
    x = max_pool(x, (1, 3, 3), (1, 2, 2))
    x = unit(x, P, S, "Conv3d_2b_1x1")
    x = unit(x, P, S, "Conv3d_2c_3x3")
    x = max_pool(x, (1, 3, 3), (1, 2, 2))
    x = mixed(mixed(x, P, S, "Mixed_3b"), P, S, "Mixed_3c")
    x = max_pool(x, (3, 3, 3), (2, 2, 2))
    for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
        x = mixed(x, P, S, name)
    x = max_pool(x, (2, 2, 2), (2, 2, 2))
    return mixed(mixed(x, P, S, "Mixed_5b"), P, S, "Mixed_5c")


def logits(clip: np.ndarray, variables: dict) -> np.ndarray:
    """Averaged logits (400,): 2×7×7 VALID average pool, 1×1×1 conv with bias, mean over time."""
    x = features(clip, variables)
    pooled = windows(x, (2, 7, 7), (1, 1, 1)).mean(axis=(3, 4, 5))
    head = variables["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    out = np.tensordot(pooled, head["kernel"][0, 0, 0].astype(np.float64), axes=([3], [0])) + head["bias"]
    return out[:, 0, 0].mean(axis=0)


def adaptive_logits(clip: np.ndarray, variables: dict) -> np.ndarray:
    """Logits (400,) with the adaptive head: the Mixed_5c features averaged over (T', H', W'), then the 1×1×1 conv."""
    pooled = features(clip, variables).mean(axis=(0, 1, 2))
    head = variables["params"]["Logits/Conv3d_0c_1x1"]["Conv_0"]
    return pooled @ head["kernel"][0, 0, 0].astype(np.float64) + head["bias"]
