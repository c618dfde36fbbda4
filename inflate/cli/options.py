"""Option declarations shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

ModelArg = Annotated[str, typer.Argument(help="A timm model name (see `inflate list`), or a preset name.",
                                         show_default=False)]
TimeOpt = Annotated[int, typer.Option("--time", "-t", help="Clip length in frames the model is made and checked for.")]
PolicyOpt = Annotated[Optional[str], typer.Option("--policy", help="Inflation policy (see `inflate list --policies`; default i3d).", show_default=False)]
InitOpt = Annotated[Optional[str], typer.Option("--init", help="Weight bootstrapping: tile (repeat / k_t) or center (default: the policy's own, tile for the built-in ones).", show_default=False)]
PadModeOpt = Annotated[Optional[str], typer.Option("--pad-mode", help="Temporal padding: replicate (exact on boring clips; the default) or zeros (TF SAME; the I3D presets' default).")]
PretrainedOpt = Annotated[bool, typer.Option("--pretrained/--no-pretrained", help="Download the 2D model's weights from the hub.")]
WeightsOpt = Annotated[Optional[Path], typer.Option("--weights", "-w", help="Local 2D weights: .safetensors, or .pth/.pt (loaded with weights_only=True).", exists=False)]
NumClassesOpt = Annotated[Optional[int], typer.Option("--num-classes", help="Classifier size of the 2D model (default: the model's).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors and the final summary line.")]
OverrideOpt = Annotated[Optional[List[str]], typer.Option(
    "--override", help="Per-layer time settings, PATTERN=K or PATTERN=K:S (temporal kernel K, stride S) for ops whose "
                       "path matches the glob PATTERN; repeatable, first match wins. Example: --override 'layer1.*=1'")]
AttentionOpt = Annotated[Optional[str], typer.Option("--attention", help="Transformers: joint (default), divided or frames.")]
TubeletOpt = Annotated[Optional[int], typer.Option("--tubelet", help="Transformers: frames per tubelet of the patch embedding (default 2).")]
