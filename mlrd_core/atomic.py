"""Atomic file replacement: readers see the old file or the new one, never a partial write.

One rule for every file the project rewrites in place (run-folder JSON, checkpoints, tables, reports, exports): the
new content goes to a temporary file beside the target, named after the process and thread so that concurrent
writers (two coordinators rendering the same tables, say) never rename each other's half-written file, and is then
renamed over the target. On an error the temporary file is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, hidden: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an error, rename it over ``path``.

    ``hidden`` starts the temporary name with a dot (for folders that other tools list, such as run folders).
    """
    target = Path(path)
    prefix = "." if hidden else ""
    tmp = target.with_name(f"{prefix}{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, hidden: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_path`)."""
    with atomic_path(path, hidden=hidden) as tmp:
        tmp.write_text(text, encoding="utf-8")
