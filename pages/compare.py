"""Compare page: two or more runs evaluated on the same images — per-class differences with paired
bootstrap intervals, overlaid curves, training curves on one time axis, size and speed, and the
images where they disagree (numbers from detcore/compare.py, the same as `python -m detcore compare`)."""

from __future__ import annotations

from ui.compare import (curves_ui, load_comparison_ui, overview_ui, per_class_ui, pick_runs_ui, side_by_side_ui,
                        training_ui)
from ui.report import compare_report_ui
from ui.shell import page_shell

page_shell("Compare")
run_dirs, part = pick_runs_ui()
comparison = load_comparison_ui(run_dirs, part)
overview_ui(comparison)
per_class_ui(comparison)
curves_ui(comparison)
training_ui(comparison)
side_by_side_ui(comparison)
compare_report_ui(comparison)
