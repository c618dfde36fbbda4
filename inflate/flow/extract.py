"""Flow for a tree of videos: list them, decode, resize, TV-L1, store one .npz per video (what ``inflate flow`` runs).

Resumable (a video whose output exists is skipped; outputs are written atomically, so an
existing one is complete), and shardable across ``torchrun`` ranks (RANK / WORLD_SIZE /
LOCAL_RANK): rank r takes every WORLD_SIZE-th video of the sorted list, from r.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Optional

import numpy as np

from ..core.errors import InvalidInputError
from ..core.files import OutputExistsError
from .params import TVL1Params, to_gray
from .store import flow_path, quantize, save_flow
from .tvl1 import MIN_SIDE, tvl1

__all__ = ["VIDEO_SUFFIXES", "Shard", "VideoError", "list_videos", "read_gray_frames", "flow_for_video",
           "check_output_root", "pending_videos", "iter_decoded", "remove_stale_parts"]

VIDEO_SUFFIXES = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ogv")


class VideoError(Exception):
    """One video could not be turned into flow; the message names the reason (the run goes on)."""


@dataclass(frozen=True)
class Shard:
    """This process's share of the videos under torchrun: rank ``rank`` of ``world``, GPU ``local_rank``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> "Shard":
        """The rank torchrun's variables give (no process group: each rank writes its own files)."""
        rank, world, local, _ = ranks_from_env(need_rendezvous=False)
        return cls(rank, world, local)

    def take(self, items: list[Any]) -> list[Any]:
        return items[self.rank::self.world]


