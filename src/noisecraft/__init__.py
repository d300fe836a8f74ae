"""noisecraft: diffusion models from scratch, one σ-space formulation underneath.

    x = s(t)·(x0 + σ(t)·ε);  a denoiser D(x, σ, **cond) returns E[x0 | x] for σ-space x.
"""

from .core import *  # noqa: F401,F403
from .core import __all__ as _core_all
from .core.mixture import GaussianMixture
from .eval.likelihood import bits_per_dim, discrete_log_likelihood, log_likelihood
from .sampling import *  # noqa: F401,F403
from .sampling import __all__ as _sampling_all

__version__ = "0.1.0"
__all__ = [*_core_all, *_sampling_all, "GaussianMixture", "log_likelihood", "discrete_log_likelihood", "bits_per_dim"]
