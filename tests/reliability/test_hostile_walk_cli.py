"""The hostile walk's finding 11 (issue "Close the holes a hostile walk found"): every refusal of the CLI
is one line ``error: <file or setting>: <problem>`` with exit status 2 — never a traceback — and a
refused training config leaves no run folder behind. Each test failed before its fix."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from tests.reliability.tinydata import TINY, run_cli, write_tiny_voc


def _cli(capsys, *args: str) -> tuple[int, list[str]]:
    """``python -m detcore ARGS`` in this process (the same ``main`` a subprocess runs): exit status
    and the stderr lines. An exception escaping ``main`` (a traceback for a user) fails the test."""
    from detcore.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _one_line_error(code: int, err: list[str], file: str | Path, *words: str) -> str:
    assert code == 2, err
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1, err
    line = errors[0]
    assert line.startswith(f"error: {file}: "), line
    assert "Traceback" not in line and "Errno" not in line, line
    for word in words:
        assert word in line, line
    return line


def _train_args(data: Path, out: Path, **flags) -> list[str]:
    settings = {**{k: v for k, v in TINY.items() if k in ("model", "weights", "device", "batch_size", "lr", "min_size",
                                                           "max_size", "eval_every", "num_workers")},
                "epochs": 1, "max_iters_per_epoch": 1, **flags}
    return ["train", "--data", data, "--out", out,
            *[x for k, v in settings.items() for x in (f"--{k.replace('_', '-')}", v)]]


@pytest.mark.parametrize("flag, value, words", [
    ("lr", "inf", ("lr", "inf")),
    ("lr", "1e308", ("lr", "1e+308")),
    ("lr", "nan", ("lr",)),
    ("num_workers", "100000", ("num_workers", "100000")),
])
def test_finding11_out_of_range_training_settings_are_one_line_and_leave_no_run_folder(
        capsys, tmp_path, flag, value, words):
    """--lr inf gave a raw traceback and a half-made run folder, --lr 1e308 a traceback from the
    optimiser's first step; --num-workers 100000 made the folder and then hung spawning workers."""
    from detcore import paths

    data = write_tiny_voc(paths.data_root() / "tiny")
    out = paths.runs_root() / "refused"
    code, err = _cli(capsys, *_train_args(data, out, **{flag: value}))
    line = _one_line_error(code, err, flag, *words)
    assert "must be" in line
    assert not out.exists() and not (paths.runs_root().exists() and any(paths.runs_root().iterdir()))


@pytest.mark.parametrize("flags, file", [({"batch_size": 100}, "batch_size"),
                                         ({"split_method": "imagesets"}, "DATA")])
def test_finding11_refusals_found_with_the_data_leave_no_run_folder(capsys, flags, file):
    from detcore import paths

    data = write_tiny_voc(paths.data_root() / "tiny")
    out = paths.runs_root() / "refused"
    code, err = _cli(capsys, *_train_args(data, out, **flags))
    _one_line_error(code, err, data if file == "DATA" else file)
    assert not out.exists()


def test_finding11_lr_inf_in_a_real_process_is_one_line(tmp_path):
    from detcore import paths

    data = write_tiny_voc(paths.data_root() / "tiny")
    done = run_cli(*[str(a) for a in _train_args(data, paths.runs_root() / "inf", lr="inf")], timeout=300)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["error: lr: must be a positive finite number, at most 1 (got inf)"]
    assert not (paths.runs_root() / "inf").exists()


# --- evaluate --gt/--dt ------------------------------------------------------------------------------------

GT = {"images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 80},
                 {"id": 2, "file_name": "b.png", "width": 100, "height": 80}],
      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 20], "area": 600, "iscrowd": 0},
                      {"id": 2, "image_id": 2, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400, "iscrowd": 0}],
      "categories": [{"id": 1, "name": "thing"}]}
