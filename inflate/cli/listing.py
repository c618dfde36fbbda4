"""`inflate list`: timm models, presets, rules and policies; the README's supported-ops table."""

from __future__ import annotations

import fnmatch
from typing import Annotated, Optional

import typer

from .common import emit
from .errors import handle_errors

PatternArg = Annotated[Optional[str], typer.Argument(help="Glob on model names, as timm.list_models ('resnet*').")]

def _time_default(rule) -> str:  # noqa: ANN001  (a core Rule)
    """The rule's temporal default (:class:`~inflate.core.rules.Temporal`) in words."""
    temporal = rule.temporal
    if temporal.extent == "tubelet":
        return "the stem's: tubelets of the policy's size, stride as many; later ones time 1"
    if temporal.extent == "kernel":
        return "time kernel from the policy" + (" (the stem's own kernel and stride)" if temporal.stem
                                                else ", time stride 1")
    if temporal.pool:
        return "window 1 unless overridden" + ("; time padded with edge frames or -inf" if temporal.pool == "max"
                                               else "")
    return "none (per frame)"


def supported_ops_table() -> str:
    """The supported ops as a markdown table generated from the registries: per core rule, its time
    default, what it does, and the torch modules, functions and tensor methods whose handlers apply it.
    The README's "Supported ops" section is this table (a test keeps them equal)."""
    from ..adapters.torch import handlers  # noqa: F401  (fills the handler registry)
    from ..adapters.torch.registry import list_handlers, target_name
    from ..core import list_rules

    rows = ["| rule | time by default | what it does | torch modules, functions, methods |", "|---|---|---|---|"]
    for rule in list_rules():
        names: list[str] = []
        for handler in list_handlers():
            if handler.kind != rule.kind:
                continue
            label = getattr(handler.fn, "table_label", None)  # a version-dependent group named once
            name = label or target_name(handler.key.target)
            if name not in names:
                names.append(name)
        targets = ", ".join(f"`{n}`" for n in names) or "ONNX only"
        rows.append(f"| `{rule.kind}` | {_time_default(rule)} | {rule.doc} | {targets} |")
    return "\n".join(rows)


@handle_errors
def list_(
    pattern: PatternArg = None,
    rules: Annotated[bool, typer.Option("--rules", help="List the inflation rules.")] = False,
    policies: Annotated[bool, typer.Option("--policies", help="List the policies.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="With --rules: the supported-ops table in markdown, "
                                                              "as in the README.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """List timm models (optionally matching PATTERN), presets, rules and policies."""
    from ..core import list_policies, list_rules
    from ..core.errors import InvalidInputError

    if markdown:
        if not rules or policies or as_json or pattern is not None:
            raise InvalidInputError("--markdown prints the supported-ops table: use it as `inflate list --rules "
                                    "--markdown`, with no pattern, --policies or --json")
        typer.echo(supported_ops_table())
        return
    import timm

    from ..models import list_presets

    show_all = not (rules or policies)
    payload: dict = {}
    lines: list[str] = []
    if show_all:
        models = timm.list_models(pattern or "*")
        presets = [p for p in list_presets() if pattern is None or fnmatch.fnmatch(p, pattern)]
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
