"""docs/architecture.md stays true: the torch-free modules import no torch, the model catalog and the
builders agree, every module is listed, and each run-folder concept has one owner (detcore.train.runs)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"

TORCH_FREE = [
    "detcore.structures", "detcore.errors", "detcore.atomic", "detcore.paths", "detcore.catalog", "detcore.viz",
    "detcore.cli", "detcore.commands.data", "detcore.commands.train", "detcore.commands.evaluate",
    "detcore.commands.predict", "detcore.data.voc", "detcore.data.coco", "detcore.data.pennfudan",
    "detcore.data.detect", "detcore.data.quality", "detcore.data.stats", "detcore.data.splits",
    "detcore.data.images", "detcore.data.demo", "detcore.data.yolo", "detcore.data.convert", "detcore.data.ziplimits",
    "detcore.metrics", "detcore.metrics.coco",
    "detcore.metrics.result", "detcore.metrics.report", "detcore.metrics.coco_files", "detcore.train.config",
    "detcore.train.presets", "detcore.train.runs", "detcore.train.state", "detcore.train.jobs",
    "detcore.train.supervise", "detcore.train.jobqueue", "ui.loaders",
    "detcore.train.split_plan", "detcore.metrics.detailed", "detcore.metrics.validation",
    "detcore.compare", "detcore.compare_figures", "detcore.html_report", "detcore.speed", "detcore.metrics.paired",
    "detcore.commands.compare", "ui.compare", "ui.report", "ui.live",
    "detcore.geometry", "detcore.fitcheck", "detcore.train.budget",
]


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_torch_free_modules_import_no_torch():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in TORCH_FREE)
            + "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    assert _python(code) == "[]"


@pytest.mark.parametrize("command", ["inspect", "evaluate", "predict", "train", "compare", "report"])
def test_cli_help_imports_no_torch(command):
    code = ("import contextlib, io, sys\nfrom detcore.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    try:\n        main([{command!r}, '--help'])\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    assert _python(code) == "False"


def test_catalog_and_builders_agree():
    from detcore.catalog import MODELS
    from detcore.models import _builders, list_models

    builders = _builders()
    assert set(builders) == {m.name for m in MODELS}
    for info in MODELS:
        _, coco, backbone = builders[info.name]
        assert info.coco == (coco is not None), info.name
        assert info.backbone == (backbone is not None), info.name
    assert [s.name for s in list_models()] == [m.name for m in MODELS]


def test_every_module_is_listed_in_the_architecture_doc():
    text = DOC.read_text(encoding="utf-8")
    for folder in ("detcore", "ui", "pages"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name in ("__init__.py", "__main__.py"):
                continue
            assert f"{path.name}" in text or path.stem in text, f"{path.relative_to(REPO)} is not in docs/architecture.md"


def test_nothing_cites_a_document_outside_the_repository():
    outside = "DESIGN" + ".md"  # the founding brief; built here so this file does not cite it either
    offenders = [str(p.relative_to(REPO)) for p in [*REPO.glob("**/*.py"), *REPO.glob("**/*.md")]
                 if ".venv" not in p.parts and outside in p.read_text(encoding="utf-8", errors="ignore")]
    assert offenders == []


def _string_literals(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_run_folder_concepts_have_one_owner():
    """File names of the run folder and the status words appear as code only in detcore/train/runs.py."""
    owned = re.compile(r"^(best|last)\.pt$|^(thresholds|config|classes|split)\.json$|^events\.jsonl$|"
                       r"^(running|completed|stopped|failed|interrupted|unreadable)$")
    offenders = []
    for folder in ("detcore", "ui", "pages"):
        for path in (REPO / folder).rglob("*.py"):
            if path == REPO / "detcore" / "train" / "runs.py":
                continue
            offenders += [f"{path.relative_to(REPO)}: {s!r}" for s in _string_literals(path) if owned.match(s)]
    allowed = {"detcore/cli.py: 'interrupted'"}  # the CLI's own Ctrl-C message, not a run status
    assert [o for o in offenders if o not in allowed] == []
