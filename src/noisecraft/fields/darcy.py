"""2-D Darcy flow -∇·(a ∇u) = f on the unit square with u = 0 on the boundary, by finite volumes.

The grid has N x N cells of side h = 1/N; a, u and f live at cell centres ((i + ½)h, (j + ½)h). The
flux through the face between cells P and Q is -a_f·(u_Q - u_P)/h with the harmonic mean
a_f = 2·a_P·a_Q/(a_P + a_Q) (the exact face coefficient of a 1-D piecewise-constant medium; it keeps
the scheme conservative across jumps of a). A boundary face sits h/2 from its cell centre, with
u = 0 on it: its flux is -a_P·(0 - u_P)/(h/2). Summing the four fluxes gives one sparse row per cell,

    Σ_faces T_f·(u_P - u_Q) = h²·f_P,   T_f = a_f (interior), 2·a_P (boundary),

a symmetric positive-definite 5-point system solved with `scipy.sparse.linalg.spsolve` (SuperLU).
For smooth a the error against the exact solution is O(h²) (`tests/fields/test_darcy.py` checks the
order on a manufactured solution).

Coefficients (`darcy_coefficient`), from a Matérn field ψ (`grf.MaternGRF`, ν = 1, ℓ = √2/3:
the spectrum (4π²|k|² + 9)^-2 of the FNO Darcy data, Li et al. 2021, on a periodic grid here):
"piecewise": a = 12 where ψ >= 0, else 3; "lognormal": a = exp(ψ) with std(ψ) = 1.
"""

from __future__ import annotations

import math

import numpy as np

from .grf import MaternGRF, field_noise

__all__ = ["darcy_matrix", "solve_darcy", "darcy_residual", "darcy_coefficient", "COEFFICIENTS"]

COEFFICIENTS = ("piecewise", "lognormal")
PIECEWISE_VALUES = (3.0, 12.0)


def darcy_matrix(a: np.ndarray):
    """The FV matrix (N², N²) scipy CSR of -∇·(a∇·) with u = 0 on the boundary, times h² (module notes). a (N, N) > 0."""
    import scipy.sparse as sp

    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    if a.ndim != 2 or a.shape[1] != n or not np.all(a > 0):
        raise ValueError(f"a must be a square (N, N) array of positive values, got shape {a.shape}")
    idx = np.arange(n * n).reshape(n, n)
    tx = 2 * a[1:, :] * a[:-1, :] / (a[1:, :] + a[:-1, :])  # faces between rows i and i+1 (N-1, N)
    ty = 2 * a[:, 1:] * a[:, :-1] / (a[:, 1:] + a[:, :-1])  # faces between columns j and j+1 (N, N-1)
    diag = np.zeros((n, n))
    diag[1:, :] += tx
    diag[:-1, :] += tx
    diag[:, 1:] += ty
    diag[:, :-1] += ty
    for side in (np.s_[0, :], np.s_[-1, :], np.s_[:, 0], np.s_[:, -1]):  # boundary faces (corners get two)
        diag[side] += 2 * a[side]
    rows = np.concatenate([idx.ravel(), idx[1:, :].ravel(), idx[:-1, :].ravel(), idx[:, 1:].ravel(), idx[:, :-1].ravel()])
    cols = np.concatenate([idx.ravel(), idx[:-1, :].ravel(), idx[1:, :].ravel(), idx[:, :-1].ravel(), idx[:, 1:].ravel()])
    vals = np.concatenate([diag.ravel(), -tx.ravel(), -tx.ravel(), -ty.ravel(), -ty.ravel()])
    return sp.csr_matrix((vals, (rows, cols)), shape=(n * n, n * n))


def solve_darcy(a: np.ndarray, f: float | np.ndarray = 1.0) -> np.ndarray:
    """u (N, N) of -∇·(a∇u) = f, u = 0 on ∂[0,1]²; a (N, N) > 0 and f (scalar or (N, N)) at cell centres."""
    from scipy.sparse.linalg import spsolve

    a = np.asarray(a, dtype=np.float64)
    n = a.shape[0]
    rhs = np.broadcast_to(np.asarray(f, dtype=np.float64), (n, n)).ravel() / n**2
    return spsolve(darcy_matrix(a).tocsc(), rhs).reshape(n, n)


def darcy_residual(a: np.ndarray, u: np.ndarray, f: float | np.ndarray = 1.0) -> float:
    """The relative residual ‖A(a)·u - h²f‖ / ‖h²f‖ of the FV equations: ~1e-12 for a solved pair,
    the physics check for generated (a, u) pairs (same discretization)."""
    a, u = np.asarray(a, dtype=np.float64), np.asarray(u, dtype=np.float64)
    n = a.shape[0]
    rhs = np.broadcast_to(np.asarray(f, dtype=np.float64), (n, n)).ravel() / n**2
    return float(np.linalg.norm(darcy_matrix(a) @ u.ravel() - rhs) / np.linalg.norm(rhs))


def darcy_coefficient(kind: str, size: int, seed: int, index: np.ndarray) -> np.ndarray:
    """Permeabilities a (len(index), N, N) of `kind` ("piecewise" | "lognormal"), field i from (seed, index[i])."""
    if kind not in COEFFICIENTS:
        raise ValueError(f"coefficient {kind!r} is not a Darcy coefficient; valid: {', '.join(COEFFICIENTS)}")
    grf = MaternGRF(size, nu=1.0, length=math.sqrt(2.0) / 3.0, std=1.0)
    psi = grf.from_noise(field_noise(seed, index, (size, size)))[:, 0].numpy()
    if kind == "piecewise":
        return np.where(psi >= 0, PIECEWISE_VALUES[1], PIECEWISE_VALUES[0])
    return np.exp(psi)
