from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sprint_desktop.core.errors import SprintError
from sprint_desktop.core.metadata import read_png_params, save_png


def test_round_trip(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (12, 10, 3), dtype=np.uint8)
    params = {
        "prompt": "a red circle — ünïcode",
        "steps": 2,
        "seed": 7,
        "width": 10,
        "height": 12,
        "guidance": 4.5,
        "model": "m",
        "backend": "torch",
    }
    path = save_png(img, tmp_path / "sub" / "x.png", params)
    read = read_png_params(path)
    for key, value in params.items():
        assert read[key] == value
    np.testing.assert_array_equal(np.asarray(Image.open(path)), img)
    assert not list((tmp_path / "sub").glob("*.tmp"))


def test_errors_are_clear(tmp_path):
    with pytest.raises(SprintError, match="no such file"):
        read_png_params(tmp_path / "missing.png")
    plain = tmp_path / "plain.png"
    Image.new("RGB", (4, 4)).save(plain)
    with pytest.raises(SprintError, match="not made by this app"):
        read_png_params(plain)
    jpg = tmp_path / "a.jpg"
    Image.new("RGB", (4, 4)).save(jpg)
    with pytest.raises(SprintError, match="not a PNG"):
        read_png_params(jpg)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(SprintError, match="not a readable image"):
        read_png_params(junk)


def test_saved_png_gets_the_usual_file_mode_not_mkstemps_0600(tmp_path):
    import os
    import stat

    from sprint_desktop.core import metadata

    path = metadata.save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.png", {"prompt": "p"})
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
