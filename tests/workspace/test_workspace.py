"""The workspace without a window: a numpy engine behind the real Engine interface, run inline,
a fake clock for the live loop. Each test takes milliseconds."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace

import numpy as np
import pytest

from sprint_desktop.core.metadata import save_png
from sprint_desktop.core.settings import Settings, load_settings, save_settings
from sprint_desktop.workspace import InlineRunner, Workspace

from .fake_engine import NumpyEngine


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Every event the workspace emits, by name."""

    def __init__(self, ws: Workspace) -> None:
        self.log: dict[str, list] = {}
        for name, event in vars(ws.events).items():
            event.connect(lambda *args, _n=name: self.log.setdefault(_n, []).append(args))

    def last(self, name: str):
        return self.log[name][-1]


@pytest.fixture
def setup(tmp_path):
    def make(settings: Settings | None = None, engine_kwargs=None):
        if settings is not None:
            save_settings(settings, tmp_path / "config" / "settings.json")
        engines: list[NumpyEngine] = []

        def make_engine(path, backend, device, compile):
            engines.append(NumpyEngine(path, **(engine_kwargs or {})))
            return engines[-1]

        runner = InlineRunner(make_engine)
        clock = Clock()
        seeds = itertools.count(1000)
        ws = Workspace(
            runner,
            tmp_path / "config" / "settings.json",
            tmp_path / "data",
            model_override=str(NumpyEngine().path),
            clock=clock,
            draw_seed=lambda: next(seeds),
        )
        runner.bind(ws)
        rec = Recorder(ws)
        ws.load_model()
        runner.run_all()
        return ws, runner, clock, rec

    return make


def test_generate_shows_the_image_and_random_seeds_change(setup):
    ws, runner, _, rec = setup()
    assert ws.info is not None and rec.last("model_changed")[0].phase == "ready"
    ws.set_params(prompt="a red circle")
    ids = [ws.generate(), ws.generate()]
    runner.run_all()
    assert ids[0] != ids[1] and [r.seed for r in runner.submitted] == [1000, 1001]
    assert ws.prompt_result.request.seed == 1001  # only the newest request ran; the first was dropped
    assert rec.last("prompt_image")[0].shape == (64, 64, 3)
    # The fake model's defaults: 2 steps, refined at 4; the status says which image is shown.
    assert rec.last("status")[0].startswith("Quick image (2 steps)")


def test_fixed_seed_repeats_the_image(setup):
    ws, runner, _, _ = setup()
    ws.set_params(prompt="a red circle", seed=7, seed_mode="fixed")
    images = []
    for _ in range(2):
        ws.generate()
        runner.run_all()
        images.append(ws.prompt_result.image)
    np.testing.assert_array_equal(*images)
    assert ws.params.seed == 7


def test_a_stale_result_is_dropped(setup):
    ws, runner, _, rec = setup()
    ws.set_params(prompt="a red circle", seed_mode="fixed")
    old = ws.generate()
    result = runner.engine.generate(runner.submitted[-1])
    ws.set_params(prompt="a blue square")
    ws.generate()
    ws.on_finished(old, result)  # the first request's result arrives after the second was sent
    assert ws.prompt_result is None and "prompt_image" not in rec.log
    runner.run_all()
    assert ws.prompt_result.request.prompt == "a blue square"


def test_a_second_generate_is_not_replaced_by_the_live_canvas(setup):
    """Cancelling the first (waiting) prompt request must not let the live canvas jump the queue."""
    ws, runner, _, _ = setup()
    ws.set_params(prompt="a red circle")
    ws.set_canvas_shown(True)
    runner.run_all()
    ws.generate()
    ws.set_sketch(_sketch())
    ws.generate()  # replaces the first: the runner reports it cancelled
    assert runner.pending[1].control_image is None and ws.prompt_pending
    runner.run_all()
    assert ws.prompt_result is not None and ws.live_result.request.control_digest is not None


def test_generate_on_the_canvas_tab_sends_only_the_prompt_request(setup):
    """A new random seed changes the live request too; it waits for the prompt's image."""
    ws, runner, _, _ = setup()
    ws.set_params(prompt="a red circle")
    ws.set_canvas_shown(True)
    runner.run_all()
    count = len(runner.submitted)
    ws.generate()
    assert len(runner.submitted) == count + 1 and runner.submitted[-1].control_image is None
    assert ws.prompt_pending and not ws.scheduler.in_flight


