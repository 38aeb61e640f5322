"""Downloading a catalog model through huggingface_hub: only the files the pipeline needs, a
free-space check first, progress, resume after an interruption (huggingface_hub keeps the partial
file and continues with a Range request), and a checksum of every weight file against the hub's
metadata afterwards. Every failure becomes a `SprintError` a user can act on."""

from __future__ import annotations

import errno
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.cancel import CancelToken
from ..core.errors import SprintError
from .catalog import CatalogEntry, model_folder

ALLOW_PATTERNS = [
    "model_index.json",
    "*/config.json",
    "*.safetensors",
    "*.safetensors.index.json",
    "scheduler/*.json",
    "tokenizer/*",
]
ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)


class DownloadCancelled(SprintError):
    """The user stopped the download; what was received is kept and the next run resumes."""


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists():
        probe = probe.parent
    return shutil.disk_usage(probe).free


def download(
    entry: CatalogEntry,
    root: Path | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 30.0,
    free_bytes: Callable[[Path], int] = _free_bytes,
    cancel: CancelToken | None = None,
) -> Path:
    """Download ``entry`` into the model store (resuming a partial download); return its folder."""
    from huggingface_hub import HfApi, constants, snapshot_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    if entry.kind != "hub" or not entry.repo_id:
        raise SprintError(f"{entry.name} is not downloaded: it ships with the app")
    if constants.is_offline_mode():
        raise SprintError(
            "offline mode is on (HF_HUB_OFFLINE=1), so nothing is downloaded: unset it to download"
        )
    folder = model_folder(entry, root)
    api = HfApi(endpoint=endpoint, token=token)
    try:
        info = api.model_info(entry.repo_id, revision=entry.revision, files_metadata=True, timeout=timeout)
        wanted = {s.rfilename: s for s in info.siblings or [] if _wanted(s.rfilename)}
        unsafe = [n for n in wanted if n.startswith(("/", "\\")) or ".." in Path(n).parts]
        if unsafe:
            raise SprintError(f"the hub listed unsafe file names for {entry.repo_id}: {unsafe[:3]}")
        total = sum(int(s.size or 0) for s in wanted.values())
        have = sum((folder / n).stat().st_size for n in wanted if (folder / n).is_file())
        need = total - have
        free = free_bytes(folder)
        if need > free:
            raise SprintError(
                f"not enough disk space for {entry.title}: {need / 2**30:.2f} GB needed, {free / 2**30:.2f} GB free "
                f"in {folder.parent}. Free some space or choose another model folder in Settings."
            )
        snapshot_download(
            entry.repo_id,
            revision=entry.revision,
            local_dir=folder,
            allow_patterns=ALLOW_PATTERNS,
            endpoint=endpoint,
            token=token,
            etag_timeout=timeout,
            tqdm_class=_progress_tqdm(progress, total, cancel),
            max_workers=2,
        )
    except DownloadCancelled:
        raise DownloadCancelled(
            f"the download of {entry.title} was stopped; finished files are kept, so the next download "
            "continues from them (resume)"
        ) from None
    except GatedRepoError:
        raise SprintError(
            f"{entry.title} is gated: accept its licence at {entry.license_url} and log in "
            "(huggingface-cli login, or set HF_TOKEN), then try again"
        ) from None
    except RepositoryNotFoundError:
        raise SprintError(
            f"the hub has no model {entry.repo_id} (or it needs a token you do not have)"
        ) from None
    except (LocalEntryNotFoundError, EntryNotFoundError) as exc:
        raise SprintError(
            f"cannot download {entry.title}: the hub could not be reached or lacks a file ({exc})"
        ) from None
    except HfHubHTTPError as exc:
        raise SprintError(f"the hub refused the download of {entry.title}: {exc}") from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise SprintError(
                f"the disk filled up while downloading {entry.title}; the part already "
                "downloaded is kept: free some space and run the download again"
            ) from None
        raise SprintError(f"the download of {entry.title} stopped ({exc}); run it again to resume") from None
    except Exception as exc:  # httpx/httpcore errors for no network, timeouts and dropped connections
        if isinstance(exc, SprintError):
            raise
        if cancel is not None and cancel.cancelled:
            raise DownloadCancelled(
                f"the download of {entry.title} was stopped; run it again to resume"
            ) from None
        raise SprintError(
            f"the download of {entry.title} stopped ({type(exc).__name__}: {exc}); run it again to resume"
        ) from None
    verify(folder, {n: s.lfs.sha256 for n, s in wanted.items() if s.lfs is not None})
    return folder


def _wanted(name: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, p) for p in ALLOW_PATTERNS)


def verify(folder: Path, checksums: dict[str, str]) -> None:
    """Every large file's sha256 against the hub's; a mismatching file is deleted so the next run
    downloads it again."""
    bad = []
    for name, expected in checksums.items():
        path = folder / name
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != expected:
            bad.append(name)
            path.unlink()
    if bad:
        raise SprintError(
            f"{len(bad)} downloaded file(s) failed their checksum and were removed ({', '.join(bad)}); "
            "run the download again"
        )


def _progress_tqdm(progress: ProgressFn | None, total: int, cancel: CancelToken | None = None) -> Any:
    from tqdm.auto import tqdm

    state = {"done": 0}

    class ProgressTqdm(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel.cancelled:
                raise DownloadCancelled("the download was stopped")
            if progress is not None and n and getattr(self, "unit", "B") == "B":
                state["done"] += int(n)
                progress(min(state["done"], total), total)
            return super().update(n)

    return ProgressTqdm
