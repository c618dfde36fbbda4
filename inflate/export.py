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
    """onnxruntime against torch on one random clip (and, with dynamic height and width, on a
    clip of another frame size).

    ``dynamic_size`` says whether height and width are dynamic axes of the file; when they are
    not, ``fixed_size_reason`` says why (the same text is in the file's metadata).
    ``size_checks`` holds (clip shape, max |Δ| / max |torch|) for every clip checked.
    """

    path: str
    opset: int
    clip_shape: tuple[int, ...]
    max_abs_diff: float
    max_abs_torch: float
    tolerance: float = ONNX_TOLERANCE
    dynamic_size: bool = False
    fixed_size_reason: str = ""
    size_checks: tuple[tuple[tuple[int, ...], float], ...] = ()

    @property
    def max_rel_diff(self) -> float:
        return self.max_abs_diff / self.max_abs_torch if self.max_abs_torch else self.max_abs_diff

    @property
    def passed(self) -> bool:
        return self.max_rel_diff <= self.tolerance and all(error <= self.tolerance for _, error in self.size_checks)

    @property
    def axes(self) -> str:
        """The clip input's axes as the file declares them, e.g. ``batch×3×time×height×width``."""
        height, width = ("height", "width") if self.dynamic_size else self.clip_shape[3:]
        return "×".join(str(a) for a in ("batch", self.clip_shape[1], "time", height, width))


