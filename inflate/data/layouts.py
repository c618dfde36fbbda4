"""Finding a dataset's videos and labels: a folder per class, UCF-101 and HMDB-51 split files, list files.

:func:`discover` returns a :class:`VideoSet` whose records carry each video's path, its label
(an index into ``classes``) and its path relative to the folder given (``relative``; the flow
store mirrors it). Layouts:

- ``"folder"``: ``DATA/<class>/<video>`` (videos may sit in sub-folders of the class folder),
  or ``DATA/train/<class>/…`` and ``DATA/val/<class>/…`` (``DATA/test`` stands in for a missing
  ``DATA/val``). Classes are the train folder's sub-folders, sorted by name (as torchvision's
  ``ImageFolder``), for both splits. Without split folders, ``"train"`` takes every video and
  ``"val"`` is an error that says to add ``DATA/val`` or to pass a split file: silently
  validating on the training videos would report a meaningless accuracy.
- ``"ucf101"``: ``classInd.txt``, ``trainlist0N.txt``, ``testlist0N.txt`` in ``DATA`` or
  ``DATA/ucfTrainTestlist``; videos under ``DATA/UCF-101`` or ``DATA``. Names are matched
  case-insensitively when the exact path is missing (``HandstandPushups/v_HandStandPushups_…``).
- ``"hmdb51"``: ``<class>_test_split{1,2,3}.txt`` in ``DATA/testTrainMulti_7030_splits`` (or
  ``DATA``, or the folder ``split_file`` names), lines ``<video> <tag>``: tag 1 trains, 2 tests,
  0 is unused; videos under ``DATA/<class>/``. Classes sorted by name.
- ``"list"``: ``split_file`` holds lines ``<path> <label>`` (mmaction2, SlowFast); paths are
  relative to ``DATA`` (or absolute); a label is a class number, or a class name.

``"auto"`` picks ``list`` when a split file other than UCF's or HMDB's is given, ``ucf101``
when ``classInd.txt`` is found, ``hmdb51`` when HMDB's split files are, and ``folder`` otherwise.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import InvalidInputError
from .video import VIDEO_SUFFIXES

__all__ = ["VideoRecord", "VideoSet", "discover", "LAYOUTS"]

LAYOUTS = ("auto", "folder", "ucf101", "hmdb51", "list")
_SPLITS = ("train", "val")
# Numeric labels name classes 0..max: a typo such as 99999999999 would otherwise allocate that many names.
MAX_CLASSES = 100_000


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video. ``relative`` is its path relative to the dataset folder (for the flow store)."""

    path: Path
    label: int
    relative: str


@dataclass
class VideoSet:
    """The videos of one split, the label map (``classes[label]`` is a class name), and where they came from."""

    records: list[VideoRecord]
    classes: list[str]
    root: Path
    layout: str
    split: str = "train"
    source: str = field(default="")  # the folder or file the records were read from, for messages

    def __len__(self) -> int:
        return len(self.records)


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and path.is_file() and not path.name.startswith(".")


def _videos_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if _is_video(p))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _read_lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as error:
        raise InvalidInputError(f"cannot read split file {path}: {error.strerror or error}") from None
    # splitlines() drops \r\n and \r as well as \n (UCF's lists have Windows line endings).
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _label_map(names: list[str], classes: list[str] | None, where: str) -> dict[str, int]:
    """Name → label. With ``classes`` (the train split's map), every name must be in it."""
    if classes is None:
        return {name: i for i, name in enumerate(names)}
    lookup = {name: i for i, name in enumerate(classes)}
    unknown = [name for name in names if name not in lookup]
    if unknown:
        raise InvalidInputError(
            f"{where}: class '{unknown[0]}' is not in the training label map "
            f"({len(unknown)} unknown; the map has {len(classes)} classes: {', '.join(classes[:5])}"
            f"{', …' if len(classes) > 5 else ''}); use the same classes for both splits"
        )
    return lookup


def _missing_error(source: Path, missing: list[str], root: Path) -> InvalidInputError:
    return InvalidInputError(
        f"{source}: {len(missing)} listed video{'s are' if len(missing) > 1 else ' is'} missing under {root} "
        f"(first: '{missing[0]}'); check the data folder or fix the split file"
    )


