"""Fitted geometry through a real run: fitted on the training split only, stored in config.json and the
checkpoint, rebuilt identically by the Predictor (also in a new process), evaluate and --resume;
a checkpoint of another geometry is refused. Also the time limit, crop training and the CLI flags."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from detcore import geometry as g
from detcore.errors import CheckpointError, ConfigError
from detcore.train.config import TrainConfig, config_from_preset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from tinydata import TINY, run_cli, write_tiny_voc  # noqa: E402

# the light stride-8 RetinaNet: at 64 px torchvision's stride-32 MobileNetV3 grid matches none of the
# 28x24 boxes with any anchor, so there would be nothing to fit
FITTED = {**TINY, "model": "retinanet_mobilenet_v3_fpn8", "anchors": "auto", "epochs": 1, "max_iters_per_epoch": 3,
          "eval_every": 1}


def _train(config: TrainConfig, run_dir: Path) -> str:
    from detcore.train.trainer import train

    return train(config, run_dir)


@pytest.fixture(scope="session")
def fitted_run(tmp_path_factory) -> tuple[Path, Path]:
    """One tiny run with anchors fitted to its training split (a few seconds), shared by the tests."""
    root = tmp_path_factory.mktemp("fitted")
    data = write_tiny_voc(root / "data", n=12)
    assert _train(TrainConfig(data=str(data), **FITTED), root / "run") == "completed"
    return root / "run", data


@pytest.fixture
def run_copy(fitted_run, tmp_path) -> Path:
    return Path(shutil.copytree(fitted_run[0], tmp_path / "run"))


def _anchors_of(model) -> list[list[float]]:
    generator = model.rpn.anchor_generator if hasattr(model, "rpn") else model.anchor_generator
    return [list(map(float, s)) for s in generator.sizes]


def test_fitted_geometry_is_stored_in_config_and_checkpoint(fitted_run):
    from detcore.checkpoints import load_checkpoint
    from detcore.train.runs import Run

    run_dir, _ = fitted_run
    config = Run(run_dir).config()
    geometry = config.geometry
    layout = g.layout_for(config.model)
    assert geometry["input"] == {"min_size": 64, "max_size": 96}  # the config's own resize is kept
    assert geometry["anchors"]["kind"] == "grid"
    assert geometry["anchors"] != layout.anchors  # 28x24 boxes: not torchvision's 32..512
    assert g.anchors_per_location(geometry["anchors"]) == g.anchors_per_location(layout.anchors)
    fit = geometry["fit"]
    assert fit["split"] == "train" and fit["images"] == len(Run(run_dir).split().train) == fit["boxes"]
    assert fit["best_possible_recall"] >= fit["default_best_possible_recall"]
    ckpt = load_checkpoint(Run(run_dir).checkpoint("best"))
    assert ckpt["train_seconds"] >= 0 and ckpt["config"]["geometry"] == geometry
    assert g.same_geometry(ckpt["config"]["geometry"], geometry)


def test_fit_sees_the_training_split_only(tmp_path):
    """Making the test images' boxes huge changes nothing in the fit."""
    from detcore.data.detect import load_dataset
    from detcore.train.fitting import resolve_geometry
    from detcore.train.trainer import plan_split

    data = write_tiny_voc(tmp_path / "data", n=12)
    config = TrainConfig(data=str(data), **FITTED).validate()
    parsed = load_dataset(data)
    split = plan_split(config, parsed)
    by_id = parsed.sample_by_id()
    train = [by_id[i] for i in split.train]
    before = resolve_geometry(config, train, parsed.classes)
    for i in split.test:  # only test boxes change
        by_id[i].boxes = np.array([[0, 0, 79, 63]], np.float32)
    assert resolve_geometry(config, [by_id[i] for i in split.train], parsed.classes) == before


