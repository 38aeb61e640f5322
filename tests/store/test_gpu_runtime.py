"""The GPU runtime install over real HTTP from a package index on 127.0.0.1 serving tiny wheels
built here: JSON and HTML pages, resume, bad hash, cancel, disk full, activation on sys.path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from sprint_desktop.core.cancel import CancelToken
from sprint_desktop.core.errors import SprintError
from sprint_desktop.store import gpu_runtime
from sprint_desktop.store.gpu_runtime import (
    RuntimeInstallCancelled,
    install_runtime,
    load_runtime_spec,
    runtime_state,
)

from .fake_index import FakeIndex, build_wheel

PAD = os.urandom(300_000)  # incompressible and stored: each wheel is ~300 kB on the wire


@pytest.fixture
def index():
    with FakeIndex() as idx:
        ort_name, ort = build_wheel(
            "sprint-fake-ort",
            "1.2.3",
            {
                "sprint_fake_ort/__init__.py": b"GPU = True\n",
                "sprint_fake_ort-1.2.3.data/platlib/sprint_fake_ort/capi/provider.bin": PAD,
                "sprint_fake_ort-1.2.3.data/scripts/tool": b"#!/bin/sh\n",
            },
        )
        lib_name, lib = build_wheel(
            "nvidia-fake-lib", "13.0.1", {"nvidia/fake/lib/libfake.so": PAD[::-1]}, tag="py3-none-any"
        )
        idx.add("sprint-fake-ort", ort_name, ort)
        idx.add("nvidia-fake-lib", lib_name, lib)
        # A wheel for another Python: never chosen.
        other, data = build_wheel("sprint-fake-ort", "1.2.3", {"x.py": b""}, tag="cp27-cp27m-win32")
        idx.add("sprint-fake-ort", other, data)
        idx.wheels = [ort_name, lib_name]
        yield idx


def write_spec(tmp_path, index, requirements=("sprint-fake-ort==1.2.3", "nvidia-fake-lib==13.0.1")):
    path = tmp_path / "gpu-runtime.toml"
    reqs = ", ".join(f'"{r}"' for r in requirements)
    path.write_text(
        f'schema = 1\n[runtime]\nname = "fake-runtime-1"\ntitle = "Fake GPU runtime"\n'
        f'index_url = "{index.url}"\nmin_driver = "580.65"\nrequirements = [{reqs}]\n'
    )
    return load_runtime_spec(path)


def test_the_shipped_description_pins_exact_versions_of_onnxruntime_gpu():
    spec = load_runtime_spec()
    names = [n for n, _ in spec.requirements]
    assert names[0] == "onnxruntime-gpu" and "nvidia-cudnn-cu13" in names
    assert spec.index_url.startswith("https://") and spec.min_driver


@pytest.mark.parametrize("json_api", [True, False], ids=["pep691-json", "pep503-html"])
def test_install_verifies_unpacks_and_records(tmp_path, index, json_api):
    index.json = json_api
    spec = write_spec(tmp_path, index)
    root = tmp_path / "rt"
    assert runtime_state(spec, root).state == "missing"
    events = []
    site = install_runtime(spec, root=root, progress=lambda d, t: events.append((d, t)))
    total = sum(len(index.files[n]) for n in index.wheels)
    assert events[-1] == (total, total) and all(
        a[0] <= b[0] for a, b in zip(events, events[1:], strict=False)
    )
    assert (site / "sprint_fake_ort" / "__init__.py").read_bytes() == b"GPU = True\n"
    assert (site / "sprint_fake_ort" / "capi" / "provider.bin").read_bytes() == PAD  # .data/platlib moved
    assert not list(site.rglob("tool"))  # scripts are not installed
    assert (site / "nvidia" / "fake" / "lib" / "libfake.so").is_file()
    manifest = json.loads((root / spec.name / "manifest.json").read_text())
    assert manifest["interpreter"] == gpu_runtime.interpreter_tag()
    assert runtime_state(spec, root).state == "installed"
    assert not any((root / "downloads").iterdir())  # downloads removed once unpacked
    assert not any("cp27" in path for _, path, _ in index.requests if path.startswith("/files/"))


def test_a_cut_connection_resumes_with_a_range_request(tmp_path, index):
    spec = write_spec(tmp_path, index)
    name = index.wheels[0]
    index.cut_after[name] = 100_000
    install_runtime(spec, root=tmp_path / "rt")
    gets = [r for m, p, r in index.requests if m == "GET" and p == f"/files/{name}"]
    assert gets[0] is None and gets[1] == "bytes=100000-"  # continued, not restarted
    assert runtime_state(spec, tmp_path / "rt").state == "installed"


def test_a_bad_hash_is_refused_and_nothing_is_installed(tmp_path, index):
    spec = write_spec(tmp_path, index)
    index.altered.add(index.wheels[1])
    root = tmp_path / "rt"
    with pytest.raises(SprintError, match="sha256") as err:
        install_runtime(spec, root=root)
    assert "CPU" in str(err.value)
    assert runtime_state(spec, root).state != "installed"
    assert not (root / spec.name / "site").exists()
    assert not (root / "downloads" / f"{index.wheels[1]}.part").exists()  # the bad file is gone
    assert gpu_runtime.activate_gpu_runtime(spec, root) is None


def test_cancel_keeps_the_partial_download_and_the_next_install_continues(tmp_path, index):
    spec = write_spec(tmp_path, index)
    index.bytes_per_second = 400_000
    root = tmp_path / "rt"
    cancel = CancelToken()
    reached = threading.Event()

    def progress(done, total):
        if done > 50_000:
            reached.set()
            cancel.cancel()

    with pytest.raises(RuntimeInstallCancelled, match="continues"):
        install_runtime(spec, root=root, progress=progress, cancel=cancel)
    assert reached.is_set()
    part = root / "downloads" / f"{index.wheels[0]}.part"
    kept = part.stat().st_size
    assert 0 < kept < len(index.files[index.wheels[0]])
    assert runtime_state(spec, root).state == "partial"
    index.bytes_per_second = 0
    install_runtime(spec, root=root)
    ranges = [r for m, p, r in index.requests if m == "GET" and p == f"/files/{index.wheels[0]}"]
    assert ranges[-1] == f"bytes={kept}-"
    assert runtime_state(spec, root).state == "installed"


def test_not_enough_space_is_said_before_downloading(tmp_path, index):
    spec = write_spec(tmp_path, index)
    with pytest.raises(SprintError, match="not enough disk space") as err:
        install_runtime(spec, root=tmp_path / "rt", free_bytes=lambda path: 100_000)
    assert "CPU" in str(err.value)
    assert not [p for m, p, r in index.requests if p.startswith("/files/") and m == "GET"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to fill a disk")
def test_a_disk_that_fills_up_while_downloading_gives_a_clear_message(tmp_path, index):
    spec = write_spec(tmp_path, index)
    downloads = tmp_path / "rt" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / f"{index.wheels[0]}.part").symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(SprintError, match="disk filled up") as err:
        install_runtime(spec, root=tmp_path / "rt")
    assert "CPU" in str(err.value)


def test_no_wheel_for_this_python_is_a_clear_error(tmp_path):
    with FakeIndex() as index:
        name, data = build_wheel("sprint-fake-ort", "1.2.3", {"x.py": b""}, tag="cp27-cp27m-win32")
        index.add("sprint-fake-ort", name, data)
        spec = write_spec(tmp_path, index, ("sprint-fake-ort==1.2.3",))
        with pytest.raises(SprintError, match="fits this app's Python"):
            install_runtime(spec, root=tmp_path / "rt")


def test_a_runtime_for_another_python_is_stale_and_not_used(tmp_path, index):
    spec = write_spec(tmp_path, index)
    root = tmp_path / "rt"
    install_runtime(spec, root=root)
    manifest = root / spec.name / "manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**data, "interpreter": "cpython-310-win-amd64"}))
    state = runtime_state(spec, root)
    assert state.state == "stale" and "cpython-310" in state.problem
    assert gpu_runtime.activate_gpu_runtime(spec, root) is None


def test_activation_puts_the_runtime_before_the_installed_onnxruntime(tmp_path):
    """A wheel named like the CPU onnxruntime in this venv: after activation, `import onnxruntime`
    finds the runtime's copy, as the frozen app finds onnxruntime-gpu before its bundled one."""
    with FakeIndex() as index:
        name, data = build_wheel(
            "onnxruntime-gpu", "9.9.9", {"onnxruntime/__init__.py": b"FROM_GPU_RUNTIME = True\n"}
        )
        index.add("onnxruntime-gpu", name, data)
        spec = write_spec(tmp_path, index, ("onnxruntime-gpu==9.9.9",))
        root = tmp_path / "rt"
        install_runtime(spec, root=root)
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from sprint_desktop.store import gpu_runtime as g\n"
        f"spec = g.load_runtime_spec(Path({str(tmp_path / 'gpu-runtime.toml')!r}))\n"
        f"print(g.activate_gpu_runtime(spec, Path({str(root)!r})))\n"
        "import onnxruntime\nprint(getattr(onnxruntime, 'FROM_GPU_RUNTIME', False))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    site, flag = proc.stdout.split()
    assert site.endswith("site") and flag == "True"


def test_remove_deletes_the_runtime(tmp_path, index):
    spec = write_spec(tmp_path, index)
    root = tmp_path / "rt"
    install_runtime(spec, root=root)
    gpu_runtime.remove_runtime(spec, root)
    assert runtime_state(spec, root).state == "missing"
