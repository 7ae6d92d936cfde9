"""Does a big ``events.jsonl`` slow the app's renders? (hostile walk, finding 12: a 100 MB log made every
render go from 0.24 s to 1.7 s, each run's file being read twice per render.)

Two run roots, each with one finished run: the baseline's log has 8,000 step records (2 MB), the
other's ``--mb`` MB of them. Both charts show the same ~4,000 points (Run.log() thins step records to
MAX_STEPS_KEPT), so the ratio isolates the file's size. The Train page (sidebar run listing + the current run's charts) is rendered in AppTest,
the two arms interleaved, after one warm-up render each (the first render of the big run reads its
log once). Prints the median render time of each arm and their ratio (1.0 = the log's size costs
nothing per render), the warm-up render of the big arm, and — for scale — what reading and
validating the whole file once costs (what the old code paid twice per render).

    python3 benchmarks/bench_events_render.py [--mb 100] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_run(root: Path, megabytes: float | None, steps: int | None = None) -> Path:
    from detcore.train.config import TrainConfig

    run = root / "runs" / "chatty"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(TrainConfig(model="fasterrcnn_mobilenet_v3_large_320_fpn",
                                                            weights="none").to_dict()))
    (run / "classes.json").write_text(json.dumps(["red", "blue"]))
    step = {"type": "step", "epoch": 0, "iter": 0, "global_step": 0, "total_steps": 10**7, "loss": 1.5,
            "losses": {"loss_classifier": 0.7, "loss_box_reg": 0.3, "loss_objectness": 0.4, "loss_rpn_box_reg": 0.1},
            "lr": 0.001, "images_per_s": 12.5, "eta_s": 30.0, "time": 1.7e9}
    line = json.dumps(step)
    n = steps if steps is not None else int(megabytes * 2**20) // (len(line) + 1)
    with open(run / "events.jsonl", "w") as f:
        f.write(json.dumps({"type": "status", "status": "running", "message": "started", "time": 1.7e9}) + "\n")
        for i in range(n):
            f.write(line.replace('"global_step": 0', f'"global_step": {i + 1}') + "\n")
        f.write(json.dumps({"type": "epoch", "epoch": 0, "metrics": {"AP": 0.5, "AP50": 0.8}, "time": 1.7e9}) + "\n")
        f.write(json.dumps({"type": "status", "status": "completed", "message": "trained", "time": 1.7e9}) + "\n")
    return run


def app_test(root: Path):
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.testing.v1 import AppTest

    PagesManager.uses_pages_directory = False
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=600)
    return at


def render(at, root: Path, *, first: bool = False) -> float:
    os.environ["DETBOARD_DATA"] = str(root / "data")
    os.environ["DETBOARD_RUNS"] = str(root / "runs")
    start = time.perf_counter()
    if first:
        at.run()
        at.switch_page("pages/train.py").run()
    else:
        at.run()
    elapsed = time.perf_counter() - start
    assert not at.exception, [e.value for e in at.exception]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    from detcore.data.demo import generate_demo_dataset
    from detcore.train.runs import EventReader

    base = Path(tempfile.mkdtemp(prefix="bench_events_"))
    roots = {"baseline (8,000 steps)": base / "small", f"{args.mb:g} MB events.jsonl": base / "big"}
    for name, root in roots.items():
        generate_demo_dataset(root / "data" / "demo", n_images=8, seed=0)
        run = make_run(root, None, 8000) if root.name == "small" else make_run(root, args.mb)
        print(f"{name}: {run / 'events.jsonl'} ({(run / 'events.jsonl').stat().st_size / 2**20:.1f} MiB)", flush=True)
    big_log = roots[f"{args.mb:g} MB events.jsonl"] / "runs" / "chatty" / "events.jsonl"

    tests = {name: app_test(root) for name, root in roots.items()}
    warm = {name: render(tests[name], root, first=True) for name, root in roots.items()}
    times: dict[str, list[float]] = {name: [] for name in roots}
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both arms alike
        for name, root in roots.items():
            times[name].append(render(tests[name], root))

    start = time.perf_counter()
    EventReader(big_log).read_new()
    whole = time.perf_counter() - start

    medians = {name: statistics.median(t) for name, t in times.items()}
    for name in roots:
        print(f"{name:>24}: render median {medians[name] * 1000:7.1f} ms  (min {min(times[name]) * 1000:.1f}, "
              f"first render {warm[name] * 1000:.0f} ms)")
    small, big = medians.values()
    print(f"ratio (big log / baseline): {big / small:.2f}x per render")
    print(f"reading and validating the whole {args.mb:g} MB log once: {whole * 1000:.0f} ms "
          f"(the old code read it twice per render: ~{2 * whole / small:.1f}x the baseline render)")


if __name__ == "__main__":
    main()
