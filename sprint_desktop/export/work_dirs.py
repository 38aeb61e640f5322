"""Work folders for the exporter and the binder: made under a name that says which process writes
them, cleaned when that process is gone, and published by one atomic rename.

A work folder is ``<prefix><host>-<pid>-<random>`` next to its target (``<host>``: a short hash of
this machine's name). `remove_stale` deletes the ones whose process is no longer alive on this
machine, and any (another machine's on a shared disk, an older app's without a pid) in which
nothing was written for `STALE_AFTER_S`; a folder a live process is writing is never touched.

`publish` renames a finished work folder to its target. When another process got there first (two
exports or bindings of the same model at once), the target it made is kept if ``accept`` finds it
good, and this process's copy is dropped: the loser uses the winner's result, nobody removes a
folder another process may already be reading.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

STALE_AFTER_S = 24 * 3600
"""A work folder in which nothing was written for a day is left over, whoever made it."""


def host_tag() -> str:
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]


def make_work_dir(parent: Path, prefix: str) -> Path:
    """A new empty folder in ``parent`` named for this process (see the module's docstring)."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{host_tag()}-{os.getpid()}-", dir=parent))


def owner(folder: Path, prefix: str) -> tuple[str, int] | None:
    """``(host tag, pid)`` from a work folder's name, or None for a name without them."""
    parts = folder.name[len(prefix) :].split("-")
    if len(parts) < 3 or len(parts[0]) != 8 or not parts[1].isdigit():
        return None
    return parts[0], int(parts[1])


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (True when that cannot be told)."""
    if pid <= 0:
        return False
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by another user
    return True


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    kernel32 = getattr(ctypes, "windll").kernel32  # noqa: B009 (windll exists on Windows only)
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # ERROR_ACCESS_DENIED: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def last_write(folder: Path) -> float:
    """The newest modification time of ``folder`` and everything in it."""
    newest = folder.stat().st_mtime
    for parent, dirs, names in os.walk(folder):
        for name in [*dirs, *names]:
            try:
                newest = max(newest, os.lstat(os.path.join(parent, name)).st_mtime)
            except OSError:
                continue
    return newest


def is_stale(folder: Path, prefix: str, now: float | None = None) -> bool:
    """Left over by a process that is gone, or not written for `STALE_AFTER_S` (see the module)."""
    who = owner(folder, prefix)
    if who is not None and who[0] == host_tag() and who[1] != os.getpid() and not pid_alive(who[1]):
        return True
    try:
        return (now if now is not None else time.time()) - last_write(folder) > STALE_AFTER_S
    except OSError:
        return False  # gone already, or unreadable: not ours to judge


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    """Delete the stale work folders ``<prefix>*`` in ``parent``; return them."""
    removed = []
    for folder in sorted(parent.glob(f"{prefix}*")) if parent.is_dir() else []:
        if folder.is_dir() and not folder.is_symlink() and is_stale(folder, prefix):
            log.info("removing %s, left by an export or binding that did not finish", folder)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def publish(work: Path, target: Path, accept: Callable[[Path], bool], prefix: str) -> Path:
    """Rename ``work`` to ``target`` and return ``target``. When ``target`` exists already (another
    process finished first, or an earlier folder was found bad), it is kept if ``accept(target)`` and
    ``work`` is removed; otherwise it is moved aside under ``prefix`` and replaced."""
    for _ in range(3):
        try:
            os.rename(work, target)
            return target
        except OSError:
            if not target.exists():
                raise
        if accept(target):
            shutil.rmtree(work, ignore_errors=True)
            return target
        aside = make_work_dir(target.parent, prefix)
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile
            os.rename(target, aside / target.name)  # one rename: a reader sees the old or nothing
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(errno.EEXIST, f"{target} keeps being replaced by another process")
