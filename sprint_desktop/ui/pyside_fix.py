"""A guard against a reference-count bug in PySide6 6.12: every signal delivered to a Python slot
drops one reference to ``True`` that it never took. On Python 3.11 ``True`` is an ordinary object,
so after some thousands of signals its count reaches zero and the interpreter aborts ("Fatal Python
error: bool_dealloc"), at exit or in the middle of a session. With PyTorch imported the count is in
the tens of thousands and the crash comes late; on ONNX Runtime alone (the packaged app, the "auto"
backend) it comes after a few hundred images. Python 3.12+ makes ``True`` immortal, as this does.

`guard_bools` gives ``True`` and ``False`` a reference count so large that no session can use it up
(2**40 references: a signal a microsecond for twelve days), on the interpreters that need it.
"""

from __future__ import annotations

import ctypes
import sys

GUARD = 2**40


def guard_bools() -> bool:
    """Make ``True`` and ``False`` effectively immortal on CPython < 3.12; True when it did."""
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    for value in (True, False):
        refcount = ctypes.c_ssize_t.from_address(id(value))  # ob_refcnt is the object's first field
        if refcount.value < GUARD:
            refcount.value += GUARD
    return True
