"""The σ-space formulation: processes, preconditioning, losses, noise levels and step schedules."""

from .losses import DenoisingLoss, LogitNormal, LogNormal, LogUniform, NoiseLevels, UniformTime, loss_weight
from .precond import PREDICTIONS, Denoiser, Precond, expand_sigma
from .processes import PROCESSES, DiscreteVPProcess, FlowProcess, Process, VEProcess, VPProcess, get_process, make_betas
from .schedules import SCHEDULES, flow_shift, get_schedule, karras, loglinear, low_nfe_open, uniform_t_open, vp_uniform_time

__all__ = [
    "DenoisingLoss", "LogitNormal", "LogNormal", "LogUniform", "NoiseLevels", "UniformTime", "loss_weight",
    "PREDICTIONS", "Denoiser", "Precond", "expand_sigma",
    "PROCESSES", "DiscreteVPProcess", "FlowProcess", "Process", "VEProcess", "VPProcess", "get_process", "make_betas",
    "SCHEDULES", "flow_shift", "get_schedule", "karras", "loglinear", "low_nfe_open", "uniform_t_open", "vp_uniform_time",
]
