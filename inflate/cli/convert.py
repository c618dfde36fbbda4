"""`inflate convert`: inflate a model and write it as safetensors, ONNX or .pt."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..core.errors import InvalidInputError
from ..core.files import check_output_path
from .common import (build_2d, build_3d_preset, check_memory, check_options_apply, check_tubelet,
                     count_parameters, emit, frame_size, human_bytes, inflate_with_progress, is_3d_preset,
                     parse_overrides, refuse_options, sample_size, validate_num_classes, validate_policy,
                     validate_time)
from .errors import EXIT_CHECK_FAILED, handle_errors
from .options import (InitOpt, JsonOpt, ModelArg, NumClassesOpt, PadModeOpt, PolicyOpt, PretrainedOpt, QuietOpt,
                      AttentionOpt, FrameSizeOpt, InputSizeOpt, OverrideOpt, TimeOpt, TubeletOpt, WeightsOpt)

FormatOpt = Annotated[Optional[str], typer.Option("--format", "-f", help="safetensors, onnx or pt (default: from -o's suffix, else safetensors).")]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Output file (default: MODEL_t{T}.{format}).")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
OpsetOpt = Annotated[Optional[int], typer.Option("--opset", help="ONNX opset (default: the exporter's choice).")]
ExporterOpt = Annotated[Optional[str], typer.Option("--exporter", help="ONNX exporter: torchscript (default) or dynamo.", show_default=False)]
VerifyOpt = Annotated[bool, typer.Option("--verify/--no-verify", help="Check the ONNX file against torch in onnxruntime.")]


def _status(message: str, silent: bool) -> Any:
    """A spinner on stderr while a slow step runs (nothing when quiet or printing JSON)."""
    import contextlib

    from rich.console import Console

    console = Console(stderr=True)
    if silent or not console.is_terminal:
        return contextlib.nullcontext()
    return console.status(message)


SUFFIX_FORMATS = {".safetensors": "safetensors", ".onnx": "onnx", ".pt": "pt", ".pth": "pt"}


def _format(fmt: Optional[str], output: Optional[Path]) -> str:
    """The output format: --format, else -o's suffix, else safetensors. A suffix that names
    another format than --format is refused (the file would lie about what it holds)."""
    from ..export import FORMATS

    suffix = output.suffix.lower() if output is not None else ""
    implied = SUFFIX_FORMATS.get(suffix)
    if fmt is None:
        fmt = implied or (suffix.lstrip(".") if suffix else "safetensors")
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    if implied is not None and implied != fmt:
        raise InvalidInputError(f"--format {fmt} contradicts -o {output} (a {implied} suffix): use -o "
                                f"{output.with_suffix('.' + fmt)} or --format {implied}")  # type: ignore[union-attr]
    return fmt


@handle_errors
def convert(
    model: ModelArg,
    time: TimeOpt = 16,
    policy: PolicyOpt = None,
    init: InitOpt = None,
    pad_mode: PadModeOpt = None,
    override: OverrideOpt = None,
    attention: AttentionOpt = None,
    tubelet: TubeletOpt = None,
    pretrained: PretrainedOpt = False,
    weights: WeightsOpt = None,
    num_classes: NumClassesOpt = None,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    force: ForceOpt = False,
    opset: OpsetOpt = None,
    exporter: ExporterOpt = None,
    verify: VerifyOpt = True,
    size: FrameSizeOpt = None,
    input_size: InputSizeOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Inflate MODEL to 3D and write it (weights + the metadata to rebuild it)."""
    from ..export import validate_opset

    validate_time(time)
    validate_num_classes(num_classes)
    resolved = validate_policy(policy, init, pad_mode, attention, tubelet)
    overrides = parse_overrides(override)
    given_channels, size = frame_size(size, input_size)
    if exporter not in (None, "torchscript", "dynamo"):
        raise InvalidInputError(f"--exporter {exporter!r}: use torchscript or dynamo")
    if model.lower().endswith(".onnx"):
        refuse_options([("--weights", weights), ("--pretrained", pretrained), ("--num-classes", num_classes),
                        ("--attention", attention), ("--tubelet", tubelet), ("--opset", opset),
                        ("--exporter", exporter)],
                       f"an ONNX input ({model})", "its weights and opset come from the graph; leave it out")
        if fmt not in (None, "onnx"):
            raise InvalidInputError(f"--format {fmt}: an ONNX input ({model}) is written as ONNX; use --format onnx")
        _convert_onnx(Path(model), time, resolved, pad_mode, overrides, output, force, verify, quiet, as_json, size,
                      given_channels)
        return
    fmt = _format(fmt, output)
    if fmt != "onnx":
        refuse_options([("--opset", opset), ("--exporter", exporter), ("--no-verify", not verify or None)],
                       f"{fmt} output", "it is for ONNX output only; leave it out")
    validate_opset(opset, exporter or "torchscript")
    output = output or Path(f"{model}_t{time}.{fmt}")
    check_output_path(output, force, inputs=(model, weights))  # fail before the slow part
    if is_3d_preset(model):
        if model == "i3d_two_stream":
            raise InvalidInputError("i3d_two_stream takes two inputs: convert i3d_rgb and i3d_flow separately")
        refuse_options([("--policy", policy), ("--init", init), ("--override", override), ("--attention", attention),
                        ("--tubelet", tubelet), ("--pretrained", pretrained)],
                       f"the ready 3D model {model}", "it has its own policy: leave it out, or inflate a 2D model")
        if size is not None and fmt != "onnx":
            raise InvalidInputError(f"--size does not apply to the ready 3D model {model} written as {fmt} (it is "
                                    "not traced; the size is the ONNX export's example input); leave it out")
        model3d = build_3d_preset(model, time, weights, num_classes, pad_mode)
        sample = sample_size(model, model3d, model3d.inflation.input_size, size, given_channels, t=time)
        check_memory(model, None, time, sample, "export")
        report = model3d.inflation.report
    else:
        model2d = build_2d(model, pretrained, weights, num_classes)
        check_tubelet(model, model2d, time, resolved.name, tubelet)
        sample = sample_size(model, model2d, _input_size(model2d), size, given_channels)
        check_memory(model, model2d, time, sample, "export")
        model3d, report = inflate_with_progress(model2d, time, not (quiet or as_json), policy=resolved.name, init=init,
                                                pad_mode=pad_mode, overrides=overrides,
                                                attention=attention, tubelet=tubelet, input_size=sample)
        check_options_apply(model, report, time, attention, overrides)
    _write(model, model3d, report, fmt, output, force, opset, exporter or "torchscript", verify, quiet, as_json, size)


