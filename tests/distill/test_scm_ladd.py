"""The distillation pieces, each against a closed form or a reference computation."""

from __future__ import annotations

import math

import pytest
import torch

from sprint_desktop.core.trigflow import SIGMA_D
from sprint_desktop.distill import scm
from sprint_desktop.distill.components import make_transformer
from sprint_desktop.distill.ladd import (
    Discriminator,
    DiscriminatorHead,
    SetHead,
    adversarial_weight,
    balanced_weight,
    d_hinge_loss,
    g_hinge_loss,
    teacher_features,
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return make_transformer(seed=0).eval().requires_grad_(False)


def _cond(b=2):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 16, 128, generator=g), torch.ones(b, 16, dtype=torch.long)


@pytest.mark.parametrize("t", [0.3, 0.8, 1.2, 1.5])
def test_transformed_teacher_equals_closed_form(model, t):
    """F from the training-free transform equals the closed form of Eq. 5 on the raw velocity."""
    b = 2
    x = torch.randn(b, 32, 8, 8, generator=torch.Generator().manual_seed(2))
    tt = torch.full((b,), t)
    embeds, mask = _cond(b)
    g0 = torch.zeros(b)
    F = scm.trigflow_output(model, x, tt, embeds, mask, g0)
    s = math.sin(t) / (math.cos(t) + math.sin(t))
    norm = math.sqrt(s * s + (1 - s) ** 2)
    x_flow = x * norm
    v = model(
        x_flow,
        encoder_hidden_states=embeds,
        encoder_attention_mask=mask,
        guidance=g0,
        timestep=torch.full((b,), s),
        return_dict=False,
    )[0]
    expected = ((1 - 2 * s) * x_flow + (1 - 2 * s + 2 * s * s) * v) / norm
    torch.testing.assert_close(F, expected, atol=1e-5, rtol=1e-5)


def test_time_proposal_matches_its_definition():
    g = torch.Generator().manual_seed(0)
    t = scm.time_proposal(20000, -0.6, 1.0, g)
    assert t.min() > 0 and t.max() < math.pi / 2
    tau = torch.log(torch.tan(t) * SIGMA_D)
    assert abs(tau.mean().item() + 0.6) < 0.03 and abs(tau.std().item() - 1.0) < 0.03


def test_student_jvp_matches_finite_differences(model):
    b = 2
    gen = torch.Generator().manual_seed(3)
    x_t = torch.randn(b, 32, 8, 8, generator=gen) * SIGMA_D
    t = torch.tensor([0.5, 1.1])
    dxdt = torch.randn(b, 32, 8, 8, generator=gen)
    embeds, mask = _cond(b)
    guid = torch.full((b,), 0.45)
    F, dF = scm.student_jvp(model, x_t, t, dxdt, embeds, mask, guid)
    cs = (torch.cos(t) * torch.sin(t)).view(-1, 1, 1, 1)
    eps = 1e-3

    def at(h):  # F along the ODE path, time t + h * cos t sin t
        return scm.trigflow_output(
            model, (x_t + h * cs * dxdt) / SIGMA_D, t + h * cs.view(-1), embeds, mask, guid
        )

    fd = (at(eps) - at(-eps)) / (2 * eps)
    torch.testing.assert_close(F, at(0.0), atol=1e-5, rtol=1e-5)
    assert ((dF - fd).norm() / fd.norm()).item() < 1e-2


def test_tangent_closed_form_and_normalisation():
    b = 3
    gen = torch.Generator().manual_seed(4)
    F, dF, dxdt, x_t = (torch.randn(b, 2, 2, 2, generator=gen) for _ in range(4))
    t = torch.tensor([0.2, 0.9, 1.4])
    g = scm.scm_tangent(F, dF, dxdt, x_t, t, r=0.5)
    c, s = torch.cos(t).view(-1, 1, 1, 1), torch.sin(t).view(-1, 1, 1, 1)
    expected = -(c**2) * (SIGMA_D * F - dxdt) - 0.5 * (c * s * x_t + SIGMA_D * dF)
    torch.testing.assert_close(g, expected)
    n = scm.normalize_tangent(g, c=0.1)
    norms = n.flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, g.flatten(1).norm(dim=1) / (g.flatten(1).norm(dim=1) + 0.1))
    # At the largest time the tangent's first term vanishes (cos t = 0).
    g_max = scm.scm_tangent(F, dF, dxdt, x_t, torch.full((b,), math.pi / 2), r=0.0)
    assert g_max.abs().max() < 1e-6


def test_warmup_and_guidance_sampling():
    assert [scm.warmup_ratio(s, 100) for s in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]
    w = scm.sample_guidance(3000, torch.Generator().manual_seed(0))
    assert set(w.tolist()) == {4.0, 4.5, 5.0}


def test_scm_loss_with_learned_log_variance():
    F_theta = torch.ones(2, 1, 2, 2, requires_grad=True)
    F_minus = torch.zeros(2, 1, 2, 2)
    g = torch.zeros(2, 1, 2, 2)
    logvar = torch.tensor([0.0, math.log(2.0)])
    loss = scm.scm_loss(F_theta, F_minus, g, logvar)
    assert loss.item() == pytest.approx((1.0 + (0.5 + math.log(2.0))) / 2)
    head = scm.LogVarHead()
    assert torch.equal(head(torch.tensor([0.1, 1.5])), torch.zeros(2))  # starts at unit weight
    # Minimising over the log-variance drives it to log(mean squared error).
    lv = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([lv], lr=0.5)
    for _ in range(200):
        opt.zero_grad()
        scm.scm_loss(
            torch.full((1, 1, 1, 1), 2.0), torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), lv
        ).backward()
        opt.step()
    assert lv.item() == pytest.approx(math.log(4.0), abs=1e-3)


