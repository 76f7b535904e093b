"""Where a dataset's items come from: one record per file or folder it reads, with a cheap content hash.

Every file-backed dataset exposes ``dataset.sources``, a list of dicts (JSON-ready) with these keys:

========== =====================================================================================================
key        value
========== =====================================================================================================
``name``   the file or folder name (``train_reduced05.zip``, ``Test134Depth``, ``SUNRGBD``)
``path``   its absolute path on the machine that built the dataset
``kind``   ``zip``, ``file`` or ``folder``
``bytes``  size in bytes: the file's size, or the sum of the sizes of the files read in a folder
``items``  how many dataset items this source contributes (CSV rows, frames, image/depth pairs)
``hash``   a hex SHA-256 fingerprint, see ``hash_kind``
``hash_kind`` what was hashed (all cheap: nothing reads the image data):

           - ``zip-entries-sha256``: the SHA-256 of the lines ``name<TAB>crc32<TAB>size<LF>`` of every member of the
             zip, sorted by name. The central directory already holds the CRC-32 of every member's content, so this
             identifies the content (re-zipping with another compression or date gives the same hash) without
             reading the members.
           - ``files-sha256``: the SHA-256 of the lines ``relative/path<TAB>size<LF>`` of the files the dataset
             reads in the folder, sorted by path (names and sizes, not contents).
           - ``sha256``: the SHA-256 of the whole file (files up to 16 MiB).
           - ``head-tail-sha256``: the SHA-256 of the file size (decimal, then LF), its first MiB and its last MiB
             (larger single files such as the 2.8 GB labelled NYUv2 ``.mat``).
``settings`` (optional) the loader's choices that change the items (depth kind, interpolation, ...), so a run
           records them even when a spec leaves the defaults
========== =====================================================================================================

:func:`dataset_sources` reads the records through wrappers (``TransformedDataset``, ``Subset``, ``ConcatDataset``).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mlrd_core.errors import DataError

#: Files up to this size are hashed whole; larger ones by head, tail and size.
WHOLE_FILE_LIMIT = 16 * 2**20
#: Bytes read from each end of a large file.
HEAD_TAIL_BYTES = 2**20

Source = dict[str, Any]


def zip_source(path: Path, items: int, *, settings: Mapping[str, Any] | None = None) -> Source:
    """The record of a zip: its size and the SHA-256 of its members' names, CRC-32s and sizes."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = sorted((info.filename, info.CRC, info.file_size) for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"cannot read the central directory of {path}: {error}") from error
    digest = hashlib.sha256()
    for name, crc, size in entries:
        digest.update(f"{name}\t{crc:08x}\t{size}\n".encode())
    return _record(path, "zip", path.stat().st_size, items, digest.hexdigest(), "zip-entries-sha256", settings)


def file_source(path: Path, items: int, *, settings: Mapping[str, Any] | None = None) -> Source:
    """The record of one file: whole-file SHA-256 up to 16 MiB, else size + first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as stream:
            if size <= WHOLE_FILE_LIMIT:
                for block in iter(lambda: stream.read(2**20), b""):
                    digest.update(block)
                kind = "sha256"
            else:
                digest.update(f"{size}\n".encode())
                digest.update(stream.read(HEAD_TAIL_BYTES))
                stream.seek(size - HEAD_TAIL_BYTES)
                digest.update(stream.read(HEAD_TAIL_BYTES))
                kind = "head-tail-sha256"
    except OSError as error:
        raise DataError(f"cannot read {path} to fingerprint it: {error}") from error
    return _record(path, "file", size, items, digest.hexdigest(), kind, settings)


def folder_source(
    folder: Path, files: Iterable[Path], items: int, *, settings: Mapping[str, Any] | None = None
) -> Source:
    """The record of a folder: total size of ``files`` and the SHA-256 of their relative paths and sizes."""
    lines = []
    total = 0
    for file in files:
        try:
            size = file.stat().st_size
        except OSError as error:
            raise DataError(f"cannot stat {file} to fingerprint {folder}: {error}") from error
        total += size
        lines.append(f"{os.path.relpath(file, folder).replace(os.sep, '/')}\t{size}\n")
    digest = hashlib.sha256("".join(sorted(lines)).encode())
    return _record(folder, "folder", total, items, digest.hexdigest(), "files-sha256", settings)


def _record(
    path: Path,
    kind: str,
    size: int,
    items: int,
    digest: str,
    hash_kind: str,
    settings: Mapping[str, Any] | None,
) -> Source:
    record: Source = {
        "name": path.name,
        "path": str(path.resolve()),
        "kind": kind,
        "bytes": int(size),
        "items": int(items),
        "hash": digest,
        "hash_kind": hash_kind,
    }
    if settings:
        record["settings"] = dict(settings)
    return record


def dataset_sources(dataset: object) -> list[Source]:
    """``dataset.sources`` of ``dataset`` or of the dataset(s) it wraps; ``[]`` for generated data.

    Follows ``.dataset`` (``TransformedDataset``, ``torch.utils.data.Subset``) and ``.datasets``
    (``ConcatDataset``), so any wrapper of a file-backed dataset reports the files underneath.
    """
    seen: set[int] = set()
    out: list[Source] = []

    def visit(node: object) -> None:
        if node is None or id(node) in seen:
            return
        seen.add(id(node))
        sources = getattr(type(node), "sources", None)
        if sources is not None:
            out.extend(dict(s) for s in node.sources)  # type: ignore[attr-defined]
            return
        inner = getattr(node, "dataset", None)
        if inner is not None:
            visit(inner)
        for child in getattr(node, "datasets", None) or ():
            visit(child)

    visit(dataset)
    return out


__all__ = ["dataset_sources", "file_source", "folder_source", "zip_source"]
