"""Training shared by the applications: a minimal supervised/unsupervised mini-batch loop for the feature
models (LeNet, autoencoder), and the W2GN solver of an application's map settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from ..errors import DivergenceError


def train_epochs(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor | None,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    progress: bool = False,
    desc: str = "train",
    device: str | torch.device = "cpu",
    stop: Callable[[int], bool] | None = None,
) -> list[float]:
    """Adam over shuffled mini-batches; returns the mean loss of every epoch.

    ``loss_fn(batch_inputs, batch_targets)`` computes the loss with ``model`` (closure); ``model`` is
    moved to ``device`` and every batch with it (the data stay where they are). ``stop(epoch)`` (1-based),
    if given, is called after every epoch with the model in eval mode; ``True`` ends the training there
    (``epochs`` is then a cap). Raises :class:`~w2gn.errors.DivergenceError` if the loss becomes non-finite.
    """
    gen = torch.Generator().manual_seed(int(seed))
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = inputs.shape[0]
    steps = (n + batch_size - 1) // batch_size
    history: list[float] = []
    model.train()
    bar = tqdm(total=epochs * steps, desc=desc, disable=not progress, leave=False)
    try:
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=gen)
            total = torch.zeros(())  # on the CPU: one sync per step is cheap next to the step
            for s in range(steps):
                idx = perm[s * batch_size : (s + 1) * batch_size]
                xb = inputs[idx].to(device)
                yb = targets[idx].to(device) if targets is not None else None
                loss = loss_fn(xb, yb)
                if not torch.isfinite(loss):
                    raise DivergenceError(epoch * steps + s, f"{desc} loss", float(loss))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.detach().cpu() * idx.shape[0]
                bar.update(1)
            history.append(float(total) / n)
            bar.set_postfix(loss=f"{history[-1]:.4g}")
            if stop is not None:
                model.eval()
                done = stop(epoch + 1)
                model.train()
                if done:
                    break
    finally:
        bar.close()
        model.eval()
    return history


def map_solver(cfg: Any, seed: int, **options: Any):
    """The W2GN solver of an application config's map settings (``iterations``, ``batch_size``, ``lr``,
    ``lambda_cycle``, ``hidden``, ``rank``, ``pretrain_iterations``; ``device``, ``dtype``, ``progress``), with
    statistics every ``min(500, iterations)`` steps and the further solver ``options`` (e.g. ``l1_penalty``)."""
    from ..solvers import get_solver

    return get_solver(
        "w2gn", iterations=cfg.iterations, batch_size=cfg.batch_size, lr=cfg.lr, lambda_cycle=cfg.lambda_cycle,
        hidden=list(cfg.hidden), rank=cfg.rank, pretrain_iterations=cfg.pretrain_iterations, seed=seed,
        device=cfg.device, dtype=cfg.dtype, progress=cfg.progress, log_every=max(1, min(500, cfg.iterations)), **options,
    )


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int = 1024,
            device: str | torch.device | None = None) -> torch.Tensor:
    """``fn`` applied to ``x`` in row batches without autograd; batches go to ``device`` and results
    come back to ``x``'s device."""
    dev = x.device if device is None else torch.device(device)
    outs = [fn(x[s : s + batch_size].to(dev)).to(x.device) for s in range(0, x.shape[0], batch_size)]
    return torch.cat(outs) if outs else x.new_empty((0,))
