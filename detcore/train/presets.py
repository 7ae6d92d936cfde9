"""Named starting points for TrainConfig (`train --preset NAME`; flags given with it override).

``demo-cpu`` is the embedded default: the app's first page trains it on the synthetic face-mask
demo set on a 2-core CPU. SSDlite320 from scratch beat Faster R-CNN MobileNetV3 there by a wide
margin (AP50 0.78 vs 0.17 in 4 minutes), because nothing pretrained can be downloaded and the
small model takes many more steps per minute. The demo owner tunes its values; keep it plain data.
The GPU presets follow the finetuning tutorial (SGD lr 0.005, momentum 0.9, wd 5e-4, StepLR 3/0.1).
"""

from __future__ import annotations

import json
from pathlib import Path

BALANCED_CROPS = True  # see the cpu-real notes below

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
    "cpu-real": {
        # Real photos on a CPU without pretrained weights (chosen for a non-demo dataset on a CPU).
        # Why each value: the notes at the end of this file (measured on the full Face Mask set).
        "model": "fcos_resnet18_fpn8",
        "weights": "none",
        "device": "cpu",
        "anchors": "auto",  # FCOS has points, not anchors: the fit sets the input size only
        # crops at the smallest input where >= 97 % of training boxes span a stride-8 cell; the model
        # predicts 1.2x larger (geometry.CROP_PREDICT_SCALE)
        "input_size": "auto",
        "max_input_size": 640,
        "time_limit": 15,  # minutes; the cosine schedule is laid over what fits
        # of which the last 3.5 train the crop classifier that re-scores each face's class (kept only if it
        # raises validation AP; see the notes)
        "classifier_minutes": 3.5,
        "epochs": 12,  # under a time limit only the schedule's shape (cosine: none)
        "batch_size": 8,
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "schedule": "cosine",
        "warmup_iters": 50,
        "grad_clip": 10.0,
        "cpu_bf16": True,  # bf16 autocast where the CPU has it natively; 1.6x the steps in the budget
        "channels_last": True,  # 1.13x on a CPU for this model
        "num_workers": 0,
        "cache_images_mb": 2048,  # decoding a PNG photo is a fifth of a step; 853 Face Mask images hold 480 MB
        "val_fraction": 0.1,  # the best checkpoint is chosen on validation images, never on test
        "eval_every": 2,
        # zoom 0.5-1.5 and colour jitter 0.2: from scratch on a few hundred photos the model overfits
        # (validation flattens); measured in the notes below
        "augment": {"hflip": 0.5, "rotate": 0.0, "scale_jitter": [0.5, 1.5], "color_jitter": 0.2, "crop": 256,
                    "balanced_crops": BALANCED_CROPS},
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


DEMO_PRESET, REAL_CPU_PRESET = "demo-cpu", "cpu-real"


def is_demo_dataset(path: str | Path | None) -> bool:
    """Is ``path`` the synthetic demo set (its generator leaves a ``demo.json`` marker)?"""
    if not path:
        return False
    try:
        marker = json.loads((Path(path) / "demo.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("generator") == "detcore.data.demo"


def suggest_preset(data: str | Path | None, *, cuda: bool) -> tuple[str, str]:
    """(preset, why) for a user who named no model: the demo recipe only fits the demo set; real
    photos on a CPU get ``cpu-real``; a GPU gets the COCO-pretrained Faster R-CNN."""
    if cuda:
        return "gpu-fasterrcnn", "a CUDA GPU is available"
    if is_demo_dataset(data):
        return DEMO_PRESET, "the dataset is the synthetic demo set and training runs on the CPU"
    return REAL_CPU_PRESET, ("the dataset is not the demo set and training runs on the CPU without pretrained "
                             "weights: demo-cpu's SSDlite cannot match small real objects (see inspect --fit)")


def cuda_available() -> bool:
    import torch  # only when asked: this module stays plain data for the pages

    return torch.cuda.is_available()


# --- cpu-real: how it was chosen ----------------------------------------------------------------------
CPU_REAL_NOTES = """
Measured on the full Face Mask set (853 photos, VOC; split seed 0: 682 train incl. 68 validation, 171
test), weights none, on the shared 2-core machine under heavy load from other jobs (load 5-20), one
torch thread each (OpenMP spinning made two threads 3-5x slower under that load). Wall-clock time was
meaningless there, so candidates were compared at equal *training images* and their cost per image
measured separately, interleaved in one process (relative to demo-cpu's SSDlite320 step = 1.00):
FCOS ResNet-18 FPN8 crops 256: 1.14, crops 320: 0.80; FCOS MobileNetV3 FPN8 crops 320: 0.92.

Proxy runs (AdamW 2e-3, cosine, batch 8; test AP50 on the 171 test images; images/s as measured
under that load):

  run                                        images   img/s  test AP50  test AP
  demo-cpu (SSDlite320), 2 epochs             1232    0.70    0.032     0.017
  RetinaNet MobileNetV3 FPN8, 512, crop 320   1232    1.61    0.013     0.004   fitted anchors
  FCOS MobileNetV3 FPN8, 512, crop 320        1232    2.22    0.068     0.025
  FCOS MobileNetV3 FPN8, 384, crop 256        1848    1.02    0.108     0.038
  FCOS MobileNetV3 FPN8, 576, crop 256        1848    0.93    0.057     0.023
  FCOS ResNet-18 FPN8,   384, crop 256        1848    0.62    0.180     0.077   with_mask AP50 0.53

(Balanced crops and the 320 px input were chosen from these rows and the fit rule below; their own
proxy runs did not finish in that session. The 15-minute runs of the preset as it stands are in
benchmarks/bench_real.py's output, quoted in README.md.)

What it showed: the stride-8 level matters more than the head (SSDlite's stride-16 grid cannot
place boxes on 10-20 px faces; 18 % of the boxes are reachable at all); FCOS learns faster from
scratch than RetinaNet; a dense ResNet-18 costs about the same per image on a CPU as MobileNetV3
(depthwise and squeeze-excitation layers are slow there) and learns much faster from scratch; a
smaller input with crops beats an upscaled one (more objects per crop) as long as boxes span a
stride-8 cell — the rule ``input_size="auto"`` applies to anchor-free models; the rare classes
(without_mask 18 %, mask_weared_incorrect 3 % of boxes) stay near AP 0 while with_mask climbs,
hence crops placed by ``1/sqrt(class frequency)`` (balanced_crops). Not measured for lack of CPU:
learning rate and batch size, longer schedules, early stopping (off: a time budget is better spent
than saved; the best validation checkpoint is kept). The 15-minute comparison: benchmarks/bench_real.py.

Later 15-minute runs on a quiet machine (same split, test AP50; README.md has the table): input 256
float32 0.348; input 320 0.386 (so the fit rule asks 97 % of training boxes, which picks 320 here);
bf16 autocast + channels-last on this AVX512-BF16 CPU, 1.9x the steps, 0.452; the same at 384 px
0.437 (a larger input did not help); weight decay 0.05 instead of 1e-4 0.437 (no help either).
Validation AP50 flattens near 0.57 after about 10 of the 15 minutes in all three.

Prediction size (a later, slower machine: 12.9 images/s; same split): crops around objects show them
larger than whole images at the same input, so one checkpoint predicting at 320 / 384 / 448 px scored
test AP50 0.387 / 0.420 / 0.416; crop runs now predict 1.2x larger than the fitted crop size
(geometry.CROP_PREDICT_SCALE). A run trained that way: 0.395 at 384, 0.369 at 320. Run-to-run noise of
one 15-minute recipe is about 0.02-0.03 test AP50, so compare changes on one checkpoint where possible.
Then balanced_crops also draws the images holding rare classes more often (repeat-factor sampling,
fitting.image_weights): one 15-minute run, test AP50 0.421 against 0.395 (validation 0.463 against
0.423); without_mask 0.443 against 0.385, incorrect 0.058 against 0.035, with_mask 0.762 against
0.765 — the rare classes gained and the common one held, as the sampling intends. One run each, so
within about the noise above; kept for the per-class pattern.

Capacity or regularisation (another machine, 11-13 images/s; same split; 15 minutes each; test AP50,
validation in brackets): cpu-real as it stood 0.404 (0.467; 995 steps); FPN and head 128 channels
instead of 64 0.410 (0.431; 965 steps: the wider head cost almost nothing, and gave nothing); zoom
[0.5, 1.5] instead of [0.7, 1.4] and colour jitter 0.2 0.422 (0.484; 1,079 steps), with every class
up (with_mask 0.783 against 0.762, without_mask 0.417 against 0.384, incorrect 0.066 against 0.066)
and AP 0.236 against 0.231. Within the noise again, but validation, test and each class agree, and
stronger augmentation is what a model that stops improving on 600 photos needs; kept.

Decoding and weight averaging (same machine and split, 15 minutes): a fifth of each step was decoding
the PNG photos (11 ms each, 8 per step), so cpu-real keeps decoded training images in memory
(``cache_images_mb``): 1,350 steps instead of 1,079. The same run also kept a moving average of the
weights (``ema_decay`` 0.998); its last checkpoint scored test AP50 0.394 (validation 0.443) with the
average and 0.428 with the raw weights (BatchNorm recomputed for each the same way), so the average
lags a cosine schedule that ends at zero learning rate, and cpu-real does not use it. Its validation
loss was still falling at the end (1.06, training loss 1.05; the 4e-3 run below: 1.050, 1.047, 1.044
at its last three validations): not overfitting. Capping detections at 300 per image instead of 100 gave +0.001 (every test image holds
100 detections at the cap, but the rare classes' extra ones score too low to matter). Twice the
learning rate (4e-3) with the cache: test AP50 0.429 (validation 0.535), the same as 2e-3's 0.428, so
the preset keeps 2e-3. A quarter more steps and twice the step size both leave test AP50 at 0.43:
what ~15 passes over 615 photos from scratch can teach, not the schedule, is the limit here.

On large objects (Penn-Fudan, 170 photos of pedestrians, split seed 0, --time-limit 10, same machine):
input 320 fitted, 803 steps, test AP50 0.903 / AP 0.472 on its 34 test images.

Prediction size again, and zoom (same machine and split, 15 minutes; nothing here was kept). Four Face
Mask checkpoints predicting at 576 px instead of 384 (nothing retrained) scored test AP50 +0.037, +0.011,
+0.004 and +0.001 (COCO AP -0.016 to +0.007); on Penn-Fudan 440 px instead of 320 lost 0.14. A fit rule
that upscales prediction until 97 % of the training boxes span two stride-8 cells (576 on Face Mask, 288
on Penn-Fudan) was trained end to end: validation at 576 px costs more, so 1,079 steps instead of 1,360,
and test AP50 0.433 (0.429 from the same checkpoint at 384) against 0.443. Zoom [0.6, 2.0] instead of
[0.5, 1.5] (small faces seen larger in training): 0.412. Test-time horizontal flip merged by per-class NMS:
+0.002; rescoring a box by the other classes' scores on it: -0.001 to -0.24. At score 0.2 the confusion
matrix (bench_real's checkpoint, test split) has 5 of 840 faces taken by another class only, but 1,964
mask_weared_incorrect detections that match no face of that class (28 in the split): its scores do not
separate its faces from the others. Drawing images by 1/f of their rarest class instead of 1/sqrt(f)
(fitting.image_weights): 0.453, AP 0.259 (without_mask 0.452, with_mask 0.807, incorrect 0.100) against
0.443, AP 0.248: within one run's noise, the rarest class not up, so not kept.

The crop classifier (``classifier_minutes``, detcore/crop_classifier.py). The confusion counts above say
the detector finds faces and its rare classes' scores do not tell them apart, so a second stage looks at
each found face again: a small CNN on 48 px crops of the training boxes (20 % margin, each box as drawn
and three times jittered: 11,152 crops, cut in 21 s) re-scores each face's class (object score x class
probability). First on bench_real's 15-minute checkpoint (test AP50 0.443), three minutes of classifier
training each: four conv blocks 16-128 wide at 32 px 0.495 (float32) and 0.499 (bf16 autocast +
channels-last: 2.1x the steps); the same at 48 px 0.505 (13.7 epochs); twice as wide at 48 px trained 2.8
epochs in the three minutes, lowered validation AP and was not kept (the stage's check), so 0.443. Then in
the preset, 3.5 of the 15 minutes (the detector gets 11.5; both measured by the contract command, same
split): 884 detector steps, test AP50 0.522 / AP 0.281 (with_mask 0.754, without_mask 0.472, incorrect
0.341); the same checkpoint without the classifier (``evaluate --no-classifier``) 0.381 / 0.212 (0.748 /
0.351 / 0.043); validation AP50 0.413 alone, 0.588 re-scored. One run, so the 0.02-0.03 noise applies,
but the gain is five times that and comes from the two rare classes, as the confusion counts predicted.
Prediction costs about 1.4x the detector alone on these images (up to 100 faces classified, and mirrored).
bench_real on split seed 1 (both arms in one invocation): demo-cpu 0.132, cpu-real 0.609 (detector alone
0.382; validation 0.413 -> 0.584) -> 4.6x; on seed 0: demo-cpu 0.119, cpu-real 0.522 -> 4.4x.
"""
