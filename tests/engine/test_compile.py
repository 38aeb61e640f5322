"""The PyTorch engine's opt-in ``torch.compile`` on the CPU, on the tiny real model: Inductor's images
are the eager engine's; the option reaches the engine from the settings (through the factory) and
from ``sprint generate --compile``; what cannot compile runs eagerly with a notice.

One Inductor-compiled engine for the module (`compiled`: its first image compiles, a minute or two
on a busy 2-core CPU); the CLI test after it finds Inductor's cache warm. The failure tests compile
for real and fail for real (an unknown backend, no C++ compiler, a backend that raises) and come
last: the last one resets Dynamo."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sprint_desktop.core.errors import ModelLoadError
from sprint_desktop.core.paths import user_cache_dir
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.core.settings import Settings, save_settings
from sprint_desktop.engine import compiling
from sprint_desktop.engine.torch_backend import TorchEngine

PROMPT = "a red circle left of a blue square"


def _users_cache() -> str | None:
    """A ``TORCHINDUCTOR_CACHE_DIR`` of the developer's own (kept by the engine; the tests then do
    not check the app's); Inductor's temporary-folder default, which importing it writes into the
    variable (an earlier test module may have), is not one."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    value = os.environ.get(compiling.ENV)
    if not value or os.path.abspath(value) == os.path.abspath(default_cache_dir()):
        return None
    return value


USER_CACHE = _users_cache()


def _images(engine: TorchEngine, steps: int, seed: int = 5) -> np.ndarray:
    """Float images in [0, 1] for fixed noise, through the stages `generate` runs (inference mode,
    as `generate`: the compiled graphs are the ones an image uses)."""
    request = engine.resolve(GenerateRequest(PROMPT, steps=steps, seed=seed))
    noise = np.random.default_rng(seed).standard_normal((steps, 1, *engine.latent_shape(request)))
    with torch.inference_mode():
        embeds, mask = engine.encode_prompt(request.prompt)[:2]
        return engine.decode(engine.denoise(request, embeds, mask, noise.astype(np.float32)))


@pytest.fixture(scope="module")
def compiled(tiny_model_dir):
    problem = compiling.compile_problem("cpu")
    if problem:
        pytest.skip(problem)
    engine = TorchEngine(tiny_model_dir, device="cpu", compile="default")
    engine.load()
    return engine


def test_compiled_images_are_the_eager_ones(compiled, tiny_engine):
    assert compiled.info.compile_mode == "default" and compiled.notices == []
    for steps in (1, 2, 4):  # one shape: compiled once, on the first
        np.testing.assert_allclose(_images(compiled, steps), _images(tiny_engine, steps), atol=2e-5)
    request = GenerateRequest(PROMPT, steps=2, seed=11)
    ours, eager = compiled.generate(request), tiny_engine.generate(request)
    assert np.abs(ours.image.astype(int) - eager.image.astype(int)).max() <= 1
    assert ours.warnings == ()
    # Inductor kept what it compiled in the app's cache folder, where a later launch reads it.
    cache = Path(os.environ[compiling.ENV])
    assert cache == (Path(USER_CACHE) if USER_CACHE else compiling.cache_dir())
    assert any(p.is_file() for p in cache.rglob("*"))


