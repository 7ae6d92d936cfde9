import json
import os
import subprocess
import sys
from pathlib import Path

from detcore.cli import main
from tests.data.builders import SHARED_DATA, voc_object, write_voc

REPO = Path(__file__).resolve().parents[2]


def _dataset(tmp_path):
    return write_voc(tmp_path / "ds", {"a": [voc_object("cat", (1, 1, 45, 9)), voc_object("dog", (2, 2, 8, 8))],
                                       "b": [voc_object("cat", (3, 3, 9, 9))], "c": []}, size=(40, 30))


def test_inspect_json_contract(tmp_path, capsys):
    assert main(["inspect", str(_dataset(tmp_path)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["format"] == "voc" and out["images"] == 3 and out["objects"] == 3
    assert out["classes"] == {"cat": 2, "dog": 1}
    assert {(p["kind"], Path(p["file"]).name) for p in out["problems"]} == {("box_clipped", "a.xml"),
                                                                           ("no_objects", "c.xml")}
    assert all(set(p) >= {"kind", "file", "detail"} for p in out["problems"])


def test_inspect_readable_summary(tmp_path, capsys):
    assert main(["inspect", str(_dataset(tmp_path)), "--format", "voc"]) == 0
    out = capsys.readouterr().out
    assert "images:  3 (1 without objects)" in out and "cat" in out and "box_clipped" in out


def test_inspect_reports_unreadable_images(tmp_path, capsys):
    root = _dataset(tmp_path)
    (root / "images" / "b.png").write_bytes(b"not an image")
    assert main(["inspect", str(root), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 2 and out["problem_counts"]["not_an_image"] == 1


def test_inspect_nothing_usable_exits_2_with_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["inspect", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'empty'}: found no dataset") and "\n" not in err


def test_inspect_as_a_subprocess(tmp_path):
    root = _dataset(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run([sys.executable, "-m", "detcore", "inspect", str(root), "--json"], capture_output=True,
                        text=True, env=env, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["classes"] == {"cat": 2, "dog": 1}
    bad = subprocess.run([sys.executable, "-m", "detcore", "inspect", str(tmp_path / "missing")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == f"error: {tmp_path / 'missing'}: no such file or folder"
    assert "Traceback" not in bad.stderr


def test_demo_data_then_inspect(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo-data", str(out_dir), "--images", "6", "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip() == str(out_dir)
    assert main(["inspect", str(out_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["format"] == "voc" and summary["images"] == 6
    assert set(summary["classes"]) <= {"with_mask", "without_mask", "mask_weared_incorrect"}


def test_demo_data_rejects_zero_images(tmp_path, capsys):
    assert main(["demo-data", str(tmp_path / "d"), "--images", "0"]) == 2
    assert "--images" in capsys.readouterr().err


def test_inspect_shared_facemask_sample(capsys):
    if not (SHARED_DATA / "facemask-sample").is_dir():
        import pytest

        pytest.skip("shared real sample absent")
    assert main(["inspect", str(SHARED_DATA / "facemask-sample"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == {"mask_weared_incorrect": 4, "with_mask": 41, "without_mask": 13}
    assert out["problem_counts"] == {"box_clipped": 2}
