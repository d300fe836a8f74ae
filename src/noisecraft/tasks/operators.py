"""Linear measurement operators A for inverse problems, y = A·x0 + σ_y·n.

Every operator gives
    forward(x)   A·x           x (B, ...) -> y
    transpose(y) Aᵀ·y          y -> x-shaped
    pinv(y)      A⁺·y          the Moore-Penrose pseudo-inverse (minimum-norm least squares)
    gram_solve(v, a, b)        (a·A·Aᵀ + b·I)⁻¹·v in measurement space, a, b >= 0 scalars or (B,)

`gram_solve` is what the noise-aware projection needs (see `inverse.projection`); every operator
here has an A·Aᵀ that is diagonal in some basis, so it is exact and cheap:
    Masking, SparsePoints   A·Aᵀ = I on the observed entries
    Downsample(f)           A·Aᵀ = I/f² (average pooling)
    Blur                    A·Aᵀ = |k̂|² in the 2-D Fourier basis (circular convolution)
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Sequence

import torch
from torch import Tensor

__all__ = ["LinearOperator", "Masking", "SparsePoints", "Downsample", "Blur", "gaussian_kernel"]


def _bcast(v: Tensor | float, like: Tensor) -> Tensor:
    """A scalar or per-sample (B,) coefficient shaped to broadcast against `like` (B, ...)."""
    t = torch.as_tensor(v, dtype=like.dtype, device=like.device)
    return t if t.ndim == 0 else t.reshape((-1,) + (1,) * (like.ndim - 1))


class LinearOperator:
    """Base class: subclasses implement forward, transpose, pinv and gram_solve."""

    def forward(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def transpose(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def pinv(self, y: Tensor) -> Tensor:
        raise NotImplementedError

    def gram_solve(self, v: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
        raise NotImplementedError

    def __call__(self, x: Tensor) -> Tensor:
        return self.forward(x)

    def check_measurement(self, y: Tensor, x_shape: Sequence[int]) -> None:
        """ValueError unless y has the shape forward() gives for x of shape x_shape."""
        want = tuple(self.forward(torch.zeros(tuple(x_shape), dtype=y.dtype, device=y.device)).shape)
        if tuple(y.shape) != want:
            raise ValueError(
                f"measurement y has shape {tuple(y.shape)}, but {type(self).__name__} maps x of shape "
                f"{tuple(x_shape)} to {want}"
            )


class Masking(LinearOperator):
    """Observe the entries where mask == 1 (inpainting). y keeps x's shape, zero where unobserved.

    mask: 0/1 tensor broadcastable to x (e.g. (C, H, W), (1, 1, H, W) or x's full shape)."""

    def __init__(self, mask: Tensor):
        mask = torch.as_tensor(mask)
        values = torch.unique(mask)
        if not bool(((values == 0) | (values == 1)).all()):
            raise ValueError(f"mask must contain only 0 (unknown) and 1 (known), got values {values.tolist()[:8]}")
        self.mask = mask

    def _m(self, x: Tensor) -> Tensor:
        try:
            return self.mask.to(dtype=x.dtype, device=x.device).expand_as(x)
        except RuntimeError:
            shapes = f"mask of shape {tuple(self.mask.shape)} does not broadcast to x of shape {tuple(x.shape)}"
            raise ValueError(shapes) from None

    def forward(self, x: Tensor) -> Tensor:
        return x * self._m(x)

    transpose = forward
    pinv = forward  # A is an orthogonal projection: Aᵀ = A⁺ = A

    def gram_solve(self, v: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
        # A·Aᵀ = diag(m): observed entries divide by a + b; unobserved ones are 0 in y and dropped by Aᵀ.
        return v * self._m(v) / (_bcast(a, v) + _bcast(b, v))


class SparsePoints(LinearOperator):
    """Observe a few entries of each sample: y = x.flatten(1)[:, indices], shape (B, M).

    shape: the per-sample shape of x (without the batch dim), needed by Aᵀ to scatter back.
    Indices (into the flattened sample) must be unique; A has orthonormal rows, A·Aᵀ = I."""

    def __init__(self, indices: Sequence[int] | Tensor, shape: Sequence[int]):
        self.shape = tuple(int(s) for s in shape)
        size = math.prod(self.shape)
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if idx.numel() == 0:
            raise ValueError("indices must name at least one entry")
        if bool((idx < 0).any() | (idx >= size).any()) or torch.unique(idx).numel() != idx.numel():
            raise ValueError(
                f"indices must be unique and in 0..{size - 1} for samples of shape {self.shape}, got {idx.tolist()[:16]}"
            )
        self.indices = idx

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"SparsePoints was built for samples of shape {self.shape}, got x of shape {tuple(x.shape)}")
        return x.reshape(x.shape[0], -1)[:, self.indices.to(x.device)]

    def transpose(self, y: Tensor) -> Tensor:
        if y.ndim != 2 or y.shape[1] != self.indices.numel():
            raise ValueError(f"SparsePoints measurements must have shape (B, {self.indices.numel()}), got {tuple(y.shape)}")
        out = y.new_zeros(y.shape[0], math.prod(self.shape))
        out[:, self.indices.to(y.device)] = y
        return out.reshape((y.shape[0],) + self.shape)

    pinv = transpose  # orthonormal rows: A⁺ = Aᵀ

    def gram_solve(self, v: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
        return v / (_bcast(a, v) + _bcast(b, v))


class Downsample(LinearOperator):
    """Average pooling by an integer factor over the last two dims: (B, C, H, W) -> (B, C, H/f, W/f).

    Aᵀ spreads each low-res value over its f×f block divided by f²; A·Aᵀ = I/f², so the
    pseudo-inverse A⁺ = Aᵀ(A·Aᵀ)⁻¹ is nearest-neighbour upsampling."""

    def __init__(self, factor: int):
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
            raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        f = self.factor
        if x.ndim < 3 or x.shape[-1] % f or x.shape[-2] % f:
            raise ValueError(
                f"Downsample({f}) needs x (B, ..., H, W) with H and W divisible by {f}, got shape {tuple(x.shape)}"
            )
        *lead, h, w = x.shape
        return x.reshape(*lead, h // f, f, w // f, f).mean(dim=(-3, -1))

    def pinv(self, y: Tensor) -> Tensor:
        f = self.factor
        return y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)

    def transpose(self, y: Tensor) -> Tensor:
        return self.pinv(y) / self.factor**2

    def gram_solve(self, v: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
        return v / (_bcast(a, v) / self.factor**2 + _bcast(b, v))


def gaussian_kernel(std: float, size: int | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """Normalized 2-D Gaussian kernel (size, size); default size = 2·ceil(3·std) + 1."""
    if not (isinstance(std, Real) and std > 0 and math.isfinite(std)):
        raise ValueError(f"std must be a finite number > 0, got {std!r}")
    size = 2 * math.ceil(3 * std) + 1 if size is None else size
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be an odd integer >= 1, got {size!r}")
    r = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-0.5 * (r / std) ** 2)
    k = g[:, None] * g[None, :]
    return k / k.sum()


class Blur(LinearOperator):
    """Circular 2-D convolution with `kernel` (kh, kw), centred, over the last two dims of x.

    Circular boundaries make A diagonal in the Fourier basis (A = F⁻¹·diag(k̂)·F), so Aᵀ, A⁺ and
    (a·A·Aᵀ + b·I)⁻¹ are exact elementwise operations on k̂. Frequencies with |k̂| < rcond·max|k̂|
    count as unobserved in A⁺ (a Gaussian's k̂ is tiny but nonzero at high frequencies)."""

    def __init__(self, kernel: Tensor, rcond: float = 1e-3):
        kernel = torch.as_tensor(kernel)
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"kernel must be a 2-D tensor with odd sides, got shape {tuple(kernel.shape)}")
        if not 0 < rcond < 1:
            raise ValueError(f"rcond must be in (0, 1), got {rcond}")
        self.kernel, self.rcond = kernel, rcond

    @classmethod
    def gaussian(cls, std: float, size: int | None = None, rcond: float = 1e-3) -> "Blur":
        return cls(gaussian_kernel(std, size), rcond)

    def _khat(self, x: Tensor) -> Tensor:
        """Kernel spectrum (H, W) for x's spatial size, kernel centre moved to index (0, 0)."""
        h, w = x.shape[-2:]
        kh, kw = self.kernel.shape
        if kh > h or kw > w:
            raise ValueError(f"Blur kernel {kh}x{kw} is larger than the image {h}x{w}")
        real = torch.float64 if x.dtype == torch.float64 else torch.float32
        pad = torch.zeros(h, w, dtype=real, device=x.device)
        pad[:kh, :kw] = self.kernel.to(dtype=real, device=x.device)
        pad = torch.roll(pad, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
        return torch.fft.fft2(pad)

    def _apply(self, x: Tensor, spectrum: Tensor) -> Tensor:
        if x.ndim < 3:
            raise ValueError(f"Blur needs x (B, ..., H, W), got shape {tuple(x.shape)}")
        return torch.fft.ifft2(torch.fft.fft2(x) * spectrum).real.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self._apply(x, self._khat(x))

    def transpose(self, y: Tensor) -> Tensor:
        return self._apply(y, self._khat(y).conj())

    def pinv(self, y: Tensor) -> Tensor:
        k = self._khat(y)
        mag2 = k.abs() ** 2
        keep = k.abs() >= self.rcond * k.abs().max()
        inv = torch.where(keep, k.conj() / torch.where(keep, mag2, torch.ones_like(mag2)), torch.zeros_like(k))
        return self._apply(y, inv)

    def gram_solve(self, v: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
        k = self._khat(v)
        mag2 = k.abs() ** 2
        a_, b_ = _bcast(a, v), _bcast(b, v)
        denom = a_ * mag2 + b_  # (B, 1, ..., H, W) broadcast
        # b = 0 (noise-free): invert only the frequencies A⁺ keeps, like pinv.
        keep = k.abs() >= self.rcond * k.abs().max()
        safe = torch.where(keep | (b_ > 0), denom, torch.ones_like(denom))
        scale = torch.where(keep | (b_ > 0), 1 / safe, torch.zeros_like(safe))
        return self._apply(v, scale.to(k.dtype))
