"""Train page: a YOLO export's own train/val/test folders are offered and kept (split method imagesets)."""

from tests.app.pagewait import run_until, status_metric


def test_roboflow_split_is_offered_and_used(app):
    from detcore import paths
    from detcore.train.runs import Run
    from tests.data.builders import write_yolo_part, write_yolo_yaml
    from ui.registry import job_registry

    root = paths.data_root() / "helmets"
    write_yolo_yaml(root, ["head", "helmet"], train="../train/images", val="../valid/images", test="../test/images")
    for part, stems in {"train": ["a", "b", "c", "d"], "valid": ["a"], "test": ["e", "f"]}.items():
        write_yolo_part(root / part / "images", root / part / "labels",
                        {s: ["0 0.5 0.5 0.4 0.4", "1 0.25 0.3 0.2 0.3"] for s in stems}, size=(80, 64))
    at = app.run()
    at.session_state["dataset_path"] = str(root)
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    note = next(i.value for i in at.info if "gives its own split" in i.value)
    assert "roboflow split folders: train 4, val 1, test 2" in note
    at.selectbox(key="train_preset").set_value("demo-cpu").run()  # real photos get cpu-real; a tiny run here
    at.selectbox(key="train_demo-cpu_split_method").set_value("imagesets")
    for name, value in dict(epochs=1, batch_size=2, max_iters=1, eval_every=0).items():
        at.number_input(key=f"train_demo-cpu_{name}").set_value(value)
    try:
        next(b for b in at.button if b.label == "Start training").click().run()
        assert not at.exception, [e.value for e in at.exception]
        run_until(at, lambda a: status_metric(a) == "completed")
    finally:
        for job in job_registry().jobs():
            job.stop()
            job.join(60)
    split = Run(at.session_state["run_dir"]).split()
    assert split.method == "imagesets"
    assert (split.train, split.val, split.test) == (["train/a", "train/b", "train/c", "train/d"], ["valid/a"],
                                                    ["test/e", "test/f"])