def _onnx_session(onnx_path: Path, quiet: bool = False) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if quiet:  # a failure is expected and reported by the caller: not onnxruntime's own log on stderr
        options.log_severity_level = 4
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def _torch_output(model3d: nn.Module, clip: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        expected = model3d(clip)
    expected = expected[0] if isinstance(expected, (tuple, list)) else expected
    return expected.float().numpy()


def _onnx_compare(session: Any, clip: torch.Tensor, reference: np.ndarray) -> tuple[float, float]:
    """(max |onnxruntime − torch|, max |torch|) on ``clip``."""
    got = session.run(None, {session.get_inputs()[0].name: clip.numpy()})[0]
    if got.shape != reference.shape:
        raise InflateError(f"onnxruntime output shape {got.shape} differs from torch's {reference.shape}")
    return float(np.abs(got - reference).max()), float(np.abs(reference).max())


def _onnx_verify(model3d: nn.Module, onnx_path: Path, clip: torch.Tensor) -> tuple[float, float]:
    return _onnx_compare(_onnx_session(onnx_path), clip, _torch_output(model3d, clip))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return " ".join(text.splitlines()[0].split())[:200] if text else type(error).__name__


def probe_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Frame sizes other than (height, width) that show whether an exported graph follows the
    input size: about half the size, odd and not square first (a pad, a reshape or a position
    table frozen at the example size shows there), then a square multiple of 32 (for models
    that only take those)."""
    odd = ((height // 2) | 1, (width * 5 // 8) | 1)
    even = (max(32, height // 2 // 32 * 32),) * 2
    return [size for size in (odd, even) if size != (height, width)]


def _probe_clip(model3d: nn.Module, clip: torch.Tensor,
                seed: int) -> tuple[Optional[torch.Tensor], Optional[np.ndarray], str]:
    """A clip of another frame size that the 3D model runs in torch, with its output; or None
    and why not."""
    generator = torch.Generator().manual_seed(seed + 1)
    failures = []
    for height, width in probe_sizes(*clip.shape[3:]):
        other = torch.randn(*clip.shape[:3], height, width, generator=generator)
        try:
            return other, _torch_output(model3d, other), ""
        except Exception as error:  # the model refuses this size: try the next, or keep the size fixed
            failures.append(f"{height}×{width}: {_first_line(error)}")
    return None, None, "the 3D model does not run in torch at other frame sizes (" + "; ".join(failures) + ")"


def _runtime_failure(error: BaseException) -> str:
    """onnxruntime's error, shortened to the node that failed."""
    import re

    match = re.search(r"running (\w+) node\. Name:'([^']*)'", str(error))
    return f"its {match[1]} node '{match[2]}' fails" if match else _first_line(error)


def _frozen_size_hint(model3d: nn.Module) -> str:
    if any(name.endswith(("pos_embed", "position_embeddings")) for name, _ in model3d.named_parameters()):
        return ("its position embeddings are resampled to the token grid in Python, which the exporter freezes at "
                "the example size")
    return "a size computed in Python was frozen at the example size by the exporter"


def _export_once(model3d: nn.Module, clip: torch.Tensor, path: Path, exporter: str, opset: Optional[int],
                 axes: dict[int, str]) -> None:
    import warnings

    with warnings.catch_warnings(), _quiet_stdout(), _export_errors(exporter):
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            torch.onnx.export(
                model3d, (clip,), str(path), dynamo=False, input_names=["clip"], output_names=["output"],
                dynamic_axes={"clip": axes, "output": {0: "batch"}},
                **({"opset_version": opset} if opset else {}),
            )
        else:
            dims = {i: torch.export.Dim(name, min=1, max=1 << 14) for i, name in axes.items()}
            # external_data=False: one file (else the weights go to "<path>.data", which the rename
            # of the temporary would leave behind under the temporary's name)
            torch.onnx.export(
                model3d, (clip,), str(path), dynamo=True, input_names=["clip"], output_names=["output"],
                dynamic_shapes={next(iter(_forward_arg_names(model3d))): dims}, external_data=False,
                **({"opset_version": opset} if opset else {}),
            )


def export_onnx(
    model3d: nn.Module,
    path: str | os.PathLike[str],
    *,
    opset: Optional[int] = None,
    exporter: str = "torchscript",
    dynamic_time: bool = True,
    dynamic_size: Optional[bool] = None,
    size: Optional[tuple[int, int]] = None,
    verify: bool = True,
    force: bool = False,
    seed: int = 0,
) -> OnnxReport:
    """Export to ONNX with dynamic batch, time, height and width axes, check it, verify in onnxruntime.

    The example clip is (1, C, t, H, W): t and (C, H, W) from the model's settings (the size it
    was inflated at), or ``size`` = (H, W). ``exporter`` is "torchscript" (default: fast,
    handles every model of the test zoo) or "dynamo" (torch.export based). ``opset`` None
    lets the exporter choose.

    ``dynamic_size``: None (default) makes height and width dynamic where the exported graph
    follows the frame size: onnxruntime must match torch on a clip of another size too (CNNs
    with global pooling do; TF-SAME padding is computed in the graph). Where it does not (a
    ViT's position table resampled in Python, a model that takes one size only), the file
    keeps the example size and the report and the file's metadata say why. This check runs
    even without ``verify``. True insists (with ``verify``, a graph that does not follow the
    size raises); False keeps the example size. With the dynamo exporter, None keeps the
    example size (its symbolic sizes make such exports take minutes); True asks for it.

    The file is only written if ``onnx.checker`` (full check) passes and, with ``verify``, if
    onnxruntime matches torch within 1e-4 relative; otherwise nothing is left behind.
    Metadata: the ``inflate`` entry (what rebuilds the model) and ``inflate_onnx`` (the
    dynamic axes, the example size, and why the size is fixed where it is).
    """
    import onnx

    settings = _settings(model3d)
    if exporter not in ("torchscript", "dynamo"):
        raise InvalidInputError(f"unknown exporter {exporter!r}: use torchscript or dynamo")
    import importlib.util

    if exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise InvalidInputError("the dynamo exporter needs onnxscript: pip install onnxscript, or use "
                                "--exporter torchscript (the default)")
    validate_opset(opset, exporter)
    if size is not None and (len(size) != 2 or not all(core_metadata.int_like(v) and v > 0 for v in size)):
        raise InvalidInputError(f"size must be two positive integers (H, W), got {size!r}")
    model3d = model3d.eval()
    device_model = next(model3d.parameters()).device
    if device_model.type != "cpu":
        raise InvalidInputError("export the model from the CPU: call model.cpu() first")
    generator = torch.Generator().manual_seed(seed)
    height, width = size or tuple(settings.input_size[1:])
    clip = torch.randn(1, settings.input_size[0], settings.t, height, width, generator=generator)
    axes = {0: "batch", 2: "time"} if dynamic_time else {0: "batch"}
    probe: Optional[torch.Tensor] = None
    probe_reference: Optional[np.ndarray] = None
    reason = ""
    if dynamic_size is False:
        reason = "fixed on request (dynamic_size=False)"
    elif dynamic_size is None and exporter == "dynamo":
        # With symbolic height and width, torch.export took minutes where a fixed size takes seconds
        # (test_efficientnet with TF-SAME padding: 25 s fixed, unfinished after 9 minutes dynamic, 2 busy cores).
        reason = "the dynamo exporter keeps the example size unless asked (dynamic_size=True; can take minutes)"
    if not reason and (dynamic_size is None or verify):
        probe, probe_reference, reason = _probe_clip(model3d, clip, seed)
        if dynamic_size and probe is None:
            raise InvalidInputError(f"cannot export dynamic height and width: {reason}")
    with atomic_output(path, force) as temporary:
        temporary = Path(temporary)
        size_checks: list[tuple[tuple[int, ...], float]] = []
        dynamic = not reason
        if dynamic:
            _export_once(model3d, clip, temporary, exporter, opset, {**axes, 3: "height", 4: "width"})
            if probe is not None:
                try:
                    diff, scale = _onnx_compare(_onnx_session(temporary, quiet=True), probe, probe_reference)
                    error = diff / scale if scale else diff
                    if error > ONNX_TOLERANCE:
                        reason = (f"onnxruntime differs from torch by {error:.3g} relative at "
                                  f"{probe.shape[3]}×{probe.shape[4]}: {_frozen_size_hint(model3d)}")
                    else:
                        size_checks.append((tuple(probe.shape), error))
                except Exception as failure:  # onnxruntime refuses the other size: a shape was frozen
                    reason = (f"onnxruntime cannot run it at {probe.shape[3]}×{probe.shape[4]} "
                              f"({_runtime_failure(failure)}): {_frozen_size_hint(model3d)}")
                if reason and dynamic_size:
                    raise InflateError(f"the exported graph does not follow the frame size: {reason}; nothing was "
                                       "written. Export without dynamic_size=True to keep the example size")
            dynamic = not reason
        if not dynamic:
            _export_once(model3d, clip, temporary, exporter, opset, axes)
        proto = onnx.load(str(temporary))
        for key, value in ((METADATA_KEY, model_metadata(model3d)),
                           (ONNX_METADATA_KEY, json.dumps(_onnx_metadata(axes, dynamic, (height, width), reason)))):
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(temporary))
        onnx.checker.check_model(str(temporary), full_check=True)
        used_opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
        diff, scale = _onnx_verify(model3d, temporary, clip) if verify else (float("nan"), float("nan"))
        report = OnnxReport(str(path), used_opset, tuple(clip.shape), diff, scale, dynamic_size=dynamic,
                            fixed_size_reason=reason, size_checks=tuple(size_checks))
        if verify and not report.passed:
            raise InflateError(
                f"onnxruntime differs from torch by {report.max_rel_diff:.3g} relative (tolerance "
                f"{ONNX_TOLERANCE:g}); nothing was written. Try --exporter dynamo or another --opset"
            )
    return report


