"""VOC annotation parsing: detcore's cached reader vs the tutorial's BeautifulSoup loop, same files, same run.

    python benchmarks/bench_voc_parse.py                # 853 Face-Mask-like files made from the shared sample
    python benchmarks/bench_voc_parse.py FOLDER         # an existing VOC folder (annotations/ + images/)
    python benchmarks/bench_voc_parse.py --files 2000   # another count

Prints: the tutorial loop (BeautifulSoup 'html.parser', as in the Face Mask tutorial's generate_target),
detcore cold (no index anywhere), warm from the on-disk index (new process simulated by clearing the
in-memory index) and warm in-process, and each ratio against the tutorial loop.
Targets from issue 2: cold <= 0.5 s and warm <= 0.1 s for 853 files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED_SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "facemask-sample"
_SYNTHETIC_XML = """<annotation><folder>images</folder><filename>{name}.png</filename>
<size><width>400</width><height>300</height><depth>3</depth></size><segmented>0</segmented>
{objects}</annotation>"""
_SYNTHETIC_OBJECT = """<object><name>{cls}</name><pose>Unspecified</pose><truncated>0</truncated>
<occluded>0</occluded><difficult>0</difficult><bndbox><xmin>{x}</xmin><ymin>{y}</ymin><xmax>{x2}</xmax>
<ymax>{y2}</ymax></bndbox></object>"""


def make_folder(out: Path, n_files: int) -> Path:
    """n_files annotations replicating the shared sample's XML (or synthetic ones without it),
    renamed maksssksksss<i>.xml with <filename> rewritten, plus empty placeholder images."""
    (out / "annotations").mkdir(parents=True)
    (out / "images").mkdir()
    sources = sorted((SHARED_SAMPLE / "annotations").glob("*.xml")) if SHARED_SAMPLE.is_dir() else []
    for i in range(n_files):
        name = f"maksssksksss{i}"
        if sources:
            text = sources[i % len(sources)].read_text(encoding="utf-8")
            start, end = text.index("<filename>") + 10, text.index("</filename>")
            text = text[:start] + f"{name}.png" + text[end:]
        else:
            objs = "".join(_SYNTHETIC_OBJECT.format(cls=("with_mask", "without_mask")[k % 2], x=10 + 40 * k,
                                                    y=20, x2=40 + 40 * k, y2=60) for k in range(1 + i % 5))
            text = _SYNTHETIC_XML.format(name=name, objects=objs)
        (out / "annotations" / f"{name}.xml").write_text(text, encoding="utf-8")
        (out / "images" / f"{name}.png").touch()
    return out


def tutorial_loop(ann_dir: Path) -> int:
    """The Face Mask tutorial's generate_target over every file (lists instead of tensors)."""
    from bs4 import BeautifulSoup

    n = 0
    for name in sorted(os.listdir(ann_dir)):
        with open(ann_dir / name) as f:
            soup = BeautifulSoup(f.read(), "html.parser")
        boxes, labels = [], []
        for obj in soup.find_all("object"):
            boxes.append([float(obj.find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")])
            labels.append(obj.find("name").text)
        n += len(boxes)
    return n


def timed(fn, repeat: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", nargs="?", help="existing VOC folder (default: generate one)")
    ap.add_argument("--files", type=int, default=853)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_voc_"))
    os.environ["DETBOARD_CACHE"] = str(work / "cache")  # a cold start really has no index
    try:
        folder = Path(args.folder) if args.folder else make_folder(work / "data", args.files)
        from detcore.data import voc

        ann_dir = voc.find_voc_layout(folder)[0]
        n_files = sum(1 for p in ann_dir.iterdir() if p.suffix.lower() == ".xml")
        t_soup, n_soup = timed(lambda: tutorial_loop(ann_dir))
        t_cold, parsed = timed(lambda: voc.load_voc_folder(folder))
        voc._MEMORY_INDEX.clear()  # what a new process sees: only the on-disk index
        t_disk, _ = timed(lambda: voc.load_voc_folder(folder))
        t_warm, warm = timed(lambda: voc.load_voc_folder(folder), repeat=5)
        if warm.num_objects + sum(p.kind in ("degenerate_box",) for p in warm.problems) != n_soup:
            print(f"warning: object counts differ (tutorial {n_soup}, detcore {warm.num_objects})")
        print(f"{n_files} annotation files, {parsed.num_objects} objects ({folder})")
        print(f"tutorial BeautifulSoup(html.parser) loop : {t_soup:7.3f} s   1.0x")
        print(f"detcore cold (no index)                 : {t_cold:7.3f} s   {t_soup / t_cold:5.1f}x faster  (target <= 0.5 s)")
        print(f"detcore warm, on-disk index (new proc)   : {t_disk:7.3f} s   {t_soup / t_disk:5.1f}x faster  (target <= 0.1 s)")
        print(f"detcore warm, in-process index (best of 5): {t_warm:7.3f} s   {t_soup / t_warm:5.1f}x faster  (target <= 0.1 s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
