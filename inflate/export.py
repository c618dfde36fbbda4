"""Saving inflated models (safetensors, .pt, ONNX), rebuilding them from a file, and inspecting files.

A saved file carries the metadata needed to rebuild the model from the file alone plus
timm: the 2D architecture and its arguments, t, policy, init, temporal padding and
per-layer overrides, and the library version (``inflate`` key, a JSON string).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch import nn

from . import __version__
from .core import metadata as core_metadata
from .core.errors import InflateError, InvalidInputError
from .core.files import require_input_file
from .io import atomic_output, fit_state_dict, load_state_dict_file

__all__ = [
    "inflation_metadata",
    "model_metadata",
    "save_safetensors",
    "save_pt",
    "export_onnx",
    "OnnxReport",
    "load_inflated",
    "load",
    "inspect_file",
    "FORMATS",
]

FORMATS = ("safetensors", "onnx", "pt")
METADATA_KEY = core_metadata.METADATA_KEY
ONNX_TOLERANCE = 1e-4


def _settings(model3d: nn.Module) -> Any:
    settings = getattr(model3d, "inflation", None)
    if settings is None:
        raise InvalidInputError(
            f"{type(model3d).__name__} was not made by inflate_model (it has no .inflation settings)"
        )
    return settings


def inflation_metadata(model3d: nn.Module) -> dict[str, Any]:
    """What is needed to rebuild ``model3d``: a JSON-able dict (the "model" fields of
    :mod:`inflate.core.metadata`)."""
    s = _settings(model3d)
    if s.overrides is not None and not isinstance(s.overrides, dict):
        overrides: Any = "callable"
    else:
        overrides = s.overrides
    return {
        "source": s.source,
        "source_kwargs": dict(s.source_kwargs),
        "t": s.t,
        "policy": s.policy,
        "init": s.init,
        "pad_mode": s.pad_mode,
        "overrides": overrides,
        "input_size": list(s.input_size),
        "attention": s.attention,
        "tubelet": s.tubelet,
        "library_version": s.library_version,
    }


def model_metadata(model3d: nn.Module) -> str:
    """``model3d``'s metadata string, as files and checkpoints store it under ``inflate``."""
    return core_metadata.write_metadata("model", inflation_metadata(model3d))


