"""A small Hugging Face Hub stand-in on 127.0.0.1 for download tests: repo info, file metadata
(HEAD) and downloads with Range, plus switches to stall, cut a transfer short, corrupt a file or
answer 401 as for a gated model."""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from sprint_desktop.store.catalog import CatalogEntry

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def hub_entry(name: str = "tiny", repo_id: str = "org/tiny", **changes: Any) -> CatalogEntry:
    """The catalog entry of the tiny model as a hub download (the download tests, the hub corpus
    and the fault pass's downloader subprocess all use this one); ``changes`` override fields."""
    base: dict[str, Any] = dict(
        name=name,
        title="Tiny Sprint",
        kind="hub",
        resolution=32,
        download_gb=0.01,
        min_vram_gb=0,
        license="Apache-2.0",
        license_url="https://example.invalid/licence",
        controlnet=False,
        components=("tokenizer", "text_encoder", "transformer", "vae", "scheduler"),
        repo_id=repo_id,
    )
    return CatalogEntry(**{**base, **changes})


CATALOG_FIELDS = (
    "name", "title", "kind", "repo_id", "resolution", "download_gb", "min_vram_gb", "license", "license_url",
    "controlnet",
)  # fmt: skip


def use_hub_catalog(monkeypatch: Any, root: Path, entry: CatalogEntry | None = None) -> Path:
    """Make ``entry`` (default `hub_entry`) the whole model catalog, written as ``root/catalog.toml``
    the way `sprint download` and the model manager read it, with the model store at
    ``root/store``; returns the store."""
    from sprint_desktop.store import catalog

    entry = entry or hub_entry()
    lines = ["[[model]]"] + [f"{f} = {_toml(getattr(entry, f))}" for f in CATALOG_FIELDS]
    path = root / "catalog.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(catalog, "catalog_path", lambda: path)
    monkeypatch.setattr(catalog, "store_root", lambda: root / "store")
    return root / "store"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)  # a TOML basic string or number


class QuietServer(ThreadingHTTPServer):
    """A client that hangs up before the answer is sent (a cut download, a timeout, a killed
    process) is expected here: say nothing. Any other error in a handler prints its traceback."""

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class FakeHub:
    def __init__(self, repo_id: str, folder: Path) -> None:
        self.repo_id = repo_id
        self.files = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
        }
        self.gated = False
        self.stall_seconds = 0.0
        self.cut_after: dict[str, int] = {}  # file -> bytes sent before the connection is dropped (once)
        self.corrupt: set[str] = set()
        self.bytes_per_second = 0  # 0: as fast as possible
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.info_only: dict[str, bytes] = {}  # listed in the repo info, absent from the tree and downloads
        self.tree_status = 200  # another status fails the tree listing
        self.stall_after: dict[str, tuple[int, float]] = {}  # file -> (bytes sent, then seconds of silence)
        self.info_body: bytes | None = None  # replaces the repo info answer (hostile hub responses)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send_json(self, body: bytes, head: bool) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _route(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path, self.headers.get("Range")))
                if hub.gated:
                    self.send_response(401)
                    self.send_header("X-Error-Code", "GatedRepo")
                    self.send_header("X-Error-Message", "Access to this model is restricted.")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if hub.stall_seconds:
                    time.sleep(hub.stall_seconds)
                tree_prefix = f"/api/models/{hub.repo_id}/tree/"
                if path.startswith(tree_prefix) and hub.tree_status != 200:
                    self.send_response(hub.tree_status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if path.startswith(tree_prefix):
                    body = json.dumps(
                        [
                            {
                                "type": "file",
                                "path": name,
                                "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest(),
                                **(
                                    {
                                        "lfs": {
                                            "oid": hashlib.sha256(data).hexdigest(),
                                            "size": len(data),
                                            "pointerSize": 130,
                                        }
                                    }
                                    if name.endswith(".safetensors")
                                    else {}
                                ),
                            }
                            for name, data in hub.files.items()
                        ]
                    ).encode()
                    self._send_json(body, head)
                    return
                info_prefix = f"/api/models/{hub.repo_id}/revision/"
                resolve_prefix = f"/{hub.repo_id}/resolve/"
                if path.startswith(info_prefix) and hub.info_body is not None:
                    self._send_json(hub.info_body, head)
                    return
                if path.startswith(info_prefix):
                    listed = {**hub.files, **hub.info_only}
                    body = json.dumps(
                        {
                            "id": hub.repo_id,
                            "sha": COMMIT,
                            "private": False,
                            "siblings": [
                                {
                                    "rfilename": name,
                                    "size": len(data),
                                    **(
                                        {
                                            "lfs": {
                                                "sha256": hashlib.sha256(data).hexdigest(),
                                                "size": len(data),
                                                "pointerSize": 130,
                                            }
                                        }
                                        if name.endswith(".safetensors")
                                        else {}
                                    ),
                                }
                                for name, data in listed.items()
                            ],
                        }
                    ).encode()
                    self._send_json(body, head)
                    return
                if path.startswith(resolve_prefix):
                    name = path[len(resolve_prefix) :].split("/", 1)[1]
                    data = hub.files.get(name)
                    if data is None:
                        self.send_response(404)
                        self.send_header("X-Error-Code", "EntryNotFound")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    sha = hashlib.sha256(data).hexdigest()
                    if name in hub.corrupt:
                        data = bytes(b ^ 0xFF for b in data)
                    start = 0
                    rng = self.headers.get("Range")
                    if rng and rng.startswith("bytes="):
                        start = int(rng[6:].split("-")[0])
                    self.send_response(206 if start else 200)
                    self.send_header("X-Repo-Commit", COMMIT)
                    etag = sha if name.endswith(".safetensors") else hashlib.sha1(data).hexdigest()
                    self.send_header("ETag", f'"{etag}"')
                    if name.endswith(".safetensors"):
                        self.send_header("X-Linked-Etag", f'"{sha}"')
                        self.send_header("X-Linked-Size", str(len(data)))
                    self.send_header("Accept-Ranges", "bytes")
                    self.send_header("Content-Length", str(len(data) - start))
                    if start:
                        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    self.end_headers()
                    if head:
                        return
                    payload = data[start:]
                    stall = hub.stall_after.get(name)
                    if stall is not None:
                        self.wfile.write(payload[: stall[0]])
                        self.wfile.flush()
                        time.sleep(stall[1])
                        return
                    cut = hub.cut_after.pop(name, None)
                    if cut is not None:
                        self.wfile.write(payload[:cut])
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return
                    if hub.bytes_per_second:
                        for i in range(0, len(payload), 1024):
                            self.wfile.write(payload[i : i + 1024])
                            self.wfile.flush()
                            time.sleep(1024 / hub.bytes_per_second)
                    else:
                        self.wfile.write(payload)
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802
                self._route(head=False)

            def do_HEAD(self) -> None:  # noqa: N802
                self._route(head=True)

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
