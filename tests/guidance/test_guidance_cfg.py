"""Classifier-free guidance against the exact class-conditional mixture."""

from __future__ import annotations

import pytest
import torch

import noisecraft as nc
from noisecraft.guidance import cfg, classifier_free_guidance, classifier_guidance

SIGMAS = [0.01, 0.3, 1.0, 5.0, 40.0]


def _inputs(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64) * 1.5
    labels = torch.randint(0, 3, (n,), generator=g)
    return x, labels


@pytest.mark.parametrize("sigma", SIGMAS)
def test_weight_one_is_the_conditional_denoiser_bitwise(class_mixture, sigma):
    x, labels = _inputs()
    s = torch.full((x.shape[0],), sigma, dtype=torch.float64)
    want = class_mixture(x, s, class_labels=labels)
    for kw in [{}, {"interval": (0.5, 2.0)}, {"rescale": 0.7}]:
        guided = cfg(class_mixture, 1.0, num_classes=3, **kw)
        assert guided is class_mixture  # no wrapper, no arithmetic
        assert torch.equal(guided(x, s, class_labels=labels), want)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_weight_zero_is_the_unconditional_marginal(class_mixture, sigma):
    x, labels = _inputs()
    s = torch.full((x.shape[0],), sigma, dtype=torch.float64)
    out = cfg(class_mixture, 0.0, num_classes=3)(x, s, class_labels=labels)
    assert torch.equal(out, class_mixture.marginal(x, s))  # all-zero rows = the exact unconditional mean


@pytest.mark.parametrize("weight", [0.5, 2.0, 4.5])
def test_formula_and_batched_equals_separate_calls(class_mixture, weight):
    x, labels = _inputs()
    s = torch.full((x.shape[0],), 0.7, dtype=torch.float64)
    onehot = class_mixture.onehot(labels)
    d_c, d_u = class_mixture(x, s, class_labels=onehot), class_mixture(x, s, class_labels=torch.zeros_like(onehot))
    batched = cfg(class_mixture, weight, num_classes=3)
    separate = cfg(class_mixture, weight, num_classes=3, batch=False)
    class_mixture.calls = 0
    out = batched(x, s, class_labels=labels)
    assert class_mixture.calls == 1  # both branches in one 2B batch
    assert torch.equal(out, separate(x, s, class_labels=labels))
    assert torch.equal(out, d_u + weight * (d_c - d_u))
    # integer labels and their one-hot rows are the same input
    assert torch.equal(out, batched(x, s, class_labels=onehot))


def test_equals_classifier_guidance_with_the_exact_classifier(class_mixture):
    """σ²·∇ log p_σ(c | x) = D(x | c) - D(x) exactly, so both guidance forms coincide for every w."""
    x, labels = _inputs(32)
    for sigma in SIGMAS:
        s = torch.full((x.shape[0],), sigma, dtype=torch.float64)
        for w in [0.0, 1.0, 3.0]:
            a = cfg(class_mixture, w, num_classes=3)(x, s, class_labels=labels)
            b = classifier_guidance(class_mixture.marginal, class_mixture.logits, w)(x, s, class_labels=labels)
            torch.testing.assert_close(a, b, atol=1e-9 * max(1.0, sigma), rtol=1e-9)


def test_interval_outside_is_conditional_and_per_sample(class_mixture):
    x, labels = _inputs()
    conditional = lambda s: class_mixture(x, s, class_labels=labels)  # noqa: E731
    guided = cfg(class_mixture, 3.0, num_classes=3, interval=(0.5, 2.0))
    full = cfg(class_mixture, 3.0, num_classes=3)
    for sigma in [0.01, 0.5, 2.5, 80.0]:  # (lo, hi] excludes 0.5
        s = torch.full((x.shape[0],), sigma, dtype=torch.float64)
        assert torch.equal(guided(x, s, class_labels=labels), conditional(s))
    s = torch.full((x.shape[0],), 1.0, dtype=torch.float64)
    assert torch.equal(guided(x, s, class_labels=labels), full(x, s, class_labels=labels))
    # per-sample σ: rows inside are guided, rows outside conditional
    s = torch.tensor([0.1, 1.0, 2.0, 10.0], dtype=torch.float64).repeat(16)
    out = guided(x, s, class_labels=labels)
    inside = (s > 0.5) & (s <= 2.0)
    assert torch.equal(out[inside], full(x, s, class_labels=labels)[inside])
    assert torch.equal(out[~inside], conditional(s)[~inside])


