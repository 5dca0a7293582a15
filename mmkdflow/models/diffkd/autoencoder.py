"""DiffKD's linear autoencoder that compresses the teacher feature."""
from typing import Optional, Tuple

import torch.nn as nn
from mmengine.model import BaseModule
from torch import Tensor

from ..utils import from_map, to_map


class LinearAutoencoder(BaseModule):
    r"""Linear channel autoencoder (paper Sec. 3.2)::

        Z = BN(conv1x1_{C_t -> C_ae}(F))        (encoder)
        F_rec = conv1x1_{C_ae -> C_t}(Z)        (decoder)

    No non-linearity. It is trained by the reconstruction loss alone,
    ``L_ae = ||F_rec - F||^2`` (Eq. (6)); the caller detaches ``Z`` before
    using it as the diffusion / distillation target. ``(B, C)`` inputs are
    viewed as ``(B, C, 1, 1)`` and returned as vectors.

    Args:
        in_channels (int): Teacher channels ``C_t``.
        latent_channels (int): Latent channels ``C_ae``.
        init_cfg (dict, optional): MMEngine initialisation config. Defaults to
            None.
    """

    def __init__(self, in_channels: int, latent_channels: int,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if in_channels < 1 or latent_channels < 1:
            raise ValueError(f'channels must be >= 1, got {in_channels}, '
                             f'{latent_channels}')
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, latent_channels, 1),
            nn.BatchNorm2d(latent_channels))
        self.decoder = nn.Conv2d(latent_channels, in_channels, 1)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Return ``(latent, reconstruction)``.

        Returns:
            tuple[Tensor, Tensor]: The latent and the reconstruction.
        """
        x, was_vector = to_map(x)
        latent = self.encoder(x)
        recon = self.decoder(latent)
        return from_map(latent, was_vector), from_map(recon, was_vector)