def _write(model: str, model3d: Any, report: Any, fmt: str, output: Path, force: bool, opset: Optional[int],
           exporter: str, verify: bool, quiet: bool, as_json: bool, size: Optional[tuple[int, int]] = None) -> None:
    """Write ``model3d`` as ``fmt``, print what was done; exit 1 if the ONNX file does not match torch."""
    from ..export import ONNX_TOLERANCE, export_onnx, save_pt, save_safetensors

    time, policy, init = model3d.inflation.t, model3d.inflation.policy, model3d.inflation.init
    payload = {"model": model, "t": time, "policy": policy, "init": init, "format": fmt, "output": str(output),
               "parameters": count_parameters(model3d), "frame_wise": [r.path for r in report.frame_wise]}
    lines = [f"inflated {model}: {len(report.inflated)} ops with 3D rules, {len(report.temporal_layers())} mixing "
             f"frames, {len(report.frame_wise)} frame-wise"]
    check_text = ""
    if fmt == "onnx":
        with _status("exporting to ONNX and verifying in onnxruntime", quiet or as_json):
            onnx_report = export_onnx(model3d, output, opset=opset, exporter=exporter, verify=verify, force=force,
                                      size=size)
        payload.update(opset=onnx_report.opset, onnx_max_abs_diff=onnx_report.max_abs_diff,
                       onnx_max_rel_diff=onnx_report.max_rel_diff, onnx_input=onnx_report.axes,
                       onnx_dynamic_size=onnx_report.dynamic_size,
                       onnx_fixed_size_reason=onnx_report.fixed_size_reason or None)
        checked = "; ".join(f"{max(e, 0):.2g} at {s[3]}×{s[4]}" for s, e in onnx_report.size_checks)
        check_text = (f", onnxruntime vs torch max |Δ| {onnx_report.max_abs_diff:.2g} "
                      f"({onnx_report.max_rel_diff:.2g} relative{'; ' + checked if checked else ''})"
                      if verify else ", not verified")
        lines.append(f"ONNX input clip[{onnx_report.axes}]" + (
            f"; height and width fixed at {onnx_report.clip_shape[3]}×{onnx_report.clip_shape[4]}: "
            f"{onnx_report.fixed_size_reason}" if not onnx_report.dynamic_size else ""))
    elif fmt == "pt":
        with _status(f"writing {output}", quiet or as_json):
            save_pt(model3d, output, force=force)
    else:
        with _status(f"writing {output}", quiet or as_json):
            save_safetensors(model3d, output, force=force)
    size = output.stat().st_size
    payload["bytes"] = size
    lines.append(f"wrote {output} ({human_bytes(size)}, {count_parameters(model3d):,} parameters, t={time}, "
                 f"policy {policy}, init {init}{check_text})")
    emit(payload, as_json, lines, quiet)
    if fmt == "onnx" and verify and not payload.get("onnx_max_rel_diff", 0) <= ONNX_TOLERANCE:
        raise typer.Exit(EXIT_CHECK_FAILED)


