"""A class-conditional Gaussian mixture: exact conditional and unconditional denoisers and an exact
noise-aware classifier, the oracle for every guidance wrapper."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from noisecraft import GaussianMixture


class ClassMixture:
    """Class c ~ priors; x0 | c ~ a Gaussian mixture per class. With labels (indices or one-hot rows)
    it is the exact E[x0 | x, c]; an all-zero row (or None) gives the marginal mixture's E[x0 | x],
    the exact unconditional posterior mean."""

    def __init__(self, classes: list[tuple[Tensor, Tensor, Tensor]], priors: Tensor):
        self.priors = torch.as_tensor(priors, dtype=torch.float64)
        self.priors = self.priors / self.priors.sum()
        self.classes = [GaussianMixture(m, s, w) for m, s, w in classes]
        means = torch.cat([c.means for c in self.classes])
        stds = torch.cat([c.vars.sqrt() for c in self.classes])
        weights = torch.cat([p * c.weights for p, c in zip(self.priors, self.classes)])
        self.marginal = GaussianMixture(means, stds, weights)
        self.num_classes = len(self.classes)
        self.calls = 0

    def onehot(self, labels: Tensor) -> Tensor:
        if labels.is_floating_point():
            return labels
        return torch.nn.functional.one_hot(labels.long(), self.num_classes).to(torch.float64)

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None) -> Tensor:
        self.calls += 1
        if class_labels is None:
            return self.marginal(x, sigma)
        onehot = self.onehot(class_labels)
        assert onehot.shape == (x.shape[0], self.num_classes), onehot.shape
        sigma = torch.as_tensor(sigma, dtype=x.dtype).expand(x.shape[0]) if torch.as_tensor(sigma).ndim == 0 else sigma
        out = torch.empty_like(x)
        none = onehot.sum(1) == 0
        if none.any():
            out[none] = self.marginal(x[none], sigma[none])
        for c, mix in enumerate(self.classes):
            rows = (onehot[:, c] == 1) & ~none
            assert bool(((onehot[rows].sum(1)) == 1).all()), "soft labels are not supported by the oracle"
            if rows.any():
                out[rows] = mix(x[rows], sigma[rows])
        return out

    def logits(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Exact noise-aware classifier: log p(c) + log p_σ(x | c) (B, num_classes), differentiable."""
        return torch.stack([torch.log(p) + mix.log_prob(x, sigma) for p, mix in zip(self.priors, self.classes)], dim=1)


@pytest.fixture(autouse=True)
def single_thread():
    """The oracle's tensors are tiny: one thread avoids thread-pool overhead that dominates (50x)
    on a loaded machine. Restored afterwards for the rest of the suite."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def class_mixture() -> ClassMixture:
    """Three overlapping 2-D classes of two components each."""
    f = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    classes = [
        (f([[-1.2, 0.2], [-0.4, 1.0]]), f([0.45, 0.35]), f([0.6, 0.4])),
        (f([[0.9, 0.8], [0.2, 0.1]]), f([0.4, 0.5]), f([0.5, 0.5])),
        (f([[0.5, -1.1], [-0.5, -0.6]]), f([0.35, 0.45]), f([0.7, 0.3])),
    ]
    return ClassMixture(classes, f([0.3, 0.4, 0.3]))
