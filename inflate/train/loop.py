"""`inflate train`: a dataset, a sampler, a loop, a checkpoint (as mmaction2's or timm's train.py reads).

One process per GPU under torchrun (DDP), or one process on the CPU or one GPU. Rank 0 alone
writes: ``RUN_DIR/config.json``, ``labels.json``, ``last.pt`` every epoch (atomically),
``best.safetensors`` (the best validation top-1, in `inflate convert`'s format, so
``inflate.load`` rebuilds it), ``metrics.csv``, TensorBoard events under ``tb/`` and
``curves.png`` at the end.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from ..core.errors import InvalidInputError, printable
from . import checkpoint as ckpt
from .config import TrainConfig
from .distributed import Context, all_sum, average_buffers, barrier, gather_objects, setup, teardown

__all__ = ["fit", "RunResult", "make_optimizer", "make_scheduler", "precision_settings", "Reporter"]

CSV_FIELDS = ["epoch", "train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "clips_per_s",
              "data_wait", "seconds", "failed_videos"]


@dataclass
class RunResult:
    """What a run ended with (rank 0's view; metrics are reduced over the ranks)."""

    run_dir: Path
    epochs_done: int
    best_top1: float
    history: list[dict[str, Any]]
    failed_videos: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rank_checksums: list[float] = field(default_factory=list)


# ----- the pieces the loop is made of -----

def precision_settings(precision: str, device: torch.device) -> tuple[Optional[torch.dtype], bool]:
    """(autocast dtype or None, use a grad scaler) for ``--precision``. auto: bf16 on CUDA, fp32 on the CPU."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise InvalidInputError("--precision fp16 needs CUDA; on the CPU use bf16 or fp32")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]
    return dtype, precision == "fp16"


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr: float) -> torch.optim.Optimizer:
    """SGD (momentum 0.9, the paper) or AdamW; no weight decay on biases and norm parameters (1-D), as timm."""
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.dim() <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)


def lr_factor(step: int, total: int, cfg: TrainConfig, steps_per_epoch: int) -> float:
    """The multiplier of the base rate at optimiser step ``step`` of ``total``."""
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "cosine":
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    if cfg.schedule == "step":  # 0.1 → 0.01 → 0.001 at the milestones (fractions of the run)
        return 0.1 ** sum(step >= int(m * total) for m in cfg.milestones)
    return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Any:
    total = steps_per_epoch * cfg.epochs
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, cfg, steps_per_epoch))


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    clip = batch["clip"].to(device, non_blocking=True)
    if channels_last and clip.dim() == 5:
        clip = clip.contiguous(memory_format=torch.channels_last_3d)
    return clip, batch["label"].to(device, non_blocking=True)


class Reporter:
    """The progress bar (clips/s, loss, lr, ETA) on rank 0, and one summary line per epoch."""

    def __init__(self, enabled: bool, epochs: int) -> None:
        self.enabled = enabled
        self.epochs = epochs
        self.progress: Any = None

    def __enter__(self) -> "Reporter":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[rate]:>7} clips/s  loss {task.fields[loss]}  lr {task.fields[lr]}"),
                TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def start(self, epoch: int, total: int) -> Any:
        if self.progress is None:
            return None
        return self.progress.add_task(f"epoch {epoch}/{self.epochs}", total=total, rate="-", loss="-", lr="-")

    def update(self, task: Any, rate: float, loss: float, lr: float) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, advance=1, rate=f"{rate:.1f}", loss=f"{loss:.4f}", lr=f"{lr:.3g}")

    def finish(self, task: Any) -> None:
        if self.progress is not None and task is not None:
            self.progress.remove_task(task)

    def line(self, text: str) -> None:
        if not self.enabled:
            return
        if self.progress is not None:
            self.progress.console.print(text, highlight=False, markup=False, soft_wrap=True)
        else:
            import sys

            print(text, file=sys.stderr, flush=True)


# ----- data -----

def build_data(cfg: TrainConfig, context: Context) -> tuple[Any, Any, list[str], Any]:
    """Train and validation loaders and the label map (validation uses the training split's classes)."""
    from ..data import ClipDataset, build_loader, discover

    root = Path(cfg.data)
    if not root.is_dir():
        raise InvalidInputError(f"--data {root} is not a folder")
    split_file = Path(cfg.split_file) if cfg.split_file else None
    train_set = discover(root, "train", layout=cfg.layout, split_file=split_file, split_id=cfg.split_id)
    if cfg.val_split_file is None and train_set.layout == "list":
        raise InvalidInputError(f"--split-file {split_file} lists the training videos; give the validation list "
                                "too, --val-split-file FILE (validating on the training videos would report a "
                                "meaningless accuracy)")
    val_file = Path(cfg.val_split_file) if cfg.val_split_file else split_file
    val_set = discover(root, "val", layout=cfg.layout, split_file=val_file,
                       split_id=cfg.split_id, classes=train_set.classes)
    mean, std = stream_normalization(cfg)
    common = dict(frames=cfg.frames, stride=cfg.stride, size=cfg.size, stream=cfg.stream, flow_root=flow_root(cfg),
                  mean=mean, std=std, seed=cfg.seed)
    train_data = ClipDataset(train_set, train=True, scale_jitter=cfg.scale_jitter, flip=cfg.flip, **common)
    val_data = ClipDataset(val_set, train=False, eval_views="center", **common)
    loaders = [build_loader(d, batch=cfg.batch, workers=cfg.workers, train=train, seed=cfg.seed,
                            distributed=context.distributed)
               for d, train in ((train_data, True), (val_data, False))]
    return loaders[0], loaders[1], list(train_set.classes), train_set


def stream_normalization(cfg: TrainConfig,
                         model_file: Optional[Path] = None) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of the model's input: flow is already in [-1, 1]; RGB as the model expects.
    ``model_file``: where a model started from a file names its source (a run's own best model,
    in place of the file ``cfg.model`` names)."""
    from ..data import input_normalization

    return ((0.0,) * 2, (1.0,) * 2) if cfg.stream == "flow" else input_normalization(_norm_name(cfg, model_file))


def _norm_name(cfg: TrainConfig, model_file: Optional[Path]) -> str:
    if Path(cfg.model).suffix.lower() in (".safetensors", ".pt", ".pth"):
        from .model import checkpoint_source

        return str(checkpoint_source(model_file or cfg.model)["source"]).replace("inception_v1_bn", "i3d_rgb")
    return cfg.model


def flow_root(cfg: TrainConfig) -> Optional[Path]:
    """Where `inflate flow` wrote the flow of ``--data`` (default: a sibling folder DATA_flow)."""
    if cfg.stream != "flow":
        return None
    root = Path(cfg.flow_dir) if cfg.flow_dir else Path(cfg.data).resolve().with_name(Path(cfg.data).resolve().name + "_flow")
    if not root.is_dir():
        raise InvalidInputError(f"no flow at {root}: compute it with `inflate flow {cfg.data} {root}`, "
                                "or pass --flow-dir")
    return root


# ----- training and validation steps -----

def train_one_epoch(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                    cfg: TrainConfig, context: Context, amp_dtype: Optional[torch.dtype], channels_last: bool,
                    reporter: Reporter, epoch: int, on_failed: Callable[[list[str]], None],
                    writer: Any, global_step: int) -> dict[str, float]:
    """One pass over the training data; returns the loss and top-1 reduced over the ranks."""
    from ..data import set_loader_epoch

    model.train()
    if hasattr(loader, "sampler"):  # a DataLoader; benchmarks also pass plain iterables of batches
        set_loader_epoch(loader, epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    task = reporter.start(epoch + 1, len(loader))
    loss_sum = correct = seen = 0.0
    wait = 0.0
    indices: list[int] = []
    start = tick = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    batches = len(loader)
    for index, batch in enumerate(loader):
        wait += time.perf_counter() - tick
        on_failed(batch.get("failed", []))
        indices += batch["index"].tolist() if batch.get("index") is not None else []
        boundary = (index + 1) % cfg.accum == 0 or index + 1 == batches
        sync = contextlib.nullcontext() if boundary or not context.distributed else model.no_sync()
        with sync:
            if batch.get("clip") is None:  # every clip of the batch failed to load
                loss = _empty_step(model, context)
                size = 0
            elif batch["label"].numel() < 2 and _has_batch_norm(model):  # unreadable videos left one clip
                loss = _empty_step(model, context)  # batch norm cannot normalise a single clip: skip the batch
                size = 0
            else:
                clip, label = _to_device(batch, context.device, channels_last)
                with torch.autocast(context.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    logits = model(clip)
                loss = loss_fn(logits.float(), label)
                size = label.numel()
                loss_sum += float(loss.detach()) * size
                correct += float((logits.detach().argmax(1) == label).sum())
                seen += size
            scaled = loss / cfg.accum
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if boundary:
            if scaler is not None:
                scaler.unscale_(optimizer)
            if cfg.clip_grad is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            global_step += 1
        elapsed = time.perf_counter() - start
        lr = optimizer.param_groups[0]["lr"]
        reporter.update(task, seen * context.world_size / max(elapsed, 1e-9), loss_sum / max(seen, 1), lr)
        if writer is not None and size:
            writer.add_scalar("train/loss_step", float(loss.detach()), epoch * batches + index)
            writer.add_scalar("train/lr", lr, epoch * batches + index)
        tick = time.perf_counter()
    if context.device.type == "cuda":
        torch.cuda.synchronize(context.device)
    elapsed = time.perf_counter() - start
    reporter.finish(task)
    loss_sum, correct, seen, wait_sum = all_sum([loss_sum, correct, seen, wait], context)
    return {"train_loss": loss_sum / max(seen, 1), "train_top1": correct / max(seen, 1),
            "clips_per_s": seen / max(elapsed, 1e-9), "data_wait": wait_sum / context.world_size / max(elapsed, 1e-9),
            "seconds": elapsed, "lr": optimizer.param_groups[0]["lr"], "clips": seen, "indices": indices}


def _has_batch_norm(model: nn.Module) -> bool:
    """Batch norms that normalise over this process's clips alone (SyncBatchNorm pools the ranks')."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) and not isinstance(m, nn.SyncBatchNorm)
               for m in model.modules())


