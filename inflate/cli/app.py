"""The Typer application: commands are registered here, each defined in its own module."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from .. import __version__
from .check import check
from .convert import convert
from .errors import one_line_usage_errors
from .flow import EXIT_RULE, flow
from .inspect_file import inspect
from .listing import list_
from .train import evaluate, predict, train
from .weights import weights

EXAMPLES = [
    ("inflate convert resnet50 --time 8", "resnet50 → resnet50_t8.safetensors (random 2D weights)"),
    ("inflate convert resnet50 -t 8 --weights r50.pth -o r50_3d.onnx", "your 2D weights, exported to ONNX and verified"),
    ("inflate check convnext_tiny --time 8", "boring-video and frame-order checks, per-layer table"),
    ("inflate list 'efficientnet*'", "timm models matching a pattern; presets, rules, policies"),
    ("inflate inspect resnet50_t8.safetensors", "what an exported file holds"),
    ("inflate convert model2d.onnx -t 8 -o model3d.onnx", "inflate an ONNX graph, checked in onnxruntime"),
    ("inflate weights r50.safetensors r50_3d.safetensors -t 8", "inflate a weight file, no model code"),
    ("inflate train i3d_rgb --data videos/ --frames 64 --size 224 --epochs 30 --batch 8 --out runs/rgb",
     "fine-tune I3D (DeepMind's Kinetics weights) on videos/train/<class>/*, validate on videos/val"),
    ("inflate evaluate runs/rgb --flow runs/flow --data videos/ --json", "two-stream late fusion, video and clip top-1/top-5"),
    ("inflate predict runs/rgb clip.mp4", "top-5 labels of one video"),
    ("inflate flow UCF-101/ ucf101_flow/", "TV-L1 flow of every video as uint8 .npz (torch on a GPU, else OpenCV)"),
]

# "\b" keeps click from re-wrapping the paragraph that follows it.
EPILOG = "\b\nExamples:\n" + "\n".join(f"  {cmd}\n      {what}" for cmd, what in EXAMPLES) + (
    "\n\n\b\nExit codes: 0 ok; 1 a check failed; 2 bad input; 3 cannot convert;\n"
    "4 output problem (exists, not a regular file, not writable, disk full).\n"
    "INFLATE_DEBUG=1 shows tracebacks.")

app = typer.Typer(
    name="inflate",
    help="Turn 2D image models into 3D video models by weight inflation (I3D).",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    cls=one_line_usage_errors(TyperGroup),
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"inflate {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Turn 2D image models into 3D video models by weight inflation (I3D)."""


app.command("convert", epilog=EPILOG)(convert)
app.command("check")(check)
app.command("list")(list_)
app.command("inspect")(inspect)
app.command("weights")(weights)
app.command("train")(train)
app.command("evaluate")(evaluate)
app.command("predict")(predict)
app.command("flow", epilog=EXIT_RULE)(flow)


def _one_line_warning(message: Warning | str, category: type[Warning], *args: object, **kwargs: object) -> str:
    return f"warning: {message}\n"


def main() -> None:
    import warnings

    warnings.formatwarning = _one_line_warning  # type: ignore[assignment]
    app()
