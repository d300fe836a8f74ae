"""Autoguidance and classifier guidance against the Gaussian-mixture oracle."""

from __future__ import annotations

import pytest
import torch

import noisecraft as nc
from noisecraft.guidance import NoisyClassifierLoss, autoguidance, class_log_likelihood, classifier_guidance


def _bad_version(mix: nc.GaussianMixture) -> nc.GaussianMixture:
    """A 'worse model': the same components, too wide (what an under-trained model tends to learn)."""
    return nc.GaussianMixture(mix.means, mix.vars.sqrt() * 1.6, mix.weights)


def test_autoguidance_formula_and_endpoints(mixture2d):
    guide = _bad_version(mixture2d)
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    s = torch.full((32,), 0.6, dtype=torch.float64)
    assert autoguidance(mixture2d, guide, 1.0) is mixture2d
    assert torch.equal(autoguidance(mixture2d, guide, 0.0)(x, s), guide(x, s))
    d_m, d_g = mixture2d(x, s), guide(x, s)
    assert torch.equal(autoguidance(mixture2d, guide, 2.5)(x, s), d_g + 2.5 * (d_m - d_g))
    out = autoguidance(mixture2d, guide, 2.5, interval=(1.0, 5.0))(x, s)
    assert torch.equal(out, d_m)  # σ = 0.6 is outside the interval


