"""`inflate train/evaluate/predict` on values that cannot train and on files that must not be touched:
one line naming the option or file, the documented exit code, no run folder left half made."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from inflate.cli import app

runner = CliRunner()
FAST = ["--frames", "4", "--size", "32", "--batch", "4", "--workers", "0", "--lr", "0.05", "--no-tensorboard"]


def _train(data: Path, out: Path, *extra: str, model: str = "test_resnet") -> object:
    return runner.invoke(app, ["train", model, "--data", str(data), "--out", str(out), "--epochs", "1", *FAST, *extra])


def _error(result: object, code: int, *names: str) -> str:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]  # type: ignore[attr-defined]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output  # type: ignore[attr-defined]
    assert "unexpected" not in lines[0], lines[0]
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("option, value", [
    ("--weight-decay", "nan"), ("--weight-decay", "-1"), ("--warmup-epochs", "nan"), ("--warmup-epochs", "inf"),
    ("--label-smoothing", "1.5"), ("--label-smoothing", "nan"), ("--clip-grad", "nan"), ("--flip", "nan"),
    ("--lr", "nan"), ("--frames", "100000"), ("--size", "100000"), ("--device", "tpu"), ("--device", "nonsense"),
    ("--override", "layer1.*=100000"),
])
def test_values_that_cannot_train_are_refused_up_front(option: str, value: str, videos: Path,
                                                       tmp_path: Path) -> None:
    _error(_train(videos, tmp_path / "run", option, value), 2, option.lstrip("-").split("-")[0])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("extra, names", [
    (["--pretrained", "--weights", "none.safetensors"], ("--pretrained", "--weights")),
    (["--flow-dir", "somewhere"], ("--flow-dir", "--stream flow")),
    (["--attention", "divided"], ("--attention", "no attention")),
])
def test_options_that_would_be_ignored_are_refused(extra: list, names: tuple, videos: Path, tmp_path: Path) -> None:
    _error(_train(videos, tmp_path / "run", *extra), 2, *names)
    assert not (tmp_path / "run").exists()


def test_resume_refuses_settings_other_than_the_runs(videos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "test_resnet", "--data", str(videos), "--out", str(run), "--epochs", "2",
                               "--stop-after-epoch", "1", *FAST]).exit_code == 0
    changed = [a if a != "4" else "2" for a in FAST]  # --frames 2, --batch 2
    result = runner.invoke(app, ["train", "test_resnet", "--data", str(videos), "--out", str(run), "--epochs", "2",
                                 "--resume", *changed])
    _error(result, 2, "--resume", "frames")
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1  # the run was left as it was
    moved = tmp_path / "moved"
    shutil.copytree(videos, moved)  # the data may move between jobs: --data is where it lives now
    result = runner.invoke(app, ["train", "test_resnet", "--data", str(moved), "--out", str(run), "--epochs", "2",
                                 "--resume", *FAST])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "summary.json").read_text())["epochs"] == 2


def test_training_on_no_readable_video_fails_and_leaves_no_run(videos: Path, tmp_path: Path) -> None:
    for video in (videos / "train").rglob("*.*"):
        video.write_bytes(b"not a video" * 10)
    _error(_train(videos, tmp_path / "out" / "run"), 2, "trained on no clip", "8 of the 8 training videos could not")
    assert not (tmp_path / "out").exists()  # nor the parent folder it made


def test_batch_norm_with_one_clip_per_step_is_refused(videos: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "test_resnet", "--data", str(videos), "--out", str(tmp_path / "run"),
                                 "--epochs", "1", *[a if a != "4" else "1" for a in FAST[:6]], *FAST[6:]])
    _error(result, 2, "--batch 1", "batch norm")
    one = tmp_path / "one"  # one class, one training video
    for split in ("train", "val"):
        video = sorted((videos / split / "down").iterdir())[0]
        (one / split / "down").mkdir(parents=True)
        shutil.copy(video, one / split / "down" / video.name)
    _error(_train(one, tmp_path / "run"), 2, "1 video", "batch norm")
    assert not (tmp_path / "run").exists()


def test_a_flip_at_width_one_trains(videos: Path, tmp_path: Path) -> None:
    """A 1-pixel crop flipped left-right stayed a negative-stride view that torch refused."""
    from inflate.data import ClipDataset, discover

    dataset = ClipDataset(discover(videos, "train"), frames=2, size=1, train=True, flip=1.0)
    clip = dataset.load(0)
    assert clip.shape == (3, 2, 1, 1)


def test_an_unwritable_run_folder_is_an_output_error(videos: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run's parent folder would go")
    _error(_train(videos, blocker / "run"), 4, "run folder", str(blocker / "run"))


def test_evaluate_never_opens_the_model_file_its_config_names(videos: Path, tmp_path: Path) -> None:
    """A run started from a 3D file records that file's path; evaluate and predict rebuild from the
    run's own best model and read the source name from it, so the recorded path is never opened."""
    converted = tmp_path / "r3d.safetensors"
    assert runner.invoke(app, ["convert", "test_resnet", "-t", "4", "-o", str(converted)]).exit_code == 0
    run = tmp_path / "run"
    assert _train(videos, run, model=str(converted)).exit_code == 0
    before = runner.invoke(app, ["evaluate", str(run), "--data", str(videos), "--workers", "0", "--views", "center",
                                 "--json"])
    assert before.exit_code == 0, before.output
    converted.unlink()
    config = json.loads((run / "config.json").read_text())
    config["model"] = str(tmp_path / "elsewhere" / "trap.safetensors")
    (run / "config.json").write_text(json.dumps(config))
    after = runner.invoke(app, ["evaluate", str(run), "--data", str(videos), "--workers", "0", "--views", "center",
                                "--json"])
    assert after.exit_code == 0, after.output
    assert json.loads(after.output.splitlines()[-1])["top1"] == json.loads(before.output.splitlines()[-1])["top1"]
    video = next((videos / "val").rglob("*.*"))
    result = runner.invoke(app, ["predict", str(run), str(video), "--views", "center"])
    assert result.exit_code == 0, result.output