# --- folder per class --------------------------------------------------------------------------------------


def _split_folder(data: Path, split: str) -> Path | None:
    names = ("train",) if split == "train" else ("val", "test")
    for name in names:
        if (data / name).is_dir():
            return data / name
    return None


def _class_folders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _discover_folder(data: Path, split: str, classes: list[str] | None) -> VideoSet:
    has_splits = (data / "train").is_dir()
    if has_splits:
        folder = _split_folder(data, split)
        if folder is None:
            raise InvalidInputError(f"{data} has a train/ folder but no val/ (or test/) folder; add one for validation")
    elif split == "val":
        raise InvalidInputError(
            f"{data} has no train/ and val/ folders, so there is no validation split; "
            f"put the held-out videos in {data / 'val'}/<class>/ (and the rest in {data / 'train'}/<class>/), "
            f"or pass a split file"
        )
    else:
        folder = data
    train_folder = data / "train" if has_splits else data
    train_names = [p.name for p in _class_folders(train_folder)]
    if not train_names:
        loose = [p for p in train_folder.iterdir() if _is_video(p)] if train_folder.is_dir() else []
        hint = " (videos lie directly in it: put each in a folder named after its class)" if loose else ""
        raise InvalidInputError(f"{train_folder} holds no class folders{hint}; expected {train_folder}/<class>/<video>")
    if classes is None:
        classes = train_names
    names = [p.name for p in _class_folders(folder)]
    lookup = _label_map(names, classes, str(folder))
    records: list[VideoRecord] = []
    empty: list[str] = []
    for name in names:
        videos = _videos_under(folder / name)
        if not videos:
            empty.append(name)
        records.extend(VideoRecord(path, lookup[name], _relative(path, data)) for path in videos)
    if not records:
        raise InvalidInputError(
            f"{folder} holds no videos (looked for {', '.join(VIDEO_SUFFIXES)} in its class folders)"
        )
    if empty and split == "train":
        raise InvalidInputError(
            f"{folder / empty[0]} holds no videos ({len(empty)} empty class folder{'s' if len(empty) > 1 else ''}); "
            f"remove it or add videos: a class without training videos cannot be learnt"
        )
    return VideoSet(records, list(classes), data, "folder", split, str(folder))


# --- UCF-101 -----------------------------------------------------------------------------------------------


def _find_file(data: Path, name: str, subfolders: tuple[str, ...]) -> Path | None:
    for folder in (data, *(data / s for s in subfolders)):
        if (folder / name).is_file():
            return folder / name
    return None


def _case_insensitive(root: Path) -> dict[str, Path]:
    return {_relative(p, root).lower(): p for p in _videos_under(root)}


def _resolve(root: Path, relative: str, table: dict[str, Path] | None) -> tuple[Path | None, dict[str, Path] | None]:
    candidate = root / relative
    if candidate.is_file():
        return candidate, table
    if table is None:
        table = _case_insensitive(root)
    return table.get(relative.replace("\\", "/").lower()), table


