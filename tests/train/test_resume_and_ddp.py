"""Resume continues bit for bit; DDP under torchrun keeps the ranks equal and shards the data exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inflate.train import TrainConfig, fit
from inflate.train.checkpoint import LAST


def _cfg(data: Path, out: Path, **kwargs: object) -> TrainConfig:
    base = dict(model="test_resnet", data=str(data), out=str(out), frames=4, size=32, epochs=2, batch=4, workers=0,
                optimizer="sgd", lr=0.05, tensorboard=False, seed=5)
    base.update(kwargs)
    return TrainConfig(**base)  # type: ignore[arg-type]


def _final(run: Path) -> dict:
    return torch.load(run / LAST, map_location="cpu", weights_only=True)


def test_resume_after_epoch_one_equals_an_uninterrupted_run(tiny_videos: Path, tmp_path: Path) -> None:
    whole = fit(_cfg(tiny_videos, tmp_path / "whole"), progress=False)
    assert whole.epochs_done == 2
    first = fit(_cfg(tiny_videos, tmp_path / "split"), stop_after_epoch=1, progress=False)
    assert first.epochs_done == 1 and _final(tmp_path / "split")["epoch"] == 1
    second = fit(_cfg(tiny_videos, tmp_path / "split"), resume=True, progress=False)
    assert second.epochs_done == 2
    a, b = _final(tmp_path / "whole"), _final(tmp_path / "split")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for group_a, group_b in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(group_a["momentum_buffer"], group_b["momentum_buffer"])
    assert a["scheduler"] == b["scheduler"]
    rows_a = (tmp_path / "whole" / "metrics.csv").read_text().splitlines()
    rows_b = (tmp_path / "split" / "metrics.csv").read_text().splitlines()
    assert len(rows_a) == len(rows_b) == 3
    assert [r.split(",")[1] for r in rows_a] == [r.split(",")[1] for r in rows_b]  # the same training losses


def test_training_changes_the_weights(tiny_videos: Path, tmp_path: Path) -> None:
    from inflate.train.model import build_model

    cfg = _cfg(tiny_videos, tmp_path / "run", epochs=1)
    torch.manual_seed(cfg.seed)
    start, _ = build_model(cfg, 4)
    fit(cfg, progress=False)
    trained = _final(tmp_path / "run")["model"]
    changed = [k for k, v in start.state_dict().items() if v.is_floating_point() and not torch.equal(v, trained[k])]
    assert len(changed) > len(trained) // 2


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo on Linux")
def test_ddp_two_ranks_stay_equal_and_cover_the_data_once(tiny_videos: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a free port for the rendezvous, so parallel runs do not collide
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
               "-m", "inflate.cli", "train", "test_resnet", "--data", str(tiny_videos), "--out", str(out),
               "--frames", "4", "--size", "32", "--epochs", "1", "--batch", "2", "--workers", "0", "--device", "cpu",
               "--lr", "0.05", "--no-tensorboard", "--quiet"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    checksums = summary["rank_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    shards = summary["last_epoch_shards"]
    assert len(shards) == 2 and all(shards)
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(8))  # 8 training videos, each seen once
    # rank 0 alone wrote: one header and one epoch row
    assert len((out / "metrics.csv").read_text().splitlines()) == 2


def test_channels_last_3d_run_saves_its_best_model(tiny_videos: Path, tmp_path: Path) -> None:
    """The CUDA default memory format, tried on the CPU: the best model is written and reloads equal."""
    from inflate import load

    run = tmp_path / "run"
    fit(_cfg(tiny_videos, run, epochs=1, channels_last=True), progress=False)
    saved = _final(run)["model"]
    model = load(run / "best.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