def _state_dict(model3d: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage and strided tensors: clone tensors that alias another one, and make
    # channels_last(_3d) ones contiguous (clone() alone would keep their memory format).
    seen: dict[tuple[int, int], str] = {}
    out = {}
    for key, value in model3d.state_dict().items():
        value = value.detach().cpu()
        ident = (value.untyped_storage().data_ptr(), value.storage_offset())
        out[key] = value.clone(memory_format=torch.contiguous_format) if ident in seen or not value.is_contiguous() else value
        seen[ident] = key
    return out


def save_safetensors(model3d: nn.Module, path: str | os.PathLike[str], *, force: bool = False,
                     extra_metadata: Optional[dict[str, Any]] = None) -> Path:
    """Write the 3D model's tensors and rebuild metadata to ``path`` (atomically).

    ``extra_metadata`` adds JSON-able entries under their own keys (a trained run adds its
    ``labels``); they are never read back as settings that rebuild the model.
    """
    from safetensors.torch import save_file

    meta = {METADATA_KEY: model_metadata(model3d)}
    for key, value in (extra_metadata or {}).items():
        if key == METADATA_KEY:
            raise InvalidInputError(f"extra metadata cannot replace the '{METADATA_KEY}' entry")
        meta[key] = json.dumps(value)
    with atomic_output(path, force) as temporary:
        save_file(_state_dict(model3d), str(temporary), metadata=meta)
    return Path(path)


def save_pt(model3d: nn.Module, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Write {"state_dict", "inflate"} with torch.save; readable with weights_only=True."""
    payload = {"state_dict": _state_dict(model3d), METADATA_KEY: model_metadata(model3d)}
    with atomic_output(path, force) as temporary:
        torch.save(payload, str(temporary))
    return Path(path)


@dataclass(frozen=True)
class OnnxReport:
    """onnxruntime against torch on one random clip."""

    path: str
    opset: int
    clip_shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_torch: float
    tolerance: float = ONNX_TOLERANCE

    @property
    def max_rel_diff(self) -> float:
        return self.max_abs_diff / self.max_abs_torch if self.max_abs_torch else self.max_abs_diff

    @property
    def passed(self) -> bool:
        return self.max_rel_diff <= self.tolerance


def _onnx_verify(model3d: nn.Module, onnx_path: Path, clip: torch.Tensor) -> tuple[float, float]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model3d(clip)
    expected = expected[0] if isinstance(expected, (tuple, list)) else expected
    got = session.run(None, {session.get_inputs()[0].name: clip.numpy()})[0]
    reference = expected.float().numpy()
    if got.shape != reference.shape:
        raise InflateError(f"onnxruntime output shape {got.shape} differs from torch's {reference.shape}")
    return float(np.abs(got - reference).max()), float(np.abs(reference).max())


def export_onnx(
    model3d: nn.Module,
    path: str | os.PathLike[str],
    *,
    opset: Optional[int] = None,
    exporter: str = "torchscript",
    dynamic_time: bool = True,
    verify: bool = True,
    force: bool = False,
    seed: int = 0,
) -> OnnxReport:
    """Export to ONNX with a dynamic batch axis (and time axis), check it, verify in onnxruntime.

    ``exporter`` is "torchscript" (default: fast, handles every model of the test zoo) or
    "dynamo" (torch.export based). ``opset`` None lets the exporter choose. The file is
    only written if ``onnx.checker`` (full check) passes and, with ``verify``, if
    onnxruntime matches torch within 1e-4 relative; otherwise nothing is left behind.
    """
    import onnx

    settings = _settings(model3d)
    if exporter not in ("torchscript", "dynamo"):
        raise InvalidInputError(f"unknown exporter {exporter!r}: use torchscript or dynamo")
    validate_opset(opset, exporter)
    model3d = model3d.eval()
    device_model = next(model3d.parameters()).device
    if device_model.type != "cpu":
        raise InvalidInputError("export the model from the CPU: call model.cpu() first")
    generator = torch.Generator().manual_seed(seed)
    clip = torch.randn(1, *settings.input_size[:1], settings.t, *settings.input_size[1:], generator=generator)
    axes = {0: "batch", 2: "time"} if dynamic_time else {0: "batch"}
    with atomic_output(path, force) as temporary:
        import warnings

        with warnings.catch_warnings(), _quiet_stdout(), _export_errors(exporter):
            warnings.simplefilter("ignore")
            if exporter == "torchscript":
                torch.onnx.export(
                    model3d, (clip,), str(temporary), dynamo=False, input_names=["clip"], output_names=["output"],
                    dynamic_axes={"clip": axes, "output": {0: "batch"}},
                    **({"opset_version": opset} if opset else {}),
                )
            else:
                dims = {i: torch.export.Dim(name, min=1, max=1 << 14) for i, name in axes.items()}
                torch.onnx.export(
                    model3d, (clip,), str(temporary), dynamo=True, input_names=["clip"], output_names=["output"],
                    dynamic_shapes={next(iter(_forward_arg_names(model3d))): dims},
                    **({"opset_version": opset} if opset else {}),
                )
        proto = onnx.load(str(temporary))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, model_metadata(model3d)
        onnx.save(proto, str(temporary))
        onnx.checker.check_model(str(temporary), full_check=True)
        used_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        diff, scale = _onnx_verify(model3d, Path(temporary), clip) if verify else (float("nan"), float("nan"))
        report = OnnxReport(str(path), used_opset, tuple(clip.shape), diff, scale)
        if verify and not report.passed:
            raise InflateError(
                f"onnxruntime differs from torch by {report.max_rel_diff:.3g} relative (tolerance "
                f"{ONNX_TOLERANCE:g}); nothing was written. Try --exporter dynamo or another --opset"
            )
    return report


def opset_range(exporter: str = "torchscript") -> tuple[int, int]:
    """The ONNX opsets ``exporter`` writes, from torch's own constants."""
    try:
        from torch.onnx import _constants as limits

        low, high = limits.ONNX_MIN_OPSET, limits.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET
        if exporter == "dynamo":
            low, high = 18, limits.ONNX_MAX_OPSET  # torch.export-based: opset 18 and later
    except (ImportError, AttributeError):
        low, high = (7, 20) if exporter != "dynamo" else (18, 23)
    return low, high


def validate_opset(opset: Optional[int], exporter: str = "torchscript") -> None:
    """Refuse an opset the exporter cannot write, before any slow step."""
    if opset is None:
        return
    low, high = opset_range(exporter)
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise InvalidInputError(f"--opset {opset}: the {exporter} exporter writes opsets {low} to {high}")


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send what the exporter's C++ side prints (whole graphs, on failure) to nowhere, at the
    file-descriptor level: stdout belongs to the command's own output (and --json)."""
    import sys

    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError):  # no real stdout (embedded, captured): nothing to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


@contextlib.contextmanager
def _export_errors(exporter: str) -> Iterator[None]:
    try:
        yield
    except (InflateError, OSError):
        raise
    except Exception as error:  # the exporters' errors carry pages of graph: keep the first line
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise InflateError(f"the {exporter} ONNX exporter failed ({type(error).__name__}: {first}); "
                           "try --exporter dynamo or another --opset; nothing was written") from None


def _forward_arg_names(model: nn.Module) -> list[str]:
    import inspect

    return [p for p in inspect.signature(model.forward).parameters if p != "self"]


def validate_metadata(meta: object, path: object) -> dict[str, Any]:
    """The file's ``inflate`` metadata, checked against what this library writes
    (:func:`inflate.core.metadata.validate_metadata`); a model file's ``source`` must also
    name a timm model or preset. Raises InvalidInputError naming the first key at fault.
    """
    return _check_source(core_metadata.validate_metadata(meta, path), path)


def _check_source(meta: dict[str, Any], path: object) -> dict[str, Any]:
    if meta.get("kind", "model") == "model":
        import timm

        from .models import list_presets

        source = meta["source"]
        if not timm.is_model(source) and source not in list_presets():
            raise InvalidInputError(f"{path}: metadata 'source' {source!r} is not a timm model or preset name; refused")
    return meta


def _decode_metadata(raw: object, path: Path) -> dict[str, Any]:
    return _check_source(core_metadata.read_metadata(raw, path), path)


def _read_metadata(path: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    from .io import torch_load_safely

    require_input_file(path, "", "a .safetensors, .pt or .onnx file")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import safe_open

        state = load_state_dict_file(path)
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        raw = meta.get(METADATA_KEY)
    elif suffix in (".pt", ".pth"):
        payload = torch_load_safely(path)
        raw = payload.get(METADATA_KEY) if isinstance(payload, dict) else None
        state = payload.get("state_dict", {}) if isinstance(payload, dict) else {}
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise InvalidInputError(f"{path}: its 'state_dict' entry does not hold tensors only")
        from .io import check_finite

        check_finite(state, path)
    else:
        raise InvalidInputError(f"cannot rebuild a model from {suffix!r} files: use .safetensors or .pt")
    if raw is None:
        raise InvalidInputError(f"{path} has no '{METADATA_KEY}' metadata: it was not written by inflate")
    return _decode_metadata(raw, path), state


def load_inflated(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild an inflated model from a .safetensors or .pt file written by this library.

    Creates the 2D architecture with timm (random weights, no network), inflates it with
    the recorded settings, and loads the file's tensors strictly. Outputs are bit-identical
    to the saved model's.
    """
    from .adapters.torch import inflate_model
    from .models import create_2d_model

    path = Path(path)
    meta, state = _read_metadata(path)
    if meta.get("kind") == "weights":
        raise InvalidInputError(f"{path} holds weights inflated by `inflate weights`, with no model description; "
                                "load them into a model made by inflate_model (model.load_state_dict)")
    if meta.get("overrides") == "callable":
        raise InvalidInputError(f"{path} was made with an overrides callable, which cannot be stored; "
                                "rebuild it in Python with the same callable")
    # Only the validated integer sizes reach timm, and never pretrained: no download, no other file read.
    model2d = create_2d_model(meta["source"], pretrained=False, **meta.get("source_kwargs", {}))
    model3d = inflate_model(model2d, t=int(meta["t"]), policy=meta["policy"], init=meta["init"],
                            pad_mode=meta["pad_mode"], overrides=meta.get("overrides"),
                            input_size=tuple(meta["input_size"]), inplace=True,
                            attention=meta.get("attention"), tubelet=meta.get("tubelet"))
    fit_state_dict(model3d, state, what=f"tensors in {path}")
    return model3d.to(map_location).eval()


load = load_inflated


def inspect_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What a file written by this library holds: metadata, tensor count and bytes."""
    path = Path(path)
    require_input_file(path, "", "a .safetensors, .pt or .onnx file")
    suffix = path.suffix.lower()
    info: dict[str, Any] = {"file": str(path), "file_bytes": path.stat().st_size}
    if suffix == ".onnx":
        import onnx

        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as error:  # protobuf decode errors
            raise InvalidInputError(f"{path} is not a readable ONNX file ({type(error).__name__})") from None
        raw = next((p.value for p in proto.metadata_props if p.key == METADATA_KEY), None)
        info.update(
            format="onnx",
            opset=next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
            tensors=len(proto.graph.initializer),
            tensor_bytes=sum(int(np.prod(t.dims)) * _onnx_itemsize(t.data_type) for t in proto.graph.initializer),
            inputs=[_onnx_value(v) for v in proto.graph.input],
            outputs=[_onnx_value(v) for v in proto.graph.output],
        )
        info["metadata"] = _decode_metadata(raw, path) if raw else None
        return info
    meta, state = _read_metadata(path)
    info.update(format=suffix.lstrip("."), tensors=len(state),
                tensor_bytes=sum(t.numel() * t.element_size() for t in state.values()),
                parameters=sum(t.numel() for k, t in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))),
                metadata=meta)
    return info


def _onnx_itemsize(data_type: int) -> int:
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize
    except Exception:
        return 0


def _onnx_value(value: Any) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
    return f"{value.name}[{', '.join(dims)}]"