def _discover_ucf(data: Path, split: str, split_file: Path | None, split_id: int, classes: list[str] | None) -> VideoSet:
    lists = ("ucfTrainTestlist",)
    class_file = _find_file(data, "classInd.txt", lists)
    if class_file is None and split_file is not None:
        class_file = _find_file(split_file.parent, "classInd.txt", ())
    if class_file is None:
        raise InvalidInputError(f"{data}: classInd.txt not found (looked in {data} and {data / 'ucfTrainTestlist'})")
    names: list[str] = []
    for line in _read_lines(class_file):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise InvalidInputError(f"{class_file}: expected lines '<number> <class>', got '{line}'")
        names.append(parts[1])
    train_list = re.fullmatch(r"trainlist(\d+)\.txt", split_file.name) if split_file is not None else None
    if split == "val" and train_list:  # the training list given: validate on its test list, never on itself
        test_list = split_file.with_name(f"testlist{train_list.group(1)}.txt")
        if not test_list.is_file():
            raise InvalidInputError(f"{split_file} lists the training videos; the validation split reads "
                                    f"{test_list.name} beside it, which is missing")
        split_file = test_list
    if split_file is None:
        name = f"{'trainlist' if split == 'train' else 'testlist'}{split_id:02d}.txt"
        split_file = _find_file(data, name, lists)
        if split_file is None:
            raise InvalidInputError(f"{data}: {name} not found (looked in {data} and {data / 'ucfTrainTestlist'})")
    root = data / "UCF-101" if (data / "UCF-101").is_dir() else data
    lookup = _label_map(names, classes, str(class_file))
    records: list[VideoRecord] = []
    missing: list[str] = []
    table: dict[str, Path] | None = None
    for line in _read_lines(split_file):
        relative = line.split()[0]
        class_name = relative.replace("\\", "/").split("/")[0]
        if class_name not in lookup:
            raise InvalidInputError(
                f"{split_file}: '{relative}' is in class '{class_name}', which {class_file} does not list"
            )
        path, table = _resolve(root, relative, table)
        if path is None:
            missing.append(relative)
            continue
        records.append(VideoRecord(path, lookup[class_name], _relative(path, data)))
    if missing:
        raise _missing_error(split_file, missing, root)
    if not records:
        raise InvalidInputError(f"{split_file} lists no videos")
    return VideoSet(records, list(classes) if classes is not None else names, data, "ucf101", split, str(split_file))


# --- HMDB-51 -----------------------------------------------------------------------------------------------

_HMDB_SPLIT = re.compile(r"^(?P<cls>.+)_test_split(?P<id>[123])\.txt$")


def _hmdb_split_folder(data: Path, split_file: Path | None) -> Path | None:
    candidates = [split_file if split_file is not None and split_file.is_dir() else None,
                  split_file.parent if split_file is not None and split_file.is_file() else None,
                  data / "testTrainMulti_7030_splits", data]
    for folder in candidates:
        if folder is not None and folder.is_dir() and any(_HMDB_SPLIT.match(p.name) for p in folder.iterdir()):
            return folder
    return None


def _discover_hmdb(data: Path, split: str, split_file: Path | None, split_id: int, classes: list[str] | None) -> VideoSet:
    folder = _hmdb_split_folder(data, split_file)
    if folder is None:
        raise InvalidInputError(
            f"{data}: no <class>_test_split{{1,2,3}}.txt files (looked in {data / 'testTrainMulti_7030_splits'})"
        )
    files = {m.group("cls"): folder / p.name for p in folder.iterdir()
             if (m := _HMDB_SPLIT.match(p.name)) and int(m.group("id")) == split_id}
    if not files:
        raise InvalidInputError(f"{folder}: no *_test_split{split_id}.txt files")
    names = sorted(files)
    lookup = _label_map(names, classes, str(folder))
    wanted_tag = "1" if split == "train" else "2"
    records: list[VideoRecord] = []
    missing: list[str] = []
    for name in names:
        for line in _read_lines(files[name]):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise InvalidInputError(f"{files[name]}: expected lines '<video> 0|1|2', got '{line}'")
            if parts[1] != wanted_tag:
                continue
            path = data / name / parts[0]
            if not path.is_file():
                missing.append(f"{name}/{parts[0]}")
                continue
            records.append(VideoRecord(path, lookup[name], _relative(path, data)))
    if missing:
        raise _missing_error(folder, missing, data)
    if not records:
        raise InvalidInputError(f"{folder}: split {split_id} tags no video for {split}")
    return VideoSet(records, list(classes) if classes is not None else names, data, "hmdb51", split, str(folder))


# --- list file ---------------------------------------------------------------------------------------------


