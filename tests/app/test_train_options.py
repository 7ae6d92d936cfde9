"""Train page for issue 10: the Split section previews images and objects per class in each part before
Start (and refuses a split the dataset cannot give), and the form's Augmentation, Optimizer & schedule
and local-weights settings reach the run that starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app.conftest import no_exceptions
from tests.app.pagewait import run_until, status_metric

K = "train_demo-cpu_"


@pytest.fixture
def train_page(app):
    at = app.run()
    at.switch_page("pages/train.py").run()
    no_exceptions(at)
    yield at
    from ui.registry import job_registry

    for job in job_registry().jobs():
        job.stop()
        job.join(60)


def _preview(at):
    return next(df.value for df in at.dataframe if "class" in df.value.columns and "train" in df.value.columns)


def test_split_preview_follows_the_settings(train_page):
    at = train_page
    table = _preview(at).set_index("class")
    assert list(table.columns) == ["train", "test"] and table.loc["(images)"].tolist() == [13, 3]  # 16 * 0.2 -> 3
    at.selectbox(key=K + "split_method").set_value("last_n").run()
    at.number_input(key=K + "split_n").set_value(4).run()
    at.slider(key=K + "val_fraction").set_value(0.25).run()
    no_exceptions(at)
    table = _preview(at).set_index("class")
    assert list(table.columns) == ["train", "val", "test"] and table.loc["(images)"].tolist() == [9, 3, 4]
    objects = table.drop(index="(images)")
    assert (objects.sum() > 0).all()
    at.selectbox(key=K + "split_method").set_value("holdout").run()
    at.number_input(key=K + "split_n").set_value(16).run()
    assert any("cannot be made" in e.value and "leaves no" in e.value for e in at.error)


def test_form_settings_and_a_local_weights_file_reach_the_run(train_page):
    import torch

    from detcore import paths
    from detcore.data.detect import load_dataset
    from detcore.models import build_model
    from detcore.train.runs import Run
    from detcore.train.split_plan import plan_split

    at = train_page
    classes = load_dataset(paths.demo_dataset_dir()).classes
    weights = paths.data_root() / "weights" / "ssdlite-start.pth"
    weights.parent.mkdir(parents=True)
    torch.save(build_model("ssdlite320_mobilenet_v3_large", classes=classes, weights="none").state_dict(), weights)
    at.text_input(key=K + "weights_path").set_value("/etc/passwd")
    next(b for b in at.button if b.label == "Start training").click().run()
    assert any("outside the allowed data folders" in e.value for e in at.error)
    assert "run_dir" not in at.session_state or not at.session_state["run_dir"]

    at.selectbox(key=K + "split_method").set_value("holdout").run()
    at.number_input(key=K + "split_n").set_value(3).run()
    at.slider(key=K + "val_fraction").set_value(0.2).run()
    for name, value in dict(epochs=1, batch_size=2, max_iters=1, eval_every=0, warmup_iters=3, step_size=2).items():
        at.number_input(key=K + name).set_value(value)
    at.slider(key=K + "augment.rotate").set_value(25.0)
    at.slider(key=K + "augment.color_jitter").set_value(0.2)
    at.selectbox(key=K + "schedule").set_value("step")
    at.number_input(key=K + "gamma").set_value(0.5)
    at.number_input(key=K + "grad_clip").set_value(0.0)  # 0 = off, not "the preset's 10"
    at.text_input(key=K + "weights_path").set_value("weights/ssdlite-start.pth")
    next(b for b in at.button if b.label == "Start training").click().run()
    no_exceptions(at)
    run_until(at, lambda a: status_metric(a) == "completed")
    run = Run(at.session_state["run_dir"])
    config = json.loads((run.path / "config.json").read_text())
    assert config["augment"] == {"hflip": 0.5, "rotate": 25.0, "scale_jitter": None, "color_jitter": 0.2, "crop": None,
                                 "balanced_crops": False}
    assert (config["schedule"], config["gamma"], config["step_size"], config["warmup_iters"]) == ("step", 0.5, 2, 3)
    assert config["grad_clip"] is None and Path(config["weights"]) == weights.resolve()
    preview = plan_split(run.config(), load_dataset(paths.demo_dataset_dir()))
    split = run.split()
    assert (split.method, len(split.test), len(split.val)) == ("holdout", 3, 2)
    assert (split.train, split.val, split.test) == (preview.train, preview.val, preview.test)