def test_errors_are_shown_and_the_next_request_works(setup):
    ws, runner, _, rec = setup()
    ws.set_params(prompt="please fail")
    ws.generate()
    runner.run_all()
    assert "refuses" in rec.last("error")[0] and not ws.prompt_pending
    ws.set_params(prompt="a red circle")
    ws.generate()
    runner.run_all()
    assert ws.prompt_result is not None and rec.last("error") == ("",)


def test_empty_prompt_and_bad_values_are_explained(setup):
    ws, _, _, rec = setup()
    assert ws.generate() is None and "Prompt is empty" in rec.last("error")[0]
    ws.set_params(steps=9)
    assert ws.params.steps != 9 and "steps" in rec.last("error")[0]


def test_a_model_that_does_not_load_says_why_in_gui_words(setup, tmp_path):
    ws, runner, _, rec = setup()
    ws.on_load_failed("CUDA was requested but no CUDA device is available; use --device cpu")
    message = rec.last("error")[0]
    assert "--device" not in message and "File ▸ Settings" in message
    assert rec.last("model_changed")[0].phase == "failed" and ws.generate() is None


def test_restoring_keeps_the_seed_mode_and_says_so(setup, tmp_path):
    """Clicking a thumbnail used to switch the seed mode to fixed for every later image."""
    ws, runner, _, rec = setup()
    ws.set_params(prompt="a red circle")
    ws.generate()
    runner.run_all()
    item = ws.keep()
    ws.set_params(prompt="something else", steps=4)
    ws.show_item(item, item_image := np.zeros((64, 64, 3), np.uint8))
    assert (ws.params.prompt, ws.params.steps, ws.params.seed) == ("a red circle", 2, 1000)
    assert ws.params.seed_mode == "random" and "Seeds are random" in rec.last("status")[0]
    assert rec.last("prompt_image")[0] is item_image
    ws.generate()
    assert runner.submitted[-1].seed != 1000  # random mode draws a new seed, as it says
    ws.set_params(seed_mode="fixed")
    ws.restore(item.params)
    ws.generate()
    assert runner.submitted[-1].seed == 1000


def test_restore_from_a_png_and_a_foreign_file(setup, tmp_path):
    ws, _, _, rec = setup()
    path = save_png(
        np.zeros((8, 8, 3), np.uint8),
        tmp_path / "x.png",
        {"prompt": "a cyan cross", "steps": 4, "seed": 9, "guidance": 2.5},
    )
    assert ws.restore_from_file(str(path))
    assert (ws.params.prompt, ws.params.steps, ws.params.seed, ws.params.guidance) == (
        "a cyan cross",
        4,
        9,
        2.5,
    )
    (tmp_path / "y.txt").write_text("hello")
    assert not ws.restore_from_file(str(tmp_path / "y.txt"))
    assert "not a readable image" in rec.last("error")[0]


def test_keep_keeps_the_image_on_screen(setup):
    ws, runner, clock, _ = setup()
    ws.set_params(prompt="a red circle")
    assert ws.keep() is None
    ws.generate()
    runner.run_all()
    ws.set_canvas_shown(True)
    ws.set_sketch(_sketch())
    clock.now += 1
    ws.pump()
    runner.run_all()
    live = ws.keep()
    ws.set_canvas_shown(False)
    prompt = ws.keep()
    assert live.params.get("control_digest") and "control_digest" not in prompt.params
    assert len(ws.gallery.items()) == 2


def test_live_burst_runs_few_requests_and_ends_on_the_last_sketch(setup):
    ws, runner, clock, rec = setup()
    ws.set_params(prompt="a purple triangle")
    ws.set_canvas_shown(True)
    runner.run_all()
    first = len(runner.submitted)
    ws.scheduler.last_duration = 0.3  # jobs take 0.3 s here: changes are debounced
    for i in range(50):
        ws.set_sketch(_sketch(i))
        clock.now += 0.01
        if i % 10 == 0:
            ws.pump()
            runner.run_all()
    clock.now += 1  # the pen lifted: the last sketch is drawn
    ws.pump()
    runner.run_all()
    live = runner.submitted[first:]
    # 50 changes, the jobs run in 5 batches: at most the first change and the newest one of each
    # batch run (changes made while a job runs replace each other), then the last sketch.
    assert 1 <= len(live) <= 11
    np.testing.assert_array_equal(live[-1].control_image, _sketch(49))
    assert ws.live_result.request.control_digest == live[-1].control_digest