def _discover_list(data: Path, split: str, split_file: Path | None, classes: list[str] | None) -> VideoSet:
    if split_file is None:
        raise InvalidInputError("the 'list' layout needs a split file of '<path> <label>' lines (split_file)")
    rows: list[tuple[str, str]] = []
    for line in _read_lines(split_file):
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise InvalidInputError(f"{split_file}: expected lines '<path> <label>', got '{line}'")
        rows.append((parts[0], parts[1]))
    if not rows:
        raise InvalidInputError(f"{split_file} lists no videos")
    numeric = all(re.fullmatch(r"\d+", label) for _, label in rows)
    if numeric:
        labels = [int(label) for _, label in rows]
        if classes is None and max(labels) >= MAX_CLASSES:
            raise InvalidInputError(f"{split_file}: label {max(labels)} would make {max(labels) + 1} classes "
                                    f"(numeric labels count from 0; at most {MAX_CLASSES}); number the classes 0, 1, 2, …")
        if classes is None:
            classes = [str(i) for i in range(max(labels) + 1)]
        elif max(labels) >= len(classes):
            raise InvalidInputError(
                f"{split_file}: label {max(labels)} is out of range for the training label map of {len(classes)} classes"
            )
    else:
        if classes is None:
            classes = sorted({label for _, label in rows})
        lookup = _label_map(sorted({label for _, label in rows}), classes, str(split_file))
        labels = [lookup[label] for _, label in rows]
    records: list[VideoRecord] = []
    missing: list[str] = []
    for (relative, _), label in zip(rows, labels):
        path = Path(relative) if os.path.isabs(relative) else data / relative
        if not path.is_file():
            missing.append(relative)
            continue
        records.append(VideoRecord(path, label, _relative(path, data)))
    if missing:
        raise _missing_error(split_file, missing, data)
    return VideoSet(records, list(classes), data, "list", split, str(split_file))


# --- entry -------------------------------------------------------------------------------------------------


def split_file_layout(split_file: Path) -> str:
    """The layout a split file stands for: UCF-101's trainlist/testlist, HMDB-51's split file or
    folder, else a ``path label`` list. Judged by its name (and whether it is a folder), not read."""
    if re.fullmatch(r"(trainlist|testlist)\d+\.txt", split_file.name):
        return "ucf101"
    if split_file.is_dir() or _HMDB_SPLIT.match(split_file.name):
        return "hmdb51"
    return "list"


def _detect(data: Path, split_file: Path | None) -> str:
    if split_file is not None:
        return split_file_layout(split_file)
    if _find_file(data, "classInd.txt", ("ucfTrainTestlist",)) is not None:
        return "ucf101"
    if _hmdb_split_folder(data, None) is not None:
        return "hmdb51"
    return "folder"


def discover(
    data: str | os.PathLike[str],
    split: str = "train",
    *,
    layout: str = "auto",
    split_file: str | os.PathLike[str] | None = None,
    split_id: int = 1,
    classes: list[str] | None = None,
) -> VideoSet:
    """The labelled videos of ``split`` ("train" or "val") of the dataset in folder ``data``.

    ``layout`` is one of :data:`LAYOUTS` (see the module docstring). ``split_file`` replaces the
    split's list (UCF's ``trainlist``/``testlist``, HMDB's split folder, or a ``path label`` list);
    ``split_id`` picks UCF's and HMDB's split 1, 2 or 3. ``classes``, the training split's label
    map, makes the validation split use exactly the same labels (an unknown class is an error).
    Raises :class:`InvalidInputError` with one line naming the folder or file at fault.
    """
    data = Path(data)
    if split not in _SPLITS:
        raise InvalidInputError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    if layout not in LAYOUTS:
        raise InvalidInputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if split_id not in (1, 2, 3):
        raise InvalidInputError(f"--split (split_id) must be 1, 2 or 3 (UCF-101 and HMDB-51 have three splits), "
                               f"got {split_id}")
    if not data.is_dir():
        raise InvalidInputError(f"data folder {data} does not exist" if not data.exists() else f"{data} is not a folder")
    split_file = Path(split_file) if split_file is not None else None
    if split_file is not None and not split_file.exists():
        raise InvalidInputError(f"split file {split_file} does not exist")
    if not any(data.iterdir()):
        raise InvalidInputError(
            f"data folder {data} is empty; expected {data}/<class>/<video> or {data}/train/<class>/<video>"
        )
    if layout == "auto":
        layout = _detect(data, split_file)
    if layout == "folder":
        if split_file is not None:
            raise InvalidInputError("a split file does not go with the 'folder' layout; use layout 'list'")
        return _discover_folder(data, split, classes)
    if layout == "ucf101":
        return _discover_ucf(data, split, split_file, split_id, classes)
    if layout == "hmdb51":
        return _discover_hmdb(data, split, split_file, split_id, classes)
    return _discover_list(data, split, split_file, classes)
