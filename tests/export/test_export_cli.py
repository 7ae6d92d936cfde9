"""`export` and `predict EXPORTED_FILE`: the contract's metadata, the run's thresholds carried in the
file and applied by predict, the same JSON document as `predict RUN`, folders, COCO output, and
one-line errors for files that are not detboard exports."""

import json
import shutil

import numpy as np
import onnx
import pytest

from detcore.cli import main
from tests.export.conftest import CLASSES, match_detections

THRESHOLDS = {"with_mask": 0.12, "without_mask": 0.3, "mask_weared_incorrect": 0.2}


@pytest.fixture(scope="module")
def tuned_run(frcnn_run, tmp_path_factory):
    """The Faster R-CNN run with per-class thresholds saved the way the Evaluate page saves them."""
    run = tmp_path_factory.mktemp("tuned") / "tuned"
    shutil.copytree(frcnn_run, run)
    (run / "thresholds.json").write_text(json.dumps({"global": 0.5, "per_class": THRESHOLDS}))
    return run


@pytest.fixture(scope="module")
def exported(tuned_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    paths = {}
    for fmt, name in (("onnx", "model.onnx"), ("torchscript", "model.torchscript.pt")):
        assert main(["export", str(tuned_run), "--format", fmt, "--out", str(out / name)]) == 0
        paths[fmt] = out / name
    return paths


def _json(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_onnx_metadata_holds_classes_and_thresholds_and_one_image_input(exported):
    model = onnx.load(str(exported["onnx"]))
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["classes"]) == CLASSES
    assert json.loads(meta["thresholds"]) == THRESHOLDS
    assert json.loads(meta["thresholds_source"]) == "thresholds.json"
    assert json.loads(meta["score_floor"]) == 0.05
    assert json.loads(meta["resize"])["min_size"] == 128 and json.loads(meta["normalization"])["mean"]
    assert json.loads(meta["model"]) == "fasterrcnn_mobilenet_v3_large_320_fpn"
    assert json.loads(meta["metrics"]) == {"AP": 0.0, "AP50": 0.0} and json.loads(meta["epoch"]) == 1
    assert model.opset_import[0].version >= 17
    (image,) = model.graph.input
    assert image.name == "image" and image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_value or d.dim_param for d in image.type.tensor_type.shape.dim]
    assert dims == [3, "height", "width"]  # any image size
    assert [o.name for o in model.graph.output] == ["boxes", "labels", "scores"]


def test_torchscript_extra_files_hold_the_same_metadata(exported):
    import torch

    extra = {"classes": "", "thresholds": "", "score_floor": ""}
    torch.jit.load(str(exported["torchscript"]), _extra_files=extra)
    assert json.loads(extra["classes"]) == CLASSES and json.loads(extra["thresholds"]) == THRESHOLDS


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_predict_exported_file_agrees_with_predict_run(fmt, tuned_run, exported, sample_image_paths, capsys):
    images = sample_image_paths[:2]
    from_run = _json(capsys, "predict", tuned_run, *images, "--json")
    from_file = _json(capsys, "predict", exported[fmt], *images, "--json")
    assert from_run["schema"] == from_file["schema"] == "detboard.detections/1"
    assert from_run["model"]["format"] == "run" and from_file["model"]["format"] == fmt
    assert from_run["classes"] == from_file["classes"] == CLASSES
    assert from_run["thresholds"] == from_file["thresholds"] == THRESHOLDS  # the run's, carried in the file
    assert [i["image"] for i in from_file["images"]] == [str(p) for p in images]
    kept = 0
    for a, b in zip(from_run["images"], from_file["images"]):
        assert (a["width"], a["height"]) == (b["width"], b["height"])
        assert {k for d in a["detections"] + b["detections"] for k in d} == {"label", "score", "box"}
        for d in a["detections"] + b["detections"]:
            assert d["score"] >= THRESHOLDS[d["label"]]  # the embedded per-class thresholds were applied
        ref, got = _as_detections(a), _as_detections(b)
        # a score within 1e-3 of its class threshold may land on either side of it
        missing, extra = match_detections(ref, got, score_tol=1e-3, floor=0.0)
        near = lambda d, i: abs(d.scores[i] - THRESHOLDS[CLASSES[d.labels[i]]]) <= 1e-3  # noqa: E731
        assert [i for i in missing if not near(ref, i)] == [] and [j for j in extra if not near(got, j)] == []
        kept += len(a["detections"])
    assert kept > 0


def _as_detections(record):
    from detcore.structures import Detections

    rows = record["detections"]
    return Detections(record["image"], [d["box"] for d in rows], [d["score"] for d in rows],
                      [CLASSES.index(d["label"]) for d in rows])