ONNX_METADATA_KEY = "inflate_onnx"


def _onnx_metadata(axes: dict[int, str], dynamic: bool, size: tuple[int, int], reason: str) -> dict[str, Any]:
    """How the file was exported: which clip axes are dynamic, and why the frame size is fixed."""
    names = {**axes, **({3: "height", 4: "width"} if dynamic else {})}
    return {"dynamic_axes": {str(axis): name for axis, name in sorted(names.items())},
            "example_size": list(size), "fixed_size_reason": reason or None}


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
        export = next((p.value for p in proto.metadata_props if p.key == ONNX_METADATA_KEY), None)
        if export is not None:
            info["export"] = _decode_onnx_metadata(export, path)
        return info
    meta, state = _read_metadata(path)
    info.update(format=suffix.lstrip("."), tensors=len(state),
                tensor_bytes=sum(t.numel() * t.element_size() for t in state.values()),
                parameters=sum(t.numel() for k, t in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))),
                metadata=meta)
    return info


def _decode_onnx_metadata(raw: str, path: Path) -> dict[str, Any]:
    """The ``inflate_onnx`` entry, shown as data only: its known keys, with plain values."""
    try:
        meta = json.loads(raw)
    except ValueError:
        raise InvalidInputError(f"{path}: its '{ONNX_METADATA_KEY}' metadata is not valid JSON; the file was "
                                "altered or not written by inflate") from None
    if not isinstance(meta, dict):
        raise InvalidInputError(f"{path}: its '{ONNX_METADATA_KEY}' metadata is not a JSON object")
    known = {"dynamic_axes": dict, "example_size": list, "fixed_size_reason": (str, type(None))}
    return {key: value for key, value in meta.items() if key in known and isinstance(value, known[key])}


def _onnx_itemsize(data_type: int) -> int:
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize
    except Exception:
        return 0


def _onnx_value(value: Any) -> str:
    dims = [d.dim_param or str(d.dim_value) for d in value.type.tensor_type.shape.dim]
    return f"{value.name}[{', '.join(dims)}]"

