"""Denoiser networks. Every net is called as

    net(x, c_noise, class_labels=None, context=None) -> Tensor of x's shape (B, C, *spatial)

with `dims` = 1, 2 or 3 spatial axes: (B, C, L) audio, (B, C, H, W) images, (B, C, T, H, W) video.
The U-Net and the DiT take all three (`build_net(..., dims=1)`) and share one conditioning
embedding (`layers.ConditionedNet`). A net knows nothing about diffusion processes (see
`noisecraft.core.precond` for the wrapper that turns it into a σ-space denoiser). Build one from
a size preset with `build_net`, and rebuild it from its saved `net.config` with
`build_net_from_config`.
"""

from .dit import DiT, DiTConfig
from .registry import ARCHITECTURES, NET_PRESETS, build_net, build_net_from_config
from .unet import UNet, UNetConfig

__all__ = ["ARCHITECTURES", "DiT", "DiTConfig", "NET_PRESETS", "UNet", "UNetConfig", "build_net", "build_net_from_config"]
