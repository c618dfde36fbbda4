"""`inflate weights`: inflate a 2D weight file with no model code."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..core.errors import InvalidInputError
from .common import emit, human_bytes, parse_overrides, validate_policy, validate_time
from .errors import handle_errors
from .options import InitOpt, JsonOpt, OverrideOpt, PolicyOpt, QuietOpt, TimeOpt


@handle_errors
def weights(
    source: Annotated[Path, typer.Argument(help="2D weights: .safetensors (streamed) or .pth/.pt (weights_only=True).")],
    output: Annotated[Path, typer.Argument(help="Output .safetensors file.")],
    time: TimeOpt = 8,
    policy: PolicyOpt = None,
    init: InitOpt = None,
    override: OverrideOpt = None,
    target: Annotated[Optional[Path], typer.Option("--target", help="A 3D weight file whose shapes decide every kernel's temporal size.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Inflate every 4D conv kernel of SOURCE to 5D; copy everything else."""
    from ..adapters.safetensors import inflate_weights_file
    from ..core.files import check_output_path

    validate_time(time)
    resolved = validate_policy(policy, init, None, None, None)
    if output.suffix.lower() != ".safetensors":
        raise InvalidInputError(f"output {output}: inflated weights are written as safetensors; give it a "
                                ".safetensors suffix")
    check_output_path(output, force, inputs=(source, target))
    plans = inflate_weights_file(source, output, time, policy=resolved, overrides=parse_overrides(override),
                                 target=target, force=force)
    inflated = [p for p in plans if p.time_kernel is not None]
    size = output.stat().st_size
    lines = [f"{p.key}: {p.shape2d} -> {p.shape3d}" for p in inflated]
    lines.append(f"wrote {output} ({human_bytes(size)}): {len(inflated)} kernels inflated, "
                 f"{len(plans) - len(inflated)} tensors copied, t={time}, policy {resolved.name}, init {resolved.init}")
    emit({"output": str(output), "bytes": size, "inflated": {p.key: list(p.shape3d) for p in inflated},
          "copied": len(plans) - len(inflated)}, as_json, lines, quiet)
