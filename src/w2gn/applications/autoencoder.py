"""A non-variational convolutional autoencoder: the latent space of the latent-OT experiment (5.2, C.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import W2GNUserError
from .training import batched, train_epochs


class ConvAutoencoder(nn.Module):
    """Conv encoder (stride-2 convs + linear) to ``latent_dim`` and a mirrored transposed-conv decoder.

    ``image_size`` must be a multiple of 8 (three stride-2 stages). The decoder ends in a sigmoid,
    so decoded images lie in ``[0, 1]``. Non-variational: the latent distribution is whatever the
    encoder produces, which is why decoding Gaussian noise works poorly and a transport map from
    ``N(0, I)`` to the latent distribution helps (paper, Section 5.2).
    """

    def __init__(self, channels: int = 3, image_size: int = 32, latent_dim: int = 128, width: int = 32,
                 seed: int | None = None) -> None:
        super().__init__()
        if image_size % 8 or image_size < 8:
            raise W2GNUserError(f"image size must be a multiple of 8 (at least 8), got {image_size}")
        if seed is not None:
            torch.manual_seed(seed)
        self.channels, self.image_size, self.latent_dim, self.width = channels, image_size, latent_dim, width
        w, s = width, image_size // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(4 * w * s * s, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 4 * w * s * s), nn.Unflatten(1, (4 * w, s, s)), nn.ReLU(),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.ReLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, S, S)`` images -> ``(N, latent_dim)`` codes."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``(N, latent_dim)`` codes -> ``(N, C, S, S)`` images in ``[0, 1]``."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def config(self) -> dict:
        return {"channels": self.channels, "image_size": self.image_size, "latent_dim": self.latent_dim, "width": self.width}


def reconstruction_loss(model: ConvAutoencoder, x: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error of ``Dec(Enc(x))`` (the paper's perceptual VGG loss needs downloaded
    weights, so the pixel loss stands in)."""
    return F.mse_loss(model(x), x)


def train_autoencoder(
    images: torch.Tensor,
    latent_dim: int = 128,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    width: int = 32,
    seed: int = 0,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[ConvAutoencoder, list[float]]:
    """Train a :class:`ConvAutoencoder` on ``images`` ``(N, C, S, S)``; returns it (eval mode) and per-epoch losses."""
    model = ConvAutoencoder(images.shape[1], images.shape[-1], latent_dim, width, seed=seed)
    hist = train_epochs(model, lambda xb, _: reconstruction_loss(model, xb), images, None, epochs, batch_size, lr, seed,
                        progress, desc="autoencoder", device=device)
    return model, hist


def encode(model: ConvAutoencoder, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    return batched(model.encode, images, batch_size, next(model.parameters()).device)


def decode(model: ConvAutoencoder, codes: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    return batched(model.decode, codes, batch_size, next(model.parameters()).device)