def test_score_threshold_flag_overrides_the_embedded_thresholds(exported, sample_image_paths, capsys):
    doc = _json(capsys, "predict", exported["onnx"], sample_image_paths[0], "--json", "--score-threshold", "0.6")
    assert doc["thresholds"] == {c: 0.6 for c in CLASSES}
    assert all(d["score"] >= 0.6 for d in doc["images"][0]["detections"])
    assert main(["predict", str(exported["onnx"]), str(sample_image_paths[0]), "--score-threshold", "0.01"]) == 2
    assert "below this file's score floor 0.05" in capsys.readouterr().err


def test_predict_a_folder_writes_one_document_and_coco_results(exported, sample_image_paths, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in sample_image_paths[:3]:
        shutil.copy(p, folder / p.name)
    (folder / "notes.txt").write_text("not an image")  # ignored: not an image suffix
    doc = _json(capsys, "predict", exported["onnx"], folder, "--json")
    assert [i["image"] for i in doc["images"]] == [str(folder / p.name) for p in sorted(sample_image_paths[:3])]
    out = tmp_path / "results.json"
    assert main(["predict", str(exported["onnx"]), str(folder), "--coco", str(out)]) == 0
    results = json.loads(out.read_text())
    listing = json.loads((tmp_path / "results.images.json").read_text())
    assert [i["file_name"] for i in listing] == [i["image"] for i in doc["images"]]
    assert len(results) == sum(len(i["detections"]) for i in doc["images"]) > 0
    by_id = {i["id"]: i for i in listing}
    first = doc["images"][0]["detections"][0]
    match = [r for r in results if by_id[r["image_id"]]["file_name"] == doc["images"][0]["image"]
             and r["category_id"] == CLASSES.index(first["label"]) + 1 and abs(r["score"] - first["score"]) < 1e-4]
    assert match and np.allclose(match[0]["bbox"], [first["box"][0], first["box"][1], first["box"][2] - first["box"][0],
                                                    first["box"][3] - first["box"][1]], atol=0.01)


def test_an_empty_folder_is_one_line_error(exported, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["predict", str(exported["onnx"]), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "empty" in err and "no images" in err and "\n" not in err


def test_files_that_are_not_detboard_exports_are_refused_in_one_line(tmp_path, sample_image_paths, capsys):
    import torch

    garbage = tmp_path / "broken.onnx"
    garbage.write_bytes(b"\x08\x07 definitely not a protobuf model" * 10)
    foreign = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), str(foreign), dynamo=False)  # no metadata
    scripted = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(scripted))
    for path, words in ((garbage, "onnxruntime cannot load it"), (foreign, "not exported by detboard"),
                        (scripted, "not exported by detboard")):
        assert main(["predict", str(path), str(sample_image_paths[0])]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"error: {path}: ") and words in err and "\n" not in err, err


def test_checkpoint_flag_with_an_exported_file_is_an_error(exported, sample_image_paths, capsys):
    assert main(["predict", str(exported["onnx"]), str(sample_image_paths[0]), "--checkpoint", "last"]) == 2
    assert "--checkpoint applies to runs only" in capsys.readouterr().err


def test_export_of_a_run_without_checkpoint_or_unknown_format(tmp_path, frcnn_run, capsys):
    empty = tmp_path / "empty-run"
    shutil.copytree(frcnn_run, empty)
    shutil.rmtree(empty / "checkpoints")
    assert main(["export", str(empty), "--format", "onnx"]) == 2
    assert "checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: exit 2 with the choices listed
        main(["export", str(frcnn_run), "--format", "tflite"])


def test_default_export_path_is_inside_the_run(tmp_path, frcnn_run, capsys):
    run = tmp_path / "myrun"
    shutil.copytree(frcnn_run, run)
    assert main(["export", str(run), "--format", "onnx"]) == 0
    written = capsys.readouterr().out.strip()
    assert written == str(run / "exports" / "myrun-best.onnx") and (run / "exports" / "myrun-best.onnx").is_file()


def test_an_images_detections_do_not_depend_on_the_other_images_given(tuned_run, sample_image_paths, capsys):
    # Batched with a differently sized image, Faster R-CNN pads both to one size and the boxes change;
    # predict runs images one at a time, so the document for an image is the same alone or in company.
    small, big = sample_image_paths[1], sample_image_paths[0]  # two different sizes
    alone = _json(capsys, "predict", tuned_run, small, "--json", "--score-threshold", "0.05")["images"][0]
    together = _json(capsys, "predict", tuned_run, big, small, "--json", "--score-threshold", "0.05")["images"][1]
    assert together == alone and len(alone["detections"]) > 0


def test_a_training_checkpoint_given_as_model_points_to_the_run(frcnn_run, sample_image_paths, capsys):
    ckpt = frcnn_run / "checkpoints" / "best.pt"
    assert main(["predict", str(ckpt), str(sample_image_paths[0])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {ckpt}: ") and "give its run directory" in err and "\n" not in err
