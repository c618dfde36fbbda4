"""`inflate check`: convert, then run the boring-video and frame-order checks."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from ..core.errors import InvalidInputError
from .common import (build_2d, check_memory, check_options_apply, check_tubelet, emit, frame_size,
                     inflate_with_progress, is_3d_preset, parse_overrides, sample_size, validate_num_classes,
                     validate_policy, validate_time)
from .errors import EXIT_CHECK_FAILED, handle_errors
from .options import (InitOpt, JsonOpt, ModelArg, NumClassesOpt, PadModeOpt, PolicyOpt, PretrainedOpt, QuietOpt,
                      AttentionOpt, FrameSizeOpt, InputSizeOpt, OverrideOpt, TimeOpt, TubeletOpt, WeightsOpt)

TableOpt = Annotated[bool, typer.Option("--table/--no-table", help="Print the per-layer table.")]
RandomizeOpt = Annotated[Optional[bool], typer.Option(
    "--randomize/--no-randomize",
    help="Randomise norm statistics and zero-initialised parameters first (default when no weights are "
         "given: a fresh model's zero gammas would make the checks vacuous).")]


@handle_errors
def check(
    model: ModelArg,
    time: TimeOpt = 8,
    policy: PolicyOpt = None,
    init: InitOpt = None,
    pad_mode: PadModeOpt = None,
    override: OverrideOpt = None,
    attention: AttentionOpt = None,
    tubelet: TubeletOpt = None,
    pretrained: PretrainedOpt = False,
    weights: WeightsOpt = None,
    num_classes: NumClassesOpt = None,
    randomize: RandomizeOpt = None,
    table: TableOpt = True,
    size: FrameSizeOpt = None,
    input_size: InputSizeOpt = None,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Inflate MODEL and check it: repeated-frame clips give the 2D output; frame order matters."""
    from ..checks import check_boring_video, check_order_sensitivity
    from ..testing import randomize_weights, randomize_zero_parameters

    from ..adapters.torch import default_input_size

    if is_3d_preset(model):
        raise InvalidInputError(f"{model} is already a 3D model; `inflate check` inflates a 2D one: check its 2D "
                                "parent (`inflate check inception_v1_bn`), or `inflate convert` it (an ONNX "
                                "output is verified in onnxruntime)")
    validate_time(time)
    validate_num_classes(num_classes)
    resolved = validate_policy(policy, init, pad_mode, attention, tubelet)
    overrides = parse_overrides(override)
    given_channels, size = frame_size(size, input_size)
    model2d = build_2d(model, pretrained, weights, num_classes)
    check_tubelet(model, model2d, time, resolved.name, tubelet)
    sample = sample_size(model, model2d, default_input_size(model2d), size, given_channels)
    check_memory(model, model2d, time, sample, "check")
    randomize = randomize if randomize is not None else not (pretrained or weights)
    if randomize:
        randomize_weights(model2d)
    model3d, report = inflate_with_progress(model2d, time, not (quiet or as_json), policy=resolved.name, init=init,
                                            pad_mode=pad_mode, overrides=overrides,
                                            attention=attention, tubelet=tubelet, input_size=sample)
    check_options_apply(model, report, time, attention, overrides)
    boring = check_boring_video(model2d, model3d, t=time)
    # New temporal parameters start at zero (the model starts as the image model); give them values,
    # as training would, before asking whether frame order matters.
    trained = randomize_zero_parameters(model3d) if randomize else []
    order = check_order_sensitivity(model3d, t=time)
    passed = boring.passed and order.passed and not report.frame_wise
    lines = [report.table(), ""] if table else []
    if report.frame_wise:
        lines.append(f"frame-wise (no rule, no temporal modelling): {', '.join(r.path for r in report.frame_wise)}")
    if trained:
        lines.append(f"(order check after giving values to {len(trained)} zero-initialised temporal parameters)")
    lines += [str(boring), str(order),
              f"{model} t={time}: {'all checks passed' if passed else 'CHECKS FAILED'}"]
    payload = {
        "model": model, "t": time, "size": list(sample[1:]), "policy": model3d.inflation.policy,
        "init": model3d.inflation.init,
        "pad_mode": model3d.inflation.pad_mode,
        "passed": passed,
        "boring_video": {"max_abs_error": boring.max_abs_error, "max_rel_error": boring.max_rel_error,
                         "passed": boring.passed},
        "frame_order": {"relative_change": order.relative_change, "reversal_change": order.reversal_change,
                        "orders": dict(order.orders), "skipped": order.skipped, "passed": order.passed},
        "layers": [r.__dict__ for r in report.layers], "frame_wise": [r.path for r in report.frame_wise],
    }
    emit(payload, as_json, lines, quiet)
    if not passed:
        raise typer.Exit(EXIT_CHECK_FAILED)
