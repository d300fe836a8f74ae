"""Measurement operators: adjoints, pseudo-inverses and regularized Gram solves against dense algebra."""

from __future__ import annotations

import pytest
import torch
from task_oracles import dense_matrix

from noisecraft.tasks import Blur, Downsample, Masking, SparsePoints, gaussian_kernel

SHAPE = (2, 4, 6)  # (C, H, W) per sample


def _operators():
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(SHAPE, generator=g) < 0.5).double()
    return {
        "masking": Masking(mask),
        "masking_shared_channels": Masking(mask[:1]),
        "sparse": SparsePoints([0, 5, 17, 30, 47], SHAPE),
        "downsample": Downsample(2),
        "blur": Blur.gaussian(0.7, 3),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_transpose_pinv_and_gram_solve_match_dense_algebra(name):
    op = _operators()[name]
    A = dense_matrix(op, SHAPE)  # (M, D)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, *SHAPE, generator=g, dtype=torch.float64)
    y = op.forward(x)
    # forward and transpose
    torch.testing.assert_close(y.reshape(3, -1), x.reshape(3, -1) @ A.T, atol=1e-12, rtol=0)
    v = torch.randn(y.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(op.transpose(v).reshape(3, -1), v.reshape(3, -1) @ A, atol=1e-12, rtol=0)
    # pseudo-inverse (all operators here keep every direction of their range)
    torch.testing.assert_close(op.pinv(y).reshape(3, -1), y.reshape(3, -1) @ torch.linalg.pinv(A).T, atol=1e-9, rtol=0)
    torch.testing.assert_close(op.forward(op.pinv(y)), y, atol=1e-9, rtol=0)
    # (a·AAᵀ + b·I)⁻¹ v with per-sample a, on the range of A (Masking's y is zero off the mask)
    a, b = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64), 0.04
    want = torch.stack([torch.linalg.solve(a[i] * A @ A.T + b * torch.eye(A.shape[0], dtype=torch.float64), y[i].reshape(-1)) for i in range(3)])
    got = op.gram_solve(y, a, b).reshape(3, -1)
    torch.testing.assert_close(op.transpose(got.reshape(y.shape)).reshape(3, -1), want @ A, atol=1e-9, rtol=0)


def test_gaussian_kernel_and_blur_is_circular():
    k = gaussian_kernel(1.0)
    assert k.shape == (7, 7) and abs(float(k.sum()) - 1) < 1e-12
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 0, 0] = 1.0
    out = Blur(k[2:5, 2:5] / k[2:5, 2:5].sum()).forward(x)
    assert out[0, 0, -1, -1] > 0 and abs(float(out.sum()) - 1) < 1e-12  # wraps around, keeps the mass


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: Downsample(0), "factor"),
        (lambda: Downsample(2).forward(torch.zeros(1, 1, 5, 4)), "divisible by 2"),
        (lambda: Masking(torch.tensor([0.0, 0.5, 1.0])), "only 0"),
        (lambda: Masking(torch.ones(3)).forward(torch.zeros(2, 4)), "does not broadcast"),
        (lambda: SparsePoints([1, 1], (4,)), "unique"),
        (lambda: SparsePoints([4], (4,)), r"0\.\.3"),
        (lambda: SparsePoints([1], (4,)).forward(torch.zeros(2, 5)), r"\(4,\)"),
        (lambda: Blur(torch.ones(2, 2)), "odd"),
        (lambda: gaussian_kernel(-1.0), "std"),
    ],
)
def test_bad_operator_input(build, match):
    with pytest.raises(ValueError, match=match):
        build()