def test_evaluate_keeps_an_existing_confusion_file_without_force(videos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(videos, run).exit_code == 0
    precious = tmp_path / "precious.png"
    precious.write_bytes(b"the user's own file")
    args = ["evaluate", str(run), "--data", str(videos), "--workers", "0", "--views", "center",
            "--confusion", str(precious)]
    _error(runner.invoke(app, args), 4, str(precious), "--force")
    assert precious.read_bytes() == b"the user's own file"
    assert runner.invoke(app, [*args, "--force"]).exit_code == 0
    assert precious.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for _ in range(2):  # the run's own confusion.png is rewritten each time
        assert runner.invoke(app, args[:-2]).exit_code == 0
    assert (run / "confusion.png").is_file()
    _error(runner.invoke(app, ["predict", str(run), str(videos)]), 2, "is a folder")


def test_numeric_labels_beyond_the_class_limit_are_refused(videos: Path, tmp_path: Path) -> None:
    from inflate.data import discover
    from inflate.core.errors import InvalidInputError

    video = next((videos / "train").rglob("*.*")).relative_to(videos)
    split = tmp_path / "list.txt"
    split.write_text(f"{video} 99999999999\n")
    with pytest.raises(InvalidInputError, match="99999999999"):
        discover(videos, "train", split_file=split)


def test_run_files_are_strict_json(tmp_path: Path) -> None:
    """summary.json holds NaN where a metric had nothing to average; JSON has no NaN: written as null."""
    from inflate.train.checkpoint import write_json

    write_json(tmp_path / "summary.json", {"val_top1": float("nan"), "history": [{"loss": float("inf")}, 1.5]})

    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")

    text = (tmp_path / "summary.json").read_text()
    assert json.loads(text, parse_constant=refuse) == {"val_top1": None, "history": [{"loss": None}, 1.5]}


def test_a_training_list_needs_its_validation_list(videos: Path, tmp_path: Path) -> None:
    """mmaction2-style lists: one for training, one for validation. A training list alone would
    have validated on the training videos; with both, evaluate reuses the validation list."""
    lines = {split: [f"{p.relative_to(videos)} {p.parent.name}" for p in sorted((videos / split).rglob("*.*"))]
             for split in ("train", "val")}
    (tmp_path / "train.txt").write_text("\n".join(lines["train"]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(lines["val"][:3]) + "\n")
    _error(_train(videos, tmp_path / "run", "--split-file", str(tmp_path / "train.txt")), 2, "--val-split-file")
    assert not (tmp_path / "run").exists()
    run = tmp_path / "run"
    result = _train(videos, run, "--split-file", str(tmp_path / "train.txt"), "--val-split-file",
                    str(tmp_path / "val.txt"))
    assert result.exit_code == 0, result.output
    evaluate = ["evaluate", str(run), "--data", str(videos), "--workers", "0", "--views", "center", "--json"]
    _error(runner.invoke(app, evaluate), 2, "--split-file")  # the lists config.json records are never opened
    scores = runner.invoke(app, [*evaluate, "--split-file", str(tmp_path / "val.txt")])
    assert scores.exit_code == 0, scores.output
    assert json.loads(scores.output.splitlines()[-1])["n"] == 3  # the validation list's videos, not the 8 trained on


@pytest.mark.parametrize("change, culprit", [
    ({"frames": "16"}, "'frames'"), ({"frames": 100000}, "--frames 100000"), ({"size": True}, "'size'"),
    ({"lr": "fast"}, "'lr'"), ({"milestones": ["a"]}, "'milestones'"), ({"model": None}, "'model'"),
    ({"frames": 2.5}, "'frames'"), ({"frames": None}, "'frames'"),
])
def test_a_damaged_run_config_is_one_line(change: dict, culprit: str, videos: Path, tmp_path: Path) -> None:
    """A run folder may come from elsewhere: config.json is checked for types and bounds before use."""
    run = tmp_path / "run"
    assert _train(videos, run).exit_code == 0
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, **change}))
    _error(runner.invoke(app, ["evaluate", str(run), "--data", str(videos), "--workers", "0", "--views", "center"]),
           2, "config.json", culprit)


