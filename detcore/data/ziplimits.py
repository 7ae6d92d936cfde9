"""What a dataset archive may cost the server: entries, and the uploads folder's disk quota.

Hostile walk, finding 7. Used by :mod:`detcore.data.detect` (``extract_zip_safely``,
``import_uploaded_zip``); documented in docs/deploy.md ("Upload limits").

- **Entries.** Every file and every folder an archive would create counts against one limit: folder
  entries (``d/``) and the folders that member paths imply (``a/b/c.png`` makes ``a/`` and ``a/b/``),
  each once. Before ``zipfile`` parses the archive — it builds one object per central-directory record,
  ~550 bytes each, so a 200 MB upload listing 2.3 million folders costs over a gigabyte and tens of
  seconds before any check could run — :func:`count_records` walks the central directory's fixed-size
  record headers the way ``zipfile`` will, and stops one past the limit.
- **The uploads quota.** ``DETBOARD_UPLOADS_MAX_MB`` (default 20480 = 20 GiB) bounds what
  ``DATA/uploads/`` takes on disk, in allocated blocks (a folder takes a block, files are rounded up to
  blocks). An upload whose extraction would go above it is refused before anything is written, and
  the room left is also the streaming limit of the extraction, so headers that understate sizes cannot
  get past it.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO, Iterable

from detcore.errors import DataError

QUOTA_ENV = "DETBOARD_UPLOADS_MAX_MB"
DEFAULT_QUOTA_MB = 20 * 1024
BLOCK = 4096  # what a folder or the last partial block of a file takes on a typical filesystem

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record (22 bytes + comment)
_ZIP64_LOCATOR = struct.Struct("<4sLQL")  # 20 bytes, right before the EOCD
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")  # 56 bytes
_RECORD = 46  # fixed part of a central-directory file header
_MAX_COMMENT = 0xFFFF


def count_records(fp: BinaryIO, stop_after: int) -> int | None:
    """How many records the archive's central directory holds, counting at most ``stop_after + 1``.
    None when no end-of-central-directory record is found (not a zip: ``zipfile`` will say so).

    Reads the same bytes ``zipfile`` reads: the central directory ends where the (zip64) end record
    starts and is as long as that record says, whatever the record count field claims."""
    size = fp.seek(0, os.SEEK_END)
    tail_start = max(0, size - _EOCD.size - _MAX_COMMENT)
    fp.seek(tail_start)
    tail = fp.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        return None
    _, _, _, _, _, cd_size, _, _ = _EOCD.unpack_from(tail, at)
    end = tail_start + at
    locator = at - _ZIP64_LOCATOR.size
    if locator >= 0 and tail[locator:locator + 4] == b"PK\x06\x07":
        _, _, record_at, _ = _ZIP64_LOCATOR.unpack_from(tail, locator)
        fp.seek(record_at)
        record = fp.read(_ZIP64_EOCD.size)
        if len(record) == _ZIP64_EOCD.size and record[:4] == b"PK\x06\x06":
            cd_size = _ZIP64_EOCD.unpack(record)[8]
            end = record_at
    start = end - cd_size
    if start < 0:
        return None
    fp.seek(start)
    count = walked = 0
    while walked + _RECORD <= cd_size and count <= stop_after:
        head = fp.read(_RECORD)
        if len(head) < _RECORD or head[:4] != b"PK\x01\x02":
            break  # zipfile reports the damage
        name_len, extra_len, comment_len = struct.unpack_from("<3H", head, 28)
        fp.seek(name_len + extra_len + comment_len, os.SEEK_CUR)
        walked += _RECORD + name_len + extra_len + comment_len
        count += 1
    return count


def archive_entries(infos: Iterable[zipfile.ZipInfo], member_path) -> tuple[int, int]:
    """(files, folders) the archive would create: folder entries and the folders member paths imply,
    each counted once. ``member_path(name)`` is the extractor's cleaned relative path (None: refused)."""
    folders: set[str] = set()
    files = 0
    for info in infos:
        rel = member_path(info.filename)
        if not rel:
            continue
        parts = rel.split("/")
        if not info.is_dir():
            files += 1
            parts = parts[:-1]
        for k in range(len(parts), 0, -1):  # deepest first: once a folder is known, so are its parents
            prefix = "/".join(parts[:k])
            if prefix in folders:
                break
            folders.add(prefix)
    return files, len(folders)


def disk_needed(infos: Iterable[zipfile.ZipInfo], folders: int) -> int:
    """Bytes the extraction takes on disk by its headers: files rounded up to blocks, a block per folder
    and one for the extraction folder itself."""
    files = sum(-(-info.file_size // BLOCK) * BLOCK for info in infos if not info.is_dir())
    return files + (folders + 1) * BLOCK


def quota_bytes() -> int:
    """The uploads folder's quota from ``DETBOARD_UPLOADS_MAX_MB`` (a number of MiB, default 20480)."""
    raw = os.environ.get(QUOTA_ENV, "").strip()
    if not raw:
        return DEFAULT_QUOTA_MB * 2**20
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not (mb >= 0 and mb != float("inf")):
        raise DataError(QUOTA_ENV, f"{raw!r} is not a number of MiB; uploads are refused until it is fixed")
    return int(mb * 2**20)


def disk_usage(folder: Path) -> int:
    """Bytes ``folder`` takes on disk (allocated blocks of every file and folder below it; links not followed)."""
    total = 0
    stack = [folder]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed meanwhile (another session's staging folder)
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except OSError:
            continue
    return total


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB" if n % 2**20 else f"{n // 2**20:,} MiB"


class QuotaExceeded(DataError):
    """The archive's extraction would take the uploads folder above its quota."""
