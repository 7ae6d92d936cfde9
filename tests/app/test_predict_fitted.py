"""The Predict page runs a run trained with fitted anchors exactly as the Predictor does."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from tinydata import TINY, write_tiny_voc  # noqa: E402


@pytest.fixture(scope="session")
def fitted_template(tmp_path_factory) -> tuple[Path, Path]:
    from detcore.train.config import TrainConfig
    from detcore.train.trainer import train

    root = tmp_path_factory.mktemp("fitted-app")
    data = write_tiny_voc(root / "data", n=12)
    config = TrainConfig(data=str(data), **{**TINY, "model": "retinanet_mobilenet_v3_fpn8", "anchors": "auto",
                                            "epochs": 1, "max_iters_per_epoch": 3})
    assert train(config, root / "run") == "completed"
    # Three steps leave every score near the focal-loss prior (0.01), below the page's 0.05 floor;
    # raise the class logits so the model returns boxes — near its (fitted) anchors, which is the point.
    import torch

    for path in (root / "run" / "checkpoints").glob("*.pt"):
        state = torch.load(path, weights_only=True)
        state["model"]["head.classification_head.cls_logits.bias"] += 3.0
        torch.save(state, path)
    return root / "run", data


def test_predict_page_uses_the_fitted_geometry(app, fitted_template):
    from detcore import paths
    from detcore.data.images import load_rgb
    from detcore.inference import Predictor

    template, data = fitted_template
    run = Path(shutil.copytree(template, paths.runs_root() / "fitted"))
    predictor = Predictor.from_run(run, device="cpu")
    assert predictor.model.anchor_generator.sizes != ((16, 20, 25),)  # the fitted sizes, not the default
    image_path = sorted((data / "images").glob("*.png"))[0]
    expected = predictor.predict([load_rgb(image_path)], score_floor=0.05)[0]
    assert len(expected) > 10

    at = app.run()
    at.session_state["run_dir"] = str(run)
    at.switch_page("pages/predict.py").run()
    at.file_uploader(key="predict_uploads").set_value([("a.png", image_path.read_bytes(), "image/png")]).run()
    assert not at.exception, [e.value for e in at.exception]
    (item,) = at.session_state["predict_cache"].values()
    assert len(item.detections) == len(expected)
    np.testing.assert_allclose(item.detections.boxes, expected.boxes, atol=1e-4)
    np.testing.assert_allclose(item.detections.scores, expected.scores, atol=1e-5)
