"""Named starting points for TrainConfig (`train --preset NAME`; flags given with it override).

``demo-cpu`` is the embedded default: the app's first page trains it on the synthetic face-mask
demo set on a 2-core CPU. SSDlite320 from scratch beat Faster R-CNN MobileNetV3 there by a wide
margin (AP50 0.78 vs 0.17 in 4 minutes), because nothing pretrained can be downloaded and the
small model takes many more steps per minute. The demo owner tunes its values; keep it plain data.
The GPU presets follow the finetuning tutorial (SGD lr 0.005, momentum 0.9, wd 5e-4, StepLR 3/0.1).
"""

from __future__ import annotations

PRESETS: dict[str, dict] = {
    "demo-cpu": {
        "model": "ssdlite320_mobilenet_v3_large",
        "weights": "none",
        "device": "cpu",
        # 3 x 320 = 960 training images seen. Measured (bench_demo.py, 400-image demo, with the
        # PreciseBatchNorm callback): test AP50 0.880 / AP 0.733 in 420 s on 2 cores at load ~5
        # from other jobs; ~3.5 min expected at the 4.5 images/s of lightly loaded cores.
        "epochs": 3,
        "batch_size": 8,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "warmup_iters": 20,
        "grad_clip": 10.0,
        "num_workers": 0,
        # Flip only: the demo generator already varies face size, colour and background, and on
        # 2 cores RandomAffine + ColorJitter cost more per image than the SSDlite step itself.
        "augment": {"hflip": 0.5, "rotate": 0.0, "scale_jitter": None, "color_jitter": 0.0},
        "eval_every": 3,  # validate once, at the end: each validation costs ~10 % of the run
    },
    "gpu-fasterrcnn": {
        "model": "fasterrcnn_resnet50_fpn",
        "weights": "coco",
        "device": "cuda",
        "epochs": 10,
        "batch_size": 4,
        "optimizer": "sgd",
        "lr": 0.005,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "step",
        "step_size": 3,
        "gamma": 0.1,
        "warmup_iters": 100,
        "amp": True,
        "channels_last": False,
        "num_workers": 4,
    },
    "gpu-fasterrcnn-v2": {
        "model": "fasterrcnn_resnet50_fpn_v2",
        "weights": "coco",
        "device": "cuda",
        "epochs": 12,
        "batch_size": 4,
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "warmup_iters": 200,
        "amp": True,
        "num_workers": 4,
    },
    "gpu-maskrcnn": {
        "model": "maskrcnn_resnet50_fpn",
        "weights": "coco",
        "device": "cuda",
        "epochs": 10,
        "batch_size": 2,
        "optimizer": "sgd",
        "lr": 0.005,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "schedule": "step",
        "step_size": 3,
        "gamma": 0.1,
        "warmup_iters": 100,
        "amp": True,
        "num_workers": 4,
    },
    "gpu-retinanet": {
        "model": "retinanet_resnet50_fpn_v2",
        "weights": "coco",
        "device": "cuda",
        "epochs": 12,
        "batch_size": 4,
        "optimizer": "adamw",
        "lr": 1e-4,
        "weight_decay": 0.05,
        "schedule": "cosine",
        "warmup_iters": 200,
        "grad_clip": 10.0,
        "amp": True,
        "num_workers": 4,
    },
}
