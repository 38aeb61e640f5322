"""A small client of a Python package index's simple API: list a project's files (PEP 691 JSON,
or PEP 503 HTML as a fall back), and pick the wheel of a pinned version that this interpreter can
import (its tags: Python version, ABI, platform). Standard library + ``packaging`` only, so it runs
inside the frozen app, which has no pip."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin
from urllib.request import Request, urlopen

from packaging.tags import Tag, sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..core.errors import SprintError

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
PIN_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([A-Za-z0-9.+!_-]+)\s*$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class IndexFile:
    """One file of a project as the index lists it."""

    filename: str
    url: str
    sha256: str | None
    size: int | None = None
    yanked: bool = False


@dataclass(frozen=True)
class Wheel:
    """The wheel chosen for a pinned requirement."""

    project: str
    version: str
    filename: str
    url: str
    sha256: str
    size: int | None


def parse_pin(requirement: str) -> tuple[str, str]:
    """``"name==version"`` -> (canonical name, version); anything looser is refused."""
    m = PIN_RE.match(requirement)
    if not m:
        raise SprintError(f"the GPU runtime must pin exact versions (name==version), got {requirement!r}")
    return canonicalize_name(m.group(1)), m.group(2)


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, dict[str, str | None]]] = []
        self._href: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self._href = None


def parse_project_page(body: bytes, content_type: str, page_url: str) -> list[IndexFile]:
    """The files of a project page, JSON (PEP 691) or HTML (PEP 503); relative URLs resolved."""
    files = []
    if "json" in content_type:
        data = json.loads(body)
        for f in data.get("files", []):
            sha = (f.get("hashes") or {}).get("sha256")
            files.append(
                IndexFile(
                    filename=f["filename"],
                    url=urljoin(page_url, f["url"]),
                    sha256=sha.lower() if isinstance(sha, str) else None,
                    size=f.get("size") if isinstance(f.get("size"), int) else None,
                    yanked=bool(f.get("yanked")),
                )
            )
        return files
    parser = _LinkParser()
    parser.feed(body.decode("utf-8", errors="replace"))
    for text, attrs in parser.links:
        href = attrs.get("href")
        if not href:
            continue
        url, fragment = urldefrag(urljoin(page_url, href))
        sha = fragment.split("=", 1)[1].lower() if fragment.startswith("sha256=") else None
        filename = text or url.rsplit("/", 1)[-1]
        files.append(IndexFile(filename, url, sha, None, "data-yanked" in attrs))
    return files


def list_files(index_url: str, project: str, timeout: float = 30.0) -> list[IndexFile]:
    """Ask the index for ``project``'s files."""
    page = urljoin(
        index_url if index_url.endswith("/") else index_url + "/", f"{canonicalize_name(project)}/"
    )
    try:
        with urlopen(Request(page, headers={"Accept": ACCEPT}), timeout=timeout) as resp:
            body = resp.read()
            content_type = resp.headers.get("Content-Type", "")
    except OSError as exc:  # URLError, HTTPError, timeouts, refused connections
        raise SprintError(f"cannot reach the package index at {index_url} for {project} ({exc})") from None
    try:
        return parse_project_page(body, content_type, page)
    except (ValueError, KeyError, TypeError) as exc:
        raise SprintError(f"the package index sent an unreadable page for {project} ({exc})") from None


def pick_wheel(project: str, version: str, files: list[IndexFile], tags: list[Tag] | None = None) -> Wheel:
    """The best wheel of ``project==version`` for ``tags`` (default: this interpreter's, best first).

    Refuses, with a message, when no wheel fits (wrong Python version or platform) or when the
    index gives no sha256 for it (nothing unverified is installed)."""
    tags = list(sys_tags()) if tags is None else tags
    rank = {tag: i for i, tag in enumerate(tags)}
    want = Version(version)
    candidates: list[tuple[int, IndexFile]] = []
    seen_other = []
    for f in files:
        if not f.filename.endswith(".whl") or f.yanked:
            continue
        try:
            name, wheel_version, _, wheel_tags = parse_wheel_filename(f.filename)
        except (InvalidWheelFilename, InvalidVersion):
            continue
        if name != canonicalize_name(project) or wheel_version != want:
            continue
        best = min((rank[t] for t in wheel_tags if t in rank), default=None)
        if best is None:
            seen_other.append(f.filename)
        else:
            candidates.append((best, f))
    if not candidates:
        why = f" (the index has only {', '.join(seen_other[:3])})" if seen_other else ""
        raise SprintError(
            f"no wheel of {project} {version} fits this app's Python and platform "
            f"({tags[0] if tags else 'no tags'}){why}"
        )
    chosen = min(candidates, key=lambda c: c[0])[1]
    if not chosen.sha256 or not SHA256_RE.match(chosen.sha256):
        raise SprintError(
            f"the index gives no sha256 for {chosen.filename}: refusing to install it unverified"
        )
    return Wheel(project, version, chosen.filename, chosen.url, chosen.sha256, chosen.size)
