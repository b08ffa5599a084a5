"""Folder walking: a stable order, each file once, no symlink loops, nothing outside the root.

Why so careful: people point docqa at folders they did not curate. A symlink loop must not
recurse forever, a link to ``/`` must not pull in the whole disk, and a FIFO must never be opened
(reading one blocks until a writer appears).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    """One thing found under a root: a regular file to load, or something to report as skipped."""

    path: Path
    skip_reason: str = ""
    key: tuple[int, int] | None = None  # (st_dev, st_ino): identity of the file, to read it once


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def walk(root: Path, *, follow_outside: bool = False) -> Iterator[Entry]:
    """Yield the regular files under ``root``, and the things to report as skipped.

    The order is stable: a folder's files in name order, then its sub-folders the same way.

    Hidden entries (names starting with ".") are passed over silently: ``.git`` and editor
    files are not documents, and listing each as skipped would bury the statuses that matter.
    Symlinks are followed while their target stays inside ``root`` (or anywhere with
    ``follow_outside=True``); a directory already being walked is never entered again.
    """
    real_root = root.resolve()
    root_stat = root.stat()
    # Directories entered so far; a link back to one of them is a loop or a second path.
    seen_dirs: set[tuple[int, int]] = {(root_stat.st_dev, root_stat.st_ino)}
    stack: list[Path] = [root]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Entry(directory, f"Cannot list folder: {exc.strerror or exc}.")
            continue
        subdirs: list[Path] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            is_link = entry.is_symlink()
            if is_link:
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):  # RuntimeError: a loop, on older Pythons
                    yield Entry(path, "Broken or looping symbolic link.")
                    continue
                if not follow_outside and not _inside(target, real_root):
                    yield Entry(path, f"Symbolic link points outside the folder (to {target}).")
                    continue
            try:
                # The directory entry's own stat (follows a link, like ``Path.stat``).
                st = entry.stat()
            except OSError as exc:
                yield Entry(path, f"Cannot read file information: {exc.strerror or exc}.")
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                if key in seen_dirs:
                    if is_link:
                        yield Entry(path, "Symbolic link to a folder already read (a loop?).")
                    continue
                seen_dirs.add(key)
                subdirs.append(path)
            elif stat.S_ISREG(st.st_mode):
                yield Entry(path, key=key)
            else:
                yield Entry(path, f"Not a regular file ({_kind(st.st_mode)}).")
        # Reversed onto the stack so that sub-folders are walked in name order.
        stack.extend(reversed(subdirs))
