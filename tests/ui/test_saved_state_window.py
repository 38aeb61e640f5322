"""Issue #13 item 1: the window starts whatever its own saved state says (offscreen, real Qt)."""

from __future__ import annotations

import json

import numpy as np

from sprint_desktop.core.gallery import Gallery
from sprint_desktop.ui.main_window import MainWindow


def test_the_window_starts_with_an_out_of_range_seed_and_a_damaged_gallery_row(qtbot, tmp_path):
    config, data = tmp_path / "config", tmp_path / "data"
    config.mkdir()
    (config / "settings.json").write_text(json.dumps({"version": 1, "settings": {"seed": -(2**70)}}))
    g = Gallery(data / "gallery")
    kept = g.add(np.zeros((8, 8, 3), np.uint8), {"prompt": "kept", "seed": 1})
    bad = g.add(np.zeros((8, 8, 3), np.uint8), {"prompt": "bad", "seed": 2})
    g._db.execute("UPDATE images SET params = '{oops' WHERE id = ?", (bad.id,))
    g._db.commit()
    g.close()
    w = MainWindow(config_dir=config, data_dir=data, model=str(tmp_path / "no-model"), offer_gpu=False)
    qtbot.addWidget(w)
    assert w.prompt_panel.seed.text() == "0" and w.workspace.params.seed == 0
    assert [i.prompt for i in w.workspace.gallery.items()] == ["kept"] and w.strip.count() == 1
    assert kept.path.exists() and bad.path.exists()
    w.close()
