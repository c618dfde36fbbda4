"""`inflate inspect`: what an exported file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import emit, human_bytes
from .errors import handle_errors


@handle_errors
def inspect(
    file: Annotated[Path, typer.Argument(help="A .safetensors, .pt or .onnx file written by `inflate convert`.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show the source model, t, policy, init, library version, tensor count and size of FILE."""
    from ..export import inspect_file

    info = inspect_file(file)
    meta = info.get("metadata") or {}
    lines = [f"{info['file']}: {info['format']}, {human_bytes(info['file_bytes'])}"]
    if meta and meta.get("kind") == "weights":
        lines.append(f"  weights inflated from {meta.get('source_file')}: t={meta.get('t')} policy={meta.get('policy')} "
                     f"init={meta.get('init')}")
    elif meta:
        lines.append(f"  source {meta.get('source')} {meta.get('source_kwargs') or ''}".rstrip())
        lines.append(f"  t={meta.get('t')} policy={meta.get('policy')} init={meta.get('init')} "
                     f"pad_mode={meta.get('pad_mode')} input={meta.get('input_size')}")
        if meta.get("overrides"):
            lines.append(f"  overrides {meta['overrides']}")
        lines.append(f"  written by inflate {meta.get('library_version')}")
    else:
        lines.append("  no inflate metadata (not written by inflate)")
    lines.append(f"  {info['tensors']} tensors, {human_bytes(info['tensor_bytes'])}"
                 + (f", {info['parameters']:,} parameters" if "parameters" in info else ""))
    if info["format"] == "onnx":
        lines.append(f"  opset {info['opset']}; inputs {', '.join(info['inputs'])}; outputs {', '.join(info['outputs'])}")
        if (info.get("export") or {}).get("fixed_size_reason"):
            lines.append(f"  height and width fixed: {info['export']['fixed_size_reason']}")
    emit(info, as_json, lines)