def test_predictor_rebuilds_the_fitted_model_and_a_new_process_predicts_the_same(fitted_run, tmp_path):
    from detcore.data.images import load_rgb
    from detcore.inference import Predictor

    run_dir, data = fitted_run
    predictor = Predictor.from_run(run_dir, device="cpu")
    geometry = json.loads((run_dir / "config.json").read_text())["geometry"]
    assert _anchors_of(predictor.model) == geometry["anchors"]["sizes"]
    assert predictor.model.transform.min_size == (64,)
    image = sorted((data / "images").glob("*.png"))[0]
    ours = predictor.predict([load_rgb(image)], score_floor=0.0)[0]
    out = run_cli("predict", str(run_dir), str(image), "--score-threshold", "0", "--json")
    assert out.returncode == 0, out.stderr
    theirs = json.loads(out.stdout)["images"][0]  # the detection document (docs/detections.md)
    boxes = np.array([d["box"] for d in theirs["detections"]], np.float32).reshape(-1, 4)
    assert len(boxes) == len(ours)
    np.testing.assert_allclose(boxes, ours.boxes, atol=0.0051)  # the document has boxes to 0.01 px


def test_export_carries_the_fitted_geometry(run_copy, fitted_run, tmp_path):
    """The exported file is the fitted model: its resize metadata is the fitted input and it finds the
    Predictor's detections (default anchors would put the boxes elsewhere)."""
    from detcore.data.images import load_rgb
    from detcore.export import export_run
    from detcore.export.runtime import ExportedModel
    from detcore.inference import Predictor
    from detcore.train.runs import Run
    from tests.export.conftest import pair_detections

    Run(run_copy).save_thresholds(global_threshold=0.001, per_class={})  # keep the untrained model's low scores
    exported = ExportedModel.load(export_run(run_copy, "torchscript", out=tmp_path / "model.torchscript.pt"))
    assert exported.metadata["resize"]["min_size"] == 64 and exported.metadata["resize"]["max_size"] == 96
    image = load_rgb(sorted((fitted_run[1] / "images").glob("*.png"))[0])
    ref = Predictor.from_run(run_copy, device="cpu").predict([image], score_floor=exported.score_floor)[0]
    got = exported.predict([image])[0]
    pairs, missing, extra = pair_detections(ref, got, floor=exported.score_floor, cap=300)
    assert len(pairs) > 0 and missing == [] and extra == []


def test_evaluate_uses_the_same_model(fitted_run):
    from detcore.data.images import load_rgb
    from detcore.evaluation import EVAL_SCORE_FLOOR, run_predictions
    from detcore.inference import Predictor

    run_dir, _ = fitted_run
    samples, dets = run_predictions(run_dir, split="test", device="cpu")
    predictor = Predictor.from_run(run_dir, device="cpu")
    direct = predictor.predict([load_rgb(s.image_path) for s in samples], score_floor=EVAL_SCORE_FLOOR)
    for a, b in zip(dets, direct):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
    out = run_cli("evaluate", str(run_dir), "--json")
    assert out.returncode == 0, out.stderr
    assert "AP50" in json.loads(out.stdout)


def test_resume_rebuilds_the_fitted_model(run_copy):
    from detcore.train.runs import Run
    from detcore.train.trainer import train

    before = Run(run_copy).config().geometry

    assert train(None, run_copy, resume=True, extra_epochs=1) == "completed"
    after = Run(run_copy).config()
    assert after.geometry == before  # never refitted on resume
    assert Run(run_copy).epochs_done() == 2


def test_a_checkpoint_of_another_geometry_is_refused(run_copy):
    from detcore.inference import Predictor
    from detcore.train.trainer import train

    config_path = run_copy / "config.json"
    config = json.loads(config_path.read_text())
    config["geometry"]["anchors"]["sizes"] = [[s * 2 for s in level] for level in config["geometry"]["anchors"]["sizes"]]
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="was trained with .* anchor sizes .* but the run's config builds"):
        Predictor.from_run(run_copy, device="cpu")
    with pytest.raises(CheckpointError, match="was trained with"):
        train(None, run_copy, resume=True, extra_epochs=1)
    # a checkpoint from before geometry existed (default anchors) does not fit a fitted run either
    config["geometry"] = None
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="torchvision's default input size and anchors"):
        Predictor.from_run(run_copy, device="cpu")


