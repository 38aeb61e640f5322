"""The GPU runtime installed on first use: the pinned wheels of ``resources/gpu-runtime.toml``
(onnxruntime-gpu and the NVIDIA CUDA/cuDNN libraries) unpacked into a per-user folder, and put on
``sys.path`` before onnxruntime is imported, so the next model load runs on the GPU.

Layout under ``<user data>/gpu-runtime`` (or ``$SPRINT_GPU_RUNTIME``)::

    downloads/<wheel>.part   a download in progress (resumed with an HTTP Range request)
    downloads/<wheel>        a finished download whose sha256 matched the index's
    <name>/site/             the unpacked wheels (one flat site-packages folder)
    <name>/manifest.json     written last: the runtime is installed only when it exists

How it is used, and its limits: wheels with compiled code only load in the Python they were built
for, so the manifest records this interpreter's version and platform, and `activate_gpu_runtime`
uses the folder only from the same ones (an app update to another Python makes the app offer the
runtime again). In the frozen app, PyInstaller 6 finds bundled modules through a path entry on
``sys.path``, so the folder put first on ``sys.path`` wins over the bundled CPU onnxruntime;
the unpacked package can import only standard-library modules the bundle contains (the CPU
onnxruntime's own, which onnxruntime-gpu shares). Pure-Python dependencies already in the app
are not installed again. Standard library + ``packaging``: no pip, which a frozen app lacks.
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import shutil
import sys
import sysconfig
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from ..core.cancel import CancelToken
from ..core.errors import SprintError
from ..core.files import file_sha256
from ..core.paths import project_root, user_data_dir
from .wheel_index import Wheel, list_files, parse_pin, pick_wheel

ROOT_ENV = "SPRINT_GPU_RUNTIME"
DISABLE_ENV = "SPRINT_NO_GPU_RUNTIME"  # "1": never put the runtime on sys.path (troubleshooting)
CHUNK = 1 << 16
RETRIES = 4  # a dropped connection is resumed this many times within one install
# Unpacked size / wheel size, for the free-space check before downloading (the CUDA wheels
# measure 1.6-2.1); the exact unpacked size is checked again before each wheel is unpacked.
UNPACK_FACTOR = 2.2
ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)


class RuntimeInstallCancelled(SprintError):
    """The user stopped the install; finished and partial downloads are kept for the next try."""


@dataclass(frozen=True)
class RuntimeSpec:
    name: str
    title: str
    index_url: str
    requirements: tuple[tuple[str, str], ...]  # (canonical name, version)
    min_driver: str


@dataclass(frozen=True)
class RuntimeState:
    state: str  # "installed" | "missing" | "partial" | "stale"
    site: Path
    problem: str | None = None


def spec_path() -> Path:
    return project_root() / "resources" / "gpu-runtime.toml"


def load_runtime_spec(path: Path | None = None) -> RuntimeSpec:
    path = path or spec_path()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))["runtime"]
        spec = RuntimeSpec(
            name=str(raw["name"]),
            title=str(raw["title"]),
            index_url=str(raw["index_url"]),
            requirements=tuple(parse_pin(r) for r in raw["requirements"]),
            min_driver=str(raw.get("min_driver", "0")),
        )
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
        raise SprintError(f"cannot read the GPU runtime description {path}: {exc}") from None
    if not spec.requirements or "/" in spec.name or "\\" in spec.name or spec.name.startswith("."):
        raise SprintError(
            f"{path}: invalid GPU runtime (name {spec.name!r}, {len(spec.requirements)} wheels)"
        )
    return spec


def runtime_root() -> Path:
    env = os.environ.get(ROOT_ENV)
    return Path(env).expanduser() if env else user_data_dir() / "gpu-runtime"


def interpreter_tag() -> str:
    """What compiled wheels must match: Python version, ABI flags and platform."""
    return f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"


def runtime_state(spec: RuntimeSpec, root: Path | None = None) -> RuntimeState:
    root = root or runtime_root()
    folder = root / spec.name
    site = folder / "site"
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    if isinstance(manifest, dict):
        pins = [f"{n}=={v}" for n, v in spec.requirements]
        if manifest.get("interpreter") != interpreter_tag():
            return RuntimeState(
                "stale", site, f"installed for {manifest.get('interpreter')}, this app is {interpreter_tag()}"
            )
        if manifest.get("requirements") != pins:
            return RuntimeState("stale", site, "installed from another version of the runtime description")
        if not site.is_dir():
            return RuntimeState("partial", site, "the unpacked files are missing")
        return RuntimeState("installed", site)
    downloads = root / "downloads"
    if downloads.is_dir() and any(downloads.iterdir()):
        return RuntimeState("partial", site, "a download was interrupted; installing continues it")
    return RuntimeState("missing", site)


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _disk_full(what: str) -> SprintError:
    return SprintError(
        f"the disk filled up while {what}; what was downloaded is kept. Free some space and install "
        "again. Sprint Desktop keeps working on the CPU meanwhile."
    )


def plan(spec: RuntimeSpec, index_url: str | None = None, timeout: float = 30.0) -> list[Wheel]:
    """The wheel for each pinned requirement, with its sha256 and size from the index."""
    index = index_url or spec.index_url
    wheels = [
        pick_wheel(name, version, list_files(index, name, timeout)) for name, version in spec.requirements
    ]
    return [w if w.size is not None else _with_size(w, timeout) for w in wheels]


def _with_size(wheel: Wheel, timeout: float) -> Wheel:
    """PEP 503 pages carry no sizes: ask the server (HEAD)."""
    try:
        with urlopen(Request(wheel.url, method="HEAD"), timeout=timeout) as resp:
            size = int(resp.headers.get("Content-Length", "0")) or None
    except (OSError, ValueError) as exc:
        raise SprintError(f"cannot reach {wheel.url} ({exc})") from None
    return Wheel(wheel.project, wheel.version, wheel.filename, wheel.url, wheel.sha256, size)


def install_runtime(
    spec: RuntimeSpec,
    root: Path | None = None,
    index_url: str | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    free_bytes: Callable[[Path], int] = _free_bytes,
    timeout: float = 30.0,
) -> Path:
    """Download, verify and unpack the runtime; return its site folder. Resumes an earlier,
    interrupted install. Every failure is a `SprintError` that says what to do; nothing is
    activated unless the whole runtime is in place."""
    root = root or runtime_root()
    downloads = root / "downloads"
    folder = root / spec.name
    wheels = plan(spec, index_url, timeout)
    unsafe = [
        w.filename for w in wheels if "/" in w.filename or "\\" in w.filename or w.filename.startswith(".")
    ]
    if unsafe:
        raise SprintError(f"the package index listed unsafe file names: {unsafe}")
    total = sum(w.size or 0 for w in wheels)
    have = sum(_have(downloads, w) for w in wheels)
    need = (total - have) + int(total * UNPACK_FACTOR)
    free = free_bytes(root)
    if need > free:
        raise SprintError(
            f"not enough disk space for the GPU runtime: about {need / 2**30:.1f} GB needed, "
            f"{free / 2**30:.1f} GB free in {_existing(root)}. Free some space and install again; "
            "Sprint Desktop keeps working on the CPU meanwhile."
        )
    done = have
    if progress is not None:
        progress(done, total)

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(min(done, total), total)

    try:
        downloads.mkdir(parents=True, exist_ok=True)
        files = [_download(w, downloads, advance, cancel, timeout) for w in wheels]
        _unpack_all(spec, files, folder, free_bytes, cancel)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full("installing the GPU runtime") from None
        raise SprintError(
            f"installing the GPU runtime failed ({exc}); install again to continue. "
            "Sprint Desktop keeps working on the CPU meanwhile."
        ) from None
    for f in files:
        f.unlink(missing_ok=True)
    return folder / "site"


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _have(downloads: Path, wheel: Wheel) -> int:
    for candidate in (downloads / wheel.filename, downloads / f"{wheel.filename}.part"):
        if candidate.is_file():
            return candidate.stat().st_size
    return 0


def _download(
    wheel: Wheel, downloads: Path, advance: Callable[[int], None], cancel: CancelToken | None, timeout: float
) -> Path:
    """One wheel into ``downloads``, resuming a ``.part`` file; verified against its sha256."""
    final = downloads / wheel.filename
    if final.is_file():
        if file_sha256(final) == wheel.sha256:
            return final
        final.unlink()
    part = downloads / f"{wheel.filename}.part"
    failures = 0
    while True:
        have = part.stat().st_size if part.is_file() else 0
        if wheel.size is not None and have >= wheel.size:
            break
        try:
            _fetch(wheel, part, have, advance, cancel, timeout)
        except RuntimeInstallCancelled:
            raise
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise
            if isinstance(exc, HTTPError) and exc.code == 416:  # the part is longer than the file
                part.unlink(missing_ok=True)
            elif isinstance(exc, HTTPError) and exc.code < 500:
                raise SprintError(f"the server refused {wheel.filename} (HTTP {exc.code})") from None
            failures += 1
            if failures > RETRIES:
                raise SprintError(
                    f"the download of {wheel.filename} keeps failing ({exc}); what arrived is kept, "
                    "so installing again continues from it. Sprint Desktop keeps working on the CPU."
                ) from None
            continue
        if wheel.size is None:
            break
    if file_sha256(part) != wheel.sha256:
        part.unlink()
        raise SprintError(
            f"{wheel.filename} does not match the sha256 the index gives for it, so it was deleted "
            "and nothing was installed; install again (if it repeats, the download is being altered "
            "on its way). Sprint Desktop keeps working on the CPU."
        )
    os.replace(part, final)
    return final


def _fetch(
    wheel: Wheel,
    part: Path,
    have: int,
    advance: Callable[[int], None],
    cancel: CancelToken | None,
    timeout: float,
) -> None:
    headers = {"Range": f"bytes={have}-"} if have else {}
    with urlopen(Request(wheel.url, headers=headers), timeout=timeout) as resp:
        if have and resp.status != 206:  # the server ignored the Range header: start over
            advance(-have)
            have = 0
        with part.open("ab" if have else "wb") as fh:
            while True:
                if cancel is not None and cancel.cancelled:
                    raise RuntimeInstallCancelled(
                        "the GPU runtime install was stopped; what was downloaded is kept, so installing "
                        "again continues from it. Sprint Desktop keeps working on the CPU."
                    )
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                fh.write(chunk)
                advance(len(chunk))
    if wheel.size is not None and part.stat().st_size < wheel.size:
        raise ConnectionResetError(f"connection closed at {part.stat().st_size} of {wheel.size} bytes")


def _unpack_all(
    spec: RuntimeSpec,
    files: list[Path],
    folder: Path,
    free_bytes: Callable[[Path], int],
    cancel: CancelToken | None,
) -> None:
    """Unpack every wheel into ``<folder>/site.new``, then swap it in and write the manifest."""
    staging = folder / "site.new"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for path in files:
        if cancel is not None and cancel.cancelled:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeInstallCancelled(
                "the GPU runtime install was stopped before it was unpacked; the downloads are kept."
            )
        _unpack_wheel(path, staging, free_bytes)
    (folder / "manifest.json").unlink(missing_ok=True)
    shutil.rmtree(folder / "site", ignore_errors=True)
    os.replace(staging, folder / "site")
    manifest = {
        "name": spec.name,
        "interpreter": interpreter_tag(),
        "requirements": [f"{n}=={v}" for n, v in spec.requirements],
        "wheels": [p.name for p in files],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _unpack_wheel(path: Path, site: Path, free_bytes: Callable[[Path], int]) -> None:
    """A wheel is a zip: its purelib/platlib files go to ``site``; scripts/headers/data are not
    needed by an importing app and are skipped. Names that would escape ``site`` are refused."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = zf.infolist()
            size = sum(m.file_size for m in members)
            free = free_bytes(site)
            if size > free:
                raise SprintError(
                    f"not enough disk space to unpack {path.name}: {size / 2**30:.2f} GB needed, "
                    f"{free / 2**30:.2f} GB free. Free some space and install again."
                )
            for m in members:
                target = _target(m.filename, site)
                if target is None or m.is_dir():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(m) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                mode = (m.external_attr >> 16) & 0o777
                if mode & 0o111:
                    target.chmod(target.stat().st_mode | 0o111)
    except zipfile.BadZipFile as exc:
        path.unlink(missing_ok=True)
        raise SprintError(
            f"{path.name} is not a valid wheel ({exc}); it was deleted: install again"
        ) from None


