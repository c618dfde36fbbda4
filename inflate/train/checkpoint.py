"""Run checkpoints: everything `--resume` needs, written atomically, read without unpickling objects.

A checkpoint is a ``torch.save`` of tensors and plain containers only (model, optimiser,
scheduler and scaler state, epoch, RNG states, label map, the inflation metadata and the
run's config), so ``torch.load(weights_only=True)`` reads it back.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..core.errors import InvalidInputError
from ..core.files import atomic_output

__all__ = ["LAST", "BEST", "LABELS", "CONFIG", "save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state",
           "write_json", "read_labels"]

LAST = "last.pt"            # the latest epoch's checkpoint (what --resume reads)
BEST = "best.safetensors"   # the best model by validation top-1, in `inflate convert`'s format
LABELS = "labels.json"
CONFIG = "config.json"


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch (CPU and CUDA) generator states as tensors and plain values."""
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "position": int(position),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["position"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` to ``path`` through a temporary and a rename: an interrupted write leaves the old one."""
    with atomic_output(path, force=True) as temporary:
        torch.save(dict(payload), str(temporary))
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a run checkpoint (tensors and plain containers only)."""
    import pickle

    if not path.is_file():
        raise InvalidInputError(f"no checkpoint at {path}: nothing to resume (train without --resume first)")
    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        from ..io import _weights_only_detail

        raise InvalidInputError(f"refused to load {path}: not a run checkpoint of plain tensors and containers "
                                f"(the safe loader stopped at: {_weights_only_detail(error)})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [""])[0][:160]
        raise InvalidInputError(f"{path} is not a readable run checkpoint ({type(error).__name__}: {first})") from None
    required = {"model", "optimizer", "scheduler", "epoch", "rng", "labels", "config"}
    if not isinstance(payload, dict) or not required <= set(payload):
        missing = sorted(required - set(payload)) if isinstance(payload, dict) else sorted(required)
        raise InvalidInputError(f"{path} is not a run checkpoint of `inflate train` (missing {', '.join(missing)})")
    return payload


def json_safe(value: Any) -> Any:
    """NaN and ±Inf (a metric with nothing to average) as null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def write_json(path: Path, value: Any) -> None:
    with atomic_output(path, force=True) as temporary:
        temporary.write_text(json.dumps(json_safe(value), indent=2, default=str, allow_nan=False) + "\n")


def read_labels(run_dir: Path) -> list[str]:
    path = run_dir / LABELS
    if not path.is_file():
        raise InvalidInputError(f"{run_dir} is not a run folder of `inflate train` (no {LABELS})")
    try:
        labels = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise InvalidInputError(f"{path} must hold a non-empty list of class names")
    return labels
