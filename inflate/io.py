"""Reading weight files safely and writing outputs atomically.

Nothing here unpickles arbitrary objects: ``.safetensors`` holds only tensors, and
``.pth``/``.pt`` files are read with ``torch.load(weights_only=True)``, which refuses any
pickle that would build something other than tensors and plain containers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import torch

from .core.errors import InvalidInputError, ShapeMismatchError, key_mismatch
from .core.files import OutputExistsError, atomic_output, check_output_path

__all__ = ["load_state_dict_file", "atomic_output", "check_output_path", "fit_state_dict", "OutputExistsError"]


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


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors or .pth/.pt/.bin file, on the CPU. Refuses pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise InvalidInputError(
                f"{path} is not a readable .safetensors file ({error}); it may be truncated or corrupt"
            ) from None
    if suffix in (".pth", ".pt", ".bin", ".ckpt"):
        import pickle

        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            first = str(error).strip().splitlines()[0]
            raise InvalidInputError(
                f"refused to load {path}: it is a pickle holding more than tensors ({first}). "
                "Only plain state dicts are read (torch.load weights_only=True); re-save it with "
                "torch.save(model.state_dict(), path) or as .safetensors"
            ) from None
        except (RuntimeError, EOFError, OSError, ValueError) as error:
            raise InvalidInputError(f"{path} is not a readable PyTorch file ({error}); it may be truncated or corrupt") from None
        return _unwrap(obj, path)
    raise InvalidInputError(f"unknown weights format {suffix!r} for {path}: use .safetensors, .pth or .pt")


def fit_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str = "weights",
                   hint: str = "the file was made for a different architecture or number of classes") -> None:
    """Load ``state`` into ``model`` strictly; the first mismatch is named with both shapes."""
    own = model.state_dict()
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise ShapeMismatchError(f"{what}: tensor '{key}'", tuple(own[key].shape), tuple(value.shape), hint)
    mismatch = key_mismatch(own, state, "model", "file")
    if mismatch:
        raise InvalidInputError(f"{what} do not fit the model: {mismatch}")
    model.load_state_dict(state, strict=False)


