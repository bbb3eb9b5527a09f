"""LeNet-5 digit classifier whose 84-d penultimate layer gives the domain-adaptation features (C.7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .training import batched, train_epochs


class LeNet(nn.Module):
    """LeNet-5 for 28x28 grey images: conv(6,5x5,pad 2)-pool-conv(16,5x5)-pool-fc120-fc84-fc10, ReLU.

    :meth:`features` returns the 84-d activations of the penultimate layer (after ReLU), the
    representation in which the paper (Appendix C.7) transports USPS to MNIST.
    """

    feature_dim = 84

    def __init__(self, n_classes: int = 10, seed: int | None = None) -> None:
        super().__init__()
        if seed is not None:
            torch.manual_seed(seed)  # layer constructors draw from the global generator
        self.conv1 = nn.Conv2d(1, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, 1, 28, 28)`` images in ``[0, 1]`` -> ``(N, 84)`` penultimate features."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return F.relu(self.fc2(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, n_classes)``."""
        return self.fc3(self.features(x))


def train_lenet(
    images: torch.Tensor,
    labels: torch.Tensor,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = False,
    device: str | torch.device = "cpu",
    target_accuracy: float | None = None,
    test: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[LeNet, list[float]]:
    """Train a :class:`LeNet` with cross-entropy and Adam; returns the model (eval mode) and per-epoch losses.

    With ``target_accuracy`` and ``test = (images, labels)``, the accuracy on ``test`` is checked after every
    epoch and training stops once it reaches ``target_accuracy`` (``epochs`` is then the cap); the accuracies
    are kept in ``model.test_accuracies``.
    """
    model = LeNet(seed=seed)
    model.test_accuracies = []  # type: ignore[assignment]

    def loss(xb: torch.Tensor, yb: torch.Tensor | None) -> torch.Tensor:
        return F.cross_entropy(model(xb), yb)

    def stop(epoch: int) -> bool:
        assert test is not None
        acc = accuracy(model, *test)
        model.test_accuracies.append(acc)
        return target_accuracy is not None and acc >= target_accuracy

    hist = train_epochs(model, loss, images, labels, epochs, batch_size, lr, seed, progress, desc="LeNet", device=device,
                        stop=stop if test is not None else None)
    return model, hist


def extract_features(model: LeNet, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """84-d penultimate features of ``images`` ``(N, 1, 28, 28)`` -> ``(N, 84)``."""
    model.eval()
    return batched(model.features, images, batch_size, _device(model))


def accuracy(model: LeNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Classification accuracy of ``model`` on ``images``."""
    pred = batched(lambda b: model(b).argmax(1), images, device=_device(model))
    return float((pred == labels).float().mean())


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