def test_time_limit_lays_the_schedule_over_the_budget_and_stops_in_time(tmp_path):
    from detcore.train.runs import Run

    data = write_tiny_voc(tmp_path / "data", n=12)
    config = TrainConfig(data=str(data), **{**TINY, "epochs": 1, "max_iters_per_epoch": 2, "schedule": "cosine",
                                            "eval_every": 2, "time_limit": 0.5})
    assert _train(config, tmp_path / "run") == "completed"
    run = Run(tmp_path / "run")
    assert run.message().startswith("time limit of 0.5 min reached after")
    record = run.events("time_limit")[-1]
    assert record["elapsed_s"] <= record["limit_s"]  # its own accounting, not a timing assertion
    steps = run.events("step")
    assert run.epochs_done() > 1  # epochs=1 did not cap the run: the budget did
    assert steps[-1]["total_steps"] == steps[-1]["global_step"]  # the plan ended where training did
    lrs = [s["lr"] for s in steps]
    assert lrs[-1] < 0.25 * max(lrs)  # the cosine reached its end at the budget, not at epoch 1
    assert (tmp_path / "run" / "checkpoints" / "best.pt").is_file()
    assert run.metrics()  # validated at the end


def test_step_schedule_keeps_its_fractions_when_replanned():
    from detcore.train.trainer import LrSchedule

    config = TrainConfig(schedule="step", epochs=4, step_size=2, gamma=0.1, warmup_iters=0)
    schedule = LrSchedule(config, iters_per_epoch=10)
    assert [schedule(s) for s in (0, 19, 20, 39)] == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1)]
    schedule.total = 400  # a time limit found room for 10x the steps: the decay moves to half of them
    assert schedule(199) == 1.0 and schedule(200) == pytest.approx(0.1)


def test_crops_keep_the_model_scale_and_drop_mostly_cut_boxes():
    from torchvision import tv_tensors

    from detcore.data.crops import CropAtModelScale

    torch.manual_seed(0)
    transform = CropAtModelScale({"min_size": 200, "max_size": 400}, 64, hflip=0.0)
    image = tv_tensors.Image(torch.zeros(3, 100, 150, dtype=torch.uint8))  # model scale: x2 (short side 200)
    target = {"boxes": torch.tensor([[10.0, 10.0, 20.0, 25.0], [140.0, 90.0, 150.0, 100.0]]),
              "labels": torch.tensor([1, 2]), "iscrowd": torch.tensor([0, 0])}
    seen = []
    for _ in range(40):
        out_image, out = transform(image, target)
        assert out_image.shape[-2:] == (64, 64) and out_image.dtype == torch.float32
        for box, label in zip(out["boxes"], out["labels"]):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            if w == 20 and h == 30:  # a whole box, at twice its size
                seen.append(int(label))
            else:  # a clipped one keeps at least half its area at the model's scale
                area = {1: 20 * 30, 2: 20 * 20}[int(label)]
                assert w * h >= 0.5 * area - 1e-3
    assert 1 in seen  # crops are placed around objects most of the time


def test_crop_training_needs_a_resizing_model_and_no_rotation():
    with pytest.raises(ConfigError, match="fixed square"):
        config_from_preset("demo-cpu", augment={"crop": 256}).validate()
    with pytest.raises(ConfigError, match="rotation"):
        TrainConfig(weights="none", augment={"crop": 256, "rotate": 90}).validate()
    with pytest.raises(ConfigError, match="input_size"):
        TrainConfig(weights="none", input_size="huge").validate()
    with pytest.raises(ConfigError, match="either input_size or min_size"):
        TrainConfig(weights="none", input_size=320, min_size=200).validate()
    with pytest.raises(ConfigError, match="time_limit"):
        TrainConfig(weights="none", time_limit=0).validate()