def test_rescale_matches_the_conditional_std(class_mixture):
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    x = torch.cat([x, -x], 1).reshape(16, 4)  # 4 values per sample so the std is informative
    labels = torch.randint(0, 3, (16,), generator=torch.Generator().manual_seed(4))

    def den(x4, s, class_labels):  # two independent 2-D draws per sample
        a = class_mixture(x4[:, :2], s, class_labels=class_labels)
        b = class_mixture(x4[:, 2:], s, class_labels=class_labels)
        return torch.cat([a, b], 1)

    s = torch.full((16,), 1.0, dtype=torch.float64)
    d_c = den(x, s, class_mixture.onehot(labels))
    plain = cfg(den, 4.0, num_classes=3)(x, s, class_labels=labels)
    full = cfg(den, 4.0, num_classes=3, rescale=1.0)(x, s, class_labels=labels)
    half = cfg(den, 4.0, num_classes=3, rescale=0.5)(x, s, class_labels=labels)
    torch.testing.assert_close(full.std(1), d_c.std(1), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(half, 0.5 * full + 0.5 * plain, atol=1e-12, rtol=1e-12)
    assert not torch.allclose(plain.std(1), d_c.std(1))


def test_custom_uncond_for_context_conditioning():
    """An empty-context style condition: uncond replaces the context; shapes stack into one batch."""
    calls = []

    def den(x, sigma, context):  # a toy text-conditioned denoiser: pulls towards the mean context
        calls.append(x.shape[0])
        return x / (1 + sigma[:, None] ** 2) + context.mean(1)

    x = torch.randn(5, 3, dtype=torch.float64)
    s = torch.full((5,), 0.8, dtype=torch.float64)
    ctx = torch.randn(5, 7, 3, dtype=torch.float64)
    empty = torch.zeros_like(ctx)
    guided = cfg(den, 2.5, uncond=lambda c: {**c, "context": empty})
    out = guided(x, s, context=ctx)
    assert calls == [10]
    d_c, d_u = den(x, s, ctx), den(x, s, empty)
    torch.testing.assert_close(out, d_u + 2.5 * (d_c - d_u), atol=1e-14, rtol=0)
    calls.clear()
    # a branch that cannot be stacked (a different key set) runs as two calls, same result
    guided2 = cfg(lambda x, sigma, context=None: den(x, sigma, empty if context is None else context), 2.5,
                  uncond=lambda c: {})
    torch.testing.assert_close(guided2(x, s, context=ctx), out, atol=1e-14, rtol=0)
    assert calls == [5, 5]


@pytest.mark.parametrize("solver", ["heun", "dpmpp_3m", "unipc", "ddpm", "dpmpp_2m_sde"])
def test_guidance_sharpens_classes_with_every_solver(class_mixture, solver):
    """w > 1 raises log p(c | x0) of the samples; the sample equals classifier guidance's."""
    n = 400
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.arange(n) % 3
    tiny = torch.full((n,), 1e-3, dtype=torch.float64)

    def run(den, **cond):
        return nc.sample(den, noise, solver=solver, nfe=24, sigma_min=0.005, generator=torch.Generator().manual_seed(1), **cond)

    def mean_log_post(x):
        return torch.log_softmax(class_mixture.logits(x, tiny), 1).gather(1, labels[:, None]).mean()

    plain = run(cfg(class_mixture, 1.0, num_classes=3), class_labels=labels)
    guided = run(cfg(class_mixture, 3.0, num_classes=3), class_labels=labels)
    via_classifier = run(classifier_guidance(class_mixture.marginal, class_mixture.logits, 3.0), class_labels=labels)
    torch.testing.assert_close(guided, via_classifier, atol=1e-6, rtol=0)
    assert mean_log_post(guided) > mean_log_post(plain) + 0.1, (mean_log_post(plain), mean_log_post(guided))
    assert (mean_log_post(plain) - mean_log_post(guided)).abs() < 5  # sane, not diverged
    assert torch.isfinite(guided).all()


def test_alias_used_by_noisecraft_sample(class_mixture):
    x, labels = _inputs()
    s = torch.full((x.shape[0],), 0.4, dtype=torch.float64)
    a = classifier_free_guidance(class_mixture, 2.0, num_classes=3)(x, s, class_labels=labels)
    assert torch.equal(a, cfg(class_mixture, 2.0, num_classes=3)(x, s, class_labels=labels))
    assert classifier_free_guidance(class_mixture, 1.0) is class_mixture


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"weight": -1.5}, "-1.5"),
        ({"weight": float("nan")}, "nan"),
        ({"weight": 2.0, "interval": (2.0, 1.0)}, "sigma_lo < sigma_hi"),
        ({"weight": 2.0, "interval": (1.0,)}, "pair"),
        ({"weight": 2.0, "rescale": 1.5}, "1.5"),
    ],
)
def test_bad_arguments(class_mixture, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cfg(class_mixture, **kwargs)


def test_bad_labels(class_mixture):
    x, labels = _inputs(4)
    s = torch.full((4,), 1.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="num_classes"):
        cfg(class_mixture, 2.0)(x, s, class_labels=labels)
    with pytest.raises(ValueError, match="class_labels=..."):
        cfg(class_mixture, 2.0, num_classes=3)(x, s)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        cfg(class_mixture, 2.0, num_classes=3)(x, s, class_labels=torch.tensor([0, 1, 5, 2]))
