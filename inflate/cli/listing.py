"""`inflate list`: timm models, presets, rules and policies."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import emit
from .errors import handle_errors

PatternArg = Annotated[Optional[str], typer.Argument(help="Glob on model names, as timm.list_models ('resnet*').")]


@handle_errors
def list_(
    pattern: PatternArg = None,
    rules: Annotated[bool, typer.Option("--rules", help="List the inflation rules.")] = False,
    policies: Annotated[bool, typer.Option("--policies", help="List the policies.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List timm models (optionally matching PATTERN), presets, rules and policies."""
    import timm

    from ..core import list_policies, list_rules
    from ..models import list_presets

    list_presets()  # presets register their own policies (i3d_paper)
    show_all = not (rules or policies)
    payload: dict = {}
    lines: list[str] = []
    if show_all:
        models = timm.list_models(pattern or "*")
        presets = [p for p in list_presets() if pattern is None or __import__("fnmatch").fnmatch(p, pattern)]
        payload.update(models=models, presets=presets)
        if presets:
            lines += ["presets:", *[f"  {p}" for p in presets]]
        lines += [f"timm models ({len(models)}):", *[f"  {m}" for m in models]]
    if rules or show_all and pattern is None:
        payload["rules"] = {r.key.kind: r.doc for r in list_rules()}
        lines += ["rules:", *[f"  {r.key.kind:18s} {r.doc}" for r in list_rules()]]
    if policies or show_all and pattern is None:
        payload["policies"] = {p.name: p.description for p in list_policies()}
        lines += ["policies:", *[f"  {p.name:10s} {p.description}" for p in list_policies()]]
    emit(payload, as_json, lines)
