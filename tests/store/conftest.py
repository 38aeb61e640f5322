"""The tiny model as a hub download: its catalog entry and a hub stand-in on 127.0.0.1 serving it."""

from __future__ import annotations

import pytest

from .fake_hub import FakeHub, hub_entry


@pytest.fixture
def entry():
    return hub_entry()


@pytest.fixture
def hub(tiny_model_dir):
    with FakeHub("org/tiny", tiny_model_dir) as h:
        yield h
