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
import zipfile
from pathlib import Path

import torch

from detcore.errors import CheckpointError
from detcore.geometry import describe, same_geometry

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(error: BaseException) -> str:
    text = _ANSI.sub("", str(error)).strip()
    line = text.splitlines()[0].strip() if text else type(error).__name__
    return line[:200]


# What a file that is not a checkpoint usually is, by its first bytes (for the error message).
_MAGIC = [(b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
          (b"BM", "a BMP image"), (b"%PDF", "a PDF document"), (b"\x1f\x8b", "a gzip file")]
_ZIP = b"PK\x03\x04"
_PICKLE = 0x80  # pickle protocol 2+ opcode: torch's legacy (pre-zip) format starts with it


def _not_a_checkpoint(path: Path) -> str | None:
    """Why ``path`` cannot be a torch checkpoint, judged from its first bytes (and, for a zip, its member
    names: torch writes ``<name>/data.pkl``); None when it may be one."""
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "an empty file"
    if head.startswith(_ZIP):
        try:
            with zipfile.ZipFile(path) as zf:
                if any(n.endswith("/data.pkl") or n == "data.pkl" for n in zf.namelist()):
                    return None
        except (zipfile.BadZipFile, OSError):
            return None  # a damaged torch file: torch.load's own error says more
        return "a zip archive without a PyTorch model inside"
    if head[0] == _PICKLE:
        return None
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    text = head.lstrip()
    if text[:1] in (b"{", b"["):
        return "a JSON file"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return "not a PyTorch file"


def load_checkpoint(path: str | Path) -> dict:
    """Load one of our checkpoints (a dict with a ``model`` state dict) without running any code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file not found")
    try:
        what = _not_a_checkpoint(path)
    except OSError as e:
        raise CheckpointError(path, f"unreadable checkpoint ({_first_line(e)})") from None
    if what is not None:
        raise CheckpointError(path, f"not a checkpoint: {what}; give 'best', 'last' or a .pt file detboard wrote")
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


def check_matches_run(ckpt: dict, path: str | Path, *, classes: list[str], model_name: str,
                      geometry: dict | None = None) -> None:
    """Refuse a checkpoint made for another class list, another model or another geometry (input
    size and anchors, detcore/geometry.py), naming the mismatch."""
    ck_classes = ckpt.get("classes")
    if ck_classes is not None and list(ck_classes) != list(classes):
        raise CheckpointError(path, f"classes {list(ck_classes)} do not match the run's classes {list(classes)}")
    ck_model = (ckpt.get("config") or {}).get("model")
    if ck_model is not None and ck_model != model_name:
        raise CheckpointError(path, f"was trained as model {ck_model!r} but the run's config says {model_name!r}")
    ck_geometry = (ckpt.get("config") or {}).get("geometry")
    if "config" in ckpt and not same_geometry(ck_geometry, geometry):
        raise CheckpointError(path, f"was trained with {describe(ck_geometry)} but the run's config builds "
                                    f"{describe(geometry)}; predictions would be wrong, so it is refused")
