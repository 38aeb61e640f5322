"""The app takes its steps from the model (``default_steps``) until the user picks a value."""

from __future__ import annotations

import json
import shutil

from sprint_desktop.core.settings import load_settings
from sprint_desktop.ui.main_window import MainWindow


def test_the_steps_slider_starts_at_the_models_default_until_the_user_moves_it(
    qtbot, tmp_path, tiny_model_dir
):
    model = tmp_path / "tiny-one-step"
    shutil.copytree(tiny_model_dir, model)
    (model / "sprint_desktop.json").write_text(json.dumps({"default_steps": 1, "default_size": [32, 32]}))

    def window() -> MainWindow:
        w = MainWindow(config_dir=tmp_path / "c", data_dir=tmp_path / "d", model=str(model), offer_gpu=False)
        qtbot.addWidget(w)
        qtbot.waitUntil(lambda: w.workspace.info is not None, timeout=60_000)
        return w

    w = window()
    assert w.prompt_panel.steps.value() == 1 and w.workspace.params.request().steps == 1
    w.close()
    assert load_settings(tmp_path / "c" / "settings.json")[0].steps == 0  # still "the model's default"
    w = window()
    w.prompt_panel.steps.setValue(3)
    w.close()
    assert window().prompt_panel.steps.value() == 3  # the user's choice is kept
