"""Reading weight files safely and writing outputs atomically.

Nothing here unpickles arbitrary objects: ``.safetensors`` holds only tensors, and
``.pth``/``.pt`` files are read with ``torch.load(weights_only=True)``, which refuses any
pickle that would build something other than tensors and plain containers.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Mapping

import torch

from .core.errors import InvalidInputError, ShapeMismatchError, key_mismatch
from .core.files import OutputExistsError, atomic_output, check_output_path, require_input_file

__all__ = ["load_state_dict_file", "torch_load_safely", "check_finite", "atomic_output", "check_output_path", "fit_state_dict", "OutputExistsError"]


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    # Common checkpoint layouts: a bare state dict, or one under "state_dict"/"model".
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise InvalidInputError(f"{path} holds no tensors (got {type(obj).__name__}); expected a state dict")


def _weights_only_detail(error: BaseException) -> str:
    """What torch's safe unpickler stopped at, without its advice to turn the safety off."""
    text = str(error)
    match = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\n\n|\s*Check the documentation|$)", text, re.S)
    if match:
        paragraphs = [match.group(1)]
    else:  # torch's preamble, the reason, a pointer to the docs: paragraphs apart
        paragraphs = [p for p in re.split(r"\n\s*\n", text)
                      if p.strip() and "weights_only" not in p and "Check the documentation" not in p]
    detail = " ".join(" ".join(paragraphs).split())
    # Never pass on "weights_only=False": that advice runs the file's code.
    return re.sub(r"[^;]*weights_only[^;]*False[^;]*;?", "", detail).strip() or "an object it may not build"


def torch_load_safely(path: Path) -> object:
    """``torch.load(path, weights_only=True)`` on the CPU, every failure as one InvalidInputError."""
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol notices; the outcome is reported below
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _weights_only_detail(error)
        raise InvalidInputError(
            f"refused to load {path}: it is not a plain state dict (the safe loader, torch.load weights_only=True, "
            f"stopped at: {detail}); it may be corrupt or a pickle of other objects. Re-save it with "
            "torch.save(model.state_dict(), path) or as .safetensors"
        ) from None
    except Exception as error:  # zip, storage and pickle-structure errors of a damaged file come in many types
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise InvalidInputError(
            f"{path} is not a readable PyTorch file ({type(error).__name__}: {first}); it may be truncated or corrupt"
        ) from None


def check_finite(tensors: Mapping[str, torch.Tensor], path: object) -> None:
    """Refuse NaN or infinite values in floating-point tensors, naming the first such tensor."""
    for key, value in tensors.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.numel():
            finite = torch.isfinite(value)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                kinds = [name for name, test in (("NaN", torch.isnan), ("Inf", torch.isinf)) if bool(test(value).any())]
                raise InvalidInputError(
                    f"tensor '{key}' in {path} has {bad} non-finite values ({' and '.join(kinds)}) of {value.numel()}; "
                    "the weights are damaged (a diverged training run or a bad conversion): use a good checkpoint"
                )


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or .pth/.pt/.bin file, on the CPU, in their stored dtype.

    Refuses pickled objects, damaged files, and NaN or infinite weights.
    """
    path = require_input_file(path, "weights file", "a .safetensors or .pth file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path), device="cpu")
        except Exception as error:  # SafetensorError, OSError, header JSON errors
            first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
            raise InvalidInputError(
                f"{path} is not a readable .safetensors file ({first}); it may be truncated or corrupt"
            ) from None
    elif suffix in (".pth", ".pt", ".bin", ".ckpt"):
        tensors = _unwrap(torch_load_safely(path), path)
    else:
        raise InvalidInputError(f"unknown weights format {suffix!r} for {path}: use .safetensors, .pth or .pt")
    check_finite(tensors, path)
    return tensors


def fit_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str = "weights",
                   hint: str = "the file was made for a different architecture or number of classes") -> None:
    """Load ``state`` into ``model`` strictly; the first mismatch is named with both shapes."""
    own = model.state_dict()
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise ShapeMismatchError(f"{what}: tensor '{key}'", tuple(own[key].shape), tuple(value.shape), hint)
        if key in own and own[key].is_floating_point() and not value.is_floating_point():
            # load_state_dict would cast quantised integers to float silently, scale and zero point lost.
            raise InvalidInputError(
                f"{what}: tensor '{key}' is {str(value.dtype).replace('torch.', '')} where the model holds "
                f"{str(own[key].dtype).replace('torch.', '')}; integer (quantised) weights are not read: "
                "dequantise them to floating point first")
    mismatch = key_mismatch(own, state, "model", "file")
    if mismatch:
        raise InvalidInputError(f"{what} do not fit the model: {mismatch}")
    model.load_state_dict(state, strict=False)


