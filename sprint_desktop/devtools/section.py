"""What every section of the GPU run shares: a deadline and a JSON record rewritten after every
change, so that a section killed at its deadline still leaves what it had measured."""

from __future__ import annotations

import json
import os
import time
import traceback
from pathlib import Path
from typing import Any


class Section:
    """The record of one section, kept at ``path`` (rewritten atomically on every `set`)."""

    def __init__(self, path: str | Path, deadline: float) -> None:
        self.path = Path(path)
        self.deadline = deadline
        self.started = time.time()
        self.data: dict[str, Any] = {"status": "running"}
        self.save()

    def left(self) -> float:
        """Seconds until the deadline."""
        return self.deadline - time.time()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.save()

    def save(self) -> None:
        self.data["elapsed_s"] = round(time.time() - self.started, 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str))
        os.replace(tmp, self.path)

    def fail(self, exc: BaseException) -> None:
        """Record an exception (one line, the last frames in ``trace``) and mark the section failed."""
        self.data["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        self.data["trace"] = traceback.format_exc()[-3000:]
        self.data["status"] = "failed"
        self.save()

    def done(self) -> None:
        if self.data.get("status") == "running":
            self.data["status"] = "ok"
        self.save()
