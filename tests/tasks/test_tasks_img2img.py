"""SDEdit / img2img: the strength -> σ mapping, the start point and the two ends of the range."""

from __future__ import annotations

import pytest
import torch

import noisecraft as nc
from noisecraft.tasks import img2img, strength_to_sigma


def test_strength_to_sigma_mapping():
    assert strength_to_sigma(1.0) == 80.0
    assert strength_to_sigma(1.0, 0.01, 20.0) == 20.0
    # the EDM ramp (ρ = 7) between sigma_min and sigma_max
    a, b = 0.002 ** (1 / 7), 80.0 ** (1 / 7)
    assert abs(strength_to_sigma(0.5) - (a + 0.5 * (b - a)) ** 7) < 1e-12
    values = [strength_to_sigma(s) for s in [1e-4, 0.1, 0.25, 0.5, 0.75, 1.0]]
    assert all(x < y for x, y in zip(values, values[1:]))
    assert 0.002 < values[0] < 0.0021
    assert [round(v, 2) for v in values[2:5]] == [0.17, 2.52, 17.53]  # the values the docs quote


def test_starts_at_image_plus_sigma_noise_and_spends_nfe():
    mix = nc.GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64), torch.tensor([0.3, 0.4]))
    seen = []

    def den(x, sigma):
        seen.append((x.clone(), sigma.clone()))
        return mix(x, sigma)

    image = torch.tensor([[0.9, 0.4], [-1.2, 0.1]], dtype=torch.float64)
    eps = torch.randn(2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    img2img(den, image, 0.4, noise=eps, solver="dpmpp_2m", nfe=9)
    s0 = strength_to_sigma(0.4)
    assert len(seen) == 9
    x0, sig0 = seen[0]
    torch.testing.assert_close(sig0, torch.full((2,), s0, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(x0, image + s0 * eps, atol=1e-12, rtol=0)
    assert all(float(s[0]) <= s0 for _, s in seen)


def test_stochastic_solver_is_reproducible():
    mix = nc.GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64), torch.tensor([0.3, 0.4]))
    image = torch.tensor([[0.9, 0.4], [-1.2, 0.1], [0.0, 0.0]], dtype=torch.float64)
    run = lambda gens: img2img(mix, image, 0.6, solver="ddpm", nfe=15, generator=gens)  # noqa: E731
    batch = run(nc.seeded_generators([3, 4, 5]))
    assert torch.equal(batch, run(nc.seeded_generators([3, 4, 5])))
    singles = torch.cat([img2img(mix, image[i : i + 1], 0.6, solver="ddpm", nfe=15, generator=nc.seeded_generators([3 + i]))
                         for i in range(3)])
    assert torch.equal(batch, singles)


def test_strength_one_is_plain_sampling_and_small_strength_keeps_the_image(mixture2d):
    """Strength 1 starts at image + 80·ε instead of 80·ε: the image is a 1/80 perturbation of the
    start, so samples agree except near mode boundaries (measured: median distance 0.011, 0.8% of
    samples change mode). Small strengths barely move the image; larger ones move it more."""
    n = 1000
    image = mixture2d.sample(n, generator=torch.Generator().manual_seed(0))
    eps = torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    full = img2img(mixture2d, image, 1.0, noise=eps, solver="heun", nfe=30)
    plain = nc.sample(mixture2d, eps, solver="heun", nfe=30)
    assert (full - plain).norm(dim=1).median() < 0.03
    comp = lambda x: mixture2d.component_log_probs(x).argmax(1)  # noqa: E731
    assert (comp(full) != comp(plain)).double().mean() < 0.02
    change = [float((img2img(mixture2d, image, s, noise=eps, solver="heun", nfe=30) - image).abs().mean()) for s in [0.1, 0.25, 0.5]]
    assert change[0] < 0.03 and change[0] < change[1] < change[2], change


@pytest.mark.parametrize("strength", [0, 0.0, -0.2, 1.5, float("nan"), True, "0.5"])
def test_bad_strength(mixture2d, strength):
    with pytest.raises(ValueError, match=r"strength must be a number in \(0, 1\].*got"):
        img2img(mixture2d, torch.zeros(2, 2, dtype=torch.float64), strength)


def test_bad_noise_shape(mixture2d):
    with pytest.raises(ValueError, match=r"noise shape \(2, 3\)"):
        img2img(mixture2d, torch.zeros(2, 2, dtype=torch.float64), 0.5, noise=torch.zeros(2, 3, dtype=torch.float64))
