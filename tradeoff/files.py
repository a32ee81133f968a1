"""Atomic file writes: a reader, or a rerun after SIGKILL, sees the old file or the new one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def check_writable(directory: Path) -> None:
    """Raise OSError unless a file can be created in ``directory`` (and is then removed).

    Asking ``os.access`` is not enough: it answers yes to root for read-only mounts and for
    pseudo-file systems such as /proc and /sys, where creating a file still fails. So this
    creates the same kind of temporary file that ``write_atomically`` does.
    """
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tradeoff-probe.", suffix=".tmp")
    os.close(fd)
    os.unlink(tmp)


def write_atomically(path: Path, write: Callable[[IO], None], binary: bool = False) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, fsync, rename over ``path``.

    The temporary file is removed if anything fails, so no half-written file is ever left; one
    left by a process killed outright is removed by the next write to the same path. A symbolic
    link is written through to its target; a target that is not a regular file (a device such
    as /dev/null, a FIFO) is written directly, since renaming over it would replace it.
    """
    # Write through a symbolic link to its target rather than replace the link itself.
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        # A device or a pipe (/dev/null, a FIFO): renaming over it would replace the node
        # itself (as root, /dev/null too), and nothing can be half-written into it anyway.
        with open(path, "wb" if binary else "w") as handle:
            write(handle)
        return
    # A writer killed by SIGKILL cannot remove its temporary file: clear such leftovers first.
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp makes the file private (0600); give it the mode an ordinary open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb" if binary else "w") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
