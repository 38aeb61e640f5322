"""The fault pass: kill -9 during a save, an export and a download; a full disk (RLIMIT_FSIZE, and
a 512 KB tmpfs where this machine lets us mount one); read-only folders; two app processes at once.
After each: nothing the user made is lost, and nothing half-written is used."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sprint_desktop.core.errors import SprintError
from sprint_desktop.core.gallery import Gallery
from sprint_desktop.core.metadata import read_png_params
from sprint_desktop.core.settings import Settings, load_settings, save_settings

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}


def spawn(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def kill_when(proc: subprocess.Popen, ready, timeout: float = 120) -> None:
    """kill -9 ``proc`` as soon as ``ready()`` is true (polled every 10 ms)."""
    end = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def check_gallery_intact(folder: Path, at_least: int) -> int:
    """Every PNG under a final name is whole (readable, with its parameters); the index opens and
    lists only files that exist."""
    pngs = sorted(folder.glob("*.png"))
    for png in pngs:
        assert read_png_params(png)["prompt"].startswith("kill-")
    g = Gallery(folder)
    items = g.items(limit=10_000)
    assert all(i.path.is_file() for i in items)
    g.close()
    assert len(pngs) >= at_least
    return len(pngs)


SAVER = """
import sys, numpy as np
from sprint_desktop.core.gallery import Gallery
from sprint_desktop.core.settings import Settings, save_settings
from pathlib import Path
g = Gallery(sys.argv[1]); rng = np.random.default_rng(int(sys.argv[2]))
for i in range(100000):
    g.add(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), {"prompt": f"kill-{sys.argv[2]}-{i}", "seed": i})
    save_settings(Settings(seed=i, last_prompt=f"p{i}"), Path(sys.argv[3]))
    print(i, flush=True)
"""


def test_kill_9_during_gallery_and_settings_saves(tmp_path):
    folder, settings = tmp_path / "g", tmp_path / "cfg" / "settings.json"
    Gallery(folder).close()
    for round_ in range(6):
        n_before = len(list(folder.glob("*.png")))
        proc = spawn(SAVER, str(folder), str(round_), str(settings))
        # Kill at a different point of the save each round (a few images in).
        kill_when(proc, lambda n=n_before, r=round_: len(list(folder.glob("*.png"))) >= n + 1 + r)
        check_gallery_intact(folder, n_before)
        loaded, notice = load_settings(settings)
        assert notice is None  # old or new, never torn
        assert loaded.last_prompt.startswith("p") or not settings.exists()
    assert not list(tmp_path.glob("cfg/*.corrupt-*"))


DOWNLOADER = """
import sys
from pathlib import Path
from huggingface_hub import constants
constants.HF_HUB_OFFLINE = False
from sprint_desktop.store.download import download
from tests.store.fake_hub import hub_entry
download(hub_entry(), root=Path(sys.argv[2]), endpoint=sys.argv[1])
"""


def test_kill_9_during_a_download_then_resume(tiny_model_dir, tmp_path, hub_online):
    from sprint_desktop.store.catalog import state_of
    from sprint_desktop.store.download import download

    from ..store.fake_hub import FakeHub, hub_entry

    entry = hub_entry()
    with FakeHub("org/tiny", tiny_model_dir) as hub:
        hub.bytes_per_second = 20_000  # about 8 s for the tiny model
        proc = spawn(DOWNLOADER, hub.url, str(tmp_path))
        started: list[float] = []

        def mid_weights() -> bool:
            if not started and any(m == "GET" and p.endswith(".safetensors") for m, p, _ in hub.requests):
                started.append(time.monotonic())
            return bool(started) and time.monotonic() - started[0] > 1.0

        kill_when(proc, mid_weights)
        assert proc.returncode == -signal.SIGKILL
        state = state_of(entry, tmp_path)
        assert state.state == "partial", state  # never "installed"
        hub.bytes_per_second = 0
        folder = download(entry, root=tmp_path, endpoint=hub.url)
    assert state_of(entry, tmp_path).state == "installed"
    assert json.loads((folder / ".sprint-download.json").read_text())["complete"] is True


EXPORTER = """
import sys
from pathlib import Path
from sprint_desktop.export.onnx_export import export_model
export_model(Path(sys.argv[1]), cache_root=Path(sys.argv[2]))
"""


@pytest.mark.slow
def test_kill_9_during_an_export(tiny_model_dir, tmp_path):
    pytest.importorskip("onnxruntime")
    from sprint_desktop.export.cache import find_export
    from sprint_desktop.export.onnx_export import export_model

    cache = tmp_path / "cache"
    proc = spawn(EXPORTER, str(tiny_model_dir), str(cache))
    kill_when(proc, lambda: any(p.suffix == ".onnx" for p in cache.rglob(".export-*/*")), timeout=300)
    assert find_export(tiny_model_dir, root=cache) is None  # the half-made export is never used
    (left,) = cache.glob(".export-*")
    assert export_model(tiny_model_dir, cache_root=cache) == find_export(tiny_model_dir, root=cache)
    assert not left.exists() and not list(cache.glob(".export-*"))  # its work folder is cleaned


# ---- binding weights to installed graphs (issue #12's binder) -------------------------------------
BINDER = """
import os, sys, time
from pathlib import Path
from sprint_desktop.export.binder import bind
model, library, root, gate = map(Path, sys.argv[1:5])

