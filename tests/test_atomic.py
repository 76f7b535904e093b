"""mlrd_core.atomic: the one rule by which files are rewritten in place."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mlrd_core.atomic import atomic_path, write_text_atomic


def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "table.md"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_concurrent_writers_never_rename_each_others_file(tmp_path: Path) -> None:
    """Threads (and processes: the name carries the pid) writing the same target each get their own temporary file,
    so every rename succeeds and the target ends as one writer's whole text (a shared ``.tmp`` name raced here)."""
    target = tmp_path / "tiny.csv"
    texts = [f"writer {i}\n" * 2000 for i in range(8)]
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            for _ in range(20):
                write_text_atomic(target, text)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_text() in texts
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.csv"]


def test_hidden_temporary_names_start_with_a_dot(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "result.json", hidden=True) as tmp:
        assert tmp.name.startswith(".result.json.") and tmp.parent == tmp_path
        tmp.write_text("{}")
    assert (tmp_path / "result.json").read_text() == "{}"
