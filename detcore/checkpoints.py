"""Reading checkpoints safely — the one place a ``.pt`` file of ours is opened.

``torch.load(..., weights_only=True)`` only: a crafted pickle cannot run code. Torch's own error
for such a file is many lines long, carries terminal colour codes and advises re-running with
``weights_only=False`` — which would run the payload — so we replace it with one plain sentence.
Both the Predictor and ``train --resume`` go through here, and both check that the checkpoint
belongs to the run (same class list, same model).
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

from detcore.errors import CheckpointError

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(error: BaseException) -> str:
    text = _ANSI.sub("", str(error)).strip()
    line = text.splitlines()[0].strip() if text else type(error).__name__
    return line[:200]


def load_checkpoint(path: str | Path) -> dict:
    """Load one of our checkpoints (a dict with a ``model`` state dict) without running any code."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(path, "refused: it holds objects a weights-only load does not allow (a crafted or "
                                    "foreign pickle); only checkpoints written by detboard can be loaded") from None
    except Exception as e:  # truncated file, not a torch file at all, unreadable
        raise CheckpointError(path, f"unreadable checkpoint ({_first_line(e)})") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict):
        raise CheckpointError(path, "is not a detboard checkpoint (no 'model' state dict)")
    return ckpt


def check_matches_run(ckpt: dict, path: str | Path, *, classes: list[str], model_name: str) -> None:
    """Refuse a checkpoint made for another class list or another model, naming the mismatch."""
    ck_classes = ckpt.get("classes")
    if ck_classes is not None and list(ck_classes) != list(classes):
        raise CheckpointError(path, f"classes {list(ck_classes)} do not match the run's classes {list(classes)}")
    ck_model = (ckpt.get("config") or {}).get("model")
    if ck_model is not None and ck_model != model_name:
        raise CheckpointError(path, f"was trained as model {ck_model!r} but the run's config says {model_name!r}")