def progress(stage, done, total):  # wait at the first weights written until the test says go
    if stage.startswith("binding") and not (gate / "go").exists():
        (gate / f"waiting-{os.getpid()}").touch()
        while not (gate / "go").exists():
            time.sleep(0.01)

print(bind(model, "fp32", root=root, dirs=[library], progress=progress), flush=True)
"""


@pytest.fixture(scope="module")
def graph_library(tiny_model_dir, tmp_path_factory):
    """The tiny model's weight-free graphs, and a copy of the model to bind to them."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import shutil

    from sprint_desktop.export.graph_only import export_model_graphs

    root = tmp_path_factory.mktemp("binding")
    export_model_graphs(tiny_model_dir, root / "graphs", precision="fp32")
    shutil.copytree(tiny_model_dir, root / "model" / tiny_model_dir.name)
    return root / "model" / tiny_model_dir.name, root / "graphs"


def spawn_binder(graph_library, root: Path, gate: Path) -> subprocess.Popen:
    model, library = graph_library
    gate.mkdir(parents=True, exist_ok=True)
    return spawn(BINDER, str(model), str(library), str(root), str(gate))


def wait_for(ready, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def check_bound(graph_library, root: Path, path: Path) -> None:
    """``path`` is the one bound folder under ``root``, complete, and opens; no work folder is left."""
    from sprint_desktop.engine.onnx_backend import OnnxEngine
    from sprint_desktop.export.binder import find_bound

    assert find_bound(graph_library[0], "fp32", root) == path
    assert [p for p in root.iterdir()] == [path]
    OnnxEngine(path, device="cpu").load()


def test_kill_9_during_a_binding(graph_library, tmp_path):
    from sprint_desktop.export.binder import bind, find_bound

    root, gate = tmp_path / "bound", tmp_path / "gate"
    proc = spawn_binder(graph_library, root, gate)
    kill_when(proc, lambda: any(gate.glob("waiting-*")))
    assert proc.returncode == -signal.SIGKILL
    (half,) = root.iterdir()  # the work folder, with weights half written...
    assert half.name.startswith(".bind-") and list(half.glob("*.weights"))
    assert find_bound(graph_library[0], "fp32", root) is None  # ...is never taken for a bound one
    bound = bind(graph_library[0], "fp32", root=root, dirs=[graph_library[1]])  # the next start
    assert not half.exists()
    check_bound(graph_library, root, bound)


def test_a_binding_running_beside_another_keeps_its_folder(graph_library, tmp_path):
    """B binds the same model from start to end while A is in the middle: B must not remove A's
    work folder; A then finds B's result in place and uses it (B's folder is not replaced)."""
    root = tmp_path / "bound"
    a = spawn_binder(graph_library, root, tmp_path / "gate-a")
    wait_for(lambda: any((tmp_path / "gate-a").glob("waiting-*")))
    (tmp_path / "gate-b").mkdir()
    (tmp_path / "gate-b" / "go").touch()
    b = spawn_binder(graph_library, root, tmp_path / "gate-b")
    out_b, err_b = b.communicate(timeout=300)
    assert b.returncode == 0, err_b.decode()[-2000:]
    bound = Path(out_b.decode().strip())
    inode = (bound / "manifest.json").stat().st_ino
    (tmp_path / "gate-a" / "go").touch()
    out_a, err_a = a.communicate(timeout=300)
    assert a.returncode == 0, err_a.decode()[-2000:]
    assert Path(out_a.decode().strip()) == bound and (bound / "manifest.json").stat().st_ino == inode
    check_bound(graph_library, root, bound)


def test_two_bindings_finishing_at_once(graph_library, tmp_path):
    root, gate = tmp_path / "bound", tmp_path / "gate"
    procs = [spawn_binder(graph_library, root, gate) for _ in range(2)]
    wait_for(lambda: len(list(gate.glob("waiting-*"))) == 2)
    (gate / "go").touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
        outs.append(Path(out.decode().strip()))
    assert outs[0] == outs[1]
    check_bound(graph_library, root, outs[0])


FULL_DISK_BINDING = """
import json, resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
limit = int(sys.argv[4])
if limit:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
from sprint_desktop.core.errors import SprintError
from sprint_desktop.export import binder
binder.FREE_SPACE_MARGIN = 0  # the space was there when binding began: another writer fills the disk
try:
    print(json.dumps({"bound": str(binder.bind(sys.argv[1], "fp32", root=Path(sys.argv[3]), dirs=[Path(sys.argv[2])]))}))
except SprintError as exc:
    print(json.dumps({"error": str(exc)}))
"""


def bind_on_a_full_disk(graph_library, root: Path, fsize_limit: int = 0) -> None:
    """A binding that runs out of space in the middle fails in one line and leaves nothing."""
    from sprint_desktop.export.binder import find_bound

    model, library = graph_library
    proc = spawn(FULL_DISK_BINDING, str(model), str(library), str(root), str(fsize_limit))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    error = json.loads(out)["error"]
    assert error.startswith(f"could not bind {model.name}") and "\n" not in error, error
    assert not root.exists() or not any(root.iterdir())  # nothing half-bound is left
    assert find_bound(model, "fp32", root) is None


def test_a_full_disk_during_a_binding(graph_library, tmp_path):
    """RLIMIT_FSIZE: the first graph and its weights fit, a later file does not."""
    from sprint_desktop.export.binder import bind

    sizes = [p.stat().st_size for p in graph_library[1].glob("*.onnx")]
    sizes += [json.loads(p.read_text())["weights_size"] for p in graph_library[1].glob("*.json")]
    limit = 150_000
    assert min(sizes) < limit < max(sizes)
    bind_on_a_full_disk(graph_library, tmp_path / "bound", limit)
    bound = bind(graph_library[0], "fp32", root=tmp_path / "bound", dirs=[graph_library[1]])
    check_bound(graph_library, tmp_path / "bound", bound)  # with space again, the next one binds


def test_a_binding_on_a_filling_disk(graph_library, small_tmpfs):
    """A 512 KB tmpfs: ENOSPC part way through the graphs and weights (about 600 KB in all)."""
    free = os.statvfs(small_tmpfs).f_bfree
    bind_on_a_full_disk(graph_library, small_tmpfs / "bound")
    assert os.statvfs(small_tmpfs).f_bfree >= free - 1  # all the space is back (an empty folder aside)


# ---- a full disk ----------------------------------------------------------------------------------
FULL_DISK = """
import resource, signal, sys, json
import numpy as np
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
from pathlib import Path
from sprint_desktop.core.errors import SprintError
from sprint_desktop.core.gallery import Gallery
from sprint_desktop.core.settings import Settings, save_settings
out = {}
g = Gallery(sys.argv[1])
try:
    g.add(np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8), {"prompt": "too big", "seed": 1})
    out["gallery"] = "saved"
except SprintError as exc:
    out["gallery"] = str(exc)
try:
    save_settings(Settings(last_prompt="x" * 9000, recent_prompts=["y" * 9000] * 30), Path(sys.argv[2]))
    out["settings"] = "saved"
except OSError as exc:
    out["settings"] = f"OSError {exc.errno}"
print(json.dumps(out))
"""


def test_a_full_disk_loses_nothing_already_saved(tmp_path):
    folder, settings = tmp_path / "g", tmp_path / "settings.json"
    g = Gallery(folder)
    kept = g.add(np.zeros((8, 8, 3), np.uint8), {"prompt": "kill-kept", "seed": 0})
    g.close()
    save_settings(Settings(last_prompt="before"), settings)
    proc = spawn(FULL_DISK, str(folder), str(settings))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    result = json.loads(out)
    assert "cannot save to the gallery folder" in result["gallery"] and "\n" not in result["gallery"]
    assert result["settings"].startswith("OSError")
    assert load_settings(settings)[0].last_prompt == "before"  # the old settings are intact
    assert [p.name for p in folder.glob("*.png")] == [kept.path.name]  # no half-written image
    assert not list(folder.glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    check_gallery_intact(folder, 1)


@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)]).returncode
    ):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_a_gallery_on_a_filling_disk(small_tmpfs):
    g = Gallery(small_tmpfs)
    rng = np.random.default_rng(0)
    saved, error = [], None
    for i in range(100):
        try:
            saved.append(
                g.add(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8), {"prompt": f"kill-{i}", "seed": i})
            )
        except SprintError as exc:
            error = str(exc)
            break
    assert error is not None and "\n" not in error and saved
    assert {i.path for i in g.items()} <= {s.path for s in saved}
    check_gallery_intact(small_tmpfs, len(saved) - 1)
    for item in saved:  # everything saved before the disk filled is whole
        assert read_png_params(item.path)["seed"] == int(item.params["seed"])


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only mount with a saved gallery and settings inside (root ignores file modes)."""
    source = tmp_path / "src"
    g = Gallery(source / "g")
    g.add(np.zeros((8, 8, 3), np.uint8), {"prompt": "kill-ro", "seed": 1})
    g.close()
    save_settings(Settings(theme="dark"), source / "settings.json")
    target = tmp_path / "ro"
    target.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(target)]).returncode
    ):
        pytest.skip("cannot make a read-only mount here (needs root)")
    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)])
    yield target
    subprocess.run(["umount", "-l", str(target)])


def test_read_only_folders(read_only_dir):
    settings, notice = load_settings(read_only_dir / "settings.json")
    assert settings.theme == "dark" and notice is None
    with pytest.raises(OSError):
        save_settings(Settings(), read_only_dir / "settings.json")
    try:
        g = Gallery(read_only_dir / "g")
    except SprintError as exc:
        assert "\n" not in str(exc)
    else:
        assert [i.prompt for i in g.items()] == ["kill-ro"]
        with pytest.raises(SprintError, match="cannot save|could not be added"):
            g.add(np.zeros((8, 8, 3), np.uint8), {"prompt": "kill-x", "seed": 2})
    assert read_png_params(next((read_only_dir / "g").glob("*.png")))["prompt"] == "kill-ro"


# ---- two app processes at once -------------------------------------------------------------------
INSTANCE = """
import sys, numpy as np
from pathlib import Path
from sprint_desktop.core.gallery import Gallery
from sprint_desktop.core.settings import load_settings, save_settings
g = Gallery(sys.argv[1]); cfg = Path(sys.argv[2])
for i in range(80):
    s, notice = load_settings(cfg)
    assert notice is None, notice
    s.recent_prompts = [f"{sys.argv[3]}-{i}"] + s.recent_prompts[:10]
    save_settings(s, cfg)
    g.add(np.full((16, 16, 3), i, np.uint8), {"prompt": f"kill-{sys.argv[3]}-{i}", "seed": 42})
    g.items()
