"""evaluate_run: the run's own split, real predictions, the metrics engine, and a prediction cache
that is reused until the checkpoint changes."""

import json
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from detcore.errors import DataError
from detcore.evaluation import evaluate_run, run_predictions
from detcore.train.runs import Run


def _objects_in(data, image_ids):
    n = 0
    for i in image_ids:
        n += len(ET.parse(data / "annotations" / f"{i}.xml").getroot().findall("object"))
    return n


def test_evaluates_exactly_the_saved_test_split(trained_run):
    run, data = trained_run
    test_ids = json.loads((run / "split.json").read_text())["test"]
    samples, dets = run_predictions(run, split="test")
    assert [s.image_id for s in samples] == test_ids == [d.image_id for d in dets]
    result = evaluate_run(run, split="test")
    summary = result.summary()
    assert {"AP", "AP50", "AP75", "AR100"} <= set(summary)
    assert int(np.sum(result.n_gt)) == _objects_in(data, test_ids)
    json.dumps(result.to_json())  # the `evaluate --json` payload


def test_predictions_are_cached_until_the_checkpoint_changes(trained_run):
    run, _ = trained_run
    run_predictions(run, split="test")
    ckpt = Run(run).checkpoint("best")
    cache = run / "eval" / f"predictions-test-{ckpt.stem}.npz"
    assert cache.is_file()
    first = cache.stat().st_mtime_ns
    again = run_predictions(run, split="test")[1]
    assert cache.stat().st_mtime_ns == first  # served from the cache, not rewritten
    os.utime(ckpt, ns=(ckpt.stat().st_atime_ns, ckpt.stat().st_mtime_ns + 10**9))
    fresh = run_predictions(run, split="test")[1]
    assert cache.stat().st_mtime_ns != first  # a changed checkpoint invalidates it
    for a, b in zip(again, fresh):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        assert np.array_equal(a.labels, b.labels)


def test_a_damaged_cache_is_recomputed(trained_run):
    run, _ = trained_run
    run_predictions(run, split="test")
    cache = run / "eval" / f"predictions-test-{Run(run).checkpoint('best').stem}.npz"
    cache.write_bytes(b"not a zip")
    samples, dets = run_predictions(run, split="test")
    assert len(dets) == len(samples) and cache.stat().st_size > 100


def test_other_data_without_the_split_images_is_refused(trained_run, tmp_path):
    run, data = trained_run
    other = tmp_path / "other"
    shutil.copytree(data, other)
    test_id = json.loads((run / "split.json").read_text())["test"][0]
    (other / "annotations" / f"{test_id}.xml").unlink()
    (other / "images" / f"{test_id}.png").unlink()
    with pytest.raises(DataError, match="not in this dataset"):
        evaluate_run(run, other)
