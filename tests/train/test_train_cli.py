"""`inflate train/evaluate/predict` from the command line, on good and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from inflate.cli import app

runner = CliRunner()
FAST = ["--frames", "4", "--size", "32", "--batch", "4", "--workers", "0", "--lr", "0.05", "--no-tensorboard"]


def _train(data: Path, out: Path, *extra: str, epochs: int = 1) -> object:
    return runner.invoke(app, ["train", "test_resnet", "--data", str(data), "--out", str(out), "--epochs", str(epochs),
                               *FAST, *extra])


def _one_error_line(result: object, code: int, *names: str) -> str:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]  # type: ignore[attr-defined]
    assert len(lines) == 1, result.output  # type: ignore[attr-defined]
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def test_train_evaluate_predict_and_reload(videos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = _train(videos, run, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert payload["epochs"] == 1 and 0 <= payload["best_top1"] <= 1
    for name in ("config.json", "labels.json", "last.pt", "best.safetensors", "metrics.csv", "curves.png",
                 "summary.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "labels.json").read_text()) == ["down", "left", "right", "up"]
    assert not list(run.glob("*.part")) and not list(run.glob(".*.part"))

    result = runner.invoke(app, ["evaluate", str(run), "--data", str(videos), "--clips", "2", "--crops", "3",
                                 "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.output.strip().splitlines()[-1])
    assert scores["n"] == 4 and scores["n_clips"] == 4 * 6
    for key in ("top1", "top5", "clip_top1"):
        assert 0.0 <= scores[key] <= 1.0
    assert scores["top5"] == 1.0  # 4 classes: the label is always among the top 5
    assert sum(map(sum, scores["confusion"])) == 4
    assert (run / "confusion.png").read_bytes()[:4] == b"\x89PNG"

    # the best model is in `inflate convert`'s format: inflate.load rebuilds it, outputs equal
    from inflate import load
    from inflate.train import predict

    model = load(run / "best.safetensors")
    state = torch.load(run / "last.pt", weights_only=True)
    for key, value in model.state_dict().items():  # one epoch: the best model is the last one
        assert torch.equal(value, state["model"][key]), key
    video = next((videos / "val" / "up").iterdir())
    ranked = predict(run, video, top=2, num_clips=1, num_crops=1)
    assert len(ranked) == 2 and ranked[0][1] >= ranked[1][1]
    result = runner.invoke(app, ["predict", str(run), str(video), "--top", "3", "--clips", "1", "--crops", "1"])
    assert result.exit_code == 0, result.output
    assert len(result.output.strip().splitlines()) == 3
    assert result.output.split()[1] == ranked[0][0]


def test_a_corrupt_and_an_empty_video_are_skipped_and_named(videos: Path, tmp_path: Path) -> None:
    (videos / "train" / "left" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    (videos / "train" / "up" / "empty.mp4").write_bytes(b"")
    run = tmp_path / "run"
    result = _train(videos, run)
    assert result.exit_code == 0, result.output
    assert "broken.mp4" in result.output and "empty.mp4" in result.output
    assert "Traceback" not in result.output
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["failed_videos"]) == 2
    assert (run / "last.pt").is_file()


def test_an_empty_folder_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _train(tmp_path / "empty", tmp_path / "run")
    _one_error_line(result, 2, "empty")
    assert not (tmp_path / "run" / "last.pt").exists()


def test_a_split_file_naming_a_missing_video(videos: Path, tmp_path: Path) -> None:
    listing = tmp_path / "train.txt"
    present = next((videos / "train" / "up").iterdir()).relative_to(videos)
    listing.write_text(f"{present} 0\ntrain/up/not_there.mp4 0\n")
    result = _train(videos, tmp_path / "run", "--split-file", str(listing))
    _one_error_line(result, 2, "not_there.mp4")


def test_frames_longer_than_every_video_loop(videos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "test_resnet", "--data", str(videos), "--out", str(run), "--epochs", "1",
                                 "--frames", "24", "--size", "32", "--batch", "4", "--workers", "0",
                                 "--no-tensorboard"])
    assert result.exit_code == 0, result.output  # the 10-frame videos are looped to 24 frames
    from inflate.data import ClipDataset, discover

    dataset = ClipDataset(discover(videos, "train"), frames=24, size=32, train=True)
    clip = dataset[(0, 0)]["clip"]
    assert clip.shape[1] == 24
    torch.testing.assert_close(clip[:, :10], clip[:, 10:20])  # looped: frame t + 10 is frame t


def test_weights_for_another_class_count_restart_the_classifier(videos: Path, tmp_path: Path) -> None:
    import timm
    from safetensors.torch import save_file

    weights = tmp_path / "ten_classes.safetensors"
    save_file(timm.create_model("test_resnet", num_classes=10).state_dict(), str(weights))
    run = tmp_path / "run"
    result = _train(videos, run, "--weights", str(weights))
    assert result.exit_code == 0, result.output
    assert "re-initialised for 4 classes" in result.output
    assert "2D weights" in result.output
    # a file of another architecture is refused in one line
    save_file(timm.create_model("test_convnext", num_classes=4).state_dict(), str(tmp_path / "convnext.safetensors"))
    result = _train(videos, tmp_path / "run2", "--weights", str(tmp_path / "convnext.safetensors"))
    _one_error_line(result, 2, "convnext.safetensors")


def test_evaluating_on_other_classes_is_refused(videos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(videos, run).exit_code == 0
    shutil.copytree(videos / "val" / "up", videos / "val" / "sideways")
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(videos), "--workers", "0", "--views", "center"])
    _one_error_line(result, 2, "sideways")


def test_an_existing_run_needs_resume_and_resume_needs_a_run(videos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(videos, run).exit_code == 0
    _one_error_line(_train(videos, run), 4, str(run), "--resume")
    _one_error_line(_train(videos, tmp_path / "fresh", "--resume"), 2, "last.pt")
    result = runner.invoke(app, ["evaluate", str(tmp_path), "--data", str(videos)])
    _one_error_line(result, 2, "not a run folder")


def test_interrupting_a_checkpoint_write_keeps_the_previous_one(videos: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from inflate.train import checkpoint

    run = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def interrupted_save(obj: object, path: str, *args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the second epoch's checkpoint: half written, then Ctrl-C
            Path(path).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise KeyboardInterrupt
        real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", interrupted_save)
    result = _train(videos, run, epochs=2)
    assert result.exit_code != 0
    payload = torch.load(run / "last.pt", weights_only=True)
    assert payload["epoch"] == 1
    assert not [p for p in run.iterdir() if p.name.endswith(".part")]


def test_two_stream_fusion_sums_the_streams_logits(videos: Path, tmp_path: Path) -> None:
    import numpy as np

    from inflate.train import evaluate

    flow_dir = tmp_path / "videos_flow"
    result = runner.invoke(app, ["flow", str(videos), str(flow_dir), "--backend", "opencv", "--size", "0", "-q"])
    assert result.exit_code == 0, result.output
    assert _train(videos, tmp_path / "rgb").exit_code == 0
    result = _train(videos, tmp_path / "flow", "--stream", "flow", "--flow-dir", str(flow_dir))
    assert result.exit_code == 0, result.output
    common = dict(views="multi", num_clips=2, num_crops=3, workers=0, flow_dir=flow_dir, return_logits=True)
    rgb = evaluate(tmp_path / "rgb", videos, **common)
    flow = evaluate(tmp_path / "flow", videos, **common)
    fused = evaluate(tmp_path / "rgb", videos, flow_run=tmp_path / "flow", weights=(1.0, 0.5), **common)
    assert fused["streams"] == ["rgb", "flow"] and fused["n"] == 4
    np.testing.assert_allclose(fused["video_logits"], rgb["video_logits"] + 0.5 * flow["video_logits"], rtol=1e-6)
    only_rgb = evaluate(tmp_path / "rgb", videos, flow_run=tmp_path / "flow", weights=(1.0, 0.0), **common)
    assert only_rgb["confusion"] == rgb["confusion"] and only_rgb["clip_top1"] == rgb["clip_top1"]
    # from the command line: one JSON object with the documented keys
    result = runner.invoke(app, ["evaluate", str(tmp_path / "rgb"), "--flow", str(tmp_path / "flow"), "--data",
                                 str(videos), "--flow-dir", str(flow_dir), "--clips", "2", "--workers", "0", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output.strip().splitlines()[-1])
    assert {"top1", "top5", "clip_top1", "n"} <= set(payload) and payload["n"] == 4
    assert payload["top1"] == pytest.approx(float(np.mean(np.argmax(rgb["video_logits"] + flow["video_logits"], 1)
                                                           == rgb["video_labels"])))
    # an RGB run given as --flow is refused in one line
    _one_error_line(runner.invoke(app, ["evaluate", str(tmp_path / "rgb"), "--flow", str(tmp_path / "rgb"), "--data",
                                        str(videos)]), 2, "flow")


def test_training_starts_from_a_converted_3d_file(videos: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    converted = tmp_path / "r3d.safetensors"
    result = runner.invoke(app, ["convert", "test_resnet", "-t", "4", "--num-classes", "10", "-o", str(converted)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", str(converted), "--data", str(videos), "--out", str(run), "--epochs", "1",
                                 "--frames", "4", "--size", "32", "--batch", "4", "--workers", "0", "--lr", "1e-9",
                                 "--no-tensorboard"])
    assert result.exit_code == 0, result.output
    assert "3D weights from" in result.output and "re-initialised for 4 classes" in result.output
    start, trained = load_file(str(converted)), torch.load(run / "last.pt", weights_only=True)["model"]
    assert trained["fc.weight"].shape == (4, start["fc.weight"].shape[1])
    stem = "conv1.0.weight" if "conv1.0.weight" in start else "conv1.weight"
    torch.testing.assert_close(trained[stem], start[stem], rtol=0, atol=1e-6)  # lr 1e-9: the start weights kept


def test_inflation_options_that_do_not_apply_are_refused(videos: Path, tmp_path: Path) -> None:
    _one_error_line(runner.invoke(app, ["train", "i3d_rgb", "--data", str(videos), "--out", str(tmp_path / "a"),
                                        "--policy", "i3d_k3", "--override", "Mixed_3b.*=1"]),
                    2, "--policy", "--override", "i3d_rgb")
    converted = tmp_path / "r3d.safetensors"
    assert runner.invoke(app, ["convert", "test_resnet", "-t", "4", "-o", str(converted)]).exit_code == 0
    _one_error_line(_train_model(str(converted), videos, tmp_path / "b", "--init", "center"), 2, "--init",
                    "r3d.safetensors")
    _one_error_line(_train_model(str(converted), videos, tmp_path / "c", "--stream", "flow", "--flow-dir",
                                 str(tmp_path)), 2, "r3d.safetensors", "input channels")
    assert not (tmp_path / "a" / "last.pt").exists() and not (tmp_path / "b" / "last.pt").exists()


def _train_model(model: str, data: Path, out: Path, *extra: str) -> object:
    return runner.invoke(app, ["train", model, "--data", str(data), "--out", str(out), "--epochs", "1", *FAST, *extra])


def test_bad_data_leaves_no_run_folder(tmp_path: Path) -> None:
    result = _train(tmp_path / "missing", tmp_path / "run")
    _one_error_line(result, 2, "missing")
    assert not (tmp_path / "run").exists()


def test_cudnn_autotuning_is_set_for_cuda_only_and_restored() -> None:
    """`inflate evaluate` (as `inflate train`) turns cuDNN's benchmark mode on on CUDA unless
    --no-cudnn-benchmark; the evaluation restores the previous setting; other devices are left alone."""
    from inflate.train.distributed import cudnn_autotuning

    previous = torch.backends.cudnn.benchmark
    try:
        for start in (False, True):
            torch.backends.cudnn.benchmark = start
            for enabled in (False, True):
                with cudnn_autotuning(enabled, torch.device("cuda")):
                    assert torch.backends.cudnn.benchmark is enabled
                assert torch.backends.cudnn.benchmark is start
                with cudnn_autotuning(enabled, torch.device("cpu")):
                    assert torch.backends.cudnn.benchmark is start
    finally:
        torch.backends.cudnn.benchmark = previous


@pytest.mark.parametrize("flag, expected", [((), True), (("--no-cudnn-benchmark",), False),
                                            (("--cudnn-benchmark",), True)])
def test_evaluate_passes_the_cudnn_flag(flag: tuple[str, ...], expected: bool, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import inflate.train

    seen: dict[str, object] = {}

    def fake_evaluate(run: Path, data: Path, **kwargs: object) -> dict[str, object]:
        seen.update(kwargs)
        return {"n": 0}

    monkeypatch.setattr(inflate.train, "evaluate", fake_evaluate)
    result = runner.invoke(app, ["evaluate", str(tmp_path), "--data", str(tmp_path), "--json", *flag])
    assert result.exit_code == 0, result.output
    assert seen["cudnn_benchmark"] is expected