@pytest.mark.parametrize("solver", ["euler", "dpmpp_2m", "euler_ancestral", "edm_stochastic"])
def test_autoguidance_concentrates_samples_on_the_data(mixture2d, solver):
    """Guiding away from a too-wide model raises the samples' likelihood under the true data."""
    guide = _bad_version(mixture2d)
    noise = torch.randn(600, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(den):
        return nc.sample(den, noise, solver=solver, nfe=30, sigma_min=0.005, generator=torch.Generator().manual_seed(2))

    plain, guided = run(mixture2d), run(autoguidance(mixture2d, guide, 2.0))
    lp_plain, lp_guided = mixture2d.log_prob(plain).mean(), mixture2d.log_prob(guided).mean()
    assert lp_guided > lp_plain + 0.1, (float(lp_plain), float(lp_guided))
    assert torch.isfinite(guided).all()


def test_autoguidance_bad_input(mixture2d):
    with pytest.raises(ValueError, match="-0.5"):
        autoguidance(mixture2d, mixture2d, -0.5)
    with pytest.raises(ValueError, match="guide_denoiser"):
        autoguidance(mixture2d, None, 2.0)


def test_classifier_guidance_weight_one_is_the_exact_conditional(class_mixture):
    x = torch.randn(48, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.arange(48) % 3
    guided = classifier_guidance(class_mixture.marginal, class_mixture.logits, 1.0)
    for sigma in [0.02, 0.5, 3.0, 30.0]:
        s = torch.full((48,), sigma, dtype=torch.float64)
        want = class_mixture(x, s, class_labels=labels)
        torch.testing.assert_close(guided(x, s, class_labels=labels), want, atol=1e-9 * max(1.0, sigma), rtol=1e-9)
        # one-hot rows work the same; an all-zero row means no label: no guidance
        onehot = class_mixture.onehot(labels)
        onehot[:5] = 0
        out = guided(x, s, class_labels=onehot)
        assert torch.equal(out[:5], class_mixture.marginal(x, s)[:5])


def test_classifier_guidance_keeps_labels_from_an_unconditional_denoiser(class_mixture):
    seen = []

    def uncond(x, sigma, **cond):
        seen.append(sorted(cond))
        return class_mixture.marginal(x, sigma)

    x = torch.randn(4, 2, dtype=torch.float64)
    s = torch.full((4,), 1.0, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0])
    classifier_guidance(uncond, class_mixture.logits, 2.0)(x, s, class_labels=labels, other=1)
    classifier_guidance(uncond, class_mixture.logits, 2.0, pass_labels=True)(x, s, class_labels=labels)
    assert seen == [["other"], ["class_labels"]]
    out = classifier_guidance(uncond, class_mixture.logits, 0.0)(x, s, class_labels=labels)
    assert torch.equal(out, class_mixture.marginal(x, s))


def test_classifier_guidance_bad_input(class_mixture):
    x = torch.randn(4, 2, dtype=torch.float64)
    s = torch.full((4,), 1.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="-2"):
        classifier_guidance(class_mixture.marginal, class_mixture.logits, -2)
    guided = classifier_guidance(class_mixture.marginal, class_mixture.logits, 2.0)
    with pytest.raises(ValueError, match="class_labels=..."):
        guided(x, s)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        guided(x, s, class_labels=torch.tensor([0, 3, 1, 1]))
    with pytest.raises(ValueError, match=r"logits \(B, num_classes\)"):
        classifier_guidance(class_mixture.marginal, lambda x, s: x[:, 0], 2.0)(x, s, class_labels=torch.tensor([0, 1, 1, 1]))


def test_noisy_classifier_loss(class_mixture):
    """The exact noise-aware classifier beats an uninformed one; the loss is reproducible."""
    g = torch.Generator().manual_seed(0)
    labels = torch.multinomial(class_mixture.priors, 512, replacement=True, generator=g)
    x0 = torch.stack([class_mixture.classes[int(c)].sample(1, generator=g)[0] for c in labels])
    loss = NoisyClassifierLoss(nc.LogNormal(-1.0, 1.0))
    exact = loss(class_mixture.logits, x0, labels, generator=torch.Generator().manual_seed(1))
    again = loss(class_mixture.logits, x0, labels, generator=torch.Generator().manual_seed(1))
    uniform = loss(lambda x, s: torch.zeros(x.shape[0], 3, dtype=x.dtype), x0, labels, generator=torch.Generator().manual_seed(1))
    assert torch.equal(exact, again)
    torch.testing.assert_close(uniform, torch.log(torch.tensor(3.0, dtype=torch.float64)))
    assert exact < uniform - 0.2
    # one-hot labels give the same loss; all-zero rows contribute nothing
    onehot = class_mixture.onehot(labels)
    torch.testing.assert_close(loss(class_mixture.logits, x0, onehot, generator=torch.Generator().manual_seed(1)), exact)
    assert class_log_likelihood(torch.randn(2, 3), torch.zeros(2, 3)).abs().max() == 0
    with pytest.raises(ValueError, match="NoiseLevels"):
        NoisyClassifierLoss(0.5)


def test_a_trained_noise_aware_classifier_guides(class_mixture):
    """Train a tiny classifier with NoisyClassifierLoss for a few steps; its guidance moves samples
    towards the class like the exact classifier does."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.SiLU(), torch.nn.Linear(64, 3)).double()

    def classifier(x, sigma):
        c = torch.log(sigma).reshape(-1, 1) / 4
        return net(torch.cat([x / torch.sqrt(1 + sigma.reshape(-1, 1) ** 2), c], 1))

    loss_fn = NoisyClassifierLoss(nc.LogUniform(0.01, 20.0))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    for _ in range(300):
        labels = torch.multinomial(class_mixture.priors, 256, replacement=True, generator=g)
        x0 = class_mixture.marginal.means.new_empty(256, 2)
        for c in range(3):
            rows = labels == c
            x0[rows] = class_mixture.classes[c].sample(int(rows.sum()), generator=g)
        opt.zero_grad()
        loss_fn(classifier, x0, labels, generator=g).backward()
        opt.step()
    n = 300
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    labels = torch.arange(n) % 3
    tiny = torch.full((n,), 1e-3, dtype=torch.float64)
    acc = lambda x: (class_mixture.logits(x, tiny).argmax(1) == labels).double().mean()  # noqa: E731
    plain = nc.sample(class_mixture.marginal, noise, solver="heun", nfe=21, sigma_min=0.01)
    with torch.no_grad():
        guided = nc.sample(classifier_guidance(class_mixture.marginal, classifier, 2.0), noise, solver="heun", nfe=21,
                           sigma_min=0.01, class_labels=labels)
    assert acc(plain) < 0.5 < 0.85 < acc(guided), (float(acc(plain)), float(acc(guided)))
