"""Qt tests collect garbage on the GUI thread only, as the app does (`ui.gc_guard`): a cycle holding
a Qt object collected on a worker thread crashed a full run."""

from __future__ import annotations

import gc

import pytest


@pytest.fixture(autouse=True)
def _collect_on_the_gui_thread():
    gc.disable()
    try:
        yield
    finally:
        gc.collect()
        gc.enable()
