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
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.errors import SprintError
from ..core.gallery import Gallery, GalleryItem
from ..core.live import LiveScheduler
from ..core.metadata import read_png_params
from ..core.paths import default_model_path
from ..core.power import on_battery
from ..core.request import GenerateRequest, GenerateResult
from ..core.settings import Settings, load_settings, save_settings
from ..core.vocabulary import Vocabulary, read_vocabulary
from .events import ModelState, WorkspaceEvents
from .params import (
    RESTORED_NAMES,
    UI_MAX_SEED,
    Params,
    params_from_metadata,
    params_from_settings,
    params_into_settings,
    params_with,
    size_presets,
)
from .runner import Runner
from .wording import for_the_window

if TYPE_CHECKING:
    from ..engine.base import ModelInfo

REFINE_AFTER_S = 0.4
"""Instant, then refine: how long the input must pause before the shown image is refined."""
NO_MODEL = "No model is installed. Choose a SANA-Sprint model folder in File ▸ Settings."


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
        self.settings_saved = _copy(self.settings)
        """The settings as this instance loaded or last saved them: a save writes only what differs
        from them, so another instance's changes to other fields are kept."""
        self.params = params_from_settings(self.settings)
        self.steps_from_model = self.settings.steps == 0
        """The steps are the model's default (settings 0) until the user picks a value."""
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
        self.live_hidden_id = 0
        self.model_path_loading = ""
        self.images_since_load = 0
        """Results since the model loaded: a compiled model compiles on its first image."""
        self.scheduler: LiveScheduler[GenerateRequest] = LiveScheduler(
            debounce=self.settings.live_debounce_ms / 1000,
            refine_after=REFINE_AFTER_S,
            refine=self.refinement,
        )
        # The prompt's images are made by Generate, not by a scheduler; this one only refines them.
        self.prompt_refiner: LiveScheduler[GenerateRequest] = LiveScheduler(
            refine_after=REFINE_AFTER_S, refine=self.refinement
        )
        self.prompt_refine_id = 0
        """The request id of the prompt image's refinement while it runs, else 0."""
        self.gallery, self.gallery_notices = open_gallery(self.settings.output_dir, data_dir)

    # ------------------------------------------------------------------------------ parameters
    def set_params(self, **changes: Any) -> None:
        """Change some parameters (invalid values are refused with a message). Any change is new
        input: the prompt image's refinement, coming or running, is cancelled."""
        self._interrupt_prompt_refinement()
        params, bad = params_with(self.params, changes)
        if params.steps != self.params.steps:
            self.steps_from_model = False
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
        info = self.info
        return size_presets(info.default_width, info.default_height, info.size_multiple) if info else []

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
        self.runner.load(
            path, backend=self.settings.backend, device=self.settings.device, compile=self.settings.compile
        )

    def on_loading(self, path: str) -> None:
        self.info = None
        self.model_path_loading = path
        self.events.model_changed.emit(ModelState("loading", f"loading model {Path(path).name}…"))

    def on_load_progress(self, message: str) -> None:
        self.events.model_changed.emit(ModelState("loading", message))

    def on_loaded(self, info: ModelInfo) -> None:
        self.info = info
        self.images_since_load = 0
        self.vocabulary = read_vocabulary(info.path or self.model_path_loading, info.max_sequence_length)
        text = f"{info.backend} · {info.device} ({info.dtype}) · {info.name}"
        if info.compile_mode != "off":
            text += f" · compiled ({info.compile_mode})"
        params = self.params
        if (params.width, params.height) not in self.size_presets():
            params = replace(params, width=info.default_width, height=info.default_height)
        if self.steps_from_model:
            params = replace(params, steps=info.default_steps)
        if params != self.params:
            self.params = params
            self.events.params_changed.emit(params)
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
        self._interrupt_prompt_refinement()
        if self.info is None:
            self.events.error.emit("The model is not ready yet.")
            return None
        pending, self.prompt_pending = self.prompt_pending, True  # the live canvas waits meanwhile
        if self.params.seed_mode == "random":
            self.new_seed()
        request = self.params.request(model=self.info.name, backend=self.info.backend)
        try:
            request.validate()
        except SprintError as exc:
            self.prompt_pending = pending
            self.events.error.emit(for_the_window(str(exc)))
            return None
        self.events.error.emit("")
        self._remember_prompt(request.prompt)
        self.prompt_id = 0  # a replaced earlier prompt request is stale from now on
        self.prompt_id = self.runner.submit(request)
        self.events.status.emit(self.compiling_status() or "generating…", 0)
        return self.prompt_id

    def compiling_status(self) -> str | None:
        """What the status bar says while a compiled model makes its first image (it compiles
        then: a minute or more), else None."""
        info = self.info
        if info is None or info.compile_mode == "off" or self.images_since_load:
            return None
        where = "GPU" if info.device.startswith("cuda") else "CPU"
        return f"Compiling for this {where} (first image only; this can take a minute or more)…"

    def on_progress(self, request_id: int, stage: str, step: int, total: int) -> None:
        if request_id == self.prompt_id and stage == "denoise":
            self.events.progress.emit(min(step + 1, total), total)

    def on_finished(self, request_id: int, result: GenerateResult) -> None:
        self.images_since_load += 1  # a stale result was compiled for too
        if request_id == self.live_id:
            if request_id != self.live_hidden_id:
                self.live_result = result
                self.events.timings.emit(result.timings)
                self.events.live_image.emit(result.image)
                self.events.status.emit(self.shown_status(result.request, self.scheduler.refining), 0)
            self._live_done(completed=True)
        elif request_id == self.prompt_id:
            self.prompt_result = result
            self.events.timings.emit(result.timings)
            self.events.prompt_image.emit(result.image)
            refined = request_id == self.prompt_refine_id
            if refined:
                self._prompt_refinement_done(completed=True)
            else:
                self.prompt_refiner.show(result.request, self.clock())
            warnings = [for_the_window(w, self.vocabulary) for w in result.warnings]
            hint = self.prompt_hint()
            self.events.status.emit(
                " ".join([self.shown_status(result.request, refined), *warnings, hint]).strip(), 0
            )
            self._prompt_done()
        # Otherwise the result is stale (a newer request was sent after it): dropped.

    def on_failed(self, request_id: int, message: str) -> None:
        if request_id not in (self.live_id, self.prompt_id):
            return
        self.events.status.emit("", 0)
        self.events.error.emit(for_the_window(message))
        if request_id == self.live_id:
            self._live_done(completed=True, failed=True)  # an error repeats: not retried, not refined
        else:
            if request_id == self.prompt_refine_id:
                self._prompt_refinement_done(completed=False)
            self._prompt_done()

    def on_cancelled(self, request_id: int) -> None:
        if request_id == self.live_id:
            self._live_done(completed=False)  # interrupted, never shown: it may run again
        elif request_id == self.prompt_id:
            if request_id == self.prompt_refine_id:
                self._prompt_refinement_done(completed=False)
            self.events.status.emit("", 0)
            self._prompt_done()

    def _prompt_done(self) -> None:
        """The prompt's request ended: the live canvas, held back meanwhile, may run again."""
        self.prompt_pending = False
        self.pump()

    # ------------------------------------------------------------------------------ instant, then refine
    def refinement(self, request: GenerateRequest) -> GenerateRequest | None:
        """The request refined: the same one (seed, sketch, size...) at the model's best step
        count; None when refining is off, on battery, or the request has those steps already."""
        info = self.info
        if info is None or not self.settings.refine or request.steps >= info.refine_steps:
            return None
        if on_battery():
            return None
        return replace(request, steps=info.refine_steps)

    def shown_status(self, request: GenerateRequest, refined: bool) -> str:
        """What the status bar says about the image shown: instant or refined, and its steps."""
        steps = f"{request.steps} step{'s' if request.steps > 1 else ''}"
        if refined:
            return f"Refined image ({steps})."
        if self.refinement(request) is not None:
            return f"Quick image ({steps}); a finer one follows when you pause."
        return f"Done ({steps})."

    def _interrupt_prompt_refinement(self) -> None:
        """New input: the prompt image is not refined now; a running refinement is cancelled."""
        if self.prompt_refiner.interrupt(self.clock()) and self.prompt_refine_id:
            self.runner.cancel(self.prompt_refine_id)

    def _prompt_refinement_done(self, completed: bool) -> None:
        self.prompt_refiner.finished(self.clock(), completed)
        self.prompt_refine_id = 0

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
        if was_drawn and self.sketch is None:
            # Cleared: the old image goes at once (and one still being made is not shown); the
            # prompt's own image follows.
            self.live_hidden_id = self.live_id
            self.live_result = None
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
        if self.scheduler.change(request, self.clock()) and self.live_id:
            self.runner.cancel(self.live_id)  # new input cancels the refinement of the old image
        self._interrupt_prompt_refinement()
        self.pump()

    def pump(self) -> None:
        """Start the live canvas's next request (or a refinement) if a scheduler says so, else ask
        to be woken."""
        if self.prompt_pending:
            return  # an explicit Generate goes first; the canvas resumes when it ends
        now = self.clock()
        request = self.scheduler.poll(now)
        if request is not None:
            self.live_id = self.runner.submit(request)
            compiling = self.compiling_status()
            if compiling:
                self.events.status.emit(compiling, 0)
            return
        if not self.scheduler.in_flight:
            refined = self.prompt_refiner.poll(now)
            if refined is not None:  # the prompt image, refined: a prompt request like Generate's
                self.prompt_pending = True
                self.prompt_id = self.prompt_refine_id = self.runner.submit(refined)
                self.events.status.emit("refining…", 0)
                return
        waits = [
            w for w in (self.scheduler.next_check(now), self.prompt_refiner.next_check(now)) if w is not None
        ]
        if waits:
            self.events.wake.emit(min(waits))

    def _live_done(self, completed: bool, failed: bool = False) -> None:
        self.scheduler.finished(self.clock(), completed, failed)
        self.live_id = 0
        self.pump()

    # ------------------------------------------------------------------------------ gallery
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

    def restore(self, meta: dict[str, Any], source: str = "the image") -> bool:
        """Put an image's parameters back (``source`` names it in messages). Values no control can
        take are left as they are, with one line naming them; False when nothing could be put back.
        The seed mode stays as it is, and the status says what that means for the next image."""
        params, bad = params_from_metadata(meta, self.params)
        if not any(name in meta and name not in bad for name in RESTORED_NAMES):
            found = f"unusable values: {', '.join(bad)}" if bad else "no parameters"
            self.events.error.emit(f"Nothing restored from {source}: {found}.")
            return False
        self.steps_from_model = self.steps_from_model and params.steps == self.params.steps
        self._set(params)
        if params.seed_mode == "random":
            self.events.status.emit(
                f"Parameters restored (seed {params.seed}). Seeds are random: the next image gets a "
                "new one; choose “fixed” to draw this one again.",
                8000,
            )
        else:
            self.events.status.emit(f"Parameters restored (seed {params.seed}, fixed).", 4000)
        if bad:
            self.events.error.emit(
                f"Not restored from {source} (values this app cannot use): {', '.join(bad)}."
            )
        return True

    def show_item(self, item: GalleryItem, image: np.ndarray) -> None:
        """A kept image was chosen: its parameters come back and it is shown."""
        self.restore(item.params, item.path.name)
        self.prompt_result = None
        self.events.prompt_image.emit(image)

    def restore_from_file(self, path: str) -> bool:
        """A dropped or opened file's parameters (see `restore`); a file that is not a PNG with
        readable parameters gets one line."""
        try:
            meta = read_png_params(path)
        except SprintError as exc:
            self.events.error.emit(str(exc))
            return False
        return self.restore(meta, Path(path).name)

    # ------------------------------------------------------------------------------ settings
    def apply_settings(self, new: Settings) -> bool:
        """Use the settings from the dialog; True when the model is reloaded."""
        old, self.settings = self.settings, new
        self.scheduler.debounce = new.live_debounce_ms / 1000
        if old.output_dir != new.output_dir:
            self.gallery.close()
            self.gallery, notices = open_gallery(new.output_dir, self.data_dir)
            for notice in notices:
                self.events.error.emit(notice)
            self.events.gallery_changed.emit()
        reload = (old.model, old.backend, old.device) != (new.model, new.backend, new.device)
        # torch.compile is the PyTorch engine's: ONNX Runtime ignores it, so no reload for it there.
        reload = reload or (
            old.compile != new.compile and (self.info is None or self.info.backend == "torch")
        )
        if old.model != new.model:
            self.model_override = None  # a model chosen in the settings replaces the command line's
        if reload:
            self.load_model()
        self.save_settings()
        return reload

    def save_settings(self, **window: Any) -> None:
        """Write the settings with the current parameters (and ``window`` fields: geometry...)."""
        settings = params_into_settings(self.params, self.settings)
        steps = 0 if self.steps_from_model else self.params.steps  # 0: the model's default
        self.settings = replace(settings, steps=steps, live=self.live_enabled, **window)
        try:
            save_settings(self.settings, self.settings_path, base=self.settings_saved)
            self.settings_saved = _copy(self.settings)
        except OSError as exc:
            self.events.error.emit(f"Cannot save settings to {self.settings_path}: {exc}")

    def close(self, **window: Any) -> None:
        self.save_settings(**window)
        self.gallery.close()


def _copy(settings: Settings) -> Settings:
    return Settings(**asdict(settings))  # lists copied too: the live ones change in place


def open_gallery(output_dir: str, data_dir: Path) -> tuple[Gallery, list[str]]:
    """The gallery in ``output_dir``, else ``data_dir/gallery``, else a temporary folder; with a
    notice for each fallback (and the gallery's own, e.g. a rebuilt index)."""
    notices: list[str] = []
    candidates = [Path(output_dir)] if output_dir else []
    for folder in [*candidates, data_dir / "gallery"]:
        try:
            gallery = Gallery(folder)
        except (OSError, SprintError) as exc:
            notices.append(f"Cannot use the gallery folder {folder} ({exc}).")
            continue
        if gallery.notice:
            notices.append(gallery.notice)
        return gallery, notices
    temp = Path(tempfile.mkdtemp(prefix="sprint-gallery-"))
    notices.append(f"Kept images go to {temp} for now.")
    return Gallery(temp), notices
