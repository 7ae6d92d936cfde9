"""A run directory with a checkpoint written the way the trainer writes it, from a freshly built
model (no training needed to exercise loading, batching, thresholds and mismatch checks)."""

import json

import pytest
import torch

from detcore.models import build_model
from detcore.train.config import TrainConfig

CLASSES = ["with_mask", "without_mask", "mask_weared_incorrect"]


@pytest.fixture
def make_run(tmp_path):
    def make(model="ssdlite320_mobilenet_v3_large", classes=CLASSES, *, ckpt_classes=None, ckpt_model=None,
             name="run", which="best", **opts):
        run = tmp_path / name
        (run / "checkpoints").mkdir(parents=True)
        config = TrainConfig(model=model, weights="none", **opts).to_dict()
        (run / "config.json").write_text(json.dumps(config))
        (run / "classes.json").write_text(json.dumps(classes))
        torch.manual_seed(0)
        net = build_model(ckpt_model or model, classes=ckpt_classes or classes, weights="none",
                          min_size=opts.get("min_size"), max_size=opts.get("max_size"))
        # A fresh classifier scores every box about 1/(K+1); spread the scores so thresholds bite.
        for pname, param in net.named_parameters():
            if "classification_head" in pname or "cls_score" in pname:
                param.data.normal_(0.0, 0.3)
        torch.save({"model": net.state_dict(), "classes": list(ckpt_classes or classes),
                    "config": {**config, "model": ckpt_model or model}, "epoch": 1},
                   run / "checkpoints" / f"{which}.pt")
        return run

    return make


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A real run made by the trainer: 2 SSDlite steps on a 12-image demo set (seconds on a CPU)."""
    from detcore.data.demo import generate_demo_dataset
    from detcore.train.config import TrainConfig
    from detcore.train.trainer import train

    root = tmp_path_factory.mktemp("trained")
    data = generate_demo_dataset(root / "demo", n_images=12, seed=5)
    config = TrainConfig(data=str(data), model="ssdlite320_mobilenet_v3_large", weights="none", epochs=1,
                         batch_size=2, max_iters_per_epoch=2, eval_every=0, device="cpu", optimizer="adamw",
                         lr=1e-3, test_fraction=0.25, augment={"hflip": 0.0})
    status = train(config, root / "run")
    assert status == "completed"
    return root / "run", data