@pytest.mark.parametrize("env, culprit", [
    ({"WORLD_SIZE": "abc"}, "must be integers"), ({"RANK": "x"}, "must be integers"),
    ({"WORLD_SIZE": "0"}, "not a valid torchrun rank"), ({"LOCAL_RANK": "-1"}, "not a valid torchrun rank"),
    ({"RANK": "5", "WORLD_SIZE": "2"}, "not a valid torchrun rank"),
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "MASTER_ADDR"),
])
def test_torchrun_variables_that_make_no_sense_are_one_line(env: dict, culprit: str, videos: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _error(_train(videos, tmp_path / "run"), 2, culprit)
    assert not (tmp_path / "run").exists()
    result = runner.invoke(app, ["flow", str(videos), str(tmp_path / "flow"), "--backend", "opencv"])
    if "MASTER_ADDR" not in culprit:  # flow's ranks write their own files: no process group to join
        _error(result, 2, culprit)


@pytest.mark.parametrize("part, damage, culprit", [
    ("model", lambda c: c["model"].pop("fc.weight"), "its model"),
    ("model", lambda c: c.__setitem__("model", "weights"), "its model"),
    ("optimizer", lambda c: c.__setitem__("optimizer", {"state": {}}), "its optimizer"),
    ("scheduler", lambda c: c.__setitem__("scheduler", {}), "its schedule"),
    ("epoch", lambda c: c.__setitem__("epoch", 10**9), "its epoch"),
    ("epoch", lambda c: c.__setitem__("epoch", "abc"), "its epoch"),
    ("best", lambda c: c.__setitem__("best_top1", "x"), "its best score"),
    ("rng", lambda c: c.__setitem__("rng", {}), "its random states"),
])
def test_a_damaged_checkpoint_is_refused_on_resume(part: str, damage, culprit: str, videos: Path,
                                                   tmp_path: Path) -> None:
    import torch

    run = tmp_path / "run"
    assert runner.invoke(app, ["train", "test_resnet", "--data", str(videos), "--out", str(run), "--epochs", "2",
                               "--stop-after-epoch", "1", *FAST]).exit_code == 0
    checkpoint = torch.load(run / "last.pt", weights_only=True)
    damage(checkpoint)
    torch.save(checkpoint, run / "last.pt")
    result = runner.invoke(app, ["train", "test_resnet", "--data", str(videos), "--out", str(run), "--epochs", "2",
                                 "--resume", *FAST])
    _error(result, 2, "last.pt", culprit)


def test_a_run_config_missing_a_setting_is_refused(videos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(videos, run).exit_code == 0
    config = json.loads((run / "config.json").read_text())
    del config["frames"]  # would have silently become the default 16 (the run trained with 4)
    (run / "config.json").write_text(json.dumps(config))
    _error(runner.invoke(app, ["evaluate", str(run), "--data", str(videos), "--workers", "0"]), 2,
           "config.json", "frames")


def test_evaluate_options_and_files_that_do_not_fit(videos: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _train(videos, run).exit_code == 0
    base = ["evaluate", str(run), "--data", str(videos), "--workers", "0", "--views", "center"]
    video = next((videos / "val").rglob("*.*"))
    _error(runner.invoke(app, [*base, "--confusion", str(video), "--force"]), 2, ".png")
    assert video.read_bytes()[:4] != b"\x89PNG"
    _error(runner.invoke(app, [*base, "--confusion", str(run / "curves.png"), "--force"]), 4, "is the input")
    _error(runner.invoke(app, [*base, "--fusion-weights", "1", "--fusion-weights", "1"]), 2, "--flow")
    labels = json.loads((run / "labels.json").read_text())
    (run / "labels.json").write_text(json.dumps(labels + ["extra"]))
    _error(runner.invoke(app, base), 2, "labels.json", "5 classes", "4 outputs")
    (run / "labels.json").write_text("[]")
    _error(runner.invoke(app, base), 2, "labels.json", "non-empty")


def test_names_with_control_characters_are_escaped_in_messages() -> None:
    """A video named with a newline and a terminal escape cannot forge an 'error:' line or reach the terminal."""
    from inflate.cli.errors import format_error
    from inflate.core.errors import InvalidInputError

    line = format_error(InvalidInputError("cannot read evil\nerror: forged\x1b[2K.mp4; " + "x" * 5000))
    assert "\n" not in line and "\x1b" not in line and "\\x1b" in line
    assert len(line) < 1100 and line.endswith("more characters)")
