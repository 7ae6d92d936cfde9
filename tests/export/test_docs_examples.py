"""docs/export.md's two examples (onnxruntime and plain torch), run as written against freshly
exported files: they print what `predict FILE image.png --json` lists, thresholds included."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from detcore.cli import main

DOC = Path(__file__).resolve().parents[2] / "docs" / "export.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_doc_has_one_example_per_format():
    examples = _examples()
    assert len(examples) == 2
    assert "onnxruntime" in examples[0] and "model.onnx" in examples[0]
    assert "torch.jit.load" in examples[1] and "model.torchscript.pt" in examples[1]
    assert all(len(e.strip().splitlines()) <= 20 for e in examples)


@pytest.mark.slow
@pytest.mark.parametrize("index, fmt, name", [(0, "onnx", "model.onnx"), (1, "torchscript", "model.torchscript.pt")])
def test_doc_example_runs_and_agrees_with_predict(index, fmt, name, frcnn_run, sample_image_paths, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(frcnn_run, run)
    thresholds = {"with_mask": 0.15, "without_mask": 0.35, "mask_weared_incorrect": 0.25}
    (run / "thresholds.json").write_text(json.dumps({"global": 0.5, "per_class": thresholds}))
    assert main(["export", str(run), "--format", fmt, "--out", str(tmp_path / name)]) == 0
    shutil.copy(sample_image_paths[0], tmp_path / "image.png")
    capsys.readouterr()
    assert main(["predict", str(tmp_path / name), str(tmp_path / "image.png"), "--json"]) == 0
    expected = json.loads(capsys.readouterr().out)["images"][0]["detections"]
    assert expected, "the example must have detections to print"

    done = subprocess.run([sys.executable, "-c", _examples()[index]], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = [line.split(" ", 2) for line in done.stdout.strip().splitlines()]
    assert len(printed) == len(expected)
    got = sorted((label, float(score), json.loads(box)) for label, score, box in printed)
    want = sorted((d["label"], round(d["score"], 3), [round(v, 1) for v in d["box"]]) for d in expected)
    for (gl, gs, gb), (wl, ws, wb) in zip(got, want):
        assert gl == wl and abs(gs - ws) <= 1e-3 and max(abs(a - b) for a, b in zip(gb, wb)) <= 0.11
        assert gs >= thresholds[gl] - 1e-3