def test_a_cancelled_live_request_runs_again_and_a_failed_one_does_not(setup):
    ws, runner, clock, _ = setup()
    ws.set_params(prompt="a red circle")
    ws.set_canvas_shown(True)
    assert ws.live_id
    ws.on_cancelled(ws.live_id)  # e.g. a model switch dropped it
    assert ws.live_id and runner.pending is not None  # submitted again
    runner.run_all()
    ws.set_params(prompt="this will fail")
    runner.run_all()
    count = len(runner.submitted)
    clock.now += 10
    ws.pump()
    assert len(runner.submitted) == count  # the failure is shown, not retried forever


def test_clear_drops_the_old_image_at_once_and_shows_the_prompt_only_image(setup):
    ws, runner, clock, rec = setup()
    ws.set_params(prompt="a red circle")
    ws.set_canvas_shown(True)
    ws.set_sketch(_sketch())
    clock.now += 1
    ws.pump()
    runner.run_all()
    assert ws.live_result.request.control_digest is not None
    ws.set_sketch(np.full((64, 64, 3), 255, np.uint8))  # Clear
    assert rec.last("live_image") == (None,) and ws.live_result is None
    clock.now += 1
    ws.pump()
    runner.run_all()
    assert ws.live_result is not None and ws.live_result.request.control_image is None


def test_clear_while_a_sketch_is_being_drawn_does_not_bring_its_image_back(setup):
    ws, runner, clock, rec = setup()
    ws.set_params(prompt="a red circle")
    ws.set_canvas_shown(True)
    runner.run_all()
    ws.set_sketch(_sketch())
    clock.now += 1
    ws.pump()
    assert runner.pending[1].control_image is not None  # the sketch's request is on its way
    ws.set_sketch(None)  # Clear
    runner.run_next()
    assert ws.live_result is None and rec.last("live_image") == (None,)
    clock.now += 1
    ws.pump()
    runner.run_all()
    assert ws.live_result.request.control_image is None


def test_live_follows_parameters_only_while_the_canvas_is_shown(setup):
    ws, runner, clock, _ = setup()
    ws.set_params(prompt="a red circle")
    count = len(runner.submitted)
    ws.set_params(steps=3)
    assert len(runner.submitted) == count
    ws.set_canvas_shown(True)
    runner.run_all()
    ws.set_params(steps=4)
    clock.now += 1
    ws.pump()
    assert runner.submitted[-1].steps == 4
    ws.set_live(False)
    runner.run_all()
    ws.set_params(steps=1)
    clock.now += 1
    ws.pump()
    assert runner.submitted[-1].steps == 4


def test_vocabulary_hint_for_unknown_and_too_many_words(setup):
    ws, runner, _, rec = setup()
    ws.set_params(prompt="a cat on a sofa")
    hint = rec.last("hint")[0]
    assert "“cat”" in hint and "“sofa”" in hint and "red" not in hint
    ws.generate()
    runner.run_all()
    assert "does not know" in rec.last("status")[0]  # not a bare "done"
    long = " ".join(["a red circle"] * 7)
    ws.set_params(prompt=long)
    assert "first 15 words" in rec.last("hint")[0]
    ws.generate()
    runner.run_all()
    status = rec.last("status")[0]
    assert "tokens" not in status and "first 15 words" in status
    assert ws.vocabulary.examples[0] == "a red circle"


def test_the_app_does_not_regenerate_on_start_unless_asked(setup, tmp_path):
    ws, runner, _, _ = setup(Settings(last_prompt="a red circle"))
    assert ws.params.prompt == "a red circle" and runner.submitted == []
    ws2, runner2, _, _ = setup(Settings(last_prompt="a red circle", generate_on_start=True))
    assert [r.prompt for r in runner2.submitted] == ["a red circle"]


def test_settings_round_trip_the_parameters(setup, tmp_path):
    ws, _, _, _ = setup()
    ws.set_params(
        prompt="two blue squares", steps=3, seed=42, seed_mode="fixed", guidance=2.0, control_scale=0.5
    )
    ws.set_live(False)
    ws.close(window_geometry="abcd")
    data = json.loads((tmp_path / "config" / "settings.json").read_text())["settings"]
    assert (data["last_prompt"], data["steps"], data["seed"], data["control_scale"]) == (
        "two blue squares",
        3,
        42,
        0.5,
    )
    assert data["window_geometry"] == "abcd" and data["live"] is False
    ws2, _, _, _ = setup()
    assert ws2.params == ws.params and ws2.live_enabled is False


