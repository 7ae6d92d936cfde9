"""detcore/speed.py: the input size a benchmark reports is the size the model's own transform uses."""

from __future__ import annotations

from detcore.models import build_model
from detcore.speed import format_benchmark, input_size, parameter_count


def test_input_size_is_the_models_own_resize():
    ssd = build_model("ssdlite320_mobilenet_v3_large", classes=["a", "b"], weights="none")
    assert input_size(ssd)["text"] == "320x320 (fixed)"
    rcnn = build_model("fasterrcnn_mobilenet_v3_large_320_fpn", classes=["a"], weights="none", min_size=64, max_size=96)
    size = input_size(rcnn)
    assert (size["min_size"], size["max_size"]) == (64, 96)
    assert parameter_count(rcnn) < parameter_count(build_model("fasterrcnn_mobilenet_v3_large_320_fpn",
                                                                 classes=["a", "b", "c"], weights="none"))


def test_the_printed_benchmark_names_every_number():
    record = {"model": "m", "params": 1234567, "checkpoint": "best.pt", "checkpoint_mb": 9.5, "device": "cpu (2 threads)",
              "input_size": "320x320 (fixed)", "images": "4 test images", "p50_ms": 12.25, "p95_ms": 20.5,
              "mean_ms": 14.0, "timed": 8, "warmup": 3, "images_per_s": 70.1}
    text = format_benchmark(record)
    assert "1,234,567 parameters" in text and "p50 12.2" in text and "p95 20.5" in text and "70.10" in text