def ranks_from_env(need_rendezvous: bool = True) -> tuple[int, int, int, int]:
    """(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE) as torchrun sets them, checked: integers, a
    rank inside the world, and, where a process group will be joined (``need_rendezvous``) with
    more than one process, MASTER_ADDR and MASTER_PORT. Without torchrun: rank 0 of 1."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    except ValueError:
        shown = " ".join(f"{n}={os.environ[n]!r}" for n in names if n in os.environ)
        raise InvalidInputError(f"{shown}: {', '.join(names)} must be integers, as torchrun sets them; "
                                "unset them for a single process") from None
    if world < 1 or not 0 <= rank < world or local < 0 or local_world < 1:
        raise InvalidInputError(f"RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local} LOCAL_WORLD_SIZE={local_world} "
                                "is not a valid torchrun rank; launch with torchrun, or unset them")
    missing = [n for n in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(n)]
    if need_rendezvous and world > 1 and missing:
        raise InvalidInputError(f"WORLD_SIZE={world} but {' and '.join(missing)} not set: launch with torchrun "
                                "(which sets them), or unset WORLD_SIZE for a single process")
    return rank, world, local, local_world


def list_videos(root: str | os.PathLike[str], split_file: Optional[str | os.PathLike[str]] = None) -> list[str]:
    """Video paths relative to ``root``, sorted: every video file below it, or the paths a split/list file names.

    A split file has one video per line, its path relative to ``root`` first (UCF-101's
    trainlist/testlist, mmaction2's and SlowFast's ``path label`` lists); anything after the
    first whitespace, blank lines and lines starting with '#' are ignored.
    """
    root = Path(root)
    if not root.exists():
        raise InvalidInputError(f"video folder {root} does not exist")
    if not root.is_dir():
        raise InvalidInputError(f"{root} is not a folder; give the folder that holds the videos (one folder per class)")
    if split_file is not None:
        split = Path(split_file)
        if not split.is_file():
            raise InvalidInputError(f"split file {split} does not exist")
        names = []
        for line in split.read_text(encoding="utf-8-sig", errors="replace").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                name = line.split()[0].replace("\\", "/")
                parts = PurePosixPath(name).parts
                if name.startswith("/") or os.path.isabs(name) or ".." in parts or (parts and parts[0].endswith(":")):
                    raise InvalidInputError(f"split file {split}: '{name}' is not a path inside {root} (absolute or "
                                            "with '..'); list each video relative to the video folder")
                names.append(name)
        if not names:
            raise InvalidInputError(f"split file {split} lists no videos")
        return _one_output_each(sorted(dict.fromkeys(names)))
    found = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
    if not found:
        raise InvalidInputError(f"no videos ({', '.join(VIDEO_SUFFIXES[:4])}, ...) found under {root}")
    return _one_output_each(found)


def _one_output_each(videos: list[str]) -> list[str]:
    """``videos``, refused where two differ only by their suffix: both would write one flow file."""
    seen: dict[str, str] = {}
    for video in videos:
        stem = Path(video).with_suffix("").as_posix()
        if stem in seen:
            raise InvalidInputError(f"'{seen[stem]}' and '{video}' would both write {stem}.npz; rename one, or "
                                    "list one of them with --split-file")
        seen[stem] = video
    return videos


def _short_side_size(height: int, width: int, size: int) -> tuple[int, int]:
    scale = size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def read_gray_frames(path: str | os.PathLike[str], size: Optional[int] = 256) -> np.ndarray:
    """Decode every frame of ``path`` in order → (T, H, W) uint8 gray, short side resized to ``size``.

    Gray is OpenCV's RGB2GRAY of the decoded RGB; resizing uses cv2.INTER_AREA when shrinking,
    INTER_LINEAR when enlarging, to the sizes the RGB stream uses (``round(side · size / short)``).
    ``size`` None or 0 keeps the decoded size. Raises VideoError for an unreadable file.
    """
    import av
    import cv2

    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError("holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                gray = to_gray(frame.to_ndarray(format="rgb24")[None])[0]
                if size:
                    height, width = gray.shape
                    new_h, new_w = _short_side_size(height, width, size)
                    if (new_h, new_w) != (height, width):
                        shrink = new_h < height
                        gray = cv2.resize(gray, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
                frames.append(gray)
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        reason = getattr(error, "strerror", None) or str(error).strip().splitlines()[0] or type(error).__name__
        raise VideoError(f"cannot be decoded ({reason})") from None
    if len(frames) < 2:
        raise VideoError(f"has {len(frames)} frame{'s' if len(frames) != 1 else ''}; flow needs at least 2")
    if min(frames[0].shape) < MIN_SIDE:
        raise VideoError(f"frames of {frames[0].shape[0]}×{frames[0].shape[1]} are under {MIN_SIDE} pixels a side")
    return np.stack(frames)


def flow_for_video(gray: np.ndarray, backend: str, device: Any, params: TVL1Params, workers: Optional[int],
                   batch_size: Optional[int]) -> np.ndarray:
    """(T, H, W) uint8 gray → quantised flow (T - 1, H, W, 2) uint8 as stored."""
    kwargs: dict[str, Any] = dict(params.as_dict())
    if backend == "opencv":
        flow = tvl1(gray, "opencv", workers=workers, **kwargs)
    else:
        flow = tvl1(gray, "torch", device=device, batch_size=batch_size, **kwargs)
    return quantize(flow)


def remove_stale_parts(target: Path) -> None:
    """A run killed mid-write (SIGKILL, power loss) leaves ``.<name>.*.part`` beside the target: remove them."""
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{target.name}.*.part"):
            try:
                stale.unlink()
            except FileNotFoundError:
                pass


def check_output_root(out: str | os.PathLike[str]) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output {out} is a file; give a folder (it is created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputExistsError(f"cannot create output folder {out}: {error.strerror or error}") from None
    if not os.access(out, os.W_OK):
        raise OutputExistsError(f"output folder {out} is not writable")
    return out


def pending_videos(videos: list[str], out: Path) -> tuple[list[str], list[str]]:
    """(to do, already done) among ``videos``: done means the output file exists."""
    todo, done = [], []
    for video in videos:
        (done if flow_path(out, video).is_file() else todo).append(video)
    return todo, done


def iter_decoded(root: Path, videos: list[str], size: Optional[int], prefetch: int
                 ) -> Iterator[tuple[str, Optional[np.ndarray], Optional[str]]]:
    """(video, frames or None, error or None) in order, decoding up to ``prefetch`` videos ahead in threads.

    PyAV releases the GIL while decoding, so decoding the next videos overlaps the flow of this one.
    """
    from concurrent.futures import ThreadPoolExecutor

    def load(video: str) -> tuple[Optional[np.ndarray], Optional[str]]:
        path = root / video
        if not path.is_file():
            return None, "does not exist"
        try:
            return read_gray_frames(path, size), None
        except VideoError as error:
            return None, str(error)

    if prefetch <= 0:
        for video in videos:
            yield (video, *load(video))
        return
    with ThreadPoolExecutor(max_workers=prefetch) as pool:
        futures = [pool.submit(load, video) for video in videos[:prefetch]]
        for index, video in enumerate(videos):
            frames, error = futures[index].result()
            futures[index] = None  # type: ignore[call-overload]  # let the frames go once used
            if index + prefetch < len(videos):
                futures.append(pool.submit(load, videos[index + prefetch]))
            yield video, frames, error
