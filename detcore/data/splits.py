"""Train/test(/validation) splits over image ids, saved with a run so evaluation uses the same images.

Methods (``make_split(image_ids, method, ...)``; ``image_ids`` are indexed in the order given —
readers return samples sorted by image file name, the tutorials' ``sorted(os.listdir('images'))``):

- ``"random"``: ``n_test = int(len(ids) * test_fraction)`` (or ``n``) ids picked by
  ``random.Random(seed).sample(range(len(ids)), n_test)``. This is exactly the Face Mask
  tutorial's ``random.seed(1234); idx = random.sample(range(853), 170)``: with the 853 sorted
  files, ``test_fraction=0.2, seed=1234`` selects the same 170 test images.
- ``"last_n"``: the last ``n`` ids are the test set (the Faster R-CNN tutorial's
  ``sorted(os.listdir('images'))[-170:]``).
- ``"holdout"``: a fixed count ``n`` of test images picked at random with ``seed`` (use it when the
  test set must stay the same size as the dataset grows).
- ``"imagesets"``: the split the dataset itself gives (``given``, from ``ParsedDataset.meta["given_split"]``):
  VOCdevkit ``ImageSets/Main/*.txt`` lists (:func:`read_imagesets`) or YOLO ``train/val/test`` folders
  (:mod:`detcore.data.yolo`). Its parts map the same way for both: ``test`` is the test set (``val``
  when there is no ``test``), ``train`` (or ``trainval`` minus test) the training set, ``val`` the
  validation set when ``test`` exists. Without ``given``, the lists under ``root`` are read.

A given split is represented once, as ``{"source": str, "parts": {"train"|"val"|"test"|"trainval": [ids]}}``
(:func:`given_split`); readers put it in ``ParsedDataset.meta["given_split"]``.

A validation part (``val_fraction``) is drawn from what is left for training, after the test set,
with the same seeded generator, so adding a validation part never changes the test set.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from detcore import atomic
from detcore.errors import ConfigError, DataError

METHODS = ("random", "last_n", "holdout", "imagesets")


@dataclass
class Split:
    train: list[str]
    test: list[str]
    val: list[str] = field(default_factory=list)
    method: str = "random"
    params: dict = field(default_factory=dict)

    def part(self, name: str) -> list[str]:
        if name not in ("train", "test", "val"):
            raise ConfigError("split", f"unknown split part {name!r}; choose train, test or val")
        return getattr(self, name)


GIVEN_PARTS = ("train", "val", "test", "trainval")  # also the order parts are listed in


def given_split(parts: dict[str, list[str]], source: str) -> dict:
    """The one representation of a split given by the dataset (kept in ``ParsedDataset.meta["given_split"]``)."""
    unknown = set(parts) - set(GIVEN_PARTS)
    if unknown:
        raise ValueError(f"unknown split part(s) {sorted(unknown)}")
    return {"source": source, "parts": {k: list(parts[k]) for k in GIVEN_PARTS if k in parts}}


def read_imagesets(root: str | Path) -> dict | None:
    """VOCdevkit ``ImageSets/Main/{train,val,trainval,test}.txt`` under ``root`` as a given split, or
    None when there is no such list."""
    main = Path(root) / "ImageSets" / "Main"
    lists = {name: _read_list(main / f"{name}.txt") for name in GIVEN_PARTS}
    lists = {k: v for k, v in lists.items() if v is not None}
    return given_split(lists, "ImageSets/Main") if lists else None


def make_split(image_ids: list[str], method: str = "random", *, test_fraction: float = 0.2, seed: int = 1234,
               n: int | None = None, root: str | Path | None = None, val_fraction: float = 0.0,
               given: dict | None = None) -> Split:
    ids = list(image_ids)
    if len(set(ids)) != len(ids):
        raise ConfigError("image_ids", "image ids must be unique")
    if method not in METHODS:
        raise ConfigError("split method", f"unknown method {method!r}; choose {', '.join(METHODS)}")
    if not 0 <= val_fraction < 1:
        raise ConfigError("val_fraction", f"{val_fraction} is outside [0, 1)")
    params: dict = {"seed": seed}
    if method == "imagesets":
        return _given_split(ids, given if given is not None else _imagesets_at(root), params)
    rng = random.Random(seed)
    if method == "random":
        count = n if n is not None else _fraction_count(len(ids), test_fraction)
        params["test_fraction"] = test_fraction
        test_idx = rng.sample(range(len(ids)), _checked_count(count, len(ids)))
    elif method == "holdout":
        if n is None:
            raise ConfigError("n", "the holdout method needs a test count n")
        test_idx = rng.sample(range(len(ids)), _checked_count(n, len(ids)))
    else:  # last_n
        count = n if n is not None else _fraction_count(len(ids), test_fraction)
        test_idx = list(range(len(ids) - _checked_count(count, len(ids)), len(ids)))
    params["n_test"] = len(test_idx)
    chosen = set(test_idx)
    rest = [i for i in range(len(ids)) if i not in chosen]
    val_idx = set(rng.sample(rest, int(len(rest) * val_fraction))) if val_fraction else set()
    params["val_fraction"] = val_fraction
    return Split(train=[ids[i] for i in rest if i not in val_idx], test=[ids[i] for i in test_idx],
                 val=[ids[i] for i in rest if i in val_idx], method=method, params=params)


def _fraction_count(total: int, fraction: float) -> int:
    if not 0 < fraction < 1:
        raise ConfigError("test_fraction", f"{fraction} is outside (0, 1)")
    return int(total * fraction)  # floor: 853 * 0.2 -> 170, the tutorial's count


def _checked_count(count: int, total: int) -> int:
    if not 0 < count < total:
        raise ConfigError("n", f"a test set of {count} image(s) out of {total} leaves no test or no training images")
    return count


def _read_list(path: Path) -> list[str] | None:
    if not path.is_file():
        return None
    return [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _imagesets_at(root: str | Path | None) -> dict:
    if root is None:
        raise ConfigError("root", "the imagesets method needs the split the dataset gives (VOC ImageSets/Main "
                                  "lists or YOLO train/val/test folders) or the dataset root to read it from")
    found = read_imagesets(root)
    if found is None:
        raise DataError(root, "the dataset gives no split: no ImageSets/Main/test.txt, val.txt or train.txt (VOC) "
                              "and no train/val/test folders (YOLO); choose another split method")
    return found


def _given_split(ids: list[str], given: dict, params: dict) -> Split:
    source, lists = given.get("source", "dataset"), given.get("parts") or {}
    where = f"the dataset's {source}"
    test = lists.get("test") if lists.get("test") is not None else lists.get("val")
    if test is None:
        raise DataError(where, "has no test or val part to take the test set from")
    val = lists["val"] if lists.get("test") is not None and lists.get("val") is not None else []
    if lists.get("train") is not None:
        train = lists["train"]
    elif lists.get("trainval") is not None:
        held = set(test) | set(val)
        train = [i for i in lists["trainval"] if i not in held]
    else:
        raise DataError(where, "has no train (or trainval) part to take the training set from")
    present = set(ids)
    listed = {*train, *test, *val}
    params.update({"source": source, "missing_ids": sum(i not in present for i in [*train, *test, *val]),
                   "unassigned_ids": sum(i not in listed for i in ids)})
    keep = lambda part: [i for i in part if i in present]  # noqa: E731  (lists may name absent images)
    split = Split(train=keep(train), test=keep(test), val=keep(val), method="imagesets", params=params)
    overlap = (set(split.train) & set(split.test)) | (set(split.val) & (set(split.train) | set(split.test)))
    if overlap:
        raise DataError(where, f"{len(overlap)} image(s) are in more than one part (first: {sorted(overlap)[0]})")
    return split


def save_split(split: Split, path: str | Path) -> Path:
    return atomic.write_json(path, asdict(split))


def load_split(path: str | Path) -> Split:
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "split file not found") from None
    except (OSError, ValueError) as e:
        raise DataError(path, f"not a readable split file: {e}") from None
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), list) for k in ("train", "test")):
        raise DataError(path, "split file needs 'train' and 'test' lists")
    return Split(train=[str(i) for i in obj["train"]], test=[str(i) for i in obj["test"]],
                 val=[str(i) for i in obj.get("val") or []], method=str(obj.get("method", "random")),
                 params=dict(obj.get("params") or {}))