def _empty_step(model: nn.Module, context: Context) -> torch.Tensor:
    """A zero-loss step so that DDP's ranks stay in step when every clip of a batch failed."""
    if not context.distributed:
        return torch.zeros((), requires_grad=True)
    parameters = [p for p in model.parameters() if p.requires_grad]
    return sum(p.sum() * 0.0 for p in parameters)  # type: ignore[return-value]


@torch.no_grad()
def predict_views(model: nn.Module, loader: Any, context: Context, amp_dtype: Optional[torch.dtype],
                  channels_last: bool, on_failed: Callable[[list[str]], None]) -> dict[int, np.ndarray]:
    """Logits per sample index: (V, K) for each video (V views; 1 for a single clip), gathered over the ranks."""
    model.eval()
    out: dict[int, np.ndarray] = {}
    for batch in loader:
        on_failed(batch.get("failed", []))
        if batch.get("clip") is None:
            continue
        clip = batch["clip"]
        views = clip.shape[1] if clip.dim() == 6 else 1
        flat = clip.flatten(0, 1) if clip.dim() == 6 else clip
        flat = flat.to(context.device, non_blocking=True)
        if channels_last:
            flat = flat.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(context.device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            logits = model(flat).float().cpu().numpy()
        logits = logits.reshape(-1, views, logits.shape[-1])
        for i, index in enumerate(batch["index"].tolist()):
            out[int(index)] = logits[i]
    merged: dict[int, np.ndarray] = {}
    for part in gather_objects(out, context):
        merged.update(part)  # type: ignore[arg-type]
    return merged


def validate(model: nn.Module, loader: Any, labels: np.ndarray, context: Context, amp_dtype: Optional[torch.dtype],
             channels_last: bool, on_failed: Callable[[list[str]], None]) -> dict[str, float]:
    from .metrics import topk_correct

    logits = predict_views(model, loader, context, amp_dtype, channels_last, on_failed)
    if not logits:
        return {"val_loss": math.nan, "val_top1": math.nan, "val_top5": math.nan}
    order = sorted(logits)
    mean_logits = np.stack([logits[i].mean(axis=0) for i in order])
    target = labels[order]
    shifted = mean_logits - mean_logits.max(axis=1, keepdims=True)
    log_prob = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return {"val_loss": float(-log_prob[np.arange(len(order)), target].mean()),
            "val_top1": float(topk_correct(mean_logits, target, 1).mean()),
            "val_top5": float(topk_correct(mean_logits, target, 5).mean())}


# ----- the run -----

def _prepare_model(model: nn.Module, cfg: TrainConfig, context: Context) -> tuple[nn.Module, nn.Module, bool]:
    """(the model the loop calls, the bare model, channels_last): device, memory format, SyncBN, DDP, compile."""
    channels_last = cfg.channels_last if cfg.channels_last is not None else context.device.type == "cuda"
    if cfg.sync_bn and context.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model = model.to(context.device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    bare = model
    if context.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[context.device.index] if context.device.type == "cuda" else None)
    if cfg.compile:
        model = torch.compile(model)  # type: ignore[assignment]
    return model, bare, channels_last


def _configure_backends(cfg: TrainConfig, context: Context) -> None:
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _open_writer(cfg: TrainConfig, run_dir: Path) -> Any:
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tb"))


def _append_csv(path: Path, row: dict[str, Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow(row)


def _read_csv(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(newline="") as stream:
        return [row for row in csv.DictReader(stream) if int(row["epoch"]) <= upto_epoch]


def _rewrite_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from ..core.files import atomic_output

    with atomic_output(path, force=True) as temporary:
        with temporary.open("w", newline="") as stream:
            writer = csv.DictWriter(stream, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)


def _checksum(model: nn.Module) -> float:
    return float(sum(p.detach().double().sum().item() * (i + 1) for i, p in enumerate(model.state_dict().values())
                     if p.is_floating_point()))


def _save_best(bare: nn.Module, run_dir: Path, classes: list[str], cfg: TrainConfig) -> None:
    from ..export import save_safetensors

    save_safetensors(bare, run_dir / ckpt.BEST, force=True,
                     extra_metadata={"labels": classes, "stream": cfg.stream, "frames": cfg.frames, "size": cfg.size})


def fit(cfg: TrainConfig, *, resume: bool = False, stop_after_epoch: Optional[int] = None,
        progress: bool = True) -> RunResult:
    """Train ``cfg.model`` on ``cfg.data``; see the module docstring for what is written where.

    ``resume`` continues from ``RUN_DIR/last.pt`` exactly (model, optimiser, schedule, scaler,
    RNG states, epoch). ``stop_after_epoch`` ends the run after that epoch (the schedule is
    still that of ``cfg.epochs``), as a job with a time limit does before it is resumed.
    """
    context = setup(cfg.device)
    try:
        return _fit(cfg, context, resume, stop_after_epoch, progress)
    finally:
        teardown(context)


def _fit(cfg: TrainConfig, context: Context, resume: bool, stop_after_epoch: Optional[int],
         progress: bool) -> RunResult:
    run_dir = cfg.run_dir
    checkpoint: Optional[dict[str, Any]] = None
    if resume:
        checkpoint = ckpt.load_checkpoint(run_dir / ckpt.LAST)
        saved = TrainConfig.from_json(checkpoint["config"], f"{run_dir / ckpt.LAST}")
        cfg = _resumed_config(saved, cfg)
    cfg.validate()
    if context.is_main:
        _check_run_dir(run_dir, resume)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % 2**32)
    _configure_backends(cfg, context)
    train_loader, val_loader, classes, _ = build_data(cfg, context)
    from .model import build_model

    model, notes = build_model(cfg, len(classes))
    amp_dtype, use_scaler = precision_settings(cfg.precision, context.device)
    model, bare, channels_last = _prepare_model(model, cfg, context)
    if _has_batch_norm(bare) and min(cfg.batch, len(train_loader.dataset)) < 2:
        raise InvalidInputError(f"{cfg.model} has batch norms, which need at least 2 clips per step: "
                                + (f"--batch {cfg.batch}; use --batch 2 or more (or --sync-bn under torchrun)"
                                   if cfg.batch < 2 else f"the training split of {cfg.data} holds "
                                   f"{len(train_loader.dataset)} video; add videos"))
    lr = cfg.resolved_lr(context.world_size)
    optimizer = make_optimizer(model, cfg, lr)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.accum)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    start_epoch, best = 0, -1.0
    created: list[Path] = []
    if checkpoint is not None:
        if checkpoint["labels"] != classes:
            raise InvalidInputError(f"the data's classes differ from the checkpoint's ({len(checkpoint['labels'])} "
                                    f"classes in {run_dir / ckpt.LAST}, {len(classes)} in --data): resume with the same data")
        start_epoch, best = _restore(checkpoint, run_dir / ckpt.LAST, cfg, bare, optimizer, scheduler, scaler)
        notes = [f"resumed from {run_dir / ckpt.LAST} after epoch {start_epoch}"]
        if context.is_main:  # the checkpoint's settings are the run's: config.json mirrors them again
            ckpt.write_json(run_dir / ckpt.CONFIG, json_config(cfg))
    elif context.is_main:
        created = _make_run_dir(run_dir)  # only now: bad data or a bad model leave no empty run folder
        ckpt.write_json(run_dir / ckpt.CONFIG, json_config(cfg))
        ckpt.write_json(run_dir / ckpt.LABELS, classes)
    try:
        return _train_epochs(cfg, context, run_dir, checkpoint, model, bare, channels_last, optimizer, scheduler,
                             scaler, train_loader, val_loader, classes, notes, amp_dtype, lr, steps_per_epoch,
                             start_epoch, best, stop_after_epoch, progress)
    except BaseException:
        if checkpoint is None and context.is_main and not (run_dir / ckpt.LAST).exists():
            _remove_unfinished_run(run_dir, created)  # no epoch finished: nothing to resume or keep
        raise


def _restore(checkpoint: dict[str, Any], path: Path, cfg: TrainConfig, bare: nn.Module, optimizer: Any,
             scheduler: Any, scaler: Any) -> tuple[int, float]:
    """Load a run checkpoint's states into the rebuilt run; (epochs done, best top-1). A part that
    does not fit (a damaged file, or one from another model) is one line naming it."""
    def epoch_count() -> int:
        epoch = checkpoint["epoch"]
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= cfg.epochs:
            raise ValueError(f"epoch {epoch!r} is not a count of epochs in 0..{cfg.epochs}")
        return epoch

    def best_score() -> float:
        best = float(checkpoint.get("best_top1", -1.0))
        if not (best == -1.0 or 0.0 <= best <= 1.0):
            raise ValueError(f"best top-1 {best!r} is not in [0, 1]")
        return best

    parts = [("model", lambda: bare.load_state_dict(checkpoint["model"])),
             ("optimizer", lambda: optimizer.load_state_dict(checkpoint["optimizer"])),
             ("schedule", lambda: scheduler.load_state_dict(checkpoint["scheduler"])),
             ("grad scaler", lambda: scaler.load_state_dict(checkpoint["scaler"])
              if scaler is not None and checkpoint.get("scaler") else None),
             ("epoch", epoch_count), ("best score", best_score),
             ("random states", lambda: ckpt.set_rng_state(checkpoint["rng"]))]
    results = {}
    for name, load in parts:
        try:
            results[name] = load()
        except Exception as error:  # torch's loaders raise many types for a state that does not fit
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise InvalidInputError(f"{path}: its {name} cannot be restored ({type(error).__name__}: {first}); "
                                    "the checkpoint is damaged or from another run: resume from a good one, or "
                                    "start a new run") from None
    from ..io import check_finite

    check_finite(bare.state_dict(), path)
    return results["epoch"], results["best score"]


def _make_run_dir(run_dir: Path) -> list[Path]:
    """Create ``run_dir`` (and missing parents); the folders created, deepest first. A folder that
    cannot be made is an output problem (exit 4), named with the reason."""
    from ..core.files import OutputExistsError

    created = []
    for folder in (run_dir, *run_dir.parents):
        if folder.exists():
            break
        created.append(folder)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise OutputExistsError(f"cannot write the run folder {run_dir}: {error.strerror or error}; "
                                "choose another --out") from None
    return created


def _remove_unfinished_run(run_dir: Path, created: list[Path]) -> None:
    """Remove what a run that failed before its first epoch ended wrote, and the folders it made."""
    import shutil

    for name in (ckpt.CONFIG, ckpt.LABELS, "metrics.csv", "summary.json", "curves.png"):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / "tb", ignore_errors=True)
    for folder in created:
        try:
            folder.rmdir()  # only if empty: never anything the user put there
        except OSError:
            break


def _train_epochs(cfg: TrainConfig, context: Context, run_dir: Path, checkpoint: Optional[dict[str, Any]],
                  model: nn.Module, bare: nn.Module, channels_last: bool, optimizer: Any, scheduler: Any, scaler: Any,
                  train_loader: Any, val_loader: Any, classes: list[str], notes: list[str],
                  amp_dtype: Optional[torch.dtype], lr: float, steps_per_epoch: int, start_epoch: int, best: float,
                  stop_after_epoch: Optional[int], progress: bool) -> RunResult:
    reporter = Reporter(progress and context.is_main, cfg.epochs)
    history = _read_csv(run_dir / "metrics.csv", start_epoch) if context.is_main else []
    if context.is_main and checkpoint is not None:
        _rewrite_csv(run_dir / "metrics.csv", history)
    failed: dict[str, None] = {}

    def on_failed(messages: list[str]) -> None:
        for message in messages:
            if message not in failed:
                failed[message] = None
                reporter.line(f"warning: skipped a video that cannot be read: {printable(message)}")

    val_labels = np.array([r.label for r in val_loader.dataset.videos.records])
    writer = _open_writer(cfg, run_dir) if context.is_main else None
    with reporter:
        for note in notes:
            reporter.line(note)
        reporter.line(f"training {cfg.model} on {len(train_loader.dataset)} videos, {len(classes)} classes, "
                      f"{context.world_size} process(es) on {context.device.type}, effective batch "
                      f"{cfg.effective_batch(context.world_size)}, lr {lr:.4g}, "
                      f"{'bf16' if amp_dtype == torch.bfloat16 else 'fp16' if amp_dtype else 'fp32'}")
        epoch, shards = start_epoch, []
        for epoch in range(start_epoch, cfg.epochs):
            row: dict[str, Any] = {"epoch": epoch + 1}
            row.update(train_one_epoch(model, train_loader, optimizer, scheduler, scaler, cfg, context, amp_dtype,
                                       channels_last, reporter, epoch, on_failed, writer, epoch * steps_per_epoch))
            if not row["clips"]:
                total = len(train_loader.dataset)
                read = f"{len(failed)} of the {total} training videos could not be read (first: {next(iter(failed))})"
                why = (f"{read}; check the videos (PyAV must decode them) or, for the flow stream, the flow files"
                       if len(failed) >= total else
                       f"{read} and the rest left every batch with one clip, too few for batch norm" if failed else
                       "every batch was left with one clip, too few for batch norm; add training videos")
                raise InvalidInputError(f"epoch {epoch + 1} trained on no clip: {why}")
            shards = gather_objects(sorted(row.pop("indices")), context)
            average_buffers(bare, context)
            if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.epochs:
                row.update(validate(bare if context.distributed else model, val_loader, val_labels, context,
                                    amp_dtype, channels_last, on_failed))
            counts = all_sum([float(len(failed))], context)
            row["failed_videos"] = int(counts[0])
            improved = not math.isnan(row.get("val_top1", math.nan)) and row["val_top1"] > best
            best = max(best, row.get("val_top1", best)) if improved else best
            if context.is_main:
                _end_epoch(row, history, run_dir, writer, reporter, cfg, classes, bare, optimizer, scheduler, scaler,
                           best, improved, notes)
            barrier(context)
            if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
                epoch += 1
                break
        else:
            epoch = cfg.epochs
    checksums = [float(c) for c in gather_objects(_checksum(bare), context)]  # type: ignore[arg-type]
    if context.is_main:
        if writer is not None:
            writer.close()
        _finish(run_dir, history, cfg, checksums, list(failed), shards)
    return RunResult(run_dir, epoch, best, history, list(failed), notes, checksums)


# Where the run's inputs live and how this job runs may change on resume (data moved to another
# machine); the classes of --data are still checked against the checkpoint's.
_MACHINE_SETTINGS = ("out", "data", "flow_dir", "workers", "device", "tensorboard")


def _resumed_config(saved: TrainConfig, given: TrainConfig) -> TrainConfig:
    """The saved run's settings; the machine-side ones (workers, device) may change on resume. A
    setting given other than its default and other than the run's is refused, never ignored."""
    defaults = TrainConfig(model=saved.model, data=saved.data, out=saved.out)
    for f in dataclasses.fields(TrainConfig):
        name = f.name
        value = getattr(given, name)
        if name in _MACHINE_SETTINGS or name in ("model", "extra"):
            continue
        if value != getattr(saved, name) and value != getattr(defaults, name):
            raise InvalidInputError(f"--resume continues the run in {saved.out} with its saved settings, but "
                                    f"{name.replace('_', '-')} {value!r} differs from its {getattr(saved, name)!r}: "
                                    "drop it, or start a new run in another --out")
    if given.model != saved.model and Path(given.model).resolve() != Path(saved.model).resolve():
        raise InvalidInputError(f"--resume: the run in {saved.out} trains {saved.model}, not {given.model}")
    for name in _MACHINE_SETTINGS:
        setattr(saved, name, getattr(given, name))
    return saved


def json_config(cfg: TrainConfig) -> dict[str, Any]:
    import json

    return json.loads(cfg.to_json())


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise InvalidInputError(f"--out {run_dir} is a file; give a folder for the run")
    if not resume and (run_dir / ckpt.LAST).exists():
        from ..core.files import OutputExistsError

        raise OutputExistsError(f"{run_dir} already holds a run: add --resume to continue it, or choose another --out")


def _end_epoch(row: dict[str, Any], history: list[dict[str, Any]], run_dir: Path, writer: Any, reporter: Reporter,
               cfg: TrainConfig, classes: list[str], bare: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
               best: float, improved: bool, notes: list[str]) -> None:
    history.append(row)
    _append_csv(run_dir / "metrics.csv", row)
    if writer is not None:
        for key in ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "clips_per_s"):
            if key in row and not (isinstance(row[key], float) and math.isnan(row[key])):
                writer.add_scalar(f"epoch/{key}", row[key], row["epoch"])
        writer.flush()
    if improved:
        _save_best(bare, run_dir, classes, cfg)
    ckpt.save_checkpoint(run_dir / ckpt.LAST, {
        "model": bare.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None, "epoch": row["epoch"], "best_top1": best,
        "rng": ckpt.rng_state(), "labels": classes, "config": cfg.to_json(),
        "inflation": _metadata_json(bare)})
    val = f", val top-1 {row['val_top1']:.3f}" if "val_top1" in row and not math.isnan(row["val_top1"]) else ""
    reporter.line(f"epoch {row['epoch']}/{cfg.epochs}: loss {row['train_loss']:.4f}, train top-1 "
                  f"{row['train_top1']:.3f}{val}, {row['clips_per_s']:.1f} clips/s, lr {row['lr']:.3g}"
                  f"{' (best, saved)' if improved else ''}")


def _metadata_json(model: nn.Module) -> str:
    from ..export import model_metadata

    return model_metadata(model)


def _finish(run_dir: Path, history: list[dict[str, Any]], cfg: TrainConfig, checksums: list[float],
            failed: list[str], shards: list[Any]) -> None:
    from .metrics import plot_curves

    if history:
        plot_curves(history, run_dir / "curves.png", f"{cfg.model} on {Path(cfg.data).name}")
    ckpt.write_json(run_dir / "summary.json", {"epochs": len(history), "history": history,
                                                "rank_checksums": checksums, "failed_videos": failed,
                                                "last_epoch_shards": shards})
