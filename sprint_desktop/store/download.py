"""Downloading a catalog model through huggingface_hub: only the files the pipeline needs, a
free-space check first, progress, resume after an interruption (huggingface_hub keeps the partial
file and continues with a Range request), and a checksum of every weight file against the hub's
metadata afterwards. Every failure becomes a `SprintError` a user can act on.

Honesty about what is on disk: before the first byte, ``<model>/.sprint-download.json`` records
every file the hub listed with its size and sha256 and ``"complete": false``; only when every one
of them is present with its size and checksum does it become ``"complete": true``. The store shows a
folder whose record is not complete as ``partial`` whatever else is there, and
`verify_download` re-reads every byte against the recorded checksums later (`sprint models
--verify`). A stalled transfer gives up after about two ``timeout`` periods (one resume), not the
client's default of six attempts of ten seconds."""

from __future__ import annotations

import contextlib
import errno
import inspect
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..core.cancel import CancelToken
from ..core.errors import SprintError
from ..core.files import file_sha256
from ..formats.layout import ALLOW_PATTERNS
from .catalog import CatalogEntry, model_folder
from .record import RECORD_FILE, write_record

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)
RESUMES_AFTER_STALL = 1


class DownloadCancelled(SprintError):
    """The user stopped the download; what was received is kept and the next run resumes."""


_NO_CONNECTION = {"ConnectError", "ConnectionRefusedError", "gaierror", "NameResolutionError"}


def _stopped(entry: CatalogEntry, folder: Path, exc: BaseException) -> SprintError:
    """A failed download in plain words: "no internet connection" when nothing could connect, and
    the word "resume" only when some bytes were downloaded to resume from."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 10:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    if any(type(e).__name__ in _NO_CONNECTION for e in chain):
        message = (
            f"cannot download {entry.title}: no internet connection (the model hub could not be reached)"
        )
    else:
        message = f"the download of {entry.title} stopped ({type(exc).__name__}: {exc})"
    if folder.is_dir() and any(p.is_file() and p.name != RECORD_FILE for p in folder.rglob("*")):
        message += "; the part already downloaded is kept, and the next download resumes from it"
    return SprintError(message)


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
        files = {
            n: {"size": s.size, "sha256": s.lfs.sha256 if s.lfs is not None else None}
            for n, s in wanted.items()
        }
        write_record(folder, entry.repo_id, entry.revision, files, complete=False)
        with _stall_limits(timeout):
            snapshot_download(
                entry.repo_id,
                revision=entry.revision,
                local_dir=folder,
                allow_patterns=ALLOW_PATTERNS,
                endpoint=endpoint,
                token=token,
                etag_timeout=timeout,
                tqdm_class=_progress_tqdm(progress, total, cancel, start=have),
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
        raise _stopped(entry, folder, exc) from None
    except Exception as exc:  # httpx/httpcore errors for no network, timeouts and dropped connections
        if isinstance(exc, SprintError):
            raise
        if cancel is not None and cancel.cancelled:
            raise DownloadCancelled(
                f"the download of {entry.title} was stopped; run it again to resume"
            ) from None
        raise _stopped(entry, folder, exc) from None
    check_arrived(folder, files)
    verify(folder, {n: str(f["sha256"]) for n, f in files.items() if f["sha256"]})
    write_record(folder, entry.repo_id, entry.revision, files, complete=True)
    return folder


@contextlib.contextmanager
def _stall_limits(timeout: float) -> Iterator[None]:
    """While downloading: a read that waits ``timeout`` seconds fails, and a failed transfer is
    resumed `RESUMES_AFTER_STALL` time(s) before the error reaches us (huggingface_hub's defaults
    are 10 s and 5 resumes, so a stall took over a minute whatever ``--timeout`` said)."""
    from huggingface_hub import constants, file_download

    original_get = file_download.http_get
    original_timeout = constants.HF_HUB_DOWNLOAD_TIMEOUT
    limit_retries = "_nb_retries" in inspect.signature(original_get).parameters

    def http_get(*args: Any, _nb_retries: int = RESUMES_AFTER_STALL, **kwargs: Any) -> Any:
        return original_get(*args, _nb_retries=min(_nb_retries, RESUMES_AFTER_STALL), **kwargs)

    constants.HF_HUB_DOWNLOAD_TIMEOUT = max(timeout, 0.1)  # type: ignore[assignment]
    if limit_retries:
        file_download.http_get = http_get  # type: ignore[assignment]
    try:
        yield
    finally:
        constants.HF_HUB_DOWNLOAD_TIMEOUT = original_timeout
        file_download.http_get = original_get  # type: ignore[assignment]


def check_arrived(folder: Path, files: dict[str, dict[str, Any]]) -> None:
    """Every file the hub listed is in ``folder`` with its listed size."""
    missing = [n for n in files if not (folder / n).is_file()]
    if missing:
        raise SprintError(
            f"{len(missing)} of the {len(files)} files the hub listed did not arrive "
            f"({', '.join(sorted(missing)[:3])}): the download is incomplete; run it again later"
        )
    wrong = [
        n for n, f in files.items() if isinstance(f["size"], int) and (folder / n).stat().st_size != f["size"]
    ]
    if wrong:
        raise SprintError(
            f"{len(wrong)} downloaded file(s) have another size than the hub listed ({', '.join(sorted(wrong)[:3])}); "
            "run the download again"
        )


def _wanted(name: str) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, p) for p in ALLOW_PATTERNS)


def verify(folder: Path, checksums: dict[str, str]) -> None:
    """Every large file's sha256 against the hub's; a mismatching file is deleted so the next run
    downloads it again."""
    bad = []
    for name, expected in checksums.items():
        path = folder / name
        if not path.is_file() or file_sha256(path) != expected:
            bad.append(name)
            path.unlink(missing_ok=True)
    if bad:
        raise SprintError(
            f"{len(bad)} downloaded file(s) failed their checksum and were removed ({', '.join(bad)}); "
            "run the download again"
        )


def _progress_tqdm(
    progress: ProgressFn | None, total: int, cancel: CancelToken | None = None, start: int = 0
) -> Any:
    """A tqdm class for snapshot_download that reports bytes to ``progress`` and raises on a stop.

    huggingface_hub 2.x moves the same bytes through two byte bars (received from the network, and
    written to disk), so the progress is the larger of the bars' counts, not their sum (the sum
    reached 100% with half the bytes in). ``start``: bytes of files already in the folder, which
    are not downloaded again."""
    from tqdm.auto import tqdm

    counts: list[int] = []

    class ProgressTqdm(tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = True
            self._sprint_slot = len(counts) if kwargs.get("unit") == "B" else None
            if self._sprint_slot is not None:
                counts.append(0)
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            if cancel is not None and cancel.cancelled:
                raise DownloadCancelled("the download was stopped")
            if progress is not None and n and self._sprint_slot is not None:
                counts[self._sprint_slot] += int(n)
                progress(min(start + max(counts), total), total)
            return super().update(n)

    return ProgressTqdm
