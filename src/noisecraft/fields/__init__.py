"""Scientific fields: generators with physics checks, sparse-observation reconstruction, uncertainty scores.

    from noisecraft.fields import MaternGRF, solve_darcy, kolmogorov_snapshots          # generators (grf.py, darcy.py, navier_stokes.py)
    obs = read_observations("obs.npz", (1, 64, 64))                                     # observations.py
    post = reconstruct(denoiser, obs, (1, 64, 64), n=32, method="pigdm")               # reconstruct.py
    coverage(post.samples, truth, 0.9), crps(post.samples, truth)                       # metrics.py (+ baselines)
    radial_power_spectrum(fields), darcy_residuals(pairs)                               # statistics.py (generated vs real)
    fc = rollout(denoiser, state, steps=8, n=8); forecast_scores(fc, truth, state)      # forecast.py (next-state models)
    den = physics_dps(denoiser, darcy_physics(to_phys, u_scale), physics_step=1.0)     # physics.py (PDE-residual guidance)

The built-in datasets `grf`, `darcy`, `navier-stokes`, `navier-stokes-forecast` (noisecraft.data.fields) wrap
the generators.
"""

from .darcy import darcy_residual, solve_darcy
from .forecast import Forecast, forecast_scores, rollout
from .grf import GaussianPosterior, MaternGRF, matern_kernel
from .metrics import (coverage, crps, cubic_baseline, gaussian_coverage, gaussian_crps, gp_baseline, mean_baseline,
                      posterior_scores, relative_l2, spread_skill)
from .navier_stokes import NSConfig, kolmogorov_snapshots
from .physics import darcy_fv_residual, darcy_jacobi_residual, darcy_physics, physics_dps
from .observations import Observations, PointObservation, random_observations, read_observations, write_observations
from .reconstruct import RECONSTRUCT_METHODS, Posterior, observation_condition, reconstruct, resolve_method, tmpd
from .statistics import (darcy_residuals, darcy_solution_errors, distribution_distance, pixel_statistics, pixel_w1,
                         radial_power_spectrum, spectrum_errors, vorticity_statistics)

__all__ = [
    "MaternGRF", "GaussianPosterior", "matern_kernel", "solve_darcy", "darcy_residual", "NSConfig", "kolmogorov_snapshots",
    "Observations", "PointObservation", "read_observations", "write_observations", "random_observations",
    "darcy_fv_residual", "darcy_jacobi_residual", "darcy_physics", "physics_dps",
    "RECONSTRUCT_METHODS", "Posterior", "reconstruct", "tmpd", "observation_condition", "resolve_method", "Forecast", "rollout", "forecast_scores",
    "relative_l2", "coverage", "gaussian_coverage", "crps", "gaussian_crps", "spread_skill", "posterior_scores",
    "gp_baseline", "cubic_baseline", "mean_baseline",
    "radial_power_spectrum", "spectrum_errors", "pixel_statistics", "pixel_w1", "darcy_residuals",
    "darcy_solution_errors", "vorticity_statistics", "distribution_distance",
]
