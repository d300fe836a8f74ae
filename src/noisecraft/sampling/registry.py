"""The solver table: name -> what it is, how it spends its NFE budget, and its default schedule."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from . import deterministic as det
from . import stochastic as sto

__all__ = ["SolverInfo", "SOLVERS", "DEFAULT_SOLVER", "get_solver"]


@dataclass(frozen=True)
class SolverInfo:
    """One solver. `order` is the global order of accuracy of the deterministic solver
    (for stochastic samplers: the order of the deterministic part of the step)."""

    name: str
    function: Callable[..., Any]
    stochastic: bool
    order: int
    description: str
    calls_per_step: int = 1  # denoiser calls of a full non-final step (the final σ→0 step costs 1)
    schedule: str = "karras"
    schedule_options: Mapping[str, Any] = field(default_factory=dict)
    fixed_options: Mapping[str, Any] = field(default_factory=dict)  # options that define this entry
    adaptive: bool = False
    evaluates_end: bool = False  # evaluates D at each step's end point (UniPC's corrector)
    step_cost: Callable[[Mapping[str, Any]], int] | None = None  # calls per step when options change it

    def calls_for(self, options: Mapping[str, Any]) -> int:
        return self.step_cost(options) if self.step_cost else self.calls_per_step

    @property
    def kind(self) -> str:
        return "stochastic" if self.stochastic else "deterministic"

    def steps_for_nfe(self, nfe: int, options: Mapping[str, Any] = MappingProxyType({})) -> int:
        """Number of schedule intervals (ending in the final σ→0 step) that spends `nfe` calls.

        Multi-call steps get one more interval than full steps would allow; their first steps then
        run uncorrected (see deterministic.corrected_steps), which beats leaving calls unused."""
        if self.adaptive:
            return 2
        c = self.calls_for(options)
        return nfe if c == 1 else nfe // c + 1

    def min_calls(self, sigmas: list[float]) -> int:
        """Fewest calls this solver needs for the given schedule (corrections are optional)."""
        if self.adaptive:
            return 3 + int(sigmas[-1] == 0)
        return len(sigmas) - 1

    def max_calls(self, sigmas: list[float], options: Mapping[str, Any] = MappingProxyType({})) -> int:
        """Calls for the full-accuracy version of every step of the schedule."""
        n = len(sigmas) - 1
        nonfinal = sum(1 for s in sigmas[1:] if s > 0)
        open_end = self.evaluates_end and sigmas[-1] > 0  # D at the last σ feeds only the corrector
        return n + (self.calls_for(options) - 1) * nonfinal + int(open_end)

    def __str__(self) -> str:
        return f"{self.name}: {self.kind}, order {self.order} - {self.description}"


# Log-linear steps, 4x sparser above σ = 10 (see core.schedules.loglinear): measured best default
# for the multistep solvers on Gaussian mixtures in both the EDM and the DDPM σ ranges.
KNEE = MappingProxyType({"knee": 10.0, "knee_density": 0.25})


def _info(name, function, stochastic, order, description, **kw) -> SolverInfo:
    return SolverInfo(name, function, stochastic, order, description, **kw)


_ENTRIES = [
    _info("euler", det.euler, False, 1, "Euler on the PF-ODE in σ (= DDIM, η = 0, in σ-space)", schedule="vp_uniform_time"),
    _info("heun", det.heun, False, 2, "EDM Heun 2nd order (Karras et al. 2022, Alg. 1)", calls_per_step=2, schedule="vp_uniform_time"),
    _info("dpmpp_2m", det.dpmpp_2m, False, 2, "DPM-Solver++(2M) as published (Lu et al. 2022b, Alg. 2; k-diffusion/diffusers default)",
          schedule="loglinear", schedule_options=KNEE),
    # Order 2, not 3: the published update weights the quadratic term by half its exact integral, a
    # local error of O(h^3) (measured: local order 2.00 from NFE 64 on; docs/samplers.md).
    _info("dpmpp_3m", det.dpmpp_3m, False, 2, "DPM-Solver++(3M) as in the DPM-Solver++ code, k-diffusion and diffusers (global order 2)",
          schedule="loglinear", schedule_options=KNEE),
    _info("dpmpp_2m_exact", det.dpmpp_2m_exact, False, 2, "exponential Adams-Bashforth 2 (DPM-Solver++ step, linear interpolant integrated exactly)",
          schedule="loglinear", schedule_options=KNEE),
    _info("dpmpp_3m_exact", det.dpmpp_3m_exact, False, 3, "exponential Adams-Bashforth 3 (DPM-Solver++ step, quadratic interpolant integrated exactly)",
          schedule="loglinear", schedule_options=KNEE),
    _info("dpmpp_2s", det.dpmpp_2s, False, 2, "DPM-Solver++(2S) single-step with a midpoint evaluation", calls_per_step=2,
          schedule="loglinear"),
    _info("unipc", det.unipc, False, 3, "UniPC as published: UniP-2 + UniC, B(h) = e^h - 1 (bh2, diffusers' default)",
          fixed_options={"order": 2, "variant": "bh2"}, evaluates_end=True, schedule="loglinear", schedule_options=KNEE),
    _info("unipc_3", det.unipc, False, 4, "UniPC as published: UniP-3 + UniC, B(h) = e^h - 1 (bh2)",
          fixed_options={"order": 3, "variant": "bh2"}, evaluates_end=True, schedule="low_nfe_open", schedule_options=KNEE),
    _info("unipc_bh1", det.unipc, False, 3, "UniPC as published: UniP-2 + UniC, B(h) = h (bh1)",
          fixed_options={"order": 2, "variant": "bh1"}, evaluates_end=True, schedule="loglinear", schedule_options=KNEE),
    _info("unipc_am", det.unipc_am, False, 3, "exponential Adams predictor (order 2) + exponential Adams-Moulton corrector (order 3)",
          fixed_options={"order": 2}, evaluates_end=True, schedule="loglinear", schedule_options=KNEE),
    _info("unipc_3_am", det.unipc_am, False, 4, "exponential Adams predictor (order 3) + exponential Adams-Moulton corrector (order 4)",
          fixed_options={"order": 3}, evaluates_end=True, schedule="loglinear", schedule_options=KNEE),
    _info("ipndm", det.ipndm, False, 2, "improved PNDM: fixed-coefficient Adams-Bashforth on dx/dσ (DEIS); order 2 on non-uniform steps",
          schedule="loglinear", schedule_options=KNEE),
    _info("lms", det.lms, False, 4, "linear multistep: variable-step Adams-Bashforth (order 4) on dx/dσ",
          schedule="vp_uniform_time"),
    _info("ddim", det.euler, False, 1, "DDIM with η = 0 (Song et al. 2021a); uniform VP time steps", schedule="vp_uniform_time"),
    _info("adaptive_rk", det.adaptive_rk, False, 3, "adaptive exponential RK 3(2) (DPM-Solver++ 3S + embedded 2S); rtol/atol target, nfe cap", adaptive=True),
    _info("ddpm", sto.ancestral, True, 1, "DDPM ancestral sampling (posterior steps, η = 1)", schedule="vp_uniform_time", fixed_options={"eta": 1.0}),
    _info("ddim_eta", sto.ancestral, True, 1, "DDIM with η > 0 (option eta, default 0.5)", schedule="vp_uniform_time"),
    _info("euler_ancestral", sto.ancestral, True, 1, "Euler ancestral (η = 1 on the Karras schedule)", fixed_options={"eta": 1.0}),
    _info("edm_stochastic", sto.edm_stochastic, True, 2, "EDM stochastic sampler (Alg. 2: churn + Heun)", calls_per_step=2),
    _info("dpmpp_2m_sde", sto.dpmpp_2m_sde, True, 2, "SDE-DPM-Solver++(2M), η = 1", schedule="loglinear", schedule_options=KNEE),
    # few-step samplers of distilled runs (noisecraft distill; docs/distillation.md)
    _info("consistency", sto.consistency, True, 1, "multistep consistency sampling (Song et al. 2023, Alg. 1) for consistency-distilled/-trained runs",
          schedule="karras_open"),
    _info("euler_open", det.euler, False, 1, "Euler (= DDIM) on the nested open Karras grid that progressive distillation halves (Salimans & Ho 2022)",
          schedule="karras_open"),
    _info("pc_langevin", sto.pc_langevin, True, 1, "predictor-corrector: ancestral predictor + Langevin corrector (option corrector_steps, default 1)",
          calls_per_step=2, step_cost=lambda o: 1 + int(o.get("corrector_steps", 1))),
]

SOLVERS: Mapping[str, SolverInfo] = MappingProxyType({e.name: e for e in _ENTRIES})

# The solver `sample()` uses when none is named (SamplingSpec keeps its own, "heun"). UniPC with the
# UniP-3 predictor (published bh2 form, order 4): on held-out Gaussian mixtures it had the lowest median
# and worst-case error at NFE 10 and 20 in both the EDM (σ_max 80) and the DDPM (σ_max 157) range, and
# it was the best noisecraft solver at NFE 10-50 in docs/benchmarks.md. It replaced "dpmpp_3m" when
# that name came to mean the published DPM-Solver++(3M), which is globally 2nd order (docs/samplers.md).
# Below NFE ~6 the order-2 solvers (dpmpp_2m, unipc) are as good or better.
DEFAULT_SOLVER = "unipc_3"

# Option defaults that differ from the function's own defaults for a registered name.
DEFAULT_OPTIONS: Mapping[str, Mapping[str, Any]] = MappingProxyType({"ddim_eta": {"eta": 0.5}})


def get_solver(name: str) -> SolverInfo:
    try:
        return SOLVERS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown solver {name!r}; valid solvers: {', '.join(SOLVERS)}") from None
