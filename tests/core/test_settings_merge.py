"""Two app instances on one settings file: a save writes only what this instance changed, over
what is on disk now; nothing another instance changed is lost."""

from __future__ import annotations

import json
from dataclasses import asdict

from sprint_desktop.core.settings import Settings, load_settings, save_settings


def _copy(settings: Settings) -> Settings:
    return Settings(**asdict(settings))


def test_two_instances_keep_each_others_changes(tmp_path):
    path = tmp_path / "settings.json"
    save_settings(Settings(theme="light", seed=1), path)
    a, _ = load_settings(path)
    b, _ = load_settings(path)
    a_base, b_base = _copy(a), _copy(b)
    a.theme = "dark"  # instance A changes the theme...
    save_settings(a, path, base=a_base)
    a_base = _copy(a)
    b.seed, b.recent_prompts = 77, ["a cat"]  # ...B, which never saw that, changes the seed
    save_settings(b, path, base=b_base)
    b_base = _copy(b)
    on_disk, notice = load_settings(path)
    assert notice is None
    assert (on_disk.theme, on_disk.seed, on_disk.recent_prompts) == ("dark", 77, ["a cat"])
    a.seed = 5  # a field both changed: the later save wins for it, the others stay
    save_settings(a, path, base=a_base)
    on_disk, _ = load_settings(path)
    assert (on_disk.theme, on_disk.seed, on_disk.recent_prompts) == ("dark", 5, ["a cat"])


def test_without_a_base_or_a_readable_file_every_field_is_written(tmp_path):
    path = tmp_path / "settings.json"
    save_settings(Settings(theme="dark"), path)
    save_settings(Settings(seed=3), path)  # no base: the whole settings, as before
    assert (load_settings(path)[0].theme, load_settings(path)[0].seed) == ("light", 3)
    path.write_text("{{{ not json")
    save_settings(Settings(seed=4), path, base=Settings())
    assert load_settings(path) == (Settings(seed=4), None)


def test_a_newer_apps_fields_survive_a_save(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 2, "settings": {"seed": 9, "future_option": [1, 2]}}))
    mine, _ = load_settings(path)
    base = _copy(mine)
    mine.theme = "dark"
    save_settings(mine, path, base=base)
    saved = json.loads(path.read_text())["settings"]
    assert saved["future_option"] == [1, 2] and saved["theme"] == "dark" and saved["seed"] == 9
