"""OpenCV's TV-L1 (``cv2.optflow.DualTVL1OpticalFlow``) over a process pool, one OpenCV thread per process.

Imports numpy and cv2 only (no torch), so the pool's processes start quickly.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Optional

import numpy as np

from ..core.errors import InvalidInputError
from .params import TVL1Params

__all__ = ["opencv_available", "tvl1_opencv", "default_workers", "shutdown_pools"]

_INSTANCE: Any = None
_INSTANCE_PARAMS: Optional[TVL1Params] = None
_POOLS: dict[tuple[int, TVL1Params], ProcessPoolExecutor] = {}


def opencv_available() -> bool:
    """Whether ``cv2.optflow.DualTVL1OpticalFlow_create`` exists (opencv-contrib-python-headless)."""
    try:
        import cv2
    except ImportError:
        return False
    return hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create")


def _require_opencv() -> Any:
    if not opencv_available():
        raise InvalidInputError("the opencv backend needs cv2.optflow (pip install opencv-contrib-python-headless; "
                                "plain opencv-python lacks it), or use backend 'torch'")
    import cv2

    return cv2


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _instance(params: TVL1Params) -> Any:
    global _INSTANCE, _INSTANCE_PARAMS
    if _INSTANCE is None or _INSTANCE_PARAMS != params:
        cv2 = _require_opencv()
        _INSTANCE = cv2.optflow.DualTVL1OpticalFlow_create(**params.opencv_kwargs())
        _INSTANCE_PARAMS = params
    return _INSTANCE


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)


def _calc_pair(params: TVL1Params, i0: np.ndarray, i1: np.ndarray) -> np.ndarray:
    return _instance(params).calc(i0, i1, None)


def _pool(workers: int, params: TVL1Params) -> ProcessPoolExecutor:
    key = (workers, params)
    if key not in _POOLS:
        # fork where there is one: spawn would make every user script need an `if __name__ == "__main__"`
        # guard. The children run OpenCV on one thread and never touch torch, so the parent's thread
        # pools (not copied by fork) are never used there.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        _POOLS[key] = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                                          initializer=_init_worker)
    return _POOLS[key]


def shutdown_pools() -> None:
    """Stop the worker processes started by :func:`tvl1_opencv` (also done at exit)."""
    while _POOLS:
        _, pool = _POOLS.popitem()
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_pools)


def tvl1_opencv(gray: np.ndarray, params: TVL1Params = TVL1Params(), workers: Optional[int] = None) -> np.ndarray:
    """(T, H, W) uint8 gray frames → (T - 1, H, W, 2) float32 flow by OpenCV, frame t to t + 1.

    ``workers`` processes (default: every core) each run one pair at a time on one OpenCV
    thread; ``workers=1`` runs in this process on one OpenCV thread.
    """
    cv2 = _require_opencv()
    gray = np.ascontiguousarray(gray)
    pairs = gray.shape[0] - 1
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise InvalidInputError(f"workers must be >= 1, got {workers}")
    out = np.empty((pairs, *gray.shape[1:], 2), dtype=np.float32)
    if workers == 1 or pairs == 1:
        previous = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            for t in range(pairs):
                out[t] = _calc_pair(params, gray[t], gray[t + 1])
        finally:
            cv2.setNumThreads(previous)
        return out
    pool = _pool(workers, params)
    futures = [pool.submit(_calc_pair, params, gray[t], gray[t + 1]) for t in range(pairs)]
    for t, future in enumerate(futures):
        out[t] = future.result()
    return out