def _input_size(model2d: Any) -> tuple[int, int, int]:
    from ..adapters.torch import default_input_size

    return tuple(default_input_size(model2d))  # type: ignore[return-value]


def _read_onnx(source: Path) -> Any:
    """The 2D graph, refused if it is not a readable ONNX file or holds non-finite weights."""
    import onnx
    from onnx import numpy_helper

    from ..core.files import require_input_file

    require_input_file(source, "", "an .onnx file")
    try:
        proto = onnx.load(str(source))
    except Exception as error:  # protobuf decode errors, missing external data
        raise InvalidInputError(f"{source} is not a readable ONNX file ({type(error).__name__}); it may be "
                                "truncated or corrupt") from None
    import numpy as np

    for tensor in proto.graph.initializer:
        array = numpy_helper.to_array(tensor)
        if array.dtype.kind == "f" and array.size and not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise InvalidInputError(f"tensor '{tensor.name}' in {source} has {bad} non-finite values (NaN or Inf) "
                                    f"of {array.size}; the weights are damaged: use a good model")
    return proto


def _onnx_input_size(proto: Any) -> tuple[int, int, int]:
    initializers = {t.name for t in proto.graph.initializer}
    for value in proto.graph.input:
        if value.name not in initializers:
            dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
            if len(dims) == 4 and all(d > 0 for d in dims[1:]):
                return dims[1], dims[2], dims[3]
    return 3, 224, 224


def _onnx_sample_size(proto: Any, source: Path, size: Optional[tuple[int, int]],
                      given_channels: Optional[int]) -> tuple[int, int, int]:
    """(C, H, W) of the check's image: --size where the graph's height and width are dynamic;
    a --size the graph cannot take (it fixes another size) is refused."""
    channels, height, width = _onnx_input_size(proto)
    if given_channels is not None and size is not None and given_channels != channels:
        raise InvalidInputError(f"--input-size {given_channels} {size[0]} {size[1]}: {source} takes {channels}-channel "
                                f"images; use --input-size {channels} {size[0]} {size[1]} (or --size {size[0]} "
                                f"{size[1]})")
    if size is None:
        return channels, height, width
    initializers = {t.name for t in proto.graph.initializer}
    image = next(v for v in proto.graph.input if v.name not in initializers)
    dims = [d.dim_value for d in image.type.tensor_type.shape.dim]
    fixed = [d for d in dims[2:] if d > 0]
    if len(dims) == 4 and fixed and (dims[2], dims[3]) != size:
        raise InvalidInputError(f"--size {size[0]} {size[1]}: {source} was exported for {dims[2]}×{dims[3]} images "
                                f"only; use --size {dims[2]} {dims[3]}, or export the 2D model with dynamic height and "
                                "width")
    return channels, size[0], size[1]


def _convert_onnx(source: Path, time: int, policy: Any, pad_mode: Optional[str],
                  overrides: Optional[dict[str, dict[str, int]]], output: Optional[Path], force: bool, verify: bool,
                  quiet: bool, as_json: bool, size: Optional[tuple[int, int]] = None,
                  given_channels: Optional[int] = None) -> None:
    """ONNX in, ONNX out; verified (unless ``verify`` is false) in onnxruntime on a boring clip
    against the 2D graph, at ``size`` where given. ``policy`` is the resolved policy, init included."""
    import onnx

    from ..adapters.onnx import inflate_onnx
    from ..adapters.onnx.check import boring_video_onnx
    from ..checks import BORING_TOLERANCE
    from ..core.files import atomic_output, check_output_path

    output = output or source.with_name(f"{source.stem}_t{time}.onnx")
    if output.suffix.lower() != ".onnx":
        raise InvalidInputError(f"-o {output}: an ONNX input is written as ONNX; give the output an .onnx suffix")
    check_output_path(output, force, inputs=(source,))
    proto = _read_onnx(source)
    sample = _onnx_sample_size(proto, source, size, given_channels)
    check_memory(str(source), None, time, sample, "convert and check")
    model3d = inflate_onnx(source, t=time, policy=policy, pad_mode=pad_mode, overrides=overrides)
    with atomic_output(output, force) as temporary:
        onnx.save(model3d, str(temporary))
        error = boring_video_onnx(source, temporary, time, size=sample[1:]) if verify else None
    size = output.stat().st_size
    passed = error is None or error <= BORING_TOLERANCE
    check = ("not verified" if error is None else
             f"onnxruntime boring video vs the 2D graph: {error:.3g} relative {'(passed)' if passed else '(FAILED)'}")
    lines = [f"wrote {output} ({human_bytes(size)}, t={time}, policy {policy.name}, init {policy.init}); {check}"]
    emit({"output": str(output), "bytes": size, "boring_video_max_rel_error": error, "passed": passed}, as_json,
         lines, quiet)
    if not passed:
        raise typer.Exit(EXIT_CHECK_FAILED)