def test_a_corrupt_settings_file_is_reported(setup, tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.json").write_text("{{{")
    ws, _, _, _ = setup()
    assert "defaults are in use" in ws.settings_notice


def test_an_unusable_output_folder_falls_back_and_says_so(setup, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ws, _, _, _ = setup(Settings(output_dir=str(blocker / "sub")))
    assert ws.gallery.folder == tmp_path / "data" / "gallery"
    assert "Cannot use the gallery folder" in ws.gallery_notices[0]


def _sketch(i: int = 0) -> np.ndarray:
    sketch = np.full((64, 64, 3), 255, np.uint8)
    sketch[10:50, 5 + i % 50] = 0
    return sketch


# ---------------------------------------------------------------------------- instant, then refine
def test_the_live_image_is_refined_with_the_same_seed_when_the_pen_rests(setup):
    ws, runner, clock, rec = setup()
    ws.set_params(prompt="a red circle", seed_mode="fixed", seed=5)
    ws.set_canvas_shown(True)
    ws.set_sketch(_sketch(1))
    runner.run_all()
    instant = ws.live_result.request
    assert instant.steps == 2 and rec.last("status")[0].startswith("Quick image (2 steps)")
    assert rec.last("wake")[0] == pytest.approx(0.4)  # the window will call pump then
    clock.now += 0.4
    ws.pump()
    runner.run_all()
    refined = ws.live_result.request
    assert (refined.steps, refined.seed, refined.control_digest) == (4, 5, instant.control_digest)
    assert rec.last("status")[0] == "Refined image (4 steps)."
    clock.now += 10
    ws.pump()
    assert runner.pending is None  # refined once


def test_a_newer_input_cancels_the_live_refinement(setup):
    ws, runner, clock, rec = setup()
    ws.set_params(prompt="a red circle")
    ws.set_canvas_shown(True)
    ws.set_sketch(_sketch(1))
    runner.run_all()
    clock.now += 0.5
    ws.pump()
    refinement = runner.pending
    assert refinement is not None and refinement[1].steps == 4  # the refinement is on its way
    ws.set_sketch(_sketch(2))  # the pen moves again
    assert runner.pending is not None and runner.pending[1].steps == 2  # the new instant image
    np.testing.assert_array_equal(runner.pending[1].control_image, _sketch(2))
    runner.run_all()
    assert ws.live_result.request.steps == 2
    assert [r.steps for r in runner.submitted[-3:]] == [2, 4, 2]  # instant, refinement (dropped), instant


def test_the_prompt_image_is_refined_after_a_pause_and_typing_cancels_it(setup):
    ws, runner, clock, rec = setup()
    ws.set_params(prompt="a red circle", seed_mode="fixed", seed=9)
    ws.generate()
    runner.run_all()
    assert ws.prompt_result.request.steps == 2
    clock.now += 0.4
    ws.pump()
    assert runner.pending is not None and runner.pending[1].steps == 4
    runner.run_all()
    assert (ws.prompt_result.request.steps, ws.prompt_result.request.seed) == (4, 9)
    assert rec.last("status")[0] == "Refined image (4 steps)."

    ws.generate()
    runner.run_all()
    clock.now += 0.5
    ws.pump()
    assert runner.pending is not None and runner.pending[1].steps == 4
    ws.set_params(prompt="a red circle and")  # typing: the refinement of the old prompt goes
    assert runner.pending is None and not ws.prompt_pending
    assert ws.prompt_result.request.steps == 2  # the quick image stays
    clock.now += 10
    ws.pump()
    assert runner.pending is None  # and is not refined any more (the prompt changed)


def test_no_refinement_when_the_setting_is_off(setup):
    ws, runner, clock, rec = setup(Settings(refine=False))
    ws.set_params(prompt="a red circle")
    ws.generate()
    runner.run_all()
    ws.set_canvas_shown(True)
    runner.run_all()
    clock.now += 10
    ws.pump()
    assert runner.pending is None and rec.last("status")[0] == "Done (2 steps)."


def test_two_windows_on_one_settings_file_keep_each_others_changes(setup, tmp_path):
    """Two app instances: each saves its own changes over the file's current content."""
    first, *_ = setup()
    second, *_ = setup()
    first.set_params(prompt="a red circle")
    first.save_settings()
    second.settings.theme = "dark"
    second.save_settings()
    first.set_params(guidance=2.0)
    first.close()
    saved, notice = load_settings(tmp_path / "config" / "settings.json")
    assert notice is None
    assert (saved.last_prompt, saved.theme, saved.guidance) == ("a red circle", "dark", 2.0)


HOSTILE = {
    "prompt": "a cyan cross",
    "steps": 99,
    "seed": -1,
    "guidance": "NaN",
    "width": True,
    "height": None,  # the model's default: not an error
    "control_scale": 3.0,
    "strength": 0,
    "seed_mode": "fixed",  # never taken from an image
    "model": "x" * 10,
}


def test_a_png_with_hostile_values_restores_only_the_good_ones(setup, tmp_path):
    ws, _, _, rec = setup()
    ws.set_params(prompt="before", steps=2, seed=5, guidance=1.5)
    before = ws.params
    path = save_png(np.zeros((8, 8, 3), np.uint8), tmp_path / "hostile.png", HOSTILE)
    assert ws.restore_from_file(str(path))
    assert ws.params.prompt == "a cyan cross"
    assert (ws.params.steps, ws.params.seed, ws.params.guidance, ws.params.width) == (2, 5, 1.5, before.width)
    assert (ws.params.control_scale, ws.params.strength, ws.params.seed_mode) == (
        before.control_scale,
        before.strength,
        "random",
    )
    (line,) = [e[0] for e in rec.log["error"] if e[0]]
    assert line == (
        "Not restored from hostile.png (values this app cannot use): "
        "steps, seed, guidance, width, control_scale, strength."
    )


def test_a_png_with_nothing_usable_changes_nothing(setup, tmp_path):
    ws, _, _, rec = setup()
    before = ws.params
    bad = {"prompt": "a\x00b", "steps": "4", "seed": 2**70}
    path = save_png(np.zeros((8, 8, 3), np.uint8), tmp_path / "bad.png", bad)
    assert not ws.restore_from_file(str(path))
    assert ws.params == before and "status" not in rec.log
    assert rec.last("error")[0] == "Nothing restored from bad.png: unusable values: prompt, steps, seed."


def test_compiling_is_said_on_the_first_image_and_reloads_only_pytorch(tmp_path):
    """The compile setting goes to the engine factory with the backend; a compiled model's first
    image says it compiles; changing the setting reloads a PyTorch model, not an ONNX one."""
    loads = []

    def make_engine(path, backend, device, compile):
        loads.append((backend, compile))
        return NumpyEngine(path, backend=backend, compile_mode=compile if backend == "torch" else "off")

    save_settings(Settings(backend="torch", compile="default"), tmp_path / "settings.json")
    runner = InlineRunner(make_engine)
    ws = Workspace(
        runner, tmp_path / "settings.json", tmp_path / "data", model_override=str(NumpyEngine().path)
    )
    runner.bind(ws)
    rec = Recorder(ws)
    ws.load_model()
    runner.run_all()
    assert loads == [("torch", "default")] and rec.last("model_changed")[0].text.endswith(
        "· compiled (default)"
    )
    ws.set_params(prompt="a red circle")
    ws.generate()
    assert (
        rec.last("status")[0] == "Compiling for this CPU (first image only; this can take a minute or more)…"
    )
    runner.run_all()
    assert rec.last("status")[0].startswith("Quick image")
    ws.generate()
    assert rec.last("status")[0] == "generating…"
    runner.run_all()
    assert ws.apply_settings(replace(ws.settings, compile="reduce-overhead"))  # PyTorch: reloaded
    runner.run_all()
    assert loads[-1] == ("torch", "reduce-overhead")
    assert ws.apply_settings(replace(ws.settings, backend="onnx"))
    runner.run_all()
    assert ws.info.compile_mode == "off"
    assert not ws.apply_settings(replace(ws.settings, compile="off"))  # ONNX Runtime ignores it
    assert len(loads) == 3 and ws.settings.compile == "off"
    ws.set_params(prompt="a blue square")
    ws.generate()
    assert rec.last("status")[0] == "generating…"
