"""Small file helpers for the run directory: writes that a crash cannot leave half done."""

from __future__ import annotations

import os
from pathlib import Path


def atomic_write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so that a reader, or a run killed mid-write, sees either
    the old file or the new one, never a mix: write ``<path>.tmp``, flush it to disk, rename it."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
