"""The window's state and actions without a window (after Krita AI Diffusion's ``model/``).

`Workspace` holds the parameters, the sketch, the model state, the shown results and the gallery;
it sends requests through a `Runner` and keeps the request-id bookkeeping: the newest request of
each kind wins and stale results are dropped. The live canvas asks `core.live.LiveScheduler` when
to run and is driven by `pump` (the window calls it when `events.wake` asks). Panels bind to
`events` and call the actions; nothing here imports Qt, so all of it is tested in milliseconds.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import SprintError
from ..core.gallery import Gallery, GalleryItem
from ..core.live import LiveScheduler
from ..core.metadata import read_png_params
from ..core.paths import default_model_path
from ..core.request import GenerateRequest, GenerateResult, Timings
from ..core.settings import Settings, load_settings, save_settings
from ..core.vocabulary import Vocabulary, read_vocabulary
from .events import Event
from .params import UI_MAX_SEED, Params, params_from_metadata, params_from_settings, params_into_settings
from .runner import Runner
from .wording import for_the_window

if TYPE_CHECKING:
    from ..engine.base import ModelInfo

NO_MODEL = "No model is installed. Choose a SANA-Sprint model folder in File ▸ Settings."


@dataclass(frozen=True)
class ModelState:
    phase: str
    """"none", "loading", "ready" or "failed"."""
    text: str
    """What the status bar says about the model."""
    info: ModelInfo | None = None


class WorkspaceEvents:
    """What panels subscribe to. Images are uint8 (H, W, 3) arrays, or None to clear a view."""

    def __init__(self) -> None:
        self.params_changed: Event[[Params]] = Event()
        self.model_changed: Event[[ModelState]] = Event()
        self.prompt_image: Event[[np.ndarray | None]] = Event()
        self.live_image: Event[[np.ndarray | None]] = Event()
        self.timings: Event[[Timings]] = Event()
        self.progress: Event[[int, int]] = Event()
        self.error: Event[[str]] = Event()  # "" clears the message
        self.status: Event[[str, int]] = Event()  # text, milliseconds to show it (0: until replaced)
        self.hint: Event[[str]] = Event()  # about the prompt: unknown words, too many words
        self.gallery_changed: Event[[]] = Event()
        self.wake: Event[[float]] = Event()  # call `pump` again in this many seconds


class Workspace:
    """State and actions of one window. ``clock`` and ``draw_seed`` are injectable for tests."""

    def __init__(
        self,
        runner: Runner,
        settings_path: Path,
        data_dir: Path,
        model_override: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        draw_seed: Callable[[], int] = lambda: secrets.randbelow(UI_MAX_SEED),
    ) -> None:
        self.events = WorkspaceEvents()
        self.runner = runner
        self.settings_path = settings_path
        self.data_dir = data_dir
        self.model_override = model_override
        self.clock = clock
        self.draw_seed = draw_seed
        self.settings, self.settings_notice = load_settings(settings_path)
        self.params = params_from_settings(self.settings)
        self.live_enabled = self.settings.live
        self.canvas_shown = False
        self.sketch: np.ndarray | None = None
        self.info: ModelInfo | None = None
        self.vocabulary: Vocabulary | None = None
        self.prompt_result: GenerateResult | None = None
        self.live_result: GenerateResult | None = None
        self.prompt_id = 0
        self.prompt_pending = False
        self.live_id = 0
        self.model_path_loading = ""
        self.scheduler: LiveScheduler[GenerateRequest] = LiveScheduler(
            debounce=self.settings.live_debounce_ms / 1000, max_wait=self.settings.live_max_wait_ms / 1000
        )
        self.gallery_notices: list[str] = []
        self.gallery = self._open_gallery()

    # ------------------------------------------------------------------------------ parameters
    def set_params(self, **changes: Any) -> None:
        """Change some parameters (invalid values are refused with a message)."""
        params, bad = params_from_metadata(changes, self.params) if changes else (self.params, [])
        if "seed_mode" in changes:
            params, more = _with_seed_mode(params, changes["seed_mode"])
            bad += more
        if bad:
            self.events.error.emit(f"Not a valid value for {', '.join(bad)}.")
        self._set(params)

    def _set(self, params: Params) -> None:
        if params == self.params:
            return
        prompt_changed = params.prompt != self.params.prompt
        self.params = params
        self.events.params_changed.emit(params)
        if prompt_changed:
            self.events.hint.emit(self.prompt_hint())
        if self.canvas_shown:
            self._live_changed()

    def prompt_hint(self) -> str:
        return self.vocabulary.hint(self.params.prompt) if self.vocabulary else ""

    def new_seed(self) -> None:
        self._set(replace(self.params, seed=self.draw_seed()))

    def reuse_seed(self) -> None:
        """Keep the seed of the image shown (an explicit choice: the seed mode becomes fixed)."""
        seed = self.prompt_result.request.seed if self.prompt_result else self.params.seed
        self._set(replace(self.params, seed=seed, seed_mode="fixed"))

    def size_presets(self) -> list[tuple[int, int]]:
        """The model's default size first, then about the same area in 3:4, 4:3, 9:16 and 16:9."""
        if self.info is None:
            return []
        w, h, m = self.info.default_width, self.info.default_height, self.info.size_multiple
        presets = [(w, h)]
        for aw, ah in ((3, 4), (4, 3), (9, 16), (16, 9)):
            scale = (w * h / (aw * ah)) ** 0.5
            size = (max(m, round(aw * scale / m) * m), max(m, round(ah * scale / m) * m))
            if size not in presets:
                presets.append(size)
        return presets

    # ------------------------------------------------------------------------------ the model
    def model_path(self) -> str | None:
        chosen = self.model_override or self.settings.model
        if chosen:
            return chosen
        path = default_model_path()
        return str(path) if path else None

    def load_model(self) -> None:
        path = self.model_path()
        if path is None:
            self.info = None
            self.events.model_changed.emit(ModelState("none", "no model"))
            self.events.error.emit(NO_MODEL)
            return
        self.runner.load(path, backend=self.settings.backend, device=self.settings.device)

    def on_loading(self, path: str) -> None:
        self.info = None
        self.model_path_loading = path
        self.events.model_changed.emit(ModelState("loading", f"loading model {Path(path).name}…"))

    def on_load_progress(self, message: str) -> None:
        self.events.model_changed.emit(ModelState("loading", message))

    def on_loaded(self, info: ModelInfo) -> None:
        self.info = info
        self.vocabulary = read_vocabulary(info.path or self.model_path_loading, info.max_sequence_length)
        text = f"{info.backend} · {info.device} ({info.dtype}) · {info.name}"
        if (self.params.width, self.params.height) not in self.size_presets():
            self.params = replace(self.params, width=info.default_width, height=info.default_height)
            self.events.params_changed.emit(self.params)
        self.events.error.emit("")
        self.events.model_changed.emit(ModelState("ready", text, info))
        self.events.hint.emit(self.prompt_hint())
        if self.settings.generate_on_start and self.params.prompt.strip() and self.prompt_id == 0:
            self.generate()
        elif self.canvas_shown:
            self._live_changed()

    def on_load_failed(self, message: str) -> None:
        self.info = None
        self.events.model_changed.emit(ModelState("failed", "no model loaded"))
        self.events.error.emit(for_the_window(message))

    def use_model(self, folder: str) -> None:
        """Switch to the model in ``folder`` and remember it."""
        self.settings.model = folder
        self.model_override = None
        self.load_model()
        self.save_settings()

    # ------------------------------------------------------------------------------ generating
    def generate(self) -> int | None:
        """Send the prompt's request; the image comes through `events.prompt_image`."""
        if self.info is None:
            self.events.error.emit("The model is not ready yet.")
            return None
        if self.params.seed_mode == "random":
            self.new_seed()
        request = self.params.request(model=self.info.name, backend=self.info.backend)
        try:
            request.validate()
        except SprintError as exc:
            self.events.error.emit(for_the_window(str(exc)))
            return None
        self.events.error.emit("")
        self._remember_prompt(request.prompt)
        self.prompt_pending = True
        self.prompt_id = 0  # a replaced earlier prompt request is stale from now on
        self.prompt_id = self.runner.submit(request)
        self.events.status.emit("generating…", 0)
        return self.prompt_id

    def on_progress(self, request_id: int, stage: str, step: int, total: int) -> None:
        if request_id == self.prompt_id and stage == "denoise":
            self.events.progress.emit(min(step + 1, total), total)

    def on_finished(self, request_id: int, result: GenerateResult) -> None:
        if request_id == self.live_id:
            self.live_result = result
            self.events.timings.emit(result.timings)
            self.events.live_image.emit(result.image)
            self._live_done(completed=True)
        elif request_id == self.prompt_id:
            self.prompt_result = result
            self.events.timings.emit(result.timings)
            self.events.prompt_image.emit(result.image)
            warnings = [for_the_window(w, self.vocabulary) for w in result.warnings]
            hint = self.prompt_hint()
            self.events.status.emit(
                " ".join(["Done.", *warnings, hint]).strip(), 8000 if warnings or hint else 2000
            )
            self._prompt_done()
        # Otherwise the result is stale (a newer request was sent after it): dropped.

    def on_failed(self, request_id: int, message: str) -> None:
        if request_id not in (self.live_id, self.prompt_id):
            return
        self.events.status.emit("", 0)
        self.events.error.emit(for_the_window(message))
        if request_id == self.live_id:
            self._live_done(completed=True)  # an error repeats: the same request is not retried
        else:
            self._prompt_done()

    def on_cancelled(self, request_id: int) -> None:
        if request_id == self.live_id:
            self._live_done(completed=False)  # interrupted, never shown: it may run again
        elif request_id == self.prompt_id:
            self.events.status.emit("", 0)
            self._prompt_done()

    def _prompt_done(self) -> None:
        """The prompt's request ended: the live canvas, held back meanwhile, may run again."""
        self.prompt_pending = False
        self.pump()

    def _remember_prompt(self, prompt: str) -> None:
        recent = [p for p in self.settings.recent_prompts if p != prompt]
        self.settings.recent_prompts = [prompt, *recent][:50]

    # ------------------------------------------------------------------------------ live canvas
    def set_live(self, on: bool) -> None:
        self.live_enabled = on
        if on:
            self._live_changed()

    def set_canvas_shown(self, shown: bool) -> None:
        """The live canvas is on screen (parameter changes then refresh its image)."""
        self.canvas_shown = shown
        if shown:
            self._live_changed()

    def set_sketch(self, sketch: np.ndarray | None) -> None:
        """The canvas changed; a blank canvas (or None) means no sketch."""
        was_drawn = self.sketch is not None
        self.sketch = None if sketch is None or bool((sketch == 255).all()) else sketch
        if was_drawn and self.sketch is None and self.live_result is not None:
            self.live_result = None  # cleared: the old image goes at once, the prompt's one follows
            self.events.live_image.emit(None)
        self._live_changed()

    def live_request(self) -> GenerateRequest | None:
        """The live canvas's request now: the prompt with the sketch, or the prompt alone."""
        if self.info is None or not self.params.prompt.strip():
            return None
        return self.params.request(self.sketch, model=self.info.name, backend=self.info.backend)

    def _live_changed(self) -> None:
        if not self.live_enabled:
            return
        request = self.live_request()
        if request is None:
            return
        self.scheduler.change(request, self.clock())
        self.pump()

    def pump(self) -> None:
        """Start the live canvas's next request if the scheduler says so, else ask to be woken."""
        if self.prompt_pending:
            return  # an explicit Generate goes first; the canvas resumes when it ends
        now = self.clock()
        request = self.scheduler.poll(now)
        if request is not None:
            self.live_id = self.runner.submit(request)
            return
        wait = self.scheduler.next_check(now)
        if wait is not None:
            self.events.wake.emit(wait)

    def _live_done(self, completed: bool) -> None:
        self.scheduler.finished(self.clock(), completed)
        self.live_id = 0
        self.pump()

    # ------------------------------------------------------------------------------ gallery
    def _open_gallery(self) -> Gallery:
        """The settings' folder, else the default one, else a temporary one (each move is said)."""
        default = self.data_dir / "gallery"
        candidates = [Path(self.settings.output_dir)] if self.settings.output_dir else []
        for folder in [*candidates, default]:
            try:
                gallery = Gallery(folder)
            except (OSError, SprintError) as exc:
                self.gallery_notices.append(f"Cannot use the gallery folder {folder} ({exc}).")
                continue
            if gallery.notice:
                self.gallery_notices.append(gallery.notice)
            return gallery
        temp = Path(tempfile.mkdtemp(prefix="sprint-gallery-"))
        self.gallery_notices.append(f"Kept images go to {temp} for now.")
        return Gallery(temp)

    def keep(self) -> GalleryItem | None:
        """Keep the image on screen: the live canvas's when it is shown, else the prompt's."""
        result = self.live_result if self.canvas_shown else self.prompt_result
        if result is None:
            self.events.error.emit("Nothing to keep yet: generate an image first.")
            return None
        try:
            item = self.gallery.add(result.image, result.metadata())
        except SprintError as exc:
            self.events.error.emit(str(exc))
            return None
        self.events.gallery_changed.emit()
        self.events.status.emit(f"kept as {item.path.name}", 3000)
        return item

    def delete(self, item: GalleryItem) -> None:
        try:
            self.gallery.delete(item.id)
        except SprintError as exc:
            self.events.error.emit(str(exc))
        self.events.gallery_changed.emit()

    def restore(self, meta: dict[str, Any]) -> None:
        """Put an image's parameters back. The seed mode stays as it is, and the status says what
        that means for the next image."""
        params, _ = params_from_metadata(meta, self.params)
        self._set(params)
        if params.seed_mode == "random":
            self.events.status.emit(
                f"Parameters restored (seed {params.seed}). Seeds are random: the next image gets a "
                "new one; choose “fixed” to draw this one again.",
                8000,
            )
        else:
            self.events.status.emit(f"Parameters restored (seed {params.seed}, fixed).", 4000)

    def show_item(self, item: GalleryItem, image: np.ndarray) -> None:
        """A kept image was chosen: its parameters come back and it is shown."""
        self.restore(item.params)
        self.prompt_result = None
        self.events.prompt_image.emit(image)

    def restore_from_file(self, path: str) -> bool:
        try:
            meta = read_png_params(path)
        except SprintError as exc:
            self.events.error.emit(str(exc))
            return False
        self.restore(meta)
        return True

    # ------------------------------------------------------------------------------ settings
    def apply_settings(self, new: Settings) -> bool:
        """Use the settings from the dialog; True when the model is reloaded."""
        old, self.settings = self.settings, new
        self.scheduler.debounce = new.live_debounce_ms / 1000
        self.scheduler.max_wait = new.live_max_wait_ms / 1000
        if old.output_dir != new.output_dir:
            self.gallery.close()
            self.gallery = self._open_gallery()
            self.events.gallery_changed.emit()
        reload = (old.model, old.backend, old.device) != (new.model, new.backend, new.device)
        if reload:
            self.model_override = None
            self.load_model()
        self.save_settings()
        return reload

    def save_settings(self, **window: Any) -> None:
        """Write the settings with the current parameters (and ``window`` fields: geometry...)."""
        self.settings = replace(
            params_into_settings(self.params, self.settings), live=self.live_enabled, **window
        )
        try:
            save_settings(self.settings, self.settings_path)
        except OSError as exc:
            self.events.error.emit(f"Cannot save settings to {self.settings_path}: {exc}")

    def close(self, **window: Any) -> None:
        self.save_settings(**window)
        self.gallery.close()


def _with_seed_mode(params: Params, mode: Any) -> tuple[Params, list[str]]:
    if mode in ("random", "fixed"):
        return replace(params, seed_mode=mode), []
    return params, ["seed_mode"]