def _target(name: str, site: Path) -> Path | None:
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise SprintError(f"a wheel holds an unsafe path {name!r}: refusing to install it")
    if parts and parts[0].endswith(".data"):
        if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
            return None
        parts = parts[2:]
    return site.joinpath(*parts) if parts else None


def remove_runtime(spec: RuntimeSpec, root: Path | None = None) -> Path:
    """Delete the installed runtime and any downloads (the app is back on the CPU at next start)."""
    root = root or runtime_root()
    shutil.rmtree(root / spec.name, ignore_errors=True)
    shutil.rmtree(root / "downloads", ignore_errors=True)
    return root / spec.name


def activate_gpu_runtime(spec: RuntimeSpec | None = None, root: Path | None = None) -> Path | None:
    """Put the installed runtime first on ``sys.path`` (and, on Windows, its DLL folders on the
    DLL search path); return its site folder, or None when there is none to use. Call it before
    onnxruntime is first imported; an onnxruntime already imported from elsewhere stays in use
    until the app restarts."""
    if os.environ.get(DISABLE_ENV) == "1":
        return None
    try:
        spec = spec or load_runtime_spec()
    except SprintError:
        return None
    state = runtime_state(spec, root)
    if state.state != "installed":
        return None
    site = str(state.site)
    if site not in sys.path:
        sys.path.insert(0, site)
    if sys.platform == "win32" and not _DLL_DIRS:
        for bin_dir in sorted(state.site.glob("nvidia/*/bin")):
            _DLL_DIRS.append(os.add_dll_directory(str(bin_dir)))  # type: ignore[attr-defined]
    return state.site


_DLL_DIRS: list[object] = []  # the handles keep the folders on the DLL search path


def preload_before_qt() -> Path | None:
    """For the launcher, before PySide6 is imported: activate the runtime and, on Windows, import
    onnxruntime and load its CUDA/cuDNN DLLs now (loaded after Qt's, they fail to load)."""
    site = activate_gpu_runtime()
    if site is None or sys.platform != "win32":
        return site
    try:
        import onnxruntime

        if hasattr(onnxruntime, "preload_dlls"):
            onnxruntime.preload_dlls()
    except Exception as exc:  # noqa: BLE001 - the app must start; the model load reports the CPU fall back
        print(f"sprint-desktop: the GPU runtime could not be preloaded: {exc}", file=sys.stderr)
    return site
