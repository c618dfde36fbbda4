"""Dataset layouts parsed from generated trees and split files (the files need not be real videos here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from inflate import InvalidInputError
from inflate.data import discover


def _touch(root: Path, *relatives: str) -> None:
    for relative in relatives:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x00")


def _labels(videos) -> dict[str, str]:
    return {r.relative: videos.classes[r.label] for r in videos.records}


# --- folder per class --------------------------------------------------------------------------------------


def test_folder_with_splits_shares_the_train_label_map(tmp_path):
    _touch(tmp_path, "train/walk/a.mp4", "train/run/b.avi", "train/run/sub/c.MKV", "train/run/notes.txt",
           "val/run/d.mp4")
    train = discover(tmp_path, "train")
    val = discover(tmp_path, "val")
    assert train.layout == val.layout == "folder"
    assert train.classes == val.classes == ["run", "walk"]
    assert _labels(train) == {"train/run/b.avi": "run", "train/run/sub/c.MKV": "run", "train/walk/a.mp4": "walk"}
    assert _labels(val) == {"val/run/d.mp4": "run"}
    assert val.records[0].label == 0 and val.records[0].path == tmp_path / "val/run/d.mp4"


def test_folder_without_splits_trains_on_all_and_refuses_val(tmp_path):
    _touch(tmp_path, "b/x.mp4", "a/y.webm")
    train = discover(tmp_path, "train", layout="folder")
    assert _labels(train) == {"a/y.webm": "a", "b/x.mp4": "b"}
    with pytest.raises(InvalidInputError, match="no validation split.*val"):
        discover(tmp_path, "val")


def test_folder_val_class_unknown_to_train_map(tmp_path):
    _touch(tmp_path, "train/a/1.mp4", "val/a/2.mp4", "val/zebra/3.mp4")
    with pytest.raises(InvalidInputError, match="class 'zebra' is not in the training label map"):
        discover(tmp_path, "val")


def test_folder_val_uses_given_classes(tmp_path):
    _touch(tmp_path, "train/a/1.mp4", "val/b/2.mp4")
    val = discover(tmp_path, "val", classes=["b", "a"])
    assert val.records[0].label == 0


def test_empty_folder_and_empty_class(tmp_path):
    with pytest.raises(InvalidInputError, match="is empty"):
        discover(tmp_path)
    _touch(tmp_path, "a/readme.txt")
    with pytest.raises(InvalidInputError, match="holds no videos"):
        discover(tmp_path)
    _touch(tmp_path, "b/1.mp4")
    with pytest.raises(InvalidInputError, match="a holds no videos.*empty class folder"):
        discover(tmp_path)


def test_videos_without_class_folders(tmp_path):
    _touch(tmp_path, "1.mp4")
    with pytest.raises(InvalidInputError, match="put each in a folder named after its class"):
        discover(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        discover(tmp_path / "nope")


# --- UCF-101 -----------------------------------------------------------------------------------------------


@pytest.fixture
def ucf(tmp_path) -> Path:
    _touch(tmp_path, "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
           "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
           "UCF-101/HandstandPushups/v_HandStandPushups_g08_c01.avi",
           "UCF-101/HandstandPushups/v_HandStandPushups_g01_c02.avi")
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    # Windows line endings, as the released files have.
    (lists / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n")
    (lists / "trainlist01.txt").write_bytes(
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nHandstandPushups/v_HandstandPushups_g08_c01.avi 2\r\n")
    (lists / "testlist01.txt").write_bytes(
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\nHandstandPushups/v_HandstandPushups_g01_c02.avi\r\n")
    return tmp_path


def test_ucf101_splits_and_handstand_case(ucf):
    train = discover(ucf, "train")
    assert train.layout == "ucf101" and train.classes == ["ApplyEyeMakeup", "HandstandPushups"]
    assert _labels(train) == {
        "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi": "ApplyEyeMakeup",
        # The list says v_HandstandPushups, the file is v_HandStandPushups: matched case-insensitively.
        "UCF-101/HandstandPushups/v_HandStandPushups_g08_c01.avi": "HandstandPushups",
    }
    assert all(r.path.is_file() for r in train.records)
    val = discover(ucf, "val", classes=train.classes)
    assert [r.label for r in val.records] == [0, 1]
    assert val.records[1].path.name == "v_HandStandPushups_g01_c02.avi"


def test_ucf101_missing_videos_counted_in_one_line(ucf):
    with (ucf / "ucfTrainTestlist/testlist01.txt").open("ab") as stream:
        stream.write(b"ApplyEyeMakeup/v_ApplyEyeMakeup_g99_c01.avi\r\nApplyEyeMakeup/v_ApplyEyeMakeup_g98_c01.avi\r\n")
    with pytest.raises(InvalidInputError) as caught:
        discover(ucf, "val")
    message = str(caught.value)
    assert "2 listed videos are missing" in message and "v_ApplyEyeMakeup_g99_c01.avi" in message
    assert "\n" not in message


def test_ucf101_other_split_file_and_unknown_class(ucf):
    (ucf / "ucfTrainTestlist/trainlist02.txt").write_text("Juggling/v_Juggling_g01_c01.avi 3\n")
    with pytest.raises(InvalidInputError, match="class 'Juggling'"):
        discover(ucf, "train", split_id=2)
    with pytest.raises(InvalidInputError, match="testlist03.txt not found"):
        discover(ucf, "val", split_id=3)


# --- HMDB-51 -----------------------------------------------------------------------------------------------


def test_hmdb51_tags(tmp_path):
    _touch(tmp_path, "brush_hair/a.avi", "brush_hair/b.avi", "brush_hair/c.avi", "wave/d.avi", "wave/e.avi")
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    (splits / "wave_test_split1.txt").write_text("d.avi 2 \ne.avi 1 \n")
    (splits / "wave_test_split2.txt").write_text("d.avi 1 \ne.avi 2 \n")
    (splits / "brush_hair_test_split2.txt").write_text("a.avi 2 \nb.avi 1 \nc.avi 1 \n")
    train = discover(tmp_path, "train")
    assert train.layout == "hmdb51" and train.classes == ["brush_hair", "wave"]
    assert _labels(train) == {"brush_hair/a.avi": "brush_hair", "wave/e.avi": "wave"}
    assert _labels(discover(tmp_path, "val")) == {"brush_hair/b.avi": "brush_hair", "wave/d.avi": "wave"}
    assert _labels(discover(tmp_path, "train", split_id=2)) == {
        "brush_hair/b.avi": "brush_hair", "brush_hair/c.avi": "brush_hair", "wave/d.avi": "wave"}
    (splits / "wave_test_split3.txt").write_text("gone.avi 1\n")
    (splits / "brush_hair_test_split3.txt").write_text("a.avi 1\n")
    with pytest.raises(InvalidInputError, match="1 listed video is missing.*wave/gone.avi"):
        discover(tmp_path, "train", split_id=3)


# --- list files --------------------------------------------------------------------------------------------


def test_list_file_numbers_and_names(tmp_path):
    _touch(tmp_path, "videos/a b.mp4", "videos/c.mp4", "videos/d.mp4")
    numbers = tmp_path / "train.txt"
    numbers.write_text("videos/a b.mp4 2\nvideos/c.mp4 0\r\n")
    train = discover(tmp_path, "train", split_file=numbers)
    assert train.layout == "list" and train.classes == ["0", "1", "2"]
    assert [(r.relative, r.label) for r in train.records] == [("videos/a b.mp4", 2), ("videos/c.mp4", 0)]
    names = tmp_path / "val.txt"
    names.write_text("videos/d.mp4 jump\n")
    val = discover(tmp_path, "val", split_file=names, classes=["run", "jump"])
    assert val.records[0].label == 1
    with pytest.raises(InvalidInputError, match="label 2 is out of range"):
        discover(tmp_path, "val", split_file=numbers, classes=["x", "y"])
    missing = tmp_path / "missing.txt"
    missing.write_text("videos/c.mp4 0\nvideos/zzz.mp4 1\n")
    with pytest.raises(InvalidInputError, match="1 listed video is missing.*videos/zzz.mp4"):
        discover(tmp_path, "train", split_file=missing)


def test_bad_arguments(tmp_path):
    _touch(tmp_path, "a/1.mp4")
    with pytest.raises(InvalidInputError, match="split must be one of"):
        discover(tmp_path, "test")
    with pytest.raises(InvalidInputError, match="layout must be one of"):
        discover(tmp_path, layout="kinetics")
    with pytest.raises(InvalidInputError, match="split file .* does not exist"):
        discover(tmp_path, split_file=tmp_path / "none.txt")


def test_ucf101_training_list_given_validates_on_its_test_list(ucf):
    """--split-file trainlist01.txt once stood for both splits: validation then ran on the training videos."""
    trainlist = ucf / "ucfTrainTestlist" / "trainlist01.txt"
    train = discover(ucf, "train", split_file=trainlist)
    val = discover(ucf, "val", split_file=trainlist, classes=train.classes)
    assert [r.path for r in val.records] == [r.path for r in discover(ucf, "val", classes=train.classes).records]
    assert not {r.path for r in val.records} & {r.path for r in train.records}
    (ucf / "ucfTrainTestlist" / "testlist01.txt").unlink()
    with pytest.raises(InvalidInputError, match="testlist01.txt beside it"):
        discover(ucf, "val", split_file=trainlist)