"""


def test_two_app_processes_share_settings_and_gallery(tmp_path):
    folder, cfg = tmp_path / "g", tmp_path / "settings.json"
    procs = [spawn(INSTANCE, str(folder), str(cfg), who) for who in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    assert check_gallery_intact(folder, 160) == 160
    assert len(Gallery(folder).items(limit=1000)) == 160
    settings, notice = load_settings(cfg)
    assert notice is None and settings.recent_prompts  # last writer wins, the file is always whole


MERGING_INSTANCE = """
import sys
from dataclasses import asdict
from pathlib import Path
from sprint_desktop.core.settings import Settings, load_settings, save_settings
cfg, who = Path(sys.argv[1]), sys.argv[2]
mine, notice = load_settings(cfg)  # loaded once, as an app instance does
assert notice is None, notice
for i in range(1, 101):
    base = Settings(**asdict(mine))
    if who == "a":
        mine.seed = i
    else:
        mine.last_prompt = f"b-{i}"
    save_settings(mine, cfg, base=base)
"""


def test_two_app_processes_saving_settings_keep_each_others_changes(tmp_path):
    cfg = tmp_path / "settings.json"
    save_settings(Settings(theme="dark"), cfg)
    procs = [spawn(MERGING_INSTANCE, str(cfg), who) for who in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    settings, notice = load_settings(cfg)
    assert notice is None
    assert (settings.seed, settings.last_prompt, settings.theme) == (100, "b-100", "dark")