GOOD_DT = [{"image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 20], "score": 0.9},
           {"image_id": 2, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.8}]


@pytest.mark.parametrize("bad, words", [
    ({"bbox": [5, 5, float("nan"), 20]}, ("result 1", "bbox", "NaN")),
    ({"score": float("nan")}, ("result 1", "score", "NaN")),
    ({"score": float("inf")}, ("result 1", "score", "Infinity")),
    ({"bbox": [30, 30, -10, 20]}, ("result 1", "negative", "width")),
    ({"bbox": [30, 30, 10, -0.5]}, ("result 1", "negative", "height")),
    ({"score": True}, ("result 1", "score", "true")),
    ({"bbox": [5, 5, True, 20]}, ("result 1", "bbox")),
    ({"score": "0.8"}, ("result 1", "score")),
])
def test_finding11_bad_results_name_the_file_and_the_result(capsys, tmp_path, bad, words):
    """A NaN in --dt named neither file nor index ("detections: non-finite ..."); negative-size boxes and
    "score": true were accepted silently (Python's bool is an int)."""
    gt, dt = tmp_path / "gt.json", tmp_path / "dt.json"
    gt.write_text(json.dumps(GT))
    dt.write_text(json.dumps([GOOD_DT[0], {**GOOD_DT[1], **bad}]))  # json.dumps writes NaN / Infinity as Python reads them
    code, err = _cli(capsys, "evaluate", "--gt", gt, "--dt", dt, "--json")
    _one_line_error(code, err, dt, *words)


@pytest.mark.parametrize("bad, words", [({"bbox": [10, 10, float("nan"), 20]}, ("annotation 1", "NaN")),
                                        ({"bbox": [10, 10, -30, 20]}, ("annotation 1", "negative")),
                                        ({"area": True}, ("annotation 1", "area"))])
def test_finding11_bad_ground_truth_names_the_file_and_the_annotation(capsys, tmp_path, bad, words):
    gt, dt = tmp_path / "gt.json", tmp_path / "dt.json"
    gt.write_text(json.dumps({**GT, "annotations": [{**GT["annotations"][0], **bad}, GT["annotations"][1]]}))
    dt.write_text(json.dumps(GOOD_DT))
    code, err = _cli(capsys, "evaluate", "--gt", gt, "--dt", dt)
    _one_line_error(code, err, gt, *words)


def test_finding11_good_files_still_evaluate(capsys, tmp_path):
    gt, dt = tmp_path / "gt.json", tmp_path / "dt.json"
    gt.write_text(json.dumps(GT))
    dt.write_text(json.dumps(GOOD_DT))
    from detcore.cli import main

    assert main(["evaluate", "--gt", str(gt), "--dt", str(dt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["AP"] == pytest.approx(1.0)


# --- predict ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder with a checkpoint as the trainer writes it, from a freshly built tiny model."""
    import torch

    from detcore.models import build_model
    from detcore.train.config import TrainConfig

    run = tmp_path_factory.mktemp("cli-run") / "run"
    (run / "checkpoints").mkdir(parents=True)
    config = TrainConfig(**TINY).to_dict()
    (run / "config.json").write_text(json.dumps(config))
    (run / "classes.json").write_text(json.dumps(["red", "blue"]))
    net = build_model(TINY["model"], classes=["red", "blue"], weights="none", min_size=64, max_size=96)
    torch.save({"model": net.state_dict(), "classes": ["red", "blue"], "config": config, "epoch": 1},
               run / "checkpoints" / "best.pt")
    return run


def _not_checkpoints(folder: Path) -> dict[str, tuple[Path, str]]:
    from tests.reliability.tinydata import write_tiny_voc as _voc

    images = _voc(folder / "voc", n=1) / "images"
    files = {"png": (images / "img000.png", "PNG image")}
    (folder / "empty.pt").write_bytes(b"")
    files["empty"] = (folder / "empty.pt", "empty")
    (folder / "notes.pt").write_text("hello\n")
    files["text"] = (folder / "notes.pt", "text")
    (folder / "config.json").write_text('{"model": "x"}')
    files["json"] = (folder / "config.json", "JSON")
    with zipfile.ZipFile(folder / "archive.pt", "w") as zf:
        zf.writestr("a.txt", "x")
    files["zip"] = (folder / "archive.pt", "zip archive")
    return files


@pytest.mark.parametrize("kind", ["png", "empty", "text", "json", "zip"])
def test_finding11_checkpoint_that_is_not_a_checkpoint(capsys, tmp_path, tiny_run, kind):
    """--checkpoint on a PNG or a JSON said "a crafted or foreign pickle"; an empty file "EOFError",
    a text file "(101)", a zip torch's "[enforce fail at inline_container.cc:180]"."""
    path, what = _not_checkpoints(tmp_path)[kind]
    image = tmp_path / "voc" / "images" / "img000.png"
    code, err = _cli(capsys, "predict", tiny_run, image, "--checkpoint", path)
    line = _one_line_error(code, err, path, "not a checkpoint", what)
    assert "pickle" not in line and "enforce fail" not in line


def test_finding11_predict_on_a_folder_or_a_non_image_is_one_line(capsys, tmp_path, tiny_run):
    """predict <directory> printed "[Errno 21] Is a directory"."""
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = _cli(capsys, "predict", tiny_run, empty)
    _one_line_error(code, err, empty)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    code, err = _cli(capsys, "predict", tiny_run, notes)
    _one_line_error(code, err, notes, "not an image")
