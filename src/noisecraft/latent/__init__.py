"""Latent diffusion (Rombach et al. 2022): a KL autoencoder trained once, diffusion in its latent space.

    ae = Autoencoder.open("runs/shapes-ae")           # written by `noisecraft train-autoencoder`
    z = ae.encode(images)                             # scaled to unit variance
    images = ae.decode(z)
    x = latent_inpaint(ae, run.denoiser(), image, known)   # RePaint in latent space, known pixels kept

A latent run (`[latent] autoencoder = "PATH"`, docs/latent.md) keeps a copy of its autoencoder;
`Run.generate` decodes, so every sampler and guidance method works on latents unchanged.
"""

from .autoencoder import AE_FORMAT, AE_JSON, AE_WEIGHTS, Autoencoder, AutoencoderError, is_autoencoder
from .inpaint import latent_known_mask, latent_inpaint
from .space import DecodedModality, encode_dataset

__all__ = ["Autoencoder", "AutoencoderError", "AE_FORMAT", "AE_JSON", "AE_WEIGHTS", "is_autoencoder",
           "encode_dataset", "DecodedModality", "latent_inpaint", "latent_known_mask"]
