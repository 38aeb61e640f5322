"""One schedule planner for both backends: `TorchEngine.denoise` and `OnnxEngine.denoise` each ask
`core.trigflow.plan` once per run, and get the same plan for every kind of request (text only,
custom times, a sketch with a ControlNet, a sketch without one, 1-4 steps)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sprint_desktop.core import trigflow
from sprint_desktop.core.noise import draw_noise
from sprint_desktop.core.request import GenerateRequest
from sprint_desktop.engine import onnx_backend, torch_backend
from sprint_desktop.engine.onnx_backend import OnnxEngine

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SKETCH = np.full((32, 32, 3), 255, np.uint8)
SKETCH[6:26, 6] = SKETCH[6, 6:26] = 20

KINDS = {
    "text, 1 step": dict(steps=1),
    "text, 2 steps": dict(steps=2),
    "text, 4 steps": dict(steps=4),
    "text, custom times": dict(steps=3, timesteps=(1.5, 1.0, 0.4, 0.0)),
    "sketch, 2 steps": dict(steps=2, control_image=SKETCH, strength=0.7),
    "sketch, 4 steps": dict(steps=4, control_image=SKETCH),
    "sketch, custom times": dict(steps=2, control_image=SKETCH, timesteps=(1.1, 0.6, 0.0)),
}


def _plans_asked(engine, module, monkeypatch, request):
    """Run one denoise and return the plans the engine asked `plan` for (the real planner runs)."""
    asked = []

    def spy(req, has_controlnet):
        asked.append(trigflow.plan(req, has_controlnet))
        return asked[-1]

    monkeypatch.setattr(module, "plan", spy)
    request = engine.resolve(request)
    noise = np.stack([draw_noise(s, engine.latent_shape(request), request.steps) for s in request.seeds], 1)
    with torch.inference_mode():
        embeds, mask, _, _ = engine.encode_prompt(request.prompt)
        engine.denoise(request, embeds, mask, noise)
    monkeypatch.undo()
    return asked


@pytest.mark.parametrize("controlnet", [False, True], ids=["no ControlNet", "ControlNet"])
def test_both_backends_ask_the_planner_and_get_the_same_schedule(
    controlnet, tiny_engine, export, controlnet_engine, controlnet_model, monkeypatch
):
    torch_engine = controlnet_engine if controlnet else tiny_engine
    onnx_engine = OnnxEngine(controlnet_model.export if controlnet else export, device="cpu")
    onnx_engine.load()
    assert (torch_engine.controlnet is not None) == onnx_engine.controlnet_active == controlnet
    seen = set()
    for kind, kwargs in KINDS.items():
        request = GenerateRequest("a red circle", seed=1, width=32, height=32, **kwargs)
        (torch_plan,) = _plans_asked(torch_engine, torch_backend, monkeypatch, request)
        (onnx_plan,) = _plans_asked(onnx_engine, onnx_backend, monkeypatch, request)
        assert torch_plan == onnx_plan, kind
        assert torch_plan == trigflow.plan(request, has_controlnet=controlnet), kind
        seen.add((torch_plan.controlnet, torch_plan.from_sketch))
    # Every path is covered: text only, and the sketch through the ControlNet or as the start.
    assert seen == ({(False, False), (True, False)} if controlnet else {(False, False), (False, True)})