def test_cli_generate_compile_flag(compiled, tiny_engine, tiny_model_dir, tmp_path, capsys):
    from PIL import Image

    from sprint_desktop.cli import main

    out = tmp_path / "c.png"
    args = ["generate", PROMPT, "--model", str(tiny_model_dir), "--device", "cpu", "--steps", "2"]
    assert main([*args, "--seed", "3", "--compile", "default", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "backend torch, compiled (default)" in err and "compiling on the first image" in err
    eager = tiny_engine.generate(GenerateRequest(PROMPT, steps=2, seed=3)).image
    assert np.abs(np.asarray(Image.open(out)).astype(int) - eager.astype(int)).max() <= 1


def test_an_unknown_compile_mode_is_one_line(tiny_model_dir):
    with pytest.raises(
        ModelLoadError, match=r"^compile must be one of off, default, reduce-overhead, got 'fast'$"
    ):
        TorchEngine(tiny_model_dir, device="cpu", compile="fast")


def test_cli_refuses_an_unknown_mode(tiny_model_dir, capsys):
    from sprint_desktop.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["generate", PROMPT, "--model", str(tiny_model_dir), "--compile", "fast", "-o", "x.png"])
    assert exit_info.value.code == 2 and "invalid choice: 'fast'" in capsys.readouterr().err


def test_reduce_overhead_means_no_cuda_graphs_on_the_cpu(tiny_model_dir, tiny_engine):
    assert compiling.effective_mode("reduce-overhead", "cuda") == "reduce-overhead"
    assert compiling.effective_mode("reduce-overhead", "cpu") == "default"
    # Dynamo's "eager" backend traces the real model without Inductor (seconds, not minutes).
    engine = TorchEngine(tiny_model_dir, device="cpu", compile="reduce-overhead", compile_backend="eager")
    assert engine.load().compile_mode == "default" and engine.notices == []
    np.testing.assert_allclose(_images(engine, 2), _images(tiny_engine, 2), atol=1e-6)
    engine.close()
    assert engine.compile_mode == "off"


def test_settings_reach_the_engine_through_the_factory(tiny_model_dir, tmp_path):
    """The saved setting, loaded by the workspace, through the runner and `create_engine`: the
    engine is compiled and the window says the first image compiles."""
    from sprint_desktop.factory import create_engine
    from sprint_desktop.workspace import InlineRunner, Workspace

    settings_path = tmp_path / "settings.json"
    save_settings(
        Settings(model=str(tiny_model_dir), backend="torch", device="cpu", compile="default"), settings_path
    )
    made = []

    def make_engine(path, backend, device, compile):
        # The real factory; Dynamo's "eager" backend keeps the test to seconds.
        made.append(
            create_engine(path, backend=backend, device=device, compile=compile, compile_backend="eager")
        )
        return made[-1]

    runner = InlineRunner(make_engine)
    ws = Workspace(runner, settings_path, tmp_path / "data")
    runner.bind(ws)
    statuses = []
    ws.events.status.connect(lambda text, _ms: statuses.append(text))
    models = []
    ws.events.model_changed.connect(lambda state: models.append(state.text))
    ws.load_model()
    runner.run_all()
    assert isinstance(made[0], TorchEngine) and made[0].compile_mode == "default"
    assert ws.info.compile_mode == "default" and models[-1].endswith("· compiled (default)")
    ws.set_params(prompt=PROMPT)
    ws.generate()
    assert statuses[-1].startswith("Compiling for this CPU (first image only")
    runner.run_all()
    assert ws.prompt_result is not None and not statuses[-1].startswith("Compiling")
    ws.generate()
    assert statuses[-1] == "generating…"  # compiled already


def test_use_persistent_cache_points_inductor_at_the_app_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(compiling.ENV, raising=False)
    assert compiling.use_persistent_cache() == compiling.cache_dir()
    assert os.environ[compiling.ENV] == str(compiling.cache_dir())
    assert compiling.cache_dir() == user_cache_dir() / "torch-inductor"  # beside the ONNX caches
    # Importing Inductor writes its temporary-folder default into the variable: not the user's choice.
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.setenv(compiling.ENV, default_cache_dir())
    assert compiling.use_persistent_cache() == compiling.cache_dir()
    monkeypatch.setenv(compiling.ENV, str(tmp_path / "mine"))  # the user's own choice is kept
    assert compiling.use_persistent_cache() == tmp_path / "mine"


# ---- what cannot compile runs eagerly, with a notice (compiles and fails for real) -----------------
def test_an_unknown_backend_runs_eagerly_with_a_notice(tiny_model_dir, tiny_engine):
    engine = TorchEngine(tiny_model_dir, device="cpu", compile="default", compile_backend="no-such-backend")
    assert engine.load().compile_mode == "off"
    request = GenerateRequest(PROMPT, steps=2, seed=4)
    result = engine.generate(request)
    np.testing.assert_array_equal(result.image, tiny_engine.generate(request).image)
    (notice,) = result.warnings
    assert notice.startswith("the model runs without torch.compile (slower): InvalidBackend: ")
    assert "no-such-backend" in notice and "\n" not in notice


def test_no_cpp_compiler_runs_eagerly_with_a_notice(tiny_model_dir, tiny_engine):
    """Inductor on the CPU without a C++ compiler (as on Windows without Visual Studio's build tools):
    found before a minute is spent, said in one line."""
    from torch._inductor import config

    with config.patch({"cpp.cxx": ("/nonexistent/c++",)}):
        engine = TorchEngine(tiny_model_dir, device="cpu", compile="default")
        assert engine.load().compile_mode == "off"
    request = GenerateRequest(PROMPT, steps=1, seed=4)
    result = engine.generate(request)
    np.testing.assert_array_equal(result.image, tiny_engine.generate(request).image)
    assert result.warnings == (
        "the model runs without torch.compile (slower): Inductor needs a C++ compiler on the CPU and none "
        "works here (install g++ or clang; on Windows, Visual Studio's C++ build tools)",
    )


def test_a_compile_that_fails_on_the_first_image_makes_it_eagerly(tiny_model_dir, tiny_engine):
    """The backend fails when Dynamo hands it the transformer's graph (as Inductor does when its
    compiler or Triton breaks): the request is not lost, it is made eagerly, and so are the next."""

    def broken_backend(graph, example_inputs):
        raise RuntimeError("this compiler is broken")

    engine = TorchEngine(tiny_model_dir, device="cpu", compile="default", compile_backend=broken_backend)
    assert engine.load().compile_mode == "default"
    request = GenerateRequest(PROMPT, steps=2, seed=6)
    first = engine.generate(request)
    np.testing.assert_array_equal(first.image, tiny_engine.generate(request).image)
    assert first.warnings == (
        "compiling the model failed, so it runs without torch.compile (slower): "
        "RuntimeError: this compiler is broken",
    )
    assert engine.compile_mode == "off" and engine.info.compile_mode == "off"
    again = engine.generate(GenerateRequest(PROMPT, steps=1, seed=7))
    assert again.warnings == first.warnings
