"""The CLI and the app at full parity (issue 10): every TrainConfig setting can be set both in the Train
form and by a `train` flag. The form's settings come from rendering the real Train page (widget keys
``train_<preset>_<field>``, ui/train_options.py), the CLI's from the real argparse parser
(detcore/commands/train.py ``flag_fields``). A setting only one side has fails the test.

Adding a setting: a TrainConfig field, a flag in ``flag_fields``, a form widget keyed by the field —
or, while one side is still missing, one line in ``NOT_IN_FORM`` / ``NOT_IN_CLI`` with the reason.
An entry that is no longer true fails too, so the lists cannot go stale.
"""

from __future__ import annotations

import dataclasses

import pytest

from detcore.cli import build_parser
from detcore.commands.train import NOT_SETTINGS, flag_fields
from detcore.train.config import AUGMENT_DEFAULTS, TrainConfig
from ui.train_options import field_of_key

PRESET = "demo-cpu"
# Set in the app, but not by a Train-form widget.
SET_ELSEWHERE_IN_APP = {"data": "the Data page's current dataset (shown in the form's caption)"}
# One side does not have it yet (reason); keep one line per setting.
NOT_IN_FORM = {
    "min_size": "torchvision's raw resize knob; the form's Input size field (input_size) sets the input",
    "max_size": "torchvision's raw resize knob; the form's Input size field (input_size) sets the input",
    "max_input_size": "the cap for input_size auto; presets set it (--max-input-size on the CLI)",
    "geometry": "not a setting: the fitted input size and anchors, written when a run starts",
}
NOT_IN_CLI: dict[str, str] = {"geometry": "not a setting: the fitted input size and anchors, written when a run starts"}


def config_settings() -> set[str]:
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"augment"}
    return fields | {f"augment.{key}" for key in AUGMENT_DEFAULTS}


def train_actions(parser=None) -> list:
    parser = parser or build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return list(sub.choices["train"]._actions)


def cli_settings(actions) -> set[str]:
    mapping = flag_fields()
    undeclared = sorted(a.dest for a in actions if a.dest not in mapping and a.dest not in NOT_SETTINGS)
    assert not undeclared, f"train flags that set no declared setting: {undeclared} (add them to flag_fields)"
    return {mapping[a.dest] for a in actions if a.dest in mapping}


def _walk(node):
    yield node
    children = getattr(node, "children", None)
    if isinstance(children, dict):
        for child in children.values():
            yield from _walk(child)


def form_settings(at) -> set[str]:
    keys = {getattr(n, "key", None) for n in _walk(at._tree)} - {None}
    settings = {field_of_key(k, PRESET) for k in keys} - {None}
    if "train_preset" in keys:
        settings.add("preset")
    return settings


def parity_gaps(form: set[str], cli: set[str], config: set[str]) -> list[str]:
    """Every way the two sides disagree, one line each (empty: at parity)."""
    gaps = [f"{s}: the form sets it but TrainConfig has no such setting" for s in sorted(form - config)]
    gaps += [f"{s}: a flag sets it but TrainConfig has no such setting" for s in sorted(cli - config)]
    app_side = form | set(SET_ELSEWHERE_IN_APP)
    for s in sorted(config):
        in_app, in_cli = s in app_side, s in cli
        if not in_app and s not in NOT_IN_FORM:
            gaps.append(f"{s}: only the CLI sets it (no Train form field)" if in_cli else f"{s}: neither side sets it")
        if not in_cli and s not in NOT_IN_CLI:
            gaps.append(f"{s}: only the app sets it (no train flag)" if in_app else f"{s}: neither side sets it")
        if in_app and s in NOT_IN_FORM:
            gaps.append(f"{s}: the form has it now — remove it from NOT_IN_FORM")
        if in_cli and s in NOT_IN_CLI:
            gaps.append(f"{s}: the CLI has it now — remove it from NOT_IN_CLI")
    return sorted(set(gaps))


@pytest.fixture
def train_form(app):
    at = app.run()
    at.switch_page("pages/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


REMOVED_FLAGS = [("--schedule", "schedule"), ("--rotate", "augment.rotate"), ("--split-n", "split_n"),
                 ("--val-fraction", "val_fraction"), ("--weight-decay", "weight_decay")]


def test_the_form_and_the_flags_set_the_same_settings_and_a_removed_flag_is_caught(train_form):
    form = form_settings(train_form)
    # sanity: the walk really saw the form (a broken walk must not pass as "parity")
    assert {"model", "epochs", "augment.rotate", "split_n", "val_fraction", "schedule", "weights"} <= form
    assert parity_gaps(form, cli_settings(train_actions()), config_settings()) == []
    for flag, setting in REMOVED_FLAGS:  # the page is rendered once; each flag is taken away in turn
        actions = [a for a in train_actions() if flag not in a.option_strings]
        gaps = parity_gaps(form, cli_settings(actions), config_settings())
        assert gaps == [f"{setting}: only the app sets it (no train flag)"], flag


def test_a_flag_without_a_declared_setting_is_caught():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    sub.choices["train"].add_argument("--mystery", type=float)
    with pytest.raises(AssertionError, match="mystery"):
        cli_settings(train_actions(parser))


def test_a_missing_form_field_breaks_parity():
    form = (config_settings() - {"augment.color_jitter", *NOT_IN_FORM}) - set(SET_ELSEWHERE_IN_APP)
    gaps = parity_gaps(form, config_settings() - set(NOT_IN_CLI), config_settings())
    assert gaps == ["augment.color_jitter: only the CLI sets it (no Train form field)"]
