"""A Python package index on 127.0.0.1 for the GPU-runtime tests: PEP 691 JSON and PEP 503 HTML
project pages and wheel downloads with Range, plus switches to cut a transfer short, serve altered
bytes, slow down, or hold a transfer mid-file. `build_wheel` makes the tiny wheels it serves."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler
from urllib.parse import unquote, urlparse

from .fake_hub import QuietServer


def build_wheel(
    project: str, version: str, files: dict[str, bytes], tag: str = "py3-none-any"
) -> tuple[str, bytes]:
    """A valid wheel (``files`` are paths inside it; a ``.data/platlib/`` prefix works too)."""
    dist = f"{project.replace('-', '_')}-{version}"
    meta = {
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {project}\nVersion: {version}\n".encode(),
        f"{dist}.dist-info/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: {tag}\n".encode(),
    }
    everything = {**files, **meta}
    record = []
    for name, data in everything.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{dist}.dist-info/RECORD,,")
    everything[f"{dist}.dist-info/RECORD"] = "\n".join(record).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:  # stored: sizes are predictable
        for name, data in everything.items():
            zf.writestr(name, data)
    return f"{dist}-{tag}.whl", buf.getvalue()


class FakeIndex:
    def __init__(self) -> None:
        self.projects: dict[str, list[str]] = {}  # canonical project name -> filenames
        self.files: dict[str, bytes] = {}
        self.hashes: dict[str, str] = {}
        self.cut_after: dict[str, int] = {}  # filename -> bytes sent before the connection drops (once)
        self.altered: set[str] = set()  # filenames served with other bytes than the hash says
        self.bytes_per_second = 0
        self.flowing = threading.Event()  # cleared: a file transfer stops after its first part until set
        self.flowing.set()
        self.json = True  # False: answer PEP 503 HTML only
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        index = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:  # noqa: N802
                self._route(head=True)

            def do_GET(self) -> None:  # noqa: N802
                self._route(head=False)

            def _reply(
                self, code: int, body: bytes, ctype: str, head: bool, extra: dict | None = None
            ) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _route(self, head: bool) -> None:
                path = unquote(urlparse(self.path).path)
                index.requests.append((self.command, path, self.headers.get("Range")))
                if path.startswith("/simple/"):
                    project = path[len("/simple/") :].strip("/")
                    if project not in index.projects:
                        self._reply(404, b"not found", "text/plain", head)
                        return
                    names = index.projects[project]
                    if index.json and "vnd.pypi.simple.v1+json" in self.headers.get("Accept", ""):
                        body = json.dumps(
                            {
                                "meta": {"api-version": "1.1"},
                                "name": project,
                                "files": [
                                    {
                                        "filename": n,
                                        "url": f"../../files/{n}",
                                        "hashes": {"sha256": index.hashes[n]},
                                        "size": len(index.files[n]),
                                    }
                                    for n in names
                                ],
                            }
                        ).encode()
                        self._reply(200, body, "application/vnd.pypi.simple.v1+json", head)
                    else:
                        links = "".join(
                            f'<a href="/files/{n}#sha256={index.hashes[n]}">{n}</a><br>' for n in names
                        )
                        body = f"<!DOCTYPE html><html><body>{links}</body></html>".encode()
                        self._reply(200, body, "text/html", head)
                    return
                if path.startswith("/files/"):
                    name = path[len("/files/") :]
                    if name not in index.files:
                        self._reply(404, b"not found", "text/plain", head)
                        return
                    data = index.files[name]
                    if name in index.altered:
                        data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
                    start = 0
                    rng = self.headers.get("Range")
                    if rng and rng.startswith("bytes="):
                        start = int(rng[6:].split("-")[0])
                    if start >= len(data) > 0:
                        self._reply(416, b"", "text/plain", head)
                        return
                    body = data[start:]
                    extra = {"Accept-Ranges": "bytes"}
                    if start:
                        extra["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                    self.send_response(206 if start else 200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.end_headers()
                    if head:
                        return
                    cut = index.cut_after.pop(name, None)
                    if cut is not None:
                        self.wfile.write(body[:cut])
                        self.wfile.flush()
                        self.close_connection = True
                        return
                    step = 8192
                    for i in range(0, len(body), step):
                        self.wfile.write(body[i : i + step])
                        index.flowing.wait(60)
                        if index.bytes_per_second:
                            time.sleep(step / index.bytes_per_second)
                    return
                self._reply(404, b"not found", "text/plain", head)

        self.server = QuietServer(("127.0.0.1", 0), Handler)  # a client gone mid-file is expected
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, project: str, filename: str, data: bytes) -> None:
        self.projects.setdefault(project, []).append(filename)
        self.files[filename] = data
        self.hashes[filename] = hashlib.sha256(data).hexdigest()

    def __enter__(self) -> FakeIndex:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
