"""`inflate flow`: TV-L1 optical flow for a tree of videos, one uint8 .npz per video (resumable, torchrun-sharded)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..core.errors import InvalidInputError
from .errors import EXIT_BAD_INPUT, handle_errors, printable
from .options import QuietOpt

# Shown in `inflate flow --help`.
EXIT_RULE = ("Exit code 0 when at least one video has its flow (written now or by an earlier run); failed videos "
             "are named and counted, and retried on the next run. 2 when every video failed, or any did with "
             "--strict, or bad arguments; 4 when OUT is a file or cannot be written; 130 when interrupted "
             "(run the same command again to resume).")


def _default_backend(device: Optional[str]) -> str:
    import torch

    from ..flow.opencv_tvl1 import opencv_available

    if (device and device != "cpu") or torch.cuda.is_available() or not opencv_available():
        return "torch"
    return "opencv"


def _progress(show: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("videos"),
                    TextColumn("{task.fields[rate]:.2f} fields/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=Console(stderr=True), disable=not show, transient=False)


@handle_errors
def flow(
    videos: Annotated[Path, typer.Argument(help="Folder of videos (one folder per class, any depth).", show_default=False)],
    out: Annotated[Path, typer.Argument(help="Output folder: OUT/<video path>.npz mirrors VIDEOS.", show_default=False)],
    backend: Annotated[str, typer.Option("--backend", help="torch (ours; CUDA or CPU), opencv (cv2.optflow, a process per core), or auto: torch on a GPU, else opencv.")] = "auto",
    device: Annotated[Optional[str], typer.Option("--device", help="torch backend: cpu, cuda, cuda:1 (default: the GPU of LOCAL_RANK, else cuda if any, else cpu).")] = None,
    size: Annotated[int, typer.Option("--size", help="Resize frames so the short side is SIZE before flow, as the RGB stream (0 keeps the decoded size).")] = 256,
    workers: Annotated[Optional[int], typer.Option("--workers", help="opencv: processes (default: the cores, shared among the node's ranks); torch: videos decoded ahead (default 2).")] = None,
    split_file: Annotated[Optional[Path], typer.Option("--split-file", help="Only the videos this list names (one path relative to VIDEOS per line, e.g. UCF-101's trainlist01.txt).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="torch: frame pairs per call (default: by free GPU memory; 1 on the CPU).")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 2 if any video failed (default: only if all did).")] = False,
    quiet: QuietOpt = False,
) -> None:
    """TV-L1 flow (OpenCV's parameters) between consecutive frames of every video, stored as uint8 (.npz).

    Each OUT/<path>.npz holds `flow`, uint8 (T-1, H, W, 2): x and y in pixels clipped to ±20 and
    mapped to 0..255 (inflate.flow.load_flow / dequantize read it back). Finished videos are
    skipped, so an interrupted run resumes where it stopped. Under torchrun, each rank takes its
    share of the videos and its own GPU.
    """
    from ..flow.extract import (Shard, check_output_root, flow_for_video, iter_decoded, list_videos, pending_videos,
                                ranks_from_env, remove_stale_parts)
    from ..flow.opencv_tvl1 import default_workers
    from ..flow.params import TVL1Params
    from ..flow.store import flow_path, save_flow
    from ..flow.tvl1 import resolve_device

    if backend not in ("auto", "torch", "opencv"):
        raise InvalidInputError(f"--backend {backend!r}: choose torch, opencv or auto")
    if size < 0:
        raise InvalidInputError(f"--size must be >= 0 (0 keeps the decoded size), got {size}")
    if workers is not None and workers < 1:
        raise InvalidInputError(f"--workers must be >= 1, got {workers}")
    if batch_size is not None and batch_size < 1:
        raise InvalidInputError(f"--batch-size must be >= 1, got {batch_size}")
    shard = Shard.from_env()
    if backend == "auto":
        backend = _default_backend(device)
    if backend == "opencv" and device not in (None, "cpu"):
        raise InvalidInputError(f"--device {device}: the opencv backend runs on the CPU; use --backend torch")
    if backend == "opencv" and batch_size is not None:
        raise InvalidInputError("--batch-size sets the torch backend's frame pairs per call; the opencv backend "
                                "takes one pair at a time per process (--workers): leave it out, or use --backend torch")

    import torch

    torch_device = None
    if backend == "torch":
        if device is None and shard.world > 1 and torch.cuda.is_available():
            device = f"cuda:{shard.local_rank % torch.cuda.device_count()}"
        torch_device = resolve_device(device)
        if torch_device.type == "cuda":
            torch.cuda.set_device(torch_device)
    local_world = ranks_from_env(need_rendezvous=False)[3]
    pool_workers = workers or max(1, default_workers() // max(1, local_world))
    prefetch = workers or 2

    all_videos = list_videos(videos, split_file)
    out_root = check_output_root(out)
    mine = shard.take(all_videos)
    todo, done = pending_videos(mine, out_root)
    run_prefix = f"[rank {shard.rank}/{shard.world}] " if shard.world > 1 else ""
    show = not quiet and shard.rank == 0

    params = TVL1Params()
    if backend == "opencv" and todo:
        from ..flow.opencv_tvl1 import start_pool

        start_pool(pool_workers, params)  # before the decoding threads start
    written: list[str] = []
    failed: list[tuple[str, str]] = []
    fields = 0
    start = time.perf_counter()
    where = f"{backend}" + (f" on {torch_device}" if torch_device is not None else f", {pool_workers} processes")
    try:
        with _progress(show) as bar:
            task = bar.add_task(f"{run_prefix}flow ({where})", total=len(mine), completed=len(done), rate=0.0)
            for video, frames, error in iter_decoded(videos, todo, size or None, prefetch):
                target = flow_path(out_root, video)
                if frames is None:
                    failed.append((video, error or "unreadable"))
                else:
                    remove_stale_parts(target)
                    quantized = flow_for_video(frames, backend, torch_device, params, pool_workers, batch_size)
                    save_flow(target, quantized)
                    written.append(video)
                    fields += len(quantized)
                elapsed = time.perf_counter() - start
                bar.update(task, advance=1, rate=fields / elapsed if elapsed > 0 else 0.0)
    except KeyboardInterrupt:
        typer.echo(f"{run_prefix}interrupted after {len(written)} of {len(todo)} videos to do; no partial file is "
                   "left: run the same command again to resume (finished videos are skipped)", err=True)
        raise typer.Exit(130) from None
    seconds = time.perf_counter() - start

    for video, reason in failed:
        typer.echo(f"{run_prefix}failed: {printable(f'{videos / video}: {reason}')}", err=True)
    rate = fields / seconds if seconds > 0 else 0.0
    typer.echo(f"{run_prefix}flow: {len(written)} written, {len(done)} already done, {len(failed)} failed "
               f"of {len(mine)} videos; {fields} fields in {seconds:.1f} s ({rate:.2f} fields/s) -> {out_root}")
    if failed and (strict or not (written or done)):
        raise typer.Exit(EXIT_BAD_INPUT)