def test_hinge_losses():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    assert d_hinge_loss(real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1.5) / 2)
    assert g_hinge_loss(fake).item() == pytest.approx(0.75)


def test_adversarial_weight_rises_from_zero_then_holds():
    assert [adversarial_weight(s, 0.5, 4) for s in (1, 2, 4, 100)] == [0.125, 0.25, 0.5, 0.5]
    assert adversarial_weight(1, 0.5, 0) == 0.5  # no warm-up: the paper's fixed weight


def test_discriminator_reads_teacher_blocks_and_passes_gradients_to_the_input(model):
    b = 2
    embeds, mask = _cond(b)
    x = torch.randn(b, 32, 8, 8, requires_grad=True)
    t = torch.tensor([0.4, 1.0])
    feats = teacher_features(model, x, t, embeds, mask, (1, 3), SIGMA_D)
    assert [f.shape for f in feats] == [(b, 64, 256), (b, 64, 256)]
    disc = Discriminator(256, 128, (1, 3))
    logits = disc(model, x, t, embeds, mask, SIGMA_D)
    assert logits.shape == (b,)
    logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())  # the teacher stays frozen


def _objects(count: int, n: int = 16, channels: int = 8) -> torch.Tensor:
    """A token set with ``count`` isolated identical "object" tokens (none adjacent, none at an end)."""
    tokens = torch.zeros(n, channels)
    tokens[[3, 7, 11][:count], 0] = 1.0
    return tokens


def _count_accuracy(head, steps: int = 300) -> float:
    """Train ``head`` to accept one object and reject none or two; its accuracy on the three sets."""
    torch.manual_seed(0)
    tokens = torch.stack([_objects(0), _objects(1), _objects(2)])
    labels = torch.tensor([-1.0, 1.0, -1.0])
    cond = torch.ones(3, 4)
    # the caption's tokens: every head takes them, the set head reads them
    extra = (torch.ones(3, 2, 4), torch.ones(3, 2, dtype=torch.long))
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    for _ in range(steps):
        loss = torch.relu(1 - labels * head(tokens, cond, *extra)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((torch.sign(head(tokens, cond, *extra)) == labels).float().mean())


def test_only_the_set_head_can_ask_for_exactly_one_object():
    """The convolutional head's score of isolated objects is a + b * count: it cannot accept one object
    and reject both none and two (at most 2 of 3 right). The set head pools first, then a nonlinearity."""
    assert _count_accuracy(DiscriminatorHead(8, 4)) < 0.7  # 2 of 3 at best
    assert _count_accuracy(SetHead(8, 4)) == 1.0


def test_set_head_discriminator_conditions_on_the_caption_tokens(model):
    b = 2
    embeds, mask = _cond(b)
    x = torch.randn(b, 32, 8, 8, requires_grad=True)
    t = torch.tensor([0.4, 1.0])
    disc = Discriminator(256, 128, (1, 3), head="set")
    logits = disc(model, x, t, embeds, mask, SIGMA_D)
    logits.sum().backward()
    assert logits.shape == (b,) and x.grad.abs().sum() > 0
    changed = embeds.clone()
    changed[:, -1] += 1.0  # only the last caption token, which pooling barely sees
    masked = mask.clone()
    masked[:, -1] = 0  # ... and that token masked out: the logits do not move
    with torch.no_grad():
        base = disc(model, x, t, embeds, masked, SIGMA_D)
        unmasked = disc(model, x, t, embeds, mask, SIGMA_D)
        assert not torch.allclose(disc(model, x, t, changed, mask, SIGMA_D), unmasked)
        torch.testing.assert_close(disc(model, x, t, changed, masked, SIGMA_D), base, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="unknown discriminator head"):
        Discriminator(256, 128, (1,), head="mean")


def test_balanced_weight_is_the_ratio_of_last_layer_gradient_norms():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    x = torch.randn(5, 4)
    out = layer(x)
    distill, adv = (out**2).mean(), -10 * out.sum()
    ratio = balanced_weight(distill, adv, layer.weight)
    g_distill = 2 * (out.detach()[:, :, None] * x[:, None, :]).sum(0) / out.numel()  # d mean(out^2) / dW
    g_adv = -10 * x.sum(0).expand(3, 4)  # d (-10 sum out) / dW
    torch.testing.assert_close(ratio, g_distill.norm() / g_adv.norm())
    assert not ratio.requires_grad
    assert balanced_weight(1e9 * out.sum(), out.sum(), layer.weight, cap=5.0) == 5.0


def test_noisy_and_largest_time():
    x0 = torch.randn(3, 2, 2, 2)
    torch.testing.assert_close(scm.noisy(x0, torch.zeros(3)), x0)
    torch.manual_seed(0)
    z_scaled = scm.noisy(torch.zeros(20000, 1, 1, 1), torch.full((20000,), math.pi / 2))
    assert abs(z_scaled.std().item() - SIGMA_D) < 0.02
    t = scm.with_largest_time(torch.full((4000,), 0.3), 0.5, torch.Generator().manual_seed(0))
    largest = torch.isclose(t, torch.tensor(math.pi / 2))
    assert torch.all(largest | torch.isclose(t, torch.tensor(0.3)))
    assert 0.45 < largest.float().mean().item() < 0.55


def test_consistency_x0_at_time_zero_is_the_input(model):
    x = torch.randn(2, 32, 8, 8)
    embeds, mask = _cond(2)
    torch.testing.assert_close(scm.consistency_x0(model, x, torch.zeros(2), embeds, mask, torch.zeros(2)), x)
