"""Steps several commands share: building the 2D model and inflating it with a progress bar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from torch import nn

from ..core.errors import InvalidInputError


def build_2d(model: str, pretrained: bool, weights: Optional[Path], num_classes: Optional[int]) -> nn.Module:
    from ..models import create_2d_model

    if pretrained and weights is not None:
        raise InvalidInputError("give either --pretrained or --weights FILE, not both")
    return create_2d_model(model, pretrained=pretrained, weights=weights, num_classes=num_classes)


def parse_overrides(items: Optional[list[str]]) -> Optional[dict[str, dict[str, int]]]:
    """--override 'PATTERN=K[:S]' values → the policy's override table."""
    if not items:
        return None
    table: dict[str, dict[str, int]] = {}
    for item in items:
        pattern, sep, value = item.rpartition("=")
        kernel, _, stride = value.partition(":")
        if not sep or not pattern or not kernel.isdigit() or (stride and not stride.isdigit()):
            raise InvalidInputError(f"--override {item!r}: expected PATTERN=K or PATTERN=K:S with integers K, S >= 1")
        table[pattern] = {"kernel": int(kernel), "stride": int(stride or 1)}
    return table


def validate_time(t: int) -> None:
    if t < 1:
        raise InvalidInputError(f"--time must be >= 1 frame, got {t}")


def is_3d_preset(name: str) -> bool:
    from ..models import MODELS_3D, list_presets

    list_presets()  # loads the presets
    return name in MODELS_3D


def build_3d_preset(name: str, t: int, weights: Optional[Path], num_classes: Optional[int], pad_mode: Optional[str]) -> nn.Module:
    """A ready 3D model (i3d_rgb, ...) with its weights; the preset's own policy applies."""
    from ..models import create_model

    kwargs: dict[str, Any] = {"t": t}
    if weights is not None:
        kwargs["weights"] = weights
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if pad_mode is not None:
        kwargs["pad_mode"] = pad_mode
    return create_model(name, **kwargs)


def inflate_with_progress(model2d: nn.Module, t: int, show: bool, **kwargs: Any) -> tuple[nn.Module, Any]:
    from ..adapters.torch import inflate_model

    if not show:
        return inflate_model(model2d, t=t, return_report=True, **kwargs)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} nodes"),
                  TimeElapsedColumn(), transient=True, console=_stderr()) as bar:
        task = bar.add_task("inflating", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return inflate_model(model2d, t=t, return_report=True, progress=update, **kwargs)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def emit(payload: dict[str, Any], as_json: bool, lines: list[str], quiet: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=None, default=str))
        return
    for line in (lines[-1:] if quiet else lines):
        typer.echo(line)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"
