from __future__ import annotations

import json

import numpy as np
import pytest

from sprint_desktop.core.gallery import Gallery
from sprint_desktop.core.settings import Settings, load_settings, save_settings
from sprint_desktop.core.sketch import edges_to_sketch


def test_settings_round_trip(tmp_path):
    path = tmp_path / "cfg" / "settings.json"
    s = Settings(
        theme="dark", steps=3, last_prompt="a red circle", recent_prompts=["x"], compile="reduce-overhead"
    )
    save_settings(s, path)
    loaded, notice = load_settings(path)
    assert notice is None and loaded == s
    assert json.loads(path.read_text())["version"] == 1
    assert not list(path.parent.glob("*.tmp"))


def test_missing_settings_are_defaults(tmp_path):
    assert load_settings(tmp_path / "none.json") == (Settings(), None)


def test_corrupt_settings_are_backed_up_and_replaced(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{broken")
    loaded, notice = load_settings(path)
    assert loaded == Settings()
    assert "could not be read" in notice and "corrupt" in notice
    backups = list(tmp_path.glob("settings.json.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text() == "{broken"


def test_bad_values_fall_back_per_field(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "version": 1,
                "settings": {"steps": 9, "theme": "pink", "guidance": 3, "compile": "max", "future": 1},
            }
        )
    )
    loaded, notice = load_settings(path)
    assert notice is None
    assert (loaded.steps, loaded.theme, loaded.guidance) == (0, "light", 3.0)  # 0: the model's default
    assert loaded.compile == "off"


def test_gallery_add_list_delete_and_survive_reopen(tmp_path):
    g = Gallery(tmp_path / "gallery")
    img = np.zeros((8, 8, 3), np.uint8)
    a = g.add(img, {"prompt": "a red circle", "seed": 1})
    b = g.add(img, {"prompt": "a blue square", "seed": 1})
    assert a.path != b.path and a.path.exists()
    assert [i.prompt for i in g.items()] == ["a blue square", "a red circle"]
    g.close()
    g2 = Gallery(tmp_path / "gallery")
    assert len(g2.items()) == 2
    g2.delete(g2.items()[0].id)
    assert [i.prompt for i in g2.items()] == ["a red circle"]
    assert not b.path.exists()


def test_corrupt_gallery_database_is_rebuilt_from_the_pngs(tmp_path):
    g = Gallery(tmp_path / "g")
    g.add(np.zeros((8, 8, 3), np.uint8), {"prompt": "kept", "seed": 3})
    g.close()
    (tmp_path / "g" / "gallery.sqlite3").write_bytes(b"this is not a database" * 100)
    g2 = Gallery(tmp_path / "g")
    assert "rebuilt from 1 image" in g2.notice
    assert [i.prompt for i in g2.items()] == ["kept"]


def test_edges_to_sketch():
    img = np.full((32, 32, 3), 255, np.uint8)
    img[8:24, 8:24] = (200, 30, 30)
    sk = edges_to_sketch(img)
    dark = sk[..., 0] == 0
    assert dark[8, 16] or dark[7, 16]  # the square's top edge
    assert not dark[16, 16] and not dark[0, 0]
    assert (edges_to_sketch(np.full((8, 8, 3), 128, np.uint8)) == 255).all()


def test_prepare_control_keeps_sketches_and_extracts_edges_from_pictures():
    from sprint_desktop.core.sketch import looks_like_sketch, prepare_control

    sketch = np.full((32, 32, 3), 255, np.uint8)
    sketch[8:24, 8] = 10
    assert looks_like_sketch(sketch)
    np.testing.assert_array_equal(prepare_control(sketch), sketch)
    photo = np.zeros((32, 32, 3), np.uint8)
    photo[..., 0] = 200
    photo[8:24, 8:24] = (20, 40, 220)
    assert not looks_like_sketch(photo)
    edges = prepare_control(photo)
    assert looks_like_sketch(edges) and (edges == 0).any()


def test_control_pixels_are_the_encoder_input_of_both_backends():
    from sprint_desktop.core.sketch import control_pixels

    sketch = np.full((16, 24, 3), 255, np.uint8)
    sketch[4:12, 6] = 0
    pixels = control_pixels(sketch, 24, 16)
    assert pixels.shape == (1, 3, 16, 24) and pixels.dtype == np.float32
    assert pixels[0, :, 0, 0].tolist() == [1.0, 1.0, 1.0] and pixels[0, 0, 5, 6] == -1.0
    bigger = control_pixels(np.kron(sketch, np.ones((2, 2, 1), np.uint8)), 24, 16)  # resized back
    assert bigger.shape == (1, 3, 16, 24) and np.abs(bigger - pixels).max() < 0.5


def test_settings_that_are_not_an_object_are_replaced(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 1, "settings": []}))
    loaded, notice = load_settings(path)
    assert loaded == Settings() and "could not be read" in notice


def test_a_newer_apps_settings_keep_what_this_version_knows(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps({"version": 99, "settings": {"theme": "dark", "steps": 4, "new_feature": True}})
    )
    loaded, notice = load_settings(path)
    assert notice is None and (loaded.theme, loaded.steps) == ("dark", 4)
    assert path.exists()  # not moved aside


def test_gallery_save_failure_keeps_the_png_and_says_so(tmp_path):
    import sqlite3

    from sprint_desktop.core.errors import SprintError

    g = Gallery(tmp_path / "g")
    g._db.close()
    g._db = sqlite3.connect(":memory:")  # an index without the table: inserting fails
    with pytest.raises(SprintError, match="saved but could not be added"):
        g.add(np.zeros((4, 4, 3), np.uint8), {"prompt": "x", "seed": 1})
    assert list((tmp_path / "g").glob("*.png"))
