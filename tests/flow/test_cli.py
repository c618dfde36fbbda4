"""`inflate flow` on tiny PyAV clips: the tree mirrored, flow as independently computed, bad inputs, resume, shards."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from inflate.cli import app
from inflate.flow import dequantize, load_flow, quantize, tvl1
from inflate.flow.extract import read_gray_frames

from .clips import moving_frames, write_clip

pytestmark = pytest.mark.skipif(not hasattr(getattr(cv2, "optflow", None), "DualTVL1OpticalFlow_create"),
                                reason="needs opencv-contrib-python-headless (cv2.optflow)")

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, ["flow", *(str(a) for a in args)], catch_exceptions=False)


@pytest.fixture()
def videos(tmp_path: Path) -> Path:
    """Two classes, three good clips (moving right by 1 px a frame), 48×64."""
    root = tmp_path / "videos"
    write_clip(root / "walk" / "a.avi", moving_frames(4, step=(1, 0), seed=0))
    write_clip(root / "walk" / "b.avi", moving_frames(3, step=(1, 0), seed=1))
    write_clip(root / "run" / "c.mp4", moving_frames(3, step=(0, 1), seed=2))
    return root


def test_mirrors_tree_and_stores_opencv_flow(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "flow"
    result = invoke(videos, out, "--backend", "opencv", "--size", "48", "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz")) == ["run/c.npz", "walk/a.npz", "walk/b.npz"]
    stored = load_flow(out / "walk" / "a.npz")
    assert stored.shape == (3, 48, 64, 2) and stored.dtype == np.uint8
    # Independently: decode, TV-L1 in this process, quantise.
    expected = quantize(tvl1(read_gray_frames(videos / "walk" / "a.avi", 48), "opencv", workers=1))
    np.testing.assert_array_equal(stored, expected)
    # The texture moves right by one pixel a frame: flow x ≈ +1 away from the borders.
    assert np.median(dequantize(stored, pixels=True)[:, 8:-8, 8:-8, 0]) == pytest.approx(1.0, abs=0.25)
    assert "3 written, 0 already done, 0 failed of 3 videos" in result.output


def test_size_resizes_short_side(videos: Path, tmp_path: Path) -> None:
    result = invoke(videos, tmp_path / "flow", "--backend", "opencv", "--size", "32", "--workers", "1", "-q")
    assert result.exit_code == 0, result.output
    assert load_flow(tmp_path / "flow" / "run" / "c.npz").shape == (2, 32, 43, 2)  # 48×64 → 32×round(42.7)


def test_torch_backend_writes_the_same_kind_of_file(videos: Path, tmp_path: Path) -> None:
    split = tmp_path / "list.txt"
    split.write_text("walk/b.avi 0\n")
    result = invoke(videos, tmp_path / "flow", "--backend", "torch", "--device", "cpu", "--size", "32",
                    "--split-file", split, "-q")
    assert result.exit_code == 0, result.output
    ours = dequantize(load_flow(tmp_path / "flow" / "walk" / "b.npz"), pixels=True)
    reference = tvl1(read_gray_frames(videos / "walk" / "b.avi", 32), "opencv", workers=1)
    assert np.linalg.norm(ours - np.clip(reference, -20, 20), axis=-1).mean() <= 0.25
    assert not (tmp_path / "flow" / "walk" / "a.npz").exists()  # not in the split file


def test_bad_videos_are_named_counted_and_skipped(videos: Path, tmp_path: Path) -> None:
    (videos / "run" / "broken.avi").write_bytes(b"not a video at all" * 20)
    write_clip(videos / "run" / "still.avi", moving_frames(1))
    out = tmp_path / "flow"
    result = invoke(videos, out, "--backend", "opencv", "--size", "32", "--workers", "1")
    assert result.exit_code == 0, result.output  # others succeeded
    assert "broken.avi: cannot be decoded" in result.output
    assert "still.avi: has 1 frame; flow needs at least 2" in result.output
    assert "3 written, 0 already done, 2 failed of 5 videos" in result.output
    assert not (out / "run" / "broken.npz").exists() and not list(out.rglob("*.part"))
    strict = invoke(videos, out, "--backend", "opencv", "--size", "32", "--workers", "1", "--strict", "-q")
    assert strict.exit_code == 2


def test_all_failed_exits_2(tmp_path: Path) -> None:
    root = tmp_path / "videos"
    root.mkdir()
    (root / "bad.mp4").write_bytes(b"\x00" * 100)
    result = invoke(root, tmp_path / "flow", "--backend", "opencv")
    assert result.exit_code == 2
    assert "bad.mp4: cannot be decoded" in result.output and "1 failed of 1 videos" in result.output


def test_output_that_is_a_file_exits_4(videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "flow.npz"
    out.write_bytes(b"x")
    result = invoke(videos, out, "--backend", "opencv")
    assert result.exit_code == 4
    assert "is a file; give a folder" in result.output
    assert out.read_bytes() == b"x"


@pytest.mark.parametrize("args, message", [
    (["--backend", "raft"], "--backend 'raft'"),
    (["--size", "-1"], "--size must be >= 0"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--backend", "opencv", "--device", "cuda"], "runs on the CPU"),
], ids=["backend", "size", "workers", "opencv-on-gpu"])
def test_bad_options_exit_2(videos: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke(videos, tmp_path / "flow", *args)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "flow").exists()


def test_missing_folder_exits_2(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nothing", tmp_path / "flow")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_interrupted_run_resumes(videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import inflate.flow.extract as extract

    out = tmp_path / "flow"
    real = extract.flow_for_video
    calls = []

    def interrupt_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(extract, "flow_for_video", interrupt_second)
    first = invoke(videos, out, "--backend", "opencv", "--size", "32", "--workers", "1", "-q")
    assert first.exit_code == 130
    assert "run the same command again to resume" in first.output
    assert [p.name for p in out.rglob("*.npz")] == ["c.npz"]  # sorted order: run/c first
    # A run killed mid-write (SIGKILL) leaves a temporary: the resumed run removes it.
    stale = out / "walk" / ".a.npz.12345.part"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"half")
    monkeypatch.setattr(extract, "flow_for_video", real)
    second = invoke(videos, out, "--backend", "opencv", "--size", "32", "--workers", "1", "-q")
    assert second.exit_code == 0, second.output
    assert "2 written, 1 already done, 0 failed of 3 videos" in second.output
    assert not stale.exists() and len(list(out.rglob("*.npz"))) == 3


def test_torchrun_ranks_share_the_videos(videos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "flow"
    written = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        result = invoke(videos, out, "--backend", "opencv", "--size", "32", "--workers", "1", "-q")
        assert result.exit_code == 0, result.output
        assert f"[rank {rank}/2]" in result.output
        written.append({p.relative_to(out).as_posix() for p in out.rglob("*.npz")})
    # sorted videos: run/c, walk/a, walk/b → rank 0 takes c and b, rank 1 takes a.
    assert written[0] == {"run/c.npz", "walk/b.npz"}
    assert written[1] == {"run/c.npz", "walk/a.npz", "walk/b.npz"}


@pytest.mark.parametrize("entry", ["../outside.avi", "{outside}", "walk/../../outside.avi"])
def test_a_split_file_cannot_reach_outside_the_folders(entry: str, videos: Path, tmp_path: Path) -> None:
    """A list line that is absolute or climbs out with '..' would read a video outside VIDEOS and
    write its flow outside OUT: refused, naming the line, and nothing is written anywhere."""
    write_clip(tmp_path / "outside.avi", moving_frames(3, step=(1, 0), seed=5))
    split = tmp_path / "list.txt"
    split.write_text("walk/a.avi 0\n" + entry.format(outside=tmp_path / "outside.avi") + " 1\n")
    out = tmp_path / "nested" / "flow"
    out.parent.mkdir()
    result = invoke(videos, out, "--backend", "opencv", "--size", "32", "--workers", "1", "--split-file", split)
    assert result.exit_code == 2, result.output
    assert "is not a path inside" in result.output and "outside.avi" in result.output
    assert not list(tmp_path.rglob("*.npz"))


def test_batch_size_is_refused_for_the_opencv_backend(videos: Path, tmp_path: Path) -> None:
    result = invoke(videos, tmp_path / "flow", "--backend", "opencv", "--batch-size", "4")
    assert result.exit_code == 2 and "--batch-size" in result.output
    assert not (tmp_path / "flow").exists()


def test_two_videos_that_would_share_one_flow_file_are_refused(videos: Path, tmp_path: Path) -> None:
    write_clip(videos / "walk" / "a.mp4", moving_frames(3, step=(1, 0), seed=7))  # beside walk/a.avi
    result = invoke(videos, tmp_path / "flow", "--backend", "opencv", "--workers", "1")
    assert result.exit_code == 2 and "walk/a.npz" in result.output and "a.mp4" in result.output
    assert not list(tmp_path.rglob("*.npz"))
