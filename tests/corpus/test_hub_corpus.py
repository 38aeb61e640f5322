"""The bad-input corpus, part 3: hub responses on 127.0.0.1 (a stand-in answering what a broken
or hostile server might). Each case: one `SprintError` line, nothing written outside the store,
and a model already in the store left as it was."""

from __future__ import annotations

import json

import pytest

from sprint_desktop.core.errors import SprintError
from sprint_desktop.store.catalog import state_of
from sprint_desktop.store.download import download

from ..store.fake_hub import COMMIT, FakeHub, hub_entry
from .bad_inputs import one_line


def _info(siblings):
    return json.dumps({"id": "org/tiny", "sha": COMMIT, "siblings": siblings}).encode()


BAD_INFO = {
    "html instead of json": b"<html><body>Bad gateway</body></html>",
    "truncated json": b'{"id": "org/tiny", "siblings": [',
    "a list": b"[1, 2, 3]",
    "siblings not a list": json.dumps({"id": "org/tiny", "sha": COMMIT, "siblings": "all"}).encode(),
    "parent traversal": _info([{"rfilename": "../../outside.safetensors", "size": 10}]),
    "absolute path": _info([{"rfilename": "/etc/cron.d/x.safetensors", "size": 10}]),
    "nested traversal": _info([{"rfilename": "vae/../../../x/config.json", "size": 10}]),
    "petabyte file": _info([{"rfilename": "model_index.json", "size": 10**15}]),
    "size a string": _info([{"rfilename": "model_index.json", "size": "big"}]),
    "nested 100k": b"[" * 100_000 + b"]" * 100_000,
    "listed but absent": _info(
        [{"rfilename": "model_index.json", "size": 10}, {"rfilename": "vae/config.json"}]
    ),
}


pytestmark = pytest.mark.usefixtures("hub_online")


@pytest.mark.parametrize("case", sorted(BAD_INFO))
def test_hub_answer(case, tiny_model_dir, tmp_path):
    store = tmp_path / "store"
    with FakeHub("org/tiny", tiny_model_dir) as hub:
        hub.info_body = BAD_INFO[case]
        with pytest.raises(SprintError) as info:
            download(hub_entry(), root=store, endpoint=hub.url, timeout=5)
    one_line(str(info.value))
    outside = [p for p in tmp_path.rglob("*") if store not in p.parents and p != store]
    assert outside == []  # nothing written beside the store
    assert state_of(hub_entry(), store).state != "installed"


@pytest.mark.parametrize("status", [401, 403, 404, 429, 500, 503])
def test_hub_status(status, tiny_model_dir, tmp_path):
    with FakeHub("org/tiny", tiny_model_dir) as hub:
        hub.tree_status = status  # the listing fails
        hub.info_body = b"{}" if status == 404 else None
        try:
            download(hub_entry(), root=tmp_path, endpoint=hub.url, timeout=5)
        except SprintError as exc:
            one_line(str(exc))
        else:  # the client found another way to the files: then it must be complete and checked
            assert state_of(hub_entry(), tmp_path).state == "installed"


def test_a_hostile_hub_cannot_touch_an_installed_model(tiny_model_dir, tmp_path):
    store = tmp_path / "store"
    with FakeHub("org/tiny", tiny_model_dir) as hub:
        folder = download(hub_entry(), root=store, endpoint=hub.url)
        before = {p: p.read_bytes() for p in folder.rglob("*.safetensors")}
        hub.info_body = BAD_INFO["parent traversal"]
        with pytest.raises(SprintError):
            download(hub_entry(), root=store, endpoint=hub.url)
    assert {p: p.read_bytes() for p in folder.rglob("*.safetensors")} == before