def test_inspect_fit_json_contract_and_errors(tmp_path):
    data = write_tiny_voc(tmp_path / "data", n=12)
    out = run_cli("inspect", str(data), "--fit", "ssdlite320_mobilenet_v3_large", "--json")
    assert out.returncode == 0, out.stderr
    fit = json.loads(out.stdout)["fit"]
    assert fit["model"] == "ssdlite320_mobilenet_v3_large"
    for which in ("default", "fitted"):
        assert 0 <= fit[which]["best_possible_recall"] <= 1
        assert set(fit[which]["per_size"]) == {"small", "medium", "large"}
        assert set(fit[which]["per_class"]) == {"red", "blue"}
    preset = json.loads(run_cli("inspect", str(data), "--fit", "cpu-real", "--json").stdout)["fit"]
    assert preset["preset"] == "cpu-real" and preset["model"] == config_from_preset("cpu-real").model
    # cpu-real trains on crops: the check shows the size the model predicts at and where crops are cut
    assert preset["fitted"]["geometry"]["input"]["min_size"] > preset["fitted"]["crop_input"]["min_size"]
    bad = run_cli("inspect", str(data), "--fit", "yolo")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --fit: 'yolo' is neither a model")


def test_cli_train_flags_reach_the_run(tmp_path):
    data = write_tiny_voc(tmp_path / "data", n=12)
    out = run_cli("train", "--data", str(data), "--model", "fasterrcnn_mobilenet_v3_large_320_fpn", "--weights", "none",
                  "--device", "cpu", "--batch-size", "1", "--epochs", "1", "--max-iters-per-epoch", "2",
                  "--eval-every", "0", "--anchors", "auto", "--input-size", "96", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["anchors"] == "auto" and config["input_size"] == 96
    assert config["geometry"]["input"] == {"min_size": 96, "max_size": 160}
    bad = run_cli("train", "--data", str(data), "--model", "fasterrcnn_mobilenet_v3_large_320_fpn",
                  "--anchors", '{"sizes": [[8]], "aspect_ratios": [[1.0]]}', "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "error: anchors:" in bad.stderr


def test_cpu_real_cuts_crops_at_the_fitted_size_and_the_model_predicts_larger(tmp_path):
    """cpu-real (crops, input_size auto): the geometry stored for the run keeps the fitted size for the
    crops (``crop_input``) and builds a model that resizes whole images CROP_PREDICT_SCALE times larger."""
    from detcore.data.detect import load_dataset
    from detcore.models import build_model
    from detcore.train.fitting import resolve_geometry, train_transforms

    data = write_tiny_voc(tmp_path / "data", n=12)
    parsed = load_dataset(str(data))
    config = config_from_preset("cpu-real", data=str(data))
    geometry = resolve_geometry(config, parsed.samples, list(parsed.classes))
    crop_size, predict_size = geometry["crop_input"]["min_size"], geometry["input"]["min_size"]
    assert predict_size == int(round(crop_size * g.CROP_PREDICT_SCALE / 32)) * 32 > crop_size
    transform = train_transforms(config, geometry, parsed.samples, len(parsed.classes))
    assert transform.min_size == crop_size
    model = build_model(config.model, classes=list(parsed.classes), weights="none", geometry=geometry)
    assert tuple(model.transform.min_size) == (predict_size,)


def test_without_model_or_preset_the_cli_says_which_preset_it_chose(tmp_path):
    data = write_tiny_voc(tmp_path / "data", n=12)
    out = run_cli("train", "--data", str(data), "--device", "cpu", "--batch-size", "1", "--epochs", "1",
                  "--max-iters-per-epoch", "1", "--eval-every", "0", "--time-limit", "0.2", "--input-size", "96",
                  "--scale-jitter", "0.3", "--out", str(tmp_path / "run"))
    assert out.returncode == 0, out.stderr
    assert "preset cpu-real: the dataset is not the demo set" in out.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["preset"] == "cpu-real"
    # --scale-jitter F on a crop preset (whose own zoom is a [lo, hi] range) trains at 1 ± F
    assert config["augment"]["scale_jitter"] == 0.3 and config["augment"]["crop"] == 256


def test_crops_take_the_zoom_as_a_flag_or_a_range():
    from detcore.data.crops import CropAtModelScale

    spec = {"min_size": 200, "max_size": 400}
    for jitter, (lo, hi) in [(0.3, (0.7, 1.3)), ([0.7, 1.4], (0.7, 1.4)), (None, (1.0, 1.0))]:
        crops = CropAtModelScale(spec, 64, scale_jitter=jitter)
        torch.manual_seed(0)
        scales = [crops.scale_for(100, 150) / 2.0 for _ in range(200)]  # 2.0: the detector's own resize
        assert lo - 1e-6 <= min(scales) and max(scales) <= hi + 1e-6
        assert (max(scales) - min(scales) > 0.3 * (hi - lo)) or lo == hi
        image, _ = crops(torch.zeros(3, 100, 150, dtype=torch.uint8),
                         {"boxes": torch.tensor([[10.0, 10.0, 40.0, 40.0]]), "labels": torch.tensor([1]),
                          "iscrowd": torch.tensor([0])})
        assert image.shape[-2:] == (64, 64)


def test_balanced_crops_visit_rare_classes_more_often():
    """Two objects far apart in one image, one of a class 9x rarer: by 1/sqrt(frequency) weights the
    rare one is the crop's centre about 3 times as often as the common one."""
    from torchvision import tv_tensors

    from detcore.data.crops import CropAtModelScale
    from detcore.structures import Sample
    from detcore.train.fitting import class_weights

    samples = [Sample(f"s{i}", "x.png", 10, 10, boxes=[[0, 0, 1, 1]], labels=[0 if i < 9 else 1]) for i in range(10)]
    weights = class_weights(samples, 2)
    assert weights[1] == pytest.approx(3 * weights[0])
    image = tv_tensors.Image(torch.zeros(3, 100, 400, dtype=torch.uint8))
    target = {"boxes": torch.tensor([[10.0, 40.0, 30.0, 60.0], [370.0, 40.0, 390.0, 60.0]]),
              "labels": torch.tensor([1, 2]), "iscrowd": torch.tensor([0, 0])}
    counts = {}
    for balanced in (False, True):
        torch.manual_seed(1)
        transform = CropAtModelScale({"min_size": 100, "max_size": 400}, 64, hflip=0.0,
                                     class_weights=weights if balanced else None)
        seen = [int(label) for _ in range(400) for label in transform(image, target)[1]["labels"]]
        counts[balanced] = seen.count(2) / max(seen.count(1), 1)
    assert 0.6 < counts[False] < 1.6  # uniform over objects
    assert counts[True] > 2.0  # the rare class wins


def test_resuming_a_time_limited_run(tmp_path):
    """Run.resume_plan (the trainer, the app's job registry and train --resume all call it): a
    time-limited run keeps its budget; a new time limit is a new total; extra epochs without one lift
    the budget and count from the epochs done (its epochs only shaped the schedule). The CLI's
    --epochs N on such a run trains to epoch N without a budget."""
    from detcore import atomic
    from detcore.cli import build_parser
    from detcore.commands.train import _config_and_run_dir
    from detcore.train.runs import Run

    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.save_config(TrainConfig(weights="none", epochs=12, time_limit=15))
    for epoch in range(5):
        atomic.append_jsonl(run.events_path, {"type": "epoch", "epoch": epoch, "metrics": {}, "time": 0})
    app = run.resume_plan(2).config
    assert app.time_limit is None and app.epochs == 7
    kept = run.resume_plan(0).config  # finish the budget of a stopped run
    assert kept.time_limit == 15 and kept.epochs == 12
    longer = run.resume_plan(0, time_limit=30).config
    assert longer.time_limit == 30 and longer.epochs == 12
    with pytest.raises(ConfigError, match="time_limit"):
        run.resume_plan(0, time_limit=-1)

    def cli(*flags):
        config, _, extra = _config_and_run_dir(build_parser().parse_args(["train", "--resume", str(run.path), *flags]))
        return config.time_limit, config.epochs, extra

    assert cli() == (15, 12, 0)
    assert cli("--time-limit", "30") == (30, 12, 0)
    assert cli("--epochs", "8") == (None, 8, 3)  # to epoch 8: 3 more than the 5 done
    assert cli("--epochs", "20", "--time-limit", "30") == (30, 20, 8)  # a new budget; epochs shape its schedule


def test_cpu_bf16_trains_in_bfloat16_and_keeps_float32_weights_and_validation(tmp_path):
    """cpu-real's ``cpu_bf16`` + ``channels_last``: training steps run in bfloat16 where the CPU has it
    natively (float32 elsewhere), validation runs in float32 and the checkpoint holds float32 weights."""
    from detcore.checkpoints import load_checkpoint
    from detcore.train.runs import Run
    from detcore.train.state import Callback
    from detcore.train.trainer import cpu_has_bf16, train

    seen = {True: [], False: []}  # model.training -> dtypes of the first convolution's output

    class FirstConvDtypes(Callback):
        def on_train_start(self, t):
            conv = next(m for m in t.unwrapped_model.modules() if isinstance(m, torch.nn.Conv2d))
            conv.register_forward_hook(lambda mod, inp, out: seen[mod.training].append(out.dtype))

    data = write_tiny_voc(tmp_path / "data", n=8)
    config = TrainConfig(data=str(data), **{**TINY, "epochs": 1, "max_iters_per_epoch": 2, "eval_every": 1,
                                            "cpu_bf16": True, "channels_last": True})
    assert train(config, tmp_path / "run", callbacks=[FirstConvDtypes()]) == "completed"
    # the two training steps (PreciseBatchNorm's statistics passes after them run in float32, like inference)
    assert seen[True][:2] == [torch.bfloat16 if cpu_has_bf16() else torch.float32] * 2
    assert set(seen[False]) == {torch.float32}  # validation
    losses = [s["loss"] for s in Run(tmp_path / "run").events("step")]
    assert losses and all(np.isfinite(losses))
    # a CPU without native bf16 trains in float32 and the run says so where the user reads its status
    started = next(e["message"] for e in Run(tmp_path / "run").events("status") if e["status"] == "running")
    assert ("no native bfloat16" in started) == (not cpu_has_bf16())
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float32}


def test_balanced_crops_draw_images_with_rare_classes_more_often():
    """Repeat-factor sampling: 9 images of a common class, 1 holding a rare one too. The rare class is in
    1/10 of the images, so that image weighs sqrt(10) against the others' 1/sqrt(0.9 + ...) and the run's
    sampler draws it about 3 times as often as a plain shuffle would; without balanced crops it is a shuffle."""
    from detcore.structures import Sample
    from detcore.train import distributed
    from detcore.train.fitting import image_weights

    samples = [Sample(f"s{i}", "x.png", 10, 10, boxes=[[0, 0, 1, 1]] * (1 + (i == 9)),
                      labels=[0] if i < 9 else [0, 1]) for i in range(10)]
    weights = image_weights(samples, 2)
    assert weights[9] == pytest.approx(np.sqrt(10)) and weights[0] == pytest.approx(1.0)  # class 0 is in all 10
    info, generator = distributed.DistInfo(), torch.Generator().manual_seed(0)
    drawn = [i for _ in range(300) for i in distributed.train_sampler(samples, info, seed=0, generator=generator,
                                                                       weights=weights)]
    share = drawn.count(9) / len(drawn)
    assert 0.2 < share < 0.35  # sqrt(10) / (9 + sqrt(10)) = 0.26, against 0.1 for a shuffle
    plain = list(distributed.train_sampler(samples, info, seed=0, generator=generator))
    assert sorted(plain) == list(range(10))  # a permutation: each image once per epoch


def test_a_balanced_crop_run_uses_the_weighted_sampler_and_resumes_the_same_order(tmp_path):
    """Through prepare_run: cpu-real-like settings give the weighted draw, reseeded per epoch like the shuffle."""
    from detcore.train import distributed
    from detcore.train.runs import Run
    from detcore.train.trainer import prepare_run

    data = write_tiny_voc(tmp_path / "data", n=12)
    config = TrainConfig(data=str(data), **{**TINY, "model": "fcos_resnet18_fpn8",
                                            "augment": {"crop": 64, "balanced_crops": True}})
    prepared = prepare_run(config, Run(tmp_path / "run"), dist=distributed.DistInfo(), resume=False)
    assert isinstance(prepared.train_loader.sampler, torch.utils.data.WeightedRandomSampler)
    orders = []
    for _ in range(2):
        prepared.sampler_generator.manual_seed(config.seed + 3)  # what the trainer does at epoch 3
        orders.append(list(prepared.train_loader.sampler))
    assert orders[0] == orders[1]
