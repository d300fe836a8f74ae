"""RePaint inpainting: known pixels kept exactly, completions drawn from the right posterior."""

from __future__ import annotations

import pytest
import torch
from task_oracles import component_frequencies, dense_matrix, linear_posterior

import noisecraft as nc
from noisecraft.tasks import SparsePoints, inpaint, repaint_walk


def test_repaint_walk():
    assert repaint_walk(3) == [(0, 1), (1, 2), (2, 3)]
    assert repaint_walk(3, resample_steps=2, jump=2) == [(0, 1), (1, 2), (2, 0), (0, 1), (1, 2), (2, 3), (3, 2), (2, 3)]
    walk = repaint_walk(25, resample_steps=4, jump=3)
    assert sum(1 for a, b in walk if b == a + 1) == 25 * 4  # every step denoised U times
    assert walk[-1] == (24, 25)
    with pytest.raises(ValueError, match="resample_steps"):
        repaint_walk(10, resample_steps=0)


@pytest.mark.parametrize("solver, kw", [("ddpm", {"resample_steps": 3}), ("euler", {"resample_steps": 2, "jump": 3}),
                                        ("ddim_eta", {"eta": 0.3})])
def test_known_pixels_are_kept_exactly(solver, kw):
    """Images (B, C, H, W) with one mask for all channels; the result equals the image on mask == 1."""
    mix = nc.GaussianMixture(torch.randn(3, 2 * 4 * 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64),
                             torch.tensor([0.3, 0.5, 0.4]))
    image = mix.sample(6, generator=torch.Generator().manual_seed(1)).reshape(6, 2, 4, 4)
    mask = (torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(2)) < 0.4).double()
    steps = []
    out = inpaint(mix, image, mask, solver=solver, nfe=12, generator=torch.Generator().manual_seed(3),
                  callback=lambda info: steps.append(info["sigma"]), **kw)
    known = mask.expand_as(image).bool()
    assert torch.equal(out[known], image[known])
    assert not torch.equal(out[~known], image[~known])
    assert len(steps) == 12 * kw.get("resample_steps", 5) and torch.isfinite(out).all()


def test_per_sample_generators_make_batches_reproducible():
    mix = nc.GaussianMixture(torch.tensor([[-1.0, 0.0], [1.0, 0.5]], dtype=torch.float64), torch.tensor([0.3, 0.4]))
    image = torch.tensor([[0.9, 0.0], [-1.1, 0.0], [0.2, 0.0]], dtype=torch.float64)
    mask = torch.tensor([1.0, 0.0], dtype=torch.float64)  # one mask for the batch
    batch = inpaint(mix, image, mask, nfe=10, resample_steps=2, generator=nc.seeded_generators([5, 6, 7]))
    singles = torch.cat([inpaint(mix, image[i : i + 1], mask, nfe=10, resample_steps=2, generator=nc.seeded_generators([5 + i]))
                         for i in range(3)])
    assert torch.equal(batch, singles)


def test_completions_follow_the_exact_posterior(mixture3d):
    """Observe coordinate 0 of a 3-D mixture exactly; the exact posterior reweights the components
    (0.41 / 0.59 for the two that overlap there, prior share 0.43 / 0.57). Replacement alone
    (U = 1) is biased: measured weight error 0.075-0.11 over seeds 0-3. Resampling U = 8 brings it
    to 0.015-0.034 (mean error 0.03-0.07) with n = 4000 draws (standard errors 0.008 for a weight,
    0.016 for the mean of coordinate 1). Tolerances: weights 0.05, mean 0.1; U = 8 must beat U = 1."""
    n, y0 = 4000, -0.8
    image = torch.zeros(n, 3, dtype=torch.float64)
    image[:, 0] = y0
    mask = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    w, mean = linear_posterior(mixture3d, dense_matrix(SparsePoints([0], (3,)), (3,)), torch.tensor([y0], dtype=torch.float64), 0.0)

    def weight_error(resample_steps):
        out = inpaint(mixture3d, image, mask, nfe=25, resample_steps=resample_steps, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out[:, 0], image[:, 0])
        return float((component_frequencies(mixture3d, out) - w).abs().max()), out

    err1, _ = weight_error(1)
    err8, out8 = weight_error(8)
    assert err8 < 0.05 and err8 < err1, (err1, err8)
    assert (out8.mean(0) - mean).abs().max() < 0.1


def test_bad_inpaint_input(mixture2d):
    image = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match=r"mask shape \(2, 3, 4, 5\) does not match image shape \(2, 3, 4, 4\)"):
        inpaint(mixture2d, image, torch.ones(2, 3, 4, 5))
    with pytest.raises(ValueError, match="mask has 2 channels but the image has 3; valid: 1 .* or 3"):
        inpaint(mixture2d, image, torch.ones(2, 2, 4, 4))
    with pytest.raises(ValueError, match="only 0"):
        inpaint(mixture2d, image, torch.full((2, 1, 4, 4), 0.5))
    with pytest.raises(ValueError, match="solver must be one of"):
        inpaint(mixture2d, image, torch.ones(2, 1, 4, 4), solver="heun")
    with pytest.raises(ValueError, match="fixes eta=1.0"):
        inpaint(mixture2d, image, torch.ones(2, 1, 4, 4), solver="ddpm", eta=0.5)
    with pytest.raises(ValueError, match="float tensor"):
        inpaint(mixture2d, torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3))
