"""Samplers as plain functions, the solver table and the `sample()` API."""

from .api import BudgetExceeded, DenoiserError, check_sigmas, default_sigmas, sample
from .noise import NoiseSource, randn, seeded_generators
from .optimize import ScheduleFit, optimize_schedule
from .reference import solve_pf_ode
from .registry import DEFAULT_SOLVER, SOLVERS, SolverInfo, get_solver
from .spec import SamplingSpec, SpecError

__all__ = [
    "BudgetExceeded", "DenoiserError", "check_sigmas", "default_sigmas", "sample",
    "NoiseSource", "randn", "seeded_generators", "solve_pf_ode", "optimize_schedule", "ScheduleFit",
    "SOLVERS", "DEFAULT_SOLVER", "SolverInfo", "get_solver", "SamplingSpec", "SpecError",
]
